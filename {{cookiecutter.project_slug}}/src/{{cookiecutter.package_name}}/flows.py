"""Prefect 3 flows: ``generate``, ``train``, ``score`` and ``batch-pipeline`` (generate -> train -> score).

Each flow opens one Dask cluster from the settings (:func:`.cluster.dask_client`: version-checked
before any work, closed pass or fail) and runs a few coarse Prefect tasks in the flow process. A task
hands its per-file work to Dask in one go (``client.map`` over the parquet files, with Dask-level
retries), so a run creates a handful of Prefect task runs whatever the data size, and Dask
parallelises the files across workers. This works the same with a local cluster, an external
scheduler (``PIPELINE_CLUSTER=address``: workers import this package from the same environment) and
a Fargate cluster, and the Dask workers need no access to the Prefect API.

Negative engineering: I/O steps retry with exponential backoff (not on errors a retry cannot fix),
every step has a timeout, malformed rows are quarantined and counted, results are committed
atomically (:mod:`.publish`), a model below the accuracy gate is not published, and metrics plus a
short summary are published as Prefect artifacts.
"""

from __future__ import annotations

import time
from typing import Any

from distributed import Client, as_completed
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

# Absolute imports: Prefect deployments load this file by path (prefect.yaml entrypoint), and the
# functions handed to Dask must live in the installed package so that workers can import them.
from {{ cookiecutter.package_name }} import notify, publish
from {{ cookiecutter.package_name }}.cluster import ClusterVersionError, dask_client
from {{ cookiecutter.package_name }}.config import ConfigError, Settings
from {{ cookiecutter.package_name }}.data import (
    feature_names,
    list_parquet,
    partition_sizes,
    score_file,
    write_partition,
)
from {{ cookiecutter.package_name }}.interrupts import cancel_and_drain
from {{ cookiecutter.package_name }}.model import (
    ModelVersionError,
    QualityGateError,
    load_model,
    save_model,
    train,
)
from {{ cookiecutter.package_name }}.observe import RunObserver

# Errors a retry cannot fix: fail the step at once.
PERMANENT_ERRORS = (
    ConfigError,
    ClusterVersionError,
    ModelVersionError,
    QualityGateError,
    publish.NotCommittedError,
    FileExistsError,
    ValueError,
    KeyError,
)


def _retryable(task: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(getattr(state, "data", None), PERMANENT_ERRORS)


def _io(task_fn: Any, settings: Settings) -> Any:
    """An I/O task with the configured retries (exponential backoff) and timeout."""
    return task_fn.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay),
        retry_jitter_factor=0.5,
        timeout_seconds=settings.task_timeout,
    )


def paths(settings: Settings) -> dict[str, str]:
    root = settings.data_url
    return {
        "train": publish.join(root, "datasets", "train"),
        "score": publish.join(root, "datasets", "score"),
        "models": publish.join(root, "models"),
        "predictions": publish.join(root, "predictions"),
    }


