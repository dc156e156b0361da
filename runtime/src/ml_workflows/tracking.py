"""Experiment tracking with MLflow: each training run's params, metrics, comparison and model.

Every ``train`` step logs one MLflow run (named after the pipeline's run id) after the model is
committed and before ``_LATEST`` may move: the parameters (dataset, model class, features, quality
gate, promotion tolerance, seed), the holdout metrics and row counts, both models' metrics on the
compared rows (``champion_*``), the decision (tag ``decision``: ``promoted`` / ``candidate``) with
``comparison.json``, the drift reference, and the model itself as an MLflow ``pyfunc`` model whose
``predict`` is the model's ``predict_proba`` (its URI is the run's ``mlflow_model_uri`` tag).
If logging fails (tracking server down), the step fails before ``_LATEST`` moves: the new model stays a
committed candidate, which ``make promote`` can still make current once the cause is fixed.

=================================  =========================================================
Variable                           Meaning (default)
=================================  =========================================================
PIPELINE_MLFLOW_TRACKING_URI       where runs are recorded: a tracking server
                                   (``https://...``) or a database (``sqlite:///...``)
                                   (``sqlite:///<data>/mlflow.db`` for local data; required
                                   on Fargate, whose disk does not outlive the run; passed on
                                   to the ECS work pool by ``make deploy``; no credentials in
                                   it: ``MLFLOW_TRACKING_TOKEN`` from a secret)
PIPELINE_MLFLOW_EXPERIMENT         experiment name (the project name; on AWS the stack's resource
                                   name, ``<name_prefix>-<stack>``: an experiment's artifact
                                   location is fixed when it is created, so each stack has its own;
                                   the sample's runs: ``<name>-sample``)
PIPELINE_MLFLOW_ARTIFACT_URL       where a new experiment keeps its artifacts
                                   (``<data>/mlflow``; on AWS ``s3://<bucket>/mlflow``, beside the
                                   data prefix: the flow-run role may write there, the Dask workers
                                   are granted the data prefix only)
=================================  =========================================================

MLflow 3's plain-directory store (``./mlruns``) is in maintenance mode and refused unless
``MLFLOW_ALLOW_FILE_STORE=true``; the local default is therefore a SQLite file beside the data.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ml_workflows import drift, storage
from ml_workflows.model_store import library_versions
from ml_workflows.project import current
from ml_workflows.settings import ConfigError, Settings

ENV_URI = "PIPELINE_MLFLOW_TRACKING_URI"
ENV_EXPERIMENT = "PIPELINE_MLFLOW_EXPERIMENT"
ENV_ARTIFACTS = "PIPELINE_MLFLOW_ARTIFACT_URL"
ENV_S3_ENDPOINT = "MLFLOW_S3_ENDPOINT_URL"  # MLflow's own S3 client reads its endpoint from here only
MODEL_NAME = "model"
S3_PREFIX = "mlflow"  # the bucket's tracking prefix on AWS (infrastructure/infra/identity.py TRACKING_PREFIX)


def deploy_env(outputs: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tracking variables of the ECS work pool's flow runs (ml_workflows.deploy.work_pool): the server named
    when deploying, an experiment of this stack's own and its artifacts in this stack's bucket."""
    environ = os.environ if environ is None else environ
    env = {ENV_URI: uri} if (uri := (environ.get(ENV_URI) or "").strip()) else {}
    stack_name = str(outputs["ecs_cluster_arn"]).rsplit("/", 1)[-1]  # <name_prefix>-<stack>
    env[ENV_EXPERIMENT] = (environ.get(ENV_EXPERIMENT) or "").strip() or stack_name
    env[ENV_ARTIFACTS] = f"s3://{outputs['bucket_name']}/{S3_PREFIX}"
    return env


def deploy_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """`make deploy`'s precondition: flow runs on Fargate need a tracking server (their disk does not outlive them)."""
    environ = os.environ if environ is None else environ
    if (environ.get(ENV_URI) or "").strip():
        return None
    return f"{ENV_URI} is not set: the MLflow tracking server the flow runs record to (docs/lifecycle.md)"


@dataclass(frozen=True)
class TrackingSettings:
    tracking_uri: str
    experiment: str
    artifact_url: str

    @classmethod
    def from_env(cls, settings: Settings, env: dict[str, str] | None = None) -> TrackingSettings:
        env = os.environ if env is None else env
        uri = (env.get(ENV_URI) or "").strip()
        if not uri:
            if settings.cluster == "fargate" or "://" in settings.data_url:
                raise ConfigError(
                    f"tracking is mlflow and the data is in {settings.data_url}: set {ENV_URI} to your MLflow "
                    "tracking server (a local database would not outlive this run's container)"
                )
            uri = "sqlite:///" + str(Path(settings.data_url) / "mlflow.db")
        if "@" in urlsplit(uri).netloc:
            raise ConfigError(
                f"{ENV_URI} holds credentials: put them in MLFLOW_TRACKING_TOKEN (or MLFLOW_TRACKING_USERNAME / "
                "_PASSWORD) from a secret store instead; the URI is stored in the work pool and shown in logs"
            )
        artifacts = (env.get(ENV_ARTIFACTS) or "").strip() or storage.join(settings.data_url, "mlflow")
        experiment = (env.get(ENV_EXPERIMENT) or "").strip() or current().name
        # The sample's runs in an experiment of their own, as its models are in a lineage of their own.
        return cls(uri, f"{experiment}-sample" if settings.is_sample else experiment, artifacts)


