"""YOUR FLOWS: the Prefect flows ``generate``, ``train``, ``score`` and ``batch-pipeline``.

Their Prefect names carry the project (``{{ cookiecutter.project_slug }}-batch-pipeline``, ...: ``ml_workflows.names``),
so projects sharing a Prefect workspace never share a flow or a deployment.

Each flow opens one Dask cluster from the settings (``ml_workflows.cluster.dask_client``: version-checked before
any work, closed pass or fail) and runs the steps of ``ml_workflows.steps``, which call your ``schema.py`` and
``model.py``. Edit these flows to change what a run does (add a step, drop the sample data); the steps come with
the runtime and are upgraded with it. ``batch-pipeline`` without dataset URLs
generates the sample data first and keeps everything of that run under its own data URL (``<data>/sample``:
``Settings.for_sample``), so a model trained on synthetic rows never becomes the current model of your data; given
``train_dataset_url`` / ``score_dataset_url`` (local paths or ``s3://`` URLs) it trains on and scores your data.
"""

from __future__ import annotations

import time
from typing import Any

from distributed import Client

# Absolute imports: Prefect deployments import this module by name (prefect.yaml entrypoints).
from ml_workflows import names, notifications, storage
from ml_workflows.cluster import dask_client
from ml_workflows.reports import RunObserver, publish_summary
from ml_workflows.settings import Settings
from ml_workflows.steps import (
    generate_sample,
    paths,
    score_dataset,
    train_model,
    with_retries,
)
from prefect import flow, get_run_logger


def _generate(client: Client, settings: Settings, run_id: str) -> list[dict[str, Any]]:
    p = paths(settings)
    gen = with_retries(generate_sample, settings)
    return [
        gen(client, settings, p["train"], settings.sample_train_rows, settings.sample_train_files, True, run_id),
        gen(client, settings, p["score"], settings.sample_score_rows, settings.sample_score_files, False, run_id),
    ]


@flow(name=names.flow_name("generate_flow"), log_prints=True, **notifications.HOOKS)
def generate_flow(
    data_url: str | None = None,
    train_rows: int | None = None,
    train_files: int | None = None,
    score_rows: int | None = None,
    score_files: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Write the sample training and scoring datasets under ``<data>/sample/datasets`` (any size)."""
    settings = Settings.from_env(
        data_url=data_url,
        sample_train_rows=train_rows,
        sample_train_files=train_files,
        sample_score_rows=score_rows,
        sample_score_files=score_files,
        seed=seed,
    ).for_sample()
    with dask_client(settings) as client:
        return _generate(client, settings, storage.new_run_id())


@flow(name=names.flow_name("train_flow"), log_prints=True, **notifications.HOOKS)
def train_flow(
    data_url: str | None = None, dataset_url: str | None = None, quality_gate_min: float | None = None
) -> dict[str, Any]:
    """Train on ``dataset_url`` (default ``<data>/datasets/train``), commit the model, promote it if not worse."""
    settings = Settings.from_env(data_url=data_url, quality_gate_min=quality_gate_min)
    run_id = storage.new_run_id()
    observer = RunObserver(settings, run_id)
    with dask_client(settings) as client, observer.watch(client), observer.stage("train"):
        trained = train_model(client, settings, dataset_url or paths(settings)["train"], run_id)
    summary = publish_summary(run_id, trained, None, None)
    return {"run_id": run_id, "model": trained, "summary": summary, "observed": observer.publish(trained, None)}


@flow(name=names.flow_name("score_flow"), log_prints=True, **notifications.HOOKS)
def score_flow(
    data_url: str | None = None, model_url: str | None = None, dataset_url: str | None = None
) -> dict[str, Any]:
    """Score ``dataset_url`` (default ``<data>/datasets/score``) with ``model_url`` (default: the current model)."""
    settings = Settings.from_env(data_url=data_url)
    p = paths(settings)
    model_url = model_url or storage.current(p["models"], settings.storage_options)
    run_id = storage.new_run_id()
    observer = RunObserver(settings, run_id)
    with dask_client(settings) as client, observer.watch(client), observer.stage("score"):
        scored = with_retries(score_dataset, settings)(client, settings, model_url, dataset_url or p["score"], run_id)
    summary = publish_summary(run_id, None, scored, None)
    return {"run_id": run_id, "scoring": scored, "summary": summary, "observed": observer.publish(None, scored)}


@flow(name=names.flow_name("batch_pipeline"), log_prints=True, **notifications.HOOKS)
def batch_pipeline(
    data_url: str | None = None,
    train_dataset_url: str | None = None,
    score_dataset_url: str | None = None,
    quality_gate_min: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Train, then score with the current model (the new one if promoted), on one Dask cluster; without
    dataset URLs, on freshly generated sample data (under ``<data>/sample``)."""
    settings = Settings.from_env(data_url=data_url, quality_gate_min=quality_gate_min, seed=seed)
    if train_dataset_url is None and score_dataset_url is None:
        settings = settings.for_sample()  # the sample's own datasets, models and predictions
    logger = get_run_logger()
    logger.info("batch pipeline: %s", settings.describe())
    run_id = storage.new_run_id()
    t0 = time.perf_counter()
    observer = RunObserver(settings, run_id)
    p = paths(settings)
    with dask_client(settings) as client:
        observer.stages["cluster start"] = round(time.perf_counter() - t0, 2)
        with observer.watch(client):
            if train_dataset_url is None and score_dataset_url is None:
                logger.info("no datasets given: generating the sample data (sample_data.py)")
                with observer.stage("generate"):
                    train_dataset_url, score_dataset_url = (d["url"] for d in _generate(client, settings, run_id))
            with observer.stage("train"):
                trained = train_model(client, settings, train_dataset_url or p["train"], run_id)
            with observer.stage("score"):
                # The current model after training: the new one if it was promoted, else the one it did not beat.
                scored = with_retries(score_dataset, settings)(
                    client, settings, trained["current_model_url"], score_dataset_url or p["score"], run_id
                )
    summary = publish_summary(run_id, trained, scored, time.perf_counter() - t0)
    observed = observer.publish(trained, scored)
    return {"run_id": run_id, "model": trained, "scoring": scored, "summary": summary, "observed": observed}
