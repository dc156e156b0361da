"""The pipeline's Prefect tasks: coarse steps that hand per-file work to Dask in one go.

A step maps its files over the cluster (``client.map``, with Dask-level retries), so a run creates a
handful of Prefect task runs whatever the data size, and the Dask workers need no Prefect API.
Negative engineering lives here, once: I/O steps retry with exponential backoff (not on errors a
retry cannot fix), every step has a timeout, malformed rows are quarantined and counted, results
are committed atomically (:mod:`.storage`), and the quality gates stop a bad model or bad data from
being published. The steps call the seam — ``schema.SCHEMA``, ``model.build()``,
``model.QUALITY_GATE`` and ``sample_data`` — and nothing else of yours.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributed import Client
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

# Absolute imports: Prefect deployments load flows.py by module name, and the functions handed to
# Dask must live in the installed package so that workers can import them.
from ml_workflows import drift, notifications, output_lock, permanent, promotion, storage
from ml_workflows.cancel import cancel_and_drain
from ml_workflows.cluster import ClusterVersionError, as_completed_watched
from ml_workflows.inputs import dataset_files, paths  # paths: re-exported for flows.py
from ml_workflows.model_store import ModelUnreadableError, ModelVersionError, load_model, read_info, save_model
from ml_workflows.project import current
from ml_workflows.quality import QualityGateError, quarantine_gate
from ml_workflows.reports import publish_comparison, publish_drift
from ml_workflows.scoring import score_file
from ml_workflows.settings import ConfigError, Settings
from ml_workflows.validation import REASON, MissingColumnsError, require_columns, split_valid

# The project's seam (its package's schema.py, model.py and sample_data.py): the only code of the user's called here.
PROJECT = current()
user_model = PROJECT.module("model")
sample_data = PROJECT.module("sample_data")
SCHEMA = PROJECT.module("schema").SCHEMA

# Errors a retry cannot fix: fail the step at once (the standard library's: permanent.ERRORS; a missing input is an
# inputs.InputError, a ConfigError). Dask's retries skip them too (permanent.Once).
PERMANENT_ERRORS = (
    *permanent.ERRORS,
    ConfigError,
    ClusterVersionError,
    ModelVersionError,
    ModelUnreadableError,
    QualityGateError,
    drift.DriftError,
    promotion.PromotionError,
    storage.NotCommittedError,
)


def _retryable(task: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(getattr(state, "data", None), PERMANENT_ERRORS)


def with_retries(task_fn: Any, settings: Settings) -> Any:
    """An I/O step with the configured retries (exponential backoff) and timeout."""
    return task_fn.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_delay),
        retry_jitter_factor=0.5,
        timeout_seconds=settings.task_timeout,
    )


def writes_under(root_of: Callable[[dict[str, Any]], str]) -> Callable[[Any], Any]:
    """A step that holds the lock of the output root ``root_of(its arguments)`` names while it runs
    (:mod:`.output_lock`): a second run writing there is refused when it asks, and the staging that runs which died
    left there is removed first. The step's timeout (``PIPELINE_TASK_TIMEOUT``) is the lock's expiry."""

    def wrap(fn: Any) -> Any:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind(*args, **kwargs).arguments
            settings = arguments["settings"]
            root, so = root_of(arguments), settings.storage_options
            with output_lock.hold(root, arguments["run_id"], so, timeout=settings.task_timeout, log=get_run_logger()):
                return fn(*args, **kwargs)

        return locked

    return wrap


def _progress(futures: list[Any], what: str, settings: Settings, unit: str = "files") -> list[Any]:
    """Wait for Dask futures, logging progress about every 20%; results in submission order.

    Fails (:class:`.cluster.WorkerMemoryError`) when every worker stays paused with nothing finishing, and at the
    first task that failed for good (a permanent error, :mod:`.permanent`, or retries exhausted), not after the rest.
    """
    logger = get_run_logger()
    total, step = len(futures), max(1, len(futures) // 5)
    results = {}
    for done, future in enumerate(as_completed_watched(futures, settings), start=1):
        results[future.key] = permanent.result(future.result())
        if done % step == 0 or done == total:
            logger.info("%s: %d/%d %s", what, done, total, unit)
    return [results[f.key] for f in futures]


@task(name="generate-sample-data", cache_policy=NO_CACHE, retry_condition_fn=_retryable)
@writes_under(lambda a: output_lock.root_of(a["url"]))
def generate_sample(
    client: Client, settings: Settings, url: str, rows: int, files: int, labelled: bool, run_id: str
) -> dict[str, Any]:
    """Write sample data (``sample_data``) as ``files`` parquet files, then commit it (replacing an older one)."""
    logger = get_run_logger()
    logger.info("generating %s sample rows in %d files -> %s", f"{rows:,}", files, url)
    staging = storage.staging_url(url, run_id)
    storage.remove(staging, settings.storage_options)
    sizes = sample_data.partition_sizes(rows, files)
    starts, acc = [], 0
    for size in sizes:
        starts.append(acc)
        acc += size
    try:
        futures = client.map(
            permanent.Once(sample_data.write_partition),
            [staging] * files,
            range(files),
            sizes,
            starts,
            seed=settings.seed + (0 if labelled else 1),
            malformed_fraction=settings.sample_malformed_fraction,
            labelled=labelled,
            storage_options=settings.storage_options,
            retries=settings.retries,
            pure=False,
        )
        written = _progress(futures, f"generate {url.rsplit('/', 1)[-1]}", settings)
        manifest = {"kind": "dataset", "rows": rows, "labelled": labelled, "files": written, "seed": settings.seed}
        storage.commit(staging, url, manifest, settings.storage_options, replace=True, update_latest=False)
    except BaseException:
        storage.remove(staging, settings.storage_options)
        raise
    return {"url": url, "rows": rows, "files": files}


def _valid_rows(part: Any) -> Any:
    return split_valid(part, SCHEMA, labelled=True)[0]


def _bad_rows(part: Any) -> Any:
    return split_valid(part, SCHEMA, labelled=True)[1]


DRIFT_SAMPLE_ROWS = 200_000  # training rows the drift bins' quantile edges are taken from


def drift_reference(good: Any, seed: int) -> dict[str, Any]:
    """The drift profile of the valid training rows: edges from a random sample, counts from every row."""
    import dask

    features = good[SCHEMA.feature_names]
    rows = int(features.shape[0].compute())
    sample = features.sample(frac=min(1.0, DRIFT_SAMPLE_ROWS / max(rows, 1)), random_state=seed).compute()
    profile = drift.reference_profile(sample, SCHEMA)
    counts = dask.compute(*[dask.delayed(drift.count)(part, profile) for part in features.to_delayed()])
    return drift.with_expected(profile, drift.merge(list(counts)))


def _valid_frame(files: list[str], settings: Settings, what: str) -> Any:
    import dask.dataframe as dd

    frame = dd.read_parquet(files, storage_options=settings.storage_options)
    require_columns(list(frame.columns), SCHEMA, True, f"{what} {files[0]} (and {len(files) - 1} more)")
    return frame[SCHEMA.columns(labelled=True)]


def fit_and_evaluate(
    client: Client,
    files: list[str],
    settings: Settings,
    quarantine_url: str,
    holdout: float = 0.2,
    champion: Any | None = None,
) -> tuple[Any, dict[str, float], dict[str, int], dict[str, Any]]:
    """Quarantine malformed rows, split off a holdout, ``model.build().fit(train)``, ``evaluate(holdout)``.

    The valid rows are persisted in cluster memory (typical: train on a sample, score everything).
    Returns the fitted model, its metrics, the row counts and ``extra``: the drift reference profile
    and the champion / challenger metrics on the same rows (the holdout, or the reference dataset
    ``PIPELINE_REFERENCE_DATASET_URL``) when a ``champion`` model is given.
    """
    frame = _valid_frame(files, settings, "training data")
    good = frame.map_partitions(_valid_rows, meta=frame._meta)
    bad = frame.map_partitions(_bad_rows, meta=split_valid(frame._meta, SCHEMA, labelled=True)[1])
    bad.to_parquet(
        quarantine_url,
        storage_options=settings.storage_options,
        write_index=False,
        compute=False,
        **storage.parquet_options(REASON),
    ).compute()
    quarantined = int(bad.shape[0].compute())
    good = client.persist(good)
    train, held = good.random_split([1 - holdout, holdout], random_state=settings.seed)
    train, held = client.persist([train, held])
    counts = {"train_rows": int(train.shape[0].compute()), "holdout_rows": int(held.shape[0].compute())}
    counts["train_quarantined_rows"] = quarantined
    profile = drift_reference(good, settings.seed)
    model = user_model.build().fit(train)
    metrics = {k: float(v) for k, v in model.evaluate(held).items()}
    extra: dict[str, Any] = {"profile": profile, "evaluated_on": "holdout", "challenger": metrics, "champion": None}
    if settings.reference_dataset_url:  # a fixed set both models are compared on, instead of this run's holdout
        ref_files = storage.list_parquet(settings.reference_dataset_url, settings.storage_options)
        ref = _valid_frame(ref_files, settings, "reference data").map_partitions(_valid_rows, meta=frame._meta)
        held = client.persist(ref)
        extra["evaluated_on"] = f"reference dataset {settings.reference_dataset_url}"
        extra["challenger"] = {k: float(v) for k, v in model.evaluate(held).items()}
    if champion is not None:
        extra["champion"] = {k: float(v) for k, v in champion.evaluate(held).items()}
    del good, train, held  # releases the persisted training data on the cluster
    return model, metrics, counts, extra


@dataclass(frozen=True)
class CurrentModel:
    """The model ``_LATEST`` names, as training sees it."""

    url: str | None = None  # None: nothing promoted yet
    model: Any | None = None  # None when there is none or it cannot be used
    problem: str | None = None  # why it cannot be used (another schema, other library versions, unreadable)
    on_sample: bool | None = None  # trained on the sample data; None: unknown (a model of an earlier release)


def on_sample_data(dataset_url: str, so: dict[str, Any]) -> bool:
    """Whether ``dataset_url`` holds the sample data: ``generate-sample-data`` commits it with a manifest saying so
    (``kind: dataset``; your datasets carry no manifest, or another kind)."""
    try:
        return storage.read_manifest(dataset_url, so).get("kind") == "dataset"
    except (storage.NotCommittedError, OSError, ValueError):
        return False


def current_model(settings: Settings) -> CurrentModel:
    """The current model (``_LATEST``): loaded when it can score with this schema and these library versions,
    else with the reason it cannot (an unreadable one is logged and counts as none: a training run replaces it)."""
    so = settings.storage_options
    url = promotion.state(paths(settings)["models"], so).get("latest")
    if not url:
        return CurrentModel()
    try:
        info = read_info(url, so)
        on_sample = info.get("on_sample_data")
        if on_sample is None and info.get("dataset"):  # a model of an earlier release: ask its dataset
            on_sample = on_sample_data(info["dataset"], so)
        if info.get("schema") and info["schema"] != SCHEMA.describe():
            why = "the current model was trained on another schema than schema.py's"
            return CurrentModel(url, None, why, on_sample)
        return CurrentModel(url, load_model(url, so), None, on_sample)
    except (ModelVersionError, ModelUnreadableError, storage.NotCommittedError) as exc:
        if isinstance(exc, ModelUnreadableError):
            get_run_logger().warning("%s", exc)
        return CurrentModel(url, None, f"the current model cannot be used: {exc}")


@task(name="train-model", cache_policy=NO_CACHE)
@writes_under(lambda a: paths(a["settings"])["models"])  # promotion included: one decision at a time
def train_model(client: Client, settings: Settings, dataset_url: str, run_id: str) -> dict[str, Any]:
    """Train on the committed dataset, gate on the model's metric, commit the model artifact."""
    logger = get_run_logger()
    so = settings.storage_options
    models = paths(settings)["models"]
    final = storage.join(models, run_id)
    staging = storage.staging_url(final, run_id)
    # Every file's footer against schema.py before any work: a file of other columns fails now, not after the rest.
    files = dataset_files(dataset_url, SCHEMA, True, so, "training dataset")
    if settings.reference_dataset_url:
        reference = "reference dataset (PIPELINE_REFERENCE_DATASET_URL)"
        dataset_files(settings.reference_dataset_url, SCHEMA, True, so, reference)
    if PROJECT.tracks:
        from ml_workflows.tracking import TrackingSettings, log_training  # MLflow: training only

        TrackingSettings.from_env(settings)  # a missing tracking URI fails here, before any work
    current = current_model(settings)
    current_model_url, on_sample = current.url, on_sample_data(dataset_url, so)
    problem, not_comparable = current.problem, None
    conflict = promotion.data_conflict(on_sample, current.on_sample) if current.model is not None else None
    if conflict:
        why, replaces = conflict
        problem, not_comparable = (why, None) if replaces else (None, why)
    champion = current.model if conflict is None else None  # a model that is not compared is not evaluated
    logger.info("training on %d files of %s (current model: %s)", len(files), dataset_url, current_model_url or "none")
    t0 = time.perf_counter()
    try:
        quarantine = storage.join(staging, "quarantine")
        model, metrics, counts, extra = fit_and_evaluate(client, files, settings, quarantine, champion=champion)
        seconds = round(time.perf_counter() - t0, 2)
        logger.info("holdout metrics: %s", metrics)
        kept = counts["train_rows"] + counts["holdout_rows"]
        quarantine_gate("training", counts["train_quarantined_rows"], kept, settings.max_quarantine_fraction)
        user_model.QUALITY_GATE.check(metrics, settings.quality_gate_min)
        comparison = promotion.compare(
            user_model.QUALITY_GATE,
            extra["challenger"],
            extra["champion"],
            settings.promotion_tolerance,
            current_model_url=current_model_url,
            evaluated_on=extra["evaluated_on"],
            champion_problem=problem,
            not_comparable=not_comparable,
        )
        logger.info("%s: %s", "promote" if comparison["promote"] else "keep as candidate", comparison["reason"])
        info = {
            "schema": SCHEMA.describe(),
            "metrics": metrics,
            "rows": counts,
            "dataset": dataset_url,
            "on_sample_data": on_sample,
        }
        save_model(model, staging, info, so)
        storage.write_json(storage.join(staging, drift.REFERENCE_FILE), extra["profile"], so)
        manifest = {
            "kind": "model",
            "run_id": run_id,
            "dataset": dataset_url,
            "metrics": metrics,
            "rows": counts,
            "comparison": comparison,
            "files": [{"path": "model.pkl", "rows": 0}],
            "quarantine_files": storage.file_entries(staging, storage.QUARANTINE, so),  # storage.quarantine_files
        }
        # Committed as a candidate; _LATEST moves below, in one write, only if the comparison says so.
        with_retries(commit_task, settings)(staging, final, manifest, so, update_latest=False)
    except MissingColumnsError as exc:
        storage.remove(staging, settings.storage_options)
        raise ConfigError(str(exc)) from None
    except BaseException:
        storage.remove(staging, settings.storage_options)
        raise
    # The decision is stored first (storage only): bookkeeping that needs the Prefect API or MLflow comes after,
    # so a server lost at this point cannot leave a committed model neither current nor recorded.
    if comparison["promote"]:
        promotion.promote(models, final, f"run {run_id}: {comparison['reason']}", so)
    else:
        event = {"action": "candidate", "model": final, "champion": current_model_url, "reason": comparison["reason"]}
        promotion.record(models, event, so)
        logger.warning("new model kept as a candidate (%s); scoring keeps %s", comparison["reason"], current_model_url)
    if PROJECT.tracks:
        run = log_training(settings, run_id, final, model, metrics, counts, comparison, dataset_url)
        logger.info("MLflow run %s", run)
    publish_comparison(comparison, run_id, final)
    gate = user_model.QUALITY_GATE.describe(settings.quality_gate_min)
    return {
        "model_url": final,
        "metrics": metrics,
        "rows": counts,
        "gate": gate,
        "seconds": seconds,
        "comparison": comparison,
        "promoted": comparison["promote"],
        "current_model_url": final if comparison["promote"] else current_model_url,
    }


