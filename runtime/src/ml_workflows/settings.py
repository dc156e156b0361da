"""Pipeline settings: environment variables (prefix ``PIPELINE_``) with safe local defaults.

Every setting has a default that runs offline on this machine: data under ``./data``, a local
thread-based Dask cluster, small sample sizes. The CLI and the flow parameters override them.

===============================  ==========================================================
Variable                         Meaning (default)
===============================  ==========================================================
PIPELINE_DATA_URL                where datasets, models and predictions live: a local
                                 directory or ``s3://bucket/prefix`` (``./data``)
PIPELINE_SAMPLE_DATA_URL         the sample pipeline's own datasets, models and predictions, kept
                                 apart from yours (``<PIPELINE_DATA_URL>/sample``)
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
import os
import posixpath
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

PREFIX = "PIPELINE_"
SAMPLE_SIZES = ("train_rows", "train_files", "score_rows", "score_files")
CLUSTER_MODES = ("local", "existing", "fargate")
DRIFT_ACTIONS = ("warn", "fail")  # what a run does when a feature drifts past PIPELINE_DRIFT_THRESHOLD


class ConfigError(ValueError):
    """A setting is missing or invalid (the CLI exits with status 2)."""


def _default_data_url() -> str:
    return str(Path.cwd() / "data")


class Settings(BaseSettings):
    """The pipeline's settings. :meth:`from_env` reads them (``PIPELINE_*`` variables, then overrides); the
    constructor and :meth:`replace` take values as given and read no environment. Every way of building one
    checks it (:meth:`validate`) and raises :class:`ConfigError`, never pydantic's ``ValidationError``."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,  # matched lower-cased; _Environ reads only the upper-case names, as ever
        frozen=True,
        extra="forbid",
    )

    data_url: str = Field(default_factory=_default_data_url)
    sample_data_url: str | None = None
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

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(type(self), exc) from None

    def __setattr__(self, name: str, value: Any) -> None:  # as the frozen dataclass Settings was
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The constructor's arguments only: from_env reads the variables (of os.environ or the mapping it is given).
        return (init_settings,)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``PIPELINE_*`` variables (of ``env`` if given, else of ``os.environ``), then apply ``overrides``
        (``None`` values are ignored)."""
        values = dict(_Environ(cls, os.environ if env is None else env)())
        for name, value in overrides.items():
            if name not in cls.model_fields:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        for name in ("data_url", "sample_data_url", "reference_dataset_url"):
            if values.get(name):
                values[name] = normalise_url(str(values[name]))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**values, **{k: v for k, v in changes.items() if v is not None}})

    # -- checks -------------------------------------------------------------------------------
    @model_validator(mode="after")
    def _checked(self) -> Settings:
        self.validate()
        return self

    def validate(self) -> None:  # type: ignore[override]  # shadows a deprecated classmethod of pydantic's
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
        if not is_memory_limit(self.memory_limit):
            raise ConfigError(
                f"PIPELINE_MEMORY_LIMIT={self.memory_limit!r}: not a memory size; use e.g. 2GiB or 512MiB, a fraction "
                "of this machine's memory such as 0.5, 0 for no limit, or auto"
            )
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
        """The Pulumi stack outputs (``fargate`` mode), read by the one reader of them
        (:func:`.fargate.load_outputs`)."""
        from .fargate import OutputsError, load_outputs

        environ = {
            "PIPELINE_AWS_OUTPUTS": self.aws_outputs or "",
            "PIPELINE_AWS_OUTPUTS_FILE": self.aws_outputs_file or "",
        }
        try:
            return load_outputs(environ)
        except OutputsError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def sample_url(self) -> str:
        """Where the sample pipeline keeps its datasets, models and predictions (``PIPELINE_SAMPLE_DATA_URL``)."""
        return self.sample_data_url or posixpath.join(self.data_url.rstrip("/"), "sample")

    def for_sample(self) -> Settings:
        """The settings of a run on sample data: its own data URL, so a model trained on synthetic rows never
        enters the lineage (``models/_LATEST``) of models trained on your data."""
        return self.replace(data_url=self.sample_url, sample_data_url=self.sample_url)

    @property
    def is_sample(self) -> bool:
        """Whether these are a sample run's settings (:meth:`for_sample`)."""
        return self.data_url == self.sample_data_url

    def describe(self) -> str:
        where = self.scheduler_address if self.cluster == "existing" else self.cluster
        return f"data {self.data_url}, cluster {where}"


def is_memory_limit(value: str) -> bool:
    """Whether a local Dask worker accepts ``value`` as its memory limit (``distributed.worker_memory.
    parse_memory_limit``): ``auto``, a number (a fraction of this machine's memory up to 1, bytes above) or a size
    Dask reads (``dask.utils.parse_bytes``: 2GiB, 512MB). Checked here, not when the cluster starts seconds later."""
    if value == "auto":
        return True
    try:
        return float(value) >= 0
    except ValueError:
        pass
    from dask.utils import parse_bytes  # imported only for a size written with a unit

    try:
        return parse_bytes(value) >= 0
    except ValueError:
        return False


def normalise_url(url: str) -> str:
    """Local paths become absolute (Dask workers may run elsewhere in the tree); URLs stay."""
    url = url.rstrip("/") or "/"
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        return url
    return str(Path(url).expanduser().resolve())


class _Environ(EnvSettingsSource):
    """The ``PIPELINE_*`` variables of ``environ`` as this module has always read them: upper-case names only,
    values stripped, an empty or blank value meaning unset (the default applies). Types are pydantic's: ints
    also as ``1_000``, booleans as 1/0, true/false, yes/no, on/off in any case (and pydantic's t/f, y/n)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str | None]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name.lower(): value.strip()
            for name, value in self._environ.items()
            if name.startswith(PREFIX) and name == name.upper() and value is not None and value.strip()
        }


def _config_error(cls: type[Settings], exc: ValidationError) -> ConfigError:
    """The first problem of ``exc`` as the message this module gives, naming the variable."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):  # raised by validate()
        return cause
    name = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden" or name not in cls.model_fields:
        return ConfigError(f"unknown setting {name!r}")
    kinds = [t for t in typing.get_args(cls.model_fields[name].annotation) if t is not type(None)]
    kind = getattr(kinds[0] if kinds else cls.model_fields[name].annotation, "__name__", "a valid value")
    return ConfigError(f"{PREFIX}{name.upper()}={error['input']!r}: expected {kind}")
