"""Pipeline settings: environment variables (prefix ``PIPELINE_``) with safe local defaults.

Every setting has a default that runs offline on this machine: data under ``./data``, a local
thread-based Dask cluster, small sample sizes. The CLI and the flow parameters override them.

===============================  ==========================================================
Variable                         Meaning (default)
===============================  ==========================================================
PIPELINE_DATA_URL                where datasets, models and predictions live: a local
                                 directory or ``s3://bucket/prefix`` (``./data``)
PIPELINE_S3_ENDPOINT_URL         S3-compatible endpoint (MinIO, moto, LocalStack) (unset)
PIPELINE_CLUSTER                 ``local`` | ``address`` | ``fargate`` (``local``)
PIPELINE_SCHEDULER_ADDRESS       scheduler for ``address`` mode, e.g. ``tcp://10.0.0.5:8786``
PIPELINE_N_WORKERS               Dask workers (local or Fargate) (2)
PIPELINE_THREADS_PER_WORKER      threads per local worker (1)
PIPELINE_PROCESSES               local workers in processes instead of threads (false)
PIPELINE_MEMORY_LIMIT            memory limit per local worker, e.g. ``2GiB`` (``auto``)
PIPELINE_WORKER_TIMEOUT          seconds to wait for the first worker (300)
PIPELINE_IMAGE                   image for Fargate workers (the project image in ECR)
PIPELINE_AWS_OUTPUTS             Pulumi stack outputs as JSON text (``fargate`` mode)
PIPELINE_AWS_OUTPUTS_FILE        ... or a file holding them (``pulumi stack output --json``)
PIPELINE_SEED                    random seed for data generation and the split (42)
PIPELINE_FEATURES                feature columns of the synthetic data (20)
PIPELINE_TRAIN_ROWS / _FILES     synthetic training set size (200000 rows / 4 files)
PIPELINE_SCORE_ROWS / _FILES     synthetic scoring set size (1000000 rows / 10 files)
PIPELINE_MALFORMED_FRACTION      share of deliberately malformed synthetic rows (0.001)
PIPELINE_BATCH_ROWS              rows per record batch while scoring; bounds memory (262144)
PIPELINE_MIN_ACCURACY            holdout accuracy below which training fails (0.85)
PIPELINE_MAX_QUARANTINE_FRACTION share of malformed (quarantined) rows above which training
                                 or scoring fails and publishes nothing (0.05)
PIPELINE_RETRIES                 retries of I/O steps, with exponential backoff (2)
PIPELINE_RETRY_DELAY             first retry delay in seconds, doubled each time (2)
PIPELINE_TASK_TIMEOUT            timeout of one pipeline step in seconds (3600)
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
CLUSTER_MODES = ("local", "address", "fargate")


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
    image: str | None = None
    aws_outputs: str | None = None
    aws_outputs_file: str | None = None
    seed: int = 42
    features: int = 20
    train_rows: int = 200_000
    train_files: int = 4
    score_rows: int = 1_000_000
    score_files: int = 10
    malformed_fraction: float = 0.001
    batch_rows: int = 262_144
    min_accuracy: float = 0.85
    max_quarantine_fraction: float = 0.05
    retries: int = 2
    retry_delay: float = 2.0
    task_timeout: float = 3600.0

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
        if "data_url" in values:
            values["data_url"] = normalise_url(str(values["data_url"]))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- checks -------------------------------------------------------------------------------
    def validate(self) -> None:
        if self.cluster not in CLUSTER_MODES:
            raise ConfigError(f"PIPELINE_CLUSTER={self.cluster!r}: must be one of {', '.join(CLUSTER_MODES)}")
        if self.cluster == "address" and not self.scheduler_address:
            raise ConfigError("PIPELINE_CLUSTER=address needs PIPELINE_SCHEDULER_ADDRESS (e.g. tcp://host:8786)")
        if self.cluster == "fargate":
            if not self.image:
                raise ConfigError("PIPELINE_CLUSTER=fargate needs PIPELINE_IMAGE (the project image pushed to ECR)")
            if not (self.aws_outputs or self.aws_outputs_file):
                raise ConfigError(
                    "PIPELINE_CLUSTER=fargate needs PIPELINE_AWS_OUTPUTS (JSON) or PIPELINE_AWS_OUTPUTS_FILE"
                )
        for name in ("n_workers", "threads_per_worker", "features", "train_rows", "train_files", "score_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"PIPELINE_{name.upper()}={getattr(self, name)}: must be at least 1")
        if self.score_files < 1 or self.batch_rows < 1:
            raise ConfigError("PIPELINE_SCORE_FILES and PIPELINE_BATCH_ROWS must be at least 1")
        if self.train_files > self.train_rows or self.score_files > self.score_rows:
            raise ConfigError("more files than rows: lower PIPELINE_*_FILES or raise PIPELINE_*_ROWS")
        if not 0.0 <= self.malformed_fraction < 0.5:
            raise ConfigError(f"PIPELINE_MALFORMED_FRACTION={self.malformed_fraction}: must be in [0, 0.5)")
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise ConfigError(f"PIPELINE_MIN_ACCURACY={self.min_accuracy}: must be in [0, 1]")
        if not 0.0 <= self.max_quarantine_fraction <= 1.0:
            raise ConfigError(f"PIPELINE_MAX_QUARANTINE_FRACTION={self.max_quarantine_fraction}: must be in [0, 1]")
        if self.retries < 0 or self.retry_delay < 0 or self.task_timeout <= 0 or self.worker_timeout <= 0:
            raise ConfigError("PIPELINE_RETRIES/RETRY_DELAY must be >= 0 and timeouts > 0")
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
        where = self.scheduler_address if self.cluster == "address" else self.cluster
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
    kind = str(type_)
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