@task(name="commit", cache_policy=NO_CACHE, retry_condition_fn=_retryable)
def commit_task(
    staging: str, final: str, manifest: dict[str, Any], storage_options: dict[str, Any], update_latest: bool = True
) -> None:
    storage.commit(staging, final, manifest, storage_options, update_latest=update_latest)


@task(name="score-dataset", cache_policy=NO_CACHE, retry_condition_fn=_retryable)
@writes_under(lambda a: paths(a["settings"])["predictions"])
def score_dataset(client: Client, settings: Settings, model_url: str, dataset_url: str, run_id: str) -> dict[str, Any]:
    """Score every file of the dataset out-of-core on the cluster; commit predictions + quarantine."""
    logger = get_run_logger()
    so = settings.storage_options
    # Every file's footer against schema.py first: a file of other columns fails the run before any file is scored.
    files = dataset_files(dataset_url, SCHEMA, False, so, "dataset to score")
    model = load_model(model_url, so)  # refuses a model trained under other library versions
    trained_on = read_info(model_url, so).get("schema")
    if trained_on and trained_on != SCHEMA.describe():
        raise ConfigError(f"model {model_url} was trained on another schema than schema.py declares; retrain it")
    profile = _drift_profile(model_url, so)
    final = storage.join(paths(settings)["predictions"], run_id)
    staging = storage.staging_url(final, run_id)
    storage.remove(staging, so)
    logger.info("scoring %d files of %s with %s", len(files), dataset_url, model_url)
    t0 = time.perf_counter()
    futures: list[Any] = []
    try:
        # The model reaches each worker once per run (not once per file), whatever its size.
        [shared_model] = client.scatter([model], broadcast=True, hash=False)
        names = [sample_data.file_name(i) for i in range(len(files))]
        futures = client.map(
            permanent.Once(score_file),
            files,
            [storage.join(staging, n) for n in names],
            [storage.join(staging, "quarantine", n) for n in names],
            model=shared_model,
            schema=SCHEMA,
            batch_rows=settings.batch_rows,
            storage_options=so,
            profile=profile,
            retries=settings.retries,
            pure=False,
        )
        results = _progress(futures, "score", settings)
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
        quarantine_gate("scoring", quarantined, scored, settings.max_quarantine_fraction)
        drifted = _drift_check(settings, profile, [r.get("drift") for r in results], staging, run_id)
        if drifted:
            manifest["drift"] = {k: drifted[k] for k in ("metric", "threshold", "max_psi", "drifted")}
        storage.commit(staging, final, manifest, so)
    except BaseException:
        cancel_and_drain(client, futures)  # files still being written would refill the staging area
        storage.remove(staging, so)
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
        "quarantine_url": storage.join(final, "quarantine") if quarantined else None,
        "files": len(files),
        "seconds": round(seconds, 2),
        "rows_per_second": round(rate),
        "drift": drifted,
        "drift_url": storage.join(final, drift.REPORT_FILE) if drifted else None,
    }


