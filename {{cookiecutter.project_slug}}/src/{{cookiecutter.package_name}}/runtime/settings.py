"""Pipeline settings: environment variables (prefix ``PIPELINE_``) with safe local defaults.

Every setting has a default that runs offline on this machine: data under ``./data``, a local
thread-based Dask cluster, small sample sizes. The CLI and the flow parameters override them.

===============================  ==========================================================
Variable                         Meaning (default)
===============================  ==========================================================
PIPELINE_DATA_URL                where datasets, models and predictions live: a local
                                 directory or ``s3://bucket/prefix`` (``./data``)
PIPELINE_S3_ENDPOINT_URL         S3-compatible endpoint (MinIO, moto, LocalStack) (unset)
PIPELINE_CLUSTER                 ``local`` | ``existing`` | ``fargate`` (``local``)
PIPELINE_SCHEDULER_ADDRESS       the scheduler of an ``existing`` cluster, e.g. ``tcp://10.0.0.5:8786``
PIPELINE_N_WORKERS               Dask workers (local or Fargate) (2)
PIPELINE_THREADS_PER_WORKER      threads per local worker (1)
PIPELINE_PROCESSES               local workers in processes instead of threads (false)
PIPELINE_MEMORY_LIMIT            memory limit per local worker, e.g. ``2GiB`` (``auto``)
PIPELINE_WORKER_TIMEOUT          seconds to wait for the first worker (300)
PIPELINE_PAUSED_TIMEOUT          seconds every worker may stay paused (memory full) with no task
                                 finishing before the step fails, naming a limit that fits (120)
PIPELINE_IMAGE                   image for Fargate workers (the project image in ECR)
PIPELINE_AWS_OUTPUTS             Pulumi stack outputs as JSON text (``fargate`` mode)
PIPELINE_AWS_OUTPUTS_FILE        ... or a file holding them (``pulumi stack output --json``)
PIPELINE_SEED                    random seed for the holdout split and the sample data (42)
PIPELINE_BATCH_ROWS              rows per record batch while scoring; bounds memory (262144)
PIPELINE_QUALITY_GATE_MIN        threshold of the model's quality gate (``QUALITY_GATE`` in
                                 model.py names the metric and its default)
PIPELINE_MAX_QUARANTINE_FRACTION share of malformed (quarantined) rows above which training
                                 or scoring fails and publishes nothing (0.05)
PIPELINE_PROMOTION_TOLERANCE     how much worse (on ``QUALITY_GATE.metric``) a new model may be
                                 than the current one and still replace it (0.001)
PIPELINE_REFERENCE_DATASET_URL   a fixed labelled dataset both models are compared on (unset:
                                 the training run's holdout rows)
PIPELINE_DRIFT_THRESHOLD         PSI above which a feature counts as drifted at scoring (0.2)
PIPELINE_DRIFT_ACTION            ``warn`` (commit, log, notify) or ``fail`` the run (``warn``)
PIPELINE_RETRIES                 retries of I/O steps, with exponential backoff (2)
PIPELINE_RETRY_DELAY             first retry delay in seconds, doubled each time (2)
PIPELINE_TASK_TIMEOUT            timeout of one pipeline step in seconds (3600)
PIPELINE_SAMPLE_TRAIN_ROWS/_FILES  sample training set (``sample_data.py``) (200000 rows / 4 files)
PIPELINE_SAMPLE_SCORE_ROWS/_FILES  sample scoring set (1000000 rows / 10 files)
PIPELINE_SAMPLE_MALFORMED_FRACTION share of deliberately malformed sample rows (0.001)
===============================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "PIPELINE_"
SAMPLE_SIZES = ("train_rows", "train_files", "score_rows", "score_files")
CLUSTER_MODES = ("local", "existing", "fargate")
DRIFT_ACTIONS = ("warn", "fail")  # what a run does when a feature drifts past PIPELINE_DRIFT_THRESHOLD


class ConfigError(ValueError):
    """A setting is missing or invalid (the CLI exits with status 2)."""


def _default_data_url() -> str:
    return str(Path.cwd() / "data")


@dataclass(frozen=True)
class Settings:
    data_url: str = field(default_factory=_default_data_url)
    s3_endpoint_url: str | None = None
    cluster: str = "local"
    scheduler_address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = False
    memory_limit: str = "auto"
    worker_timeout: float = 300.0
    paused_timeout: float = 120.0
    image: str | None = None
    aws_outputs: str | None = None
    aws_outputs_file: str | None = None
    seed: int = 42
    batch_rows: int = 262_144
    quality_gate_min: float | None = None
    max_quarantine_fraction: float = 0.05
    promotion_tolerance: float = 0.001
    reference_dataset_url: str | None = None
    drift_threshold: float = 0.2
    drift_action: str = "warn"
    retries: int = 2
    retry_delay: float = 2.0
    task_timeout: float = 3600.0
    # Sizes of the sample data (sample_data.py); not used for your own datasets.
    sample_train_rows: int = 200_000
    sample_train_files: int = 4
    sample_score_rows: int = 1_000_000
    sample_score_files: int = 10
    sample_malformed_fraction: float = 0.001

    def __post_init__(self) -> None:
        self.validate()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``PIPELINE_*`` variables, then apply ``overrides`` (``None`` values are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f.name, f.type, raw.strip())
        for name, value in overrides.items():
            if name not in {f.name for f in dataclasses.fields(cls)}:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        for name in ("data_url", "reference_dataset_url"):
            if values.get(name):
                values[name] = normalise_url(str(values[name]))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        if self.cluster not in CLUSTER_MODES:
            raise ConfigError(f"PIPELINE_CLUSTER={self.cluster!r}: must be one of {', '.join(CLUSTER_MODES)}")
        if self.cluster == "existing" and not self.scheduler_address:
            raise ConfigError("PIPELINE_CLUSTER=existing needs PIPELINE_SCHEDULER_ADDRESS (e.g. tcp://host:8786)")
        if self.cluster == "fargate":
            if not self.image:
                raise ConfigError("PIPELINE_CLUSTER=fargate needs PIPELINE_IMAGE (the project image pushed to ECR)")
            if not (self.aws_outputs or self.aws_outputs_file):
                raise ConfigError(
                    "PIPELINE_CLUSTER=fargate needs PIPELINE_AWS_OUTPUTS (JSON) or PIPELINE_AWS_OUTPUTS_FILE"
                )
        for name in ("n_workers", "threads_per_worker", "batch_rows", *(f"sample_{k}" for k in SAMPLE_SIZES)):
            if getattr(self, name) < 1:
                raise ConfigError(f"PIPELINE_{name.upper()}={getattr(self, name)}: must be at least 1")
        if self.sample_train_files > self.sample_train_rows or self.sample_score_files > self.sample_score_rows:
            raise ConfigError("more files than rows: lower PIPELINE_SAMPLE_*_FILES or raise PIPELINE_SAMPLE_*_ROWS")
        if not 0.0 <= self.sample_malformed_fraction < 0.5:
            raise ConfigError(
                f"PIPELINE_SAMPLE_MALFORMED_FRACTION={self.sample_malformed_fraction}: must be in [0, 0.5)"
            )
        if not 0.0 <= self.max_quarantine_fraction <= 1.0:
            raise ConfigError(f"PIPELINE_MAX_QUARANTINE_FRACTION={self.max_quarantine_fraction}: must be in [0, 1]")
        if not 0.0 <= self.promotion_tolerance < float("inf"):
            raise ConfigError(f"PIPELINE_PROMOTION_TOLERANCE={self.promotion_tolerance}: must be a number >= 0")
        if not 0.0 < self.drift_threshold < float("inf"):
            raise ConfigError(f"PIPELINE_DRIFT_THRESHOLD={self.drift_threshold}: must be a number > 0")
        if self.drift_action not in DRIFT_ACTIONS:
            raise ConfigError(f"PIPELINE_DRIFT_ACTION={self.drift_action!r}: must be one of {', '.join(DRIFT_ACTIONS)}")
        if self.retries < 0 or self.retry_delay < 0 or self.task_timeout <= 0 or self.worker_timeout <= 0:
            raise ConfigError("PIPELINE_RETRIES/RETRY_DELAY must be >= 0 and timeouts > 0")
        if self.paused_timeout <= 0:
            raise ConfigError(f"PIPELINE_PAUSED_TIMEOUT={self.paused_timeout}: must be > 0 (seconds)")
        if "://" in self.data_url and not self.data_url.startswith(("s3://", "file://", "memory://")):
            raise ConfigError(f"PIPELINE_DATA_URL={self.data_url!r}: use a local directory or an s3:// URL")

    # -- derived ------------------------------------------------------------------------------
    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options for ``data_url`` (passed to every reader and writer, also on workers)."""
        if self.data_url.startswith("s3://") and self.s3_endpoint_url:
            return {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}}
        return {}

    def load_aws_outputs(self) -> dict[str, Any]:
        """The Pulumi stack outputs (``fargate`` mode)."""
        text = self.aws_outputs
        if not text and self.aws_outputs_file:
            try:
                text = Path(self.aws_outputs_file).read_text()
            except OSError as exc:
                raise ConfigError(f"PIPELINE_AWS_OUTPUTS_FILE: cannot read {self.aws_outputs_file}: {exc}") from exc
        try:
            outputs = json.loads(text or "")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Pulumi outputs are not valid JSON: {exc}") from exc
        if not isinstance(outputs, dict):
            raise ConfigError("Pulumi outputs must be a JSON object (pulumi stack output --json)")
        return outputs

    def describe(self) -> str:
        where = self.scheduler_address if self.cluster == "existing" else self.cluster
        return f"data {self.data_url}, cluster {where}"


def normalise_url(url: str) -> str:
    """Local paths become absolute (Dask workers may run elsewhere in the tree); URLs stay."""
    url = url.rstrip("/") or "/"
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


def _parse(name: str, type_: Any, raw: str) -> Any:
    kind = str(type_).removesuffix(" | None")
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw.replace("_", ""))
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}{name.upper()}={raw!r}: expected {kind}") from exc
    return raw