def _pyfunc_model_class() -> type:
    import mlflow.pyfunc

    class PipelineModel(mlflow.pyfunc.PythonModel):
        """The committed ``model.pkl``, served by MLflow: ``predict`` is the model's ``predict_proba``."""

        def load_context(self, context: Any) -> None:
            import pickle  # noqa: S403 - the pipeline's own committed artifact

            with open(context.artifacts["model"], "rb") as f:
                self.model = pickle.load(f)  # noqa: S301 - the pipeline's own committed artifact

        def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
            return self.model.predict_proba(model_input)

    return PipelineModel


def configure(settings: Settings) -> TrackingSettings:
    """Point MLflow at the tracking URI and experiment (created with its artifact location if new)."""
    import mlflow

    ts = TrackingSettings.from_env(settings)
    mlflow.set_tracking_uri(ts.tracking_uri)
    if mlflow.get_experiment_by_name(ts.experiment) is None:
        mlflow.create_experiment(ts.experiment, artifact_location=ts.artifact_url)
    mlflow.set_experiment(ts.experiment)
    return ts


@contextlib.contextmanager
def _s3_endpoint(settings: Settings) -> Iterator[None]:
    """Artifacts go to the data's S3-compatible store (MinIO, moto) when it has an endpoint: MLflow's S3 client
    is pointed there for this logging only (unless MLFLOW_S3_ENDPOINT_URL is set), and the environment is put back,
    so a later run in the same process with another store does not inherit this one."""
    if not settings.s3_endpoint_url or os.environ.get(ENV_S3_ENDPOINT):
        yield
        return
    os.environ[ENV_S3_ENDPOINT] = settings.s3_endpoint_url
    try:
        yield
    finally:
        os.environ.pop(ENV_S3_ENDPOINT, None)


def log_training(
    settings: Settings,
    run_id: str,
    model_url: str,
    model: Any,
    metrics: dict[str, float],
    rows: dict[str, int],
    comparison: dict[str, Any],
    dataset_url: str,
) -> str:
    """Log one training run; returns the MLflow run id."""
    import mlflow

    user_model = current().module("model")
    SCHEMA = current().module("schema").SCHEMA  # noqa: N806 - the seam's name

    configure(settings)
    gate = user_model.QUALITY_GATE
    so = settings.storage_options
    champion = comparison.get("champion") or {}
    with _s3_endpoint(settings), tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=run_id) as run:
        mlflow.set_tags(
            {
                "pipeline_run_id": run_id,
                "model_url": model_url,
                "decision": "promoted" if comparison["promote"] else "candidate",
            }
        )
        mlflow.log_params(
            {
                "dataset": dataset_url,
                "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
                "features": len(SCHEMA.features),
                "quality_gate": gate.describe(settings.quality_gate_min),
                "promotion_tolerance": settings.promotion_tolerance,
                "compared_on": comparison["evaluated_on"],
                "current_model_url": comparison.get("current_model_url") or "none",
                "seed": settings.seed,
            }
        )
        mlflow.log_metrics({**metrics, **{k: float(v) for k, v in rows.items()}})
        mlflow.log_metrics({f"champion_{k}": float(v) for k, v in champion.items()})
        if comparison["evaluated_on"] != "holdout":
            mlflow.log_metrics({f"compared_{k}": float(v) for k, v in comparison["challenger"].items()})
        mlflow.log_dict(comparison, "comparison.json")
        mlflow.log_dict(storage.read_json(storage.join(model_url, drift.REFERENCE_FILE), so), drift.REFERENCE_FILE)
        local = Path(tmp) / "model.pkl"
        fs, path = storage.filesystem(storage.join(model_url, "model.pkl"), so)
        fs.get(path, str(local))
        versions = library_versions()
        logged = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=_pyfunc_model_class()(),
            artifacts={"model": str(local)},
            pip_requirements=[f"{k}=={v}" for k, v in versions.items() if k != "python"],  # no slow inference
        )
        mlflow.set_tag("mlflow_model_uri", logged.model_uri)  # mlflow.pyfunc.load_model(<this>) serves it
        return run.info.run_id