def _drift_profile(model_url: str, so: dict[str, Any]) -> dict[str, Any] | None:
    """The model's drift reference (``None`` for a model trained before drift reports existed)."""
    try:
        profile = storage.read_json(storage.join(model_url, drift.REFERENCE_FILE), so)
    except FileNotFoundError:
        get_run_logger().warning("model %s has no %s: no drift report", model_url, drift.REFERENCE_FILE)
        return None
    if sorted(profile["features"]) != sorted(SCHEMA.feature_names):
        return None  # the schema check refuses this model anyway
    return profile


def _drift_check(
    settings: Settings, profile: dict[str, Any] | None, per_file: list[Any], staging: str, run_id: str
) -> dict[str, Any] | None:
    """PSI per feature from the per-file counts; write ``drift.json`` beside the predictions, publish it,
    then warn (log + notification) or fail (:class:`.drift.DriftError`) past the threshold."""
    observed = drift.merge(per_file) if profile else None
    if observed is None:
        return None
    logger = get_run_logger()
    rep = drift.report(profile, observed, settings.drift_threshold)
    storage.write_json(storage.join(staging, drift.REPORT_FILE), rep, settings.storage_options)
    publish_drift(rep, run_id)
    line = drift.describe(rep)
    if not rep["drifted"]:
        logger.info("drift: %s", line)
        return rep
    if settings.drift_action == "fail":
        # Kept for diagnosis where failed runs' reports go; the predictions are not committed.
        storage.write_json(
            storage.join(settings.data_url, "reports", run_id, drift.REPORT_FILE), rep, settings.storage_options
        )
        raise drift.DriftError(f"drift: {line} (PIPELINE_DRIFT_ACTION=fail); no predictions are committed")
    logger.warning("drift: %s (PIPELINE_DRIFT_ACTION=warn: predictions are committed)", line)
    notifications.warn(f"drift: {line}")
    return rep