def _progress(futures: list[Any], what: str, unit: str = "files") -> list[Any]:
    """Wait for Dask futures, logging progress about every 20%; results in submission order."""
    logger = get_run_logger()
    total, step = len(futures), max(1, len(futures) // 5)
    for done, _ in enumerate(as_completed(futures), start=1):
        if done % step == 0 or done == total:
            logger.info("%s: %d/%d %s", what, done, total, unit)
    return [f.result() for f in futures]


# -- tasks ------------------------------------------------------------------------------------------
@task(name="generate-dataset", cache_policy=NO_CACHE, retry_condition_fn=_retryable)
def generate_dataset(
    client: Client, settings: Settings, url: str, rows: int, files: int, labelled: bool, run_id: str
) -> dict[str, Any]:
    """Write a synthetic dataset as ``files`` parquet files, then commit it (replacing an older one)."""
    logger = get_run_logger()
    logger.info("generating %s rows x %d features in %d files -> %s", f"{rows:,}", settings.features, files, url)
    staging = publish.staging_url(url, run_id)
    publish.remove(staging, settings.storage_options)
    sizes = partition_sizes(rows, files)
    starts = [sum(sizes[:i]) for i in range(files)] if files < 10_000 else None
    if starts is None:  # avoid quadratic prefix sums for huge file counts
        starts, acc = [], 0
        for s in sizes:
            starts.append(acc)
            acc += s
    try:
        futures = client.map(
            write_partition,
            [staging] * files,
            range(files),
            sizes,
            starts,
            features=settings.features,
            seed=settings.seed + (0 if labelled else 1),
            malformed_fraction=settings.malformed_fraction,
            labelled=labelled,
            storage_options=settings.storage_options,
            retries=settings.retries,
            pure=False,
        )
        written = _progress(futures, f"generate {url.rsplit('/', 1)[-1]}")
        manifest = {"kind": "dataset", "rows": rows, "labelled": labelled, "files": written, "seed": settings.seed}
        publish.commit(staging, url, manifest, settings.storage_options, replace=True, update_latest=False)
    except BaseException:
        publish.remove(staging, settings.storage_options)
        raise
    return {"url": url, "rows": rows, "files": files}


@task(name="train-model", cache_policy=NO_CACHE)
def train_model(client: Client, settings: Settings, dataset_url: str, run_id: str) -> dict[str, Any]:
    """Train on the committed dataset, gate on holdout accuracy, commit the model artifact."""
    logger = get_run_logger()
    final = publish.join(paths(settings)["models"], run_id)
    staging = publish.staging_url(final, run_id)
    files = list_parquet(dataset_url, settings.storage_options)
    features = feature_names(settings.features)
    logger.info("training on %d files of %s", len(files), dataset_url)
    t0 = time.perf_counter()
    try:
        model, metrics = train(
            client,
            files,
            features,
            seed=settings.seed,
            quarantine_url=publish.join(staging, "quarantine"),
            storage_options=settings.storage_options,
        )
        metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
        logger.info("holdout metrics: %s", metrics)
        quarantine_gate(
            settings, "training", metrics["train_quarantined_rows"], metrics["train_rows"] + metrics["holdout_rows"]
        )
        if metrics["holdout_accuracy"] < settings.min_accuracy:
            raise QualityGateError(
                f"holdout accuracy {metrics['holdout_accuracy']:.4f} is below PIPELINE_MIN_ACCURACY="
                f"{settings.min_accuracy}; the model is not published"
            )
        save_model(model, staging, settings.storage_options)
        manifest = {
            "kind": "model",
            "run_id": run_id,
            "dataset": dataset_url,
            "metrics": metrics,
            "versions": model.versions,
            "files": [{"path": "model.pkl", "rows": 0}],
        }
        _io(commit_task, settings)(staging, final, manifest, settings.storage_options)
    except BaseException:
        publish.remove(staging, settings.storage_options)
        raise
    return {"model_url": final, "metrics": metrics}


@task(name="commit", cache_policy=NO_CACHE, retry_condition_fn=_retryable)
def commit_task(staging: str, final: str, manifest: dict[str, Any], storage_options: dict[str, Any]) -> None:
    publish.commit(staging, final, manifest, storage_options)


@task(name="score-dataset", cache_policy=NO_CACHE, retry_condition_fn=_retryable)
def score_dataset(client: Client, settings: Settings, model_url: str, dataset_url: str, run_id: str) -> dict[str, Any]:
    """Score every file of the dataset out-of-core on the cluster; commit predictions + quarantine."""
    logger = get_run_logger()
    so = settings.storage_options
    model = load_model(model_url, so)  # refuses a model trained under other library versions
    files = list_parquet(dataset_url, so)
    final = publish.join(paths(settings)["predictions"], run_id)
    staging = publish.staging_url(final, run_id)
    publish.remove(staging, so)
    logger.info("scoring %d files of %s with %s", len(files), dataset_url, model_url)
    t0 = time.perf_counter()
    futures: list[Any] = []
    try:
        names = [f"part-{i:05d}.parquet" for i in range(len(files))]
        futures = client.map(
            score_file,
            files,
            [publish.join(staging, n) for n in names],
            [publish.join(staging, "quarantine", n) for n in names],
            model=model.scorer(),  # a few hundred bytes of numpy: no ML imports on workers
            batch_rows=settings.batch_rows,
            storage_options=so,
            retries=settings.retries,
            pure=False,
        )
        results = _progress(futures, "score")
        seconds = time.perf_counter() - t0
        scored = sum(r["scored"] for r in results)
        quarantined = sum(r["quarantined"] for r in results)
        manifest = {
            "kind": "predictions",
            "run_id": run_id,
            "model": model_url,
            "dataset": dataset_url,
            "rows": scored,
            "quarantined_rows": quarantined,
            "files": [{"path": n, "rows": r["scored"]} for n, r in zip(names, results, strict=True)],
            "quarantine_files": [
                {"path": f"quarantine/{n}", "rows": r["quarantined"]}
                for n, r in zip(names, results, strict=True)
                if r["has_quarantine"]
            ],
        }
        quarantine_gate(settings, "scoring", quarantined, scored)
        publish.commit(staging, final, manifest, so)
    except BaseException:
        cancel_and_drain(client, futures)  # files still being written would refill the staging area
        publish.remove(staging, so)
        raise
    rate = (scored + quarantined) / seconds if seconds > 0 else 0.0
    logger.info(
        "scored %s rows (%s quarantined) in %.1fs: %s rows/s",
        f"{scored:,}",
        f"{quarantined:,}",
        seconds,
        f"{rate:,.0f}",
    )
    return {
        "predictions_url": final,
        "rows": scored,
        "quarantined_rows": quarantined,
        "quarantine_url": publish.join(final, "quarantine") if quarantined else None,
        "files": len(files),
        "seconds": round(seconds, 2),
        "rows_per_second": round(rate),
    }


def quarantine_gate(settings: Settings, stage: str, quarantined: int, kept: int) -> None:
    """Stop (nothing published) when more than PIPELINE_MAX_QUARANTINE_FRACTION of the rows are malformed."""
    total = quarantined + kept
    share = quarantined / total if total else 0.0
    if share > settings.max_quarantine_fraction:
        raise QualityGateError(
            f"{stage}: {quarantined:,} of {total:,} rows ({share:.2%}) are malformed and quarantined, over "
            f"PIPELINE_MAX_QUARANTINE_FRACTION={settings.max_quarantine_fraction}; nothing is published and the "
            "previous model and predictions stay in place"
        )


# -- flows ------------------------------------------------------------------------------------------
def _settings(**overrides: Any) -> Settings:
    return Settings.from_env(**overrides)


def _generate(client: Client, settings: Settings, run_id: str) -> list[dict[str, Any]]:
    p = paths(settings)
    gen = _io(generate_dataset, settings)
    return [
        gen(client, settings, p["train"], settings.train_rows, settings.train_files, True, run_id),
        gen(client, settings, p["score"], settings.score_rows, settings.score_files, False, run_id),
    ]


@flow(name="generate", log_prints=True, **notify.HOOKS)
def generate_flow(
    data_url: str | None = None,
    train_rows: int | None = None,
    train_files: int | None = None,
    score_rows: int | None = None,
    score_files: int | None = None,
    features: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Write the synthetic training and scoring datasets under ``<data>/datasets``."""
    settings = _settings(
        data_url=data_url,
        train_rows=train_rows,
        train_files=train_files,
        score_rows=score_rows,
        score_files=score_files,
        features=features,
        seed=seed,
    )
    with dask_client(settings) as client:
        return _generate(client, settings, publish.new_run_id())


@flow(name="train", log_prints=True, **notify.HOOKS)
def train_flow(data_url: str | None = None, dataset_url: str | None = None, min_accuracy: float | None = None) -> dict:
    """Train on ``dataset_url`` (default ``<data>/datasets/train``) and commit the model."""
    settings = _settings(data_url=data_url, min_accuracy=min_accuracy)
    run_id = publish.new_run_id()
    observer = RunObserver(settings, run_id)
    with dask_client(settings) as client, observer.watch(client), observer.stage("train"):
        result = train_model(client, settings, dataset_url or paths(settings)["train"], run_id)
    _publish_artifacts(settings, run_id, result, None, None)
    observer.publish(result, None)
    return result


@flow(name="score", log_prints=True, **notify.HOOKS)
def score_flow(data_url: str | None = None, model_url: str | None = None, dataset_url: str | None = None) -> dict:
    """Score ``dataset_url`` (default ``<data>/datasets/score``) with ``model_url`` (default: latest)."""
    settings = _settings(data_url=data_url)
    p = paths(settings)
    model_url = model_url or publish.latest(p["models"], settings.storage_options)
    run_id = publish.new_run_id()
    observer = RunObserver(settings, run_id)
    with dask_client(settings) as client, observer.watch(client), observer.stage("score"):
        result = _io(score_dataset, settings)(client, settings, model_url, dataset_url or p["score"], run_id)
    _publish_artifacts(settings, run_id, None, result, None)
    observer.publish(None, result)
    return result


@flow(name="batch-pipeline", log_prints=True, **notify.HOOKS)
def batch_pipeline(
    data_url: str | None = None,
    train_rows: int | None = None,
    train_files: int | None = None,
    score_rows: int | None = None,
    score_files: int | None = None,
    features: int | None = None,
    seed: int | None = None,
    min_accuracy: float | None = None,
) -> dict[str, Any]:
    """Generate the sample data, train, then score it, on one Dask cluster."""
    settings = _settings(
        data_url=data_url,
        train_rows=train_rows,
        train_files=train_files,
        score_rows=score_rows,
        score_files=score_files,
        features=features,
        seed=seed,
        min_accuracy=min_accuracy,
    )
    logger = get_run_logger()
    logger.info("batch pipeline: %s", settings.describe())
    run_id = publish.new_run_id()
    t0 = time.perf_counter()
    observer = RunObserver(settings, run_id)
    with dask_client(settings) as client:
        observer.stages["cluster start"] = round(time.perf_counter() - t0, 2)
        with observer.watch(client):
            with observer.stage("generate"):
                generated = _generate(client, settings, run_id)
            with observer.stage("train"):
                trained = train_model(client, settings, generated[0]["url"], run_id)
            with observer.stage("score"):
                scored = _io(score_dataset, settings)(
                    client, settings, trained["model_url"], generated[1]["url"], run_id
                )
    summary = _publish_artifacts(settings, run_id, trained, scored, time.perf_counter() - t0)
    observed = observer.publish(trained, scored)
    return {"run_id": run_id, "model": trained, "scoring": scored, "summary": summary, "observed": observed}


def summary_text(run_id: str, trained: dict | None, scored: dict | None, seconds: float | None) -> str:
    lines = [f"run {run_id} succeeded" + (f" in {seconds:.1f}s" if seconds is not None else "")]
    if trained:
        m = trained["metrics"]
        lines.append(
            f"model:        {trained['model_url']}  holdout accuracy {m['holdout_accuracy']:.4f} "
            f"(best possible {m['bayes_accuracy']:.4f}), log loss {m['holdout_log_loss']:.4f}, "
            f"{m['train_rows']:,} training rows, {m['train_quarantined_rows']:,} quarantined"
        )
    if scored:
        lines.append(
            f"predictions:  {scored['predictions_url']}  {scored['rows']:,} rows scored in {scored['seconds']}s "
            f"({scored['rows_per_second']:,} rows/s)"
        )
        where = f" -> {scored['quarantine_url']}" if scored["quarantine_url"] else ""
        lines.append(f"quarantined:  {scored['quarantined_rows']:,} malformed rows{where}")
    return "\n".join(lines)


def _publish_artifacts(
    settings: Settings, run_id: str, trained: dict | None, scored: dict | None, seconds: float | None
) -> str:
    text = summary_text(run_id, trained, scored, seconds)
    rows: list[dict[str, Any]] = []
    if trained:
        rows += [{"metric": k, "value": v} for k, v in trained["metrics"].items()]
    if scored:
        rows += [{"metric": k, "value": scored[k]} for k in ("rows", "quarantined_rows", "seconds", "rows_per_second")]
    create_table_artifact(key="pipeline-metrics", table=rows, description=f"Metrics of run {run_id}")
    create_markdown_artifact(key="pipeline-summary", markdown="```\n" + text + "\n```", description="Run summary")
    get_run_logger().info("summary\n%s", text)
    return text
