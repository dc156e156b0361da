"""A run's inputs, checked before any work: datasets, the model to score with, S3 credentials.

A run that cannot succeed says so before Prefect and Dask start (seconds each) and before any file is scored:
the dataset exists and holds parquet files, each file's columns — read from its parquet footer, not its data —
are the ones ``schema.py`` declares (with the label for training: :mod:`.file_schema`, the rule the workers
apply too), the model to score with is committed, and an ``s3://`` URL has credentials to be read with. Each
problem is an :class:`InputError`: one line naming the input and what to do (the CLI exits 2 with it, no
traceback). The CLI runs :func:`check_command` first; the steps call :func:`dataset_files` again inside the flow,
since a deployment does not go through the CLI. No Prefect, Dask or pandas import: pyarrow, fsspec (and botocore
for ``s3://`` URLs) only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from . import model_store, storage
from .columns import Schema
from .file_schema import MalformedFileError, check_file_schema, open_parquet
from .settings import ConfigError, Settings

FOOTER_READERS = 16  # files whose footers are read at once (object stores answer each in tens of milliseconds)


class InputError(ConfigError):
    """An input the run cannot use (a missing dataset or model, a file of other columns, no credentials): the CLI
    exits 2 with its one-line message; a flow fails with it before any file is scored. Never retried."""


def paths(settings: Settings) -> dict[str, str]:
    """Where the pipeline's data lives under ``PIPELINE_DATA_URL``: the default datasets, models, predictions."""
    root = settings.data_url
    return {
        "train": storage.join(root, "datasets", "train"),
        "score": storage.join(root, "datasets", "score"),
        "models": storage.join(root, "models"),
        "predictions": storage.join(root, "predictions"),
    }


# botocore's chain, in its order: what to set when it finds nothing.
CREDENTIALS_CHAIN = (
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then the profile AWS_PROFILE names (else 'default') in "
    "~/.aws/credentials and ~/.aws/config, then the ECS task role or the EC2 instance role"
)


def check_credentials(url: str, storage_options: dict[str, Any] | None = None) -> None:
    """For an ``s3://`` URL: AWS credentials exist (botocore's chain, as s3fs will look them up)."""
    if not url.startswith("s3://") or (storage_options or {}).get("anon"):
        return
    problem = _credentials_problem()
    if problem:
        raise InputError(f"{url}: {problem}; botocore looks in {CREDENTIALS_CHAIN}")


def _credentials_problem() -> str | None:
    import botocore.exceptions
    import botocore.session

    try:
        found = botocore.session.get_session().get_credentials()
    except botocore.exceptions.BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile
        return f"AWS credentials cannot be loaded ({exc})"
    return None if found is not None else "no AWS credentials found"


def dataset_files(
    url: str, schema: Schema, labelled: bool, storage_options: dict[str, Any] | None = None, what: str = "dataset"
) -> list[str]:
    """The dataset's parquet files, each one's footer checked against ``schema``; :class:`InputError` naming ``what``
    (how the user gave it, e.g. ``dataset to score (--dataset)``) and the first refused file otherwise."""
    check_credentials(url, storage_options)
    fs, path = storage.filesystem(url, storage_options)
    try:
        if not fs.exists(path):
            raise InputError(f"{what} {url} does not exist: give a directory or s3:// prefix of parquet files")
        files = storage.list_parquet(url, storage_options)
    except PermissionError as exc:
        raise InputError(f"{what} {url}: access denied ({exc}): the credentials found may not read it") from None
    except FileNotFoundError as exc:  # exists, but holds no parquet file
        raise InputError(f"{what}: {exc}: give a directory or s3:// prefix of parquet files") from None
    with ThreadPoolExecutor(min(FOOTER_READERS, len(files))) as pool:
        problems = [p for p in pool.map(lambda f: _footer_problem(f, schema, labelled, storage_options), files) if p]
    if problems:
        more = f"; {len(problems) - 1} more of its {len(files)} files are refused too" if len(problems) > 1 else ""
        raise InputError(f"{what}: {problems[0]}{more}")
    return files


def _footer_problem(url: str, schema: Schema, labelled: bool, storage_options: dict[str, Any] | None) -> str | None:
    """Why the file at ``url`` cannot be used, from its footer alone (its schema); ``None`` when it can."""
    fs, path = storage.filesystem(url, storage_options)
    try:
        with fs.open(path, "rb") as f:
            arrow_schema: pa.Schema = open_parquet(f, url).schema_arrow
        check_file_schema(arrow_schema, schema, url, labelled)
    except MalformedFileError as exc:
        return str(exc)
    except FileNotFoundError:
        return f"{url} is listed in the dataset's manifest but missing"
    except PermissionError as exc:
        return f"{url}: access denied ({exc})"
    return None


def check_model(url: str, storage_options: dict[str, Any] | None = None, what: str = "model") -> None:
    """The model at ``url`` is committed (its manifest and ``model.json`` read; the versions and the pickle are
    checked where it is loaded)."""
    check_credentials(url, storage_options)
    fs, path = storage.filesystem(url, storage_options)
    if not fs.exists(path):
        raise InputError(f"{what} {url} does not exist: `models` lists the committed ones")
    try:
        model_store.read_info(url, storage_options)
    except storage.NotCommittedError:
        raise InputError(
            f"{what} {url} is not a committed model (no {storage.MANIFEST}): `models` lists them"
        ) from None
    except FileNotFoundError:
        raise InputError(f"{what} {url} has no model.json: not a model of this pipeline") from None
    except model_store.ModelUnreadableError as exc:
        raise InputError(str(exc)) from None


def current_model_url(settings: Settings) -> str:
    """The current model (``<data>/models/_LATEST``), checked; :class:`InputError` when there is none."""
    models, so = paths(settings)["models"], settings.storage_options
    try:
        url = storage.current(models, so)
    except storage.NotCommittedError:
        raise InputError(f"no current model under {models}: train one first (`train`), or pass --model") from None
    check_model(url, so, what="the current model")
    return url


def check_command(
    command: str,
    settings: Settings,
    schema: Schema,
    *,
    dataset: str | None = None,
    train_dataset: str | None = None,
    score_dataset: str | None = None,
    model: str | None = None,
) -> None:
    """What ``command`` of the CLI will read, as the flows will read it; :class:`InputError` at the first problem."""
    so = settings.storage_options
    check_credentials(settings.data_url, so)
    p = paths(settings)
    datasets: list[tuple[str, str, bool]] = []  # (what, url, labelled)
    if command == "train":
        datasets.append(("training dataset (--dataset)", dataset or p["train"], True))
    elif command == "score":
        datasets.append(("dataset to score (--dataset)", dataset or p["score"], False))
    elif command == "run" and (train_dataset or score_dataset):  # without both, the run makes the sample data
        datasets.append(("training dataset (--train-dataset)", train_dataset or p["train"], True))
        datasets.append(("dataset to score (--score-dataset)", score_dataset or p["score"], False))
    if settings.reference_dataset_url and command in ("train", "run"):
        datasets.append(("reference dataset (PIPELINE_REFERENCE_DATASET_URL)", settings.reference_dataset_url, True))
    for what, url, labelled in datasets:
        try:
            dataset_files(url, schema, labelled, so, what)
        except InputError as exc:
            if url not in (p["train"], p["score"]) or "does not exist" not in str(exc):
                raise
            # The default place of your data is empty: say where the sample's is (it keeps to its own data URL).
            sample = storage.join(settings.sample_url, "datasets")
            raise InputError(f"{exc}; the sample data (`generate`, `make run`) is under {sample}") from None
    if command == "score":
        if model:
            check_model(model, so, what="model (--model)")
        else:
            current_model_url(settings)
    on_sample = command == "generate" or (command == "run" and not (train_dataset or score_dataset))
    check_outputs_free(command, settings, sample=on_sample)


def check_outputs_free(command: str, settings: Settings, *, sample: bool) -> None:
    """No live run writes what ``command`` will write (:class:`.output_lock.LockHeldError`, not an input error:
    the run may succeed later)."""
    from . import output_lock

    p = paths(settings.for_sample() if sample else settings)
    writes = {
        "generate": [storage.join(settings.sample_url, "datasets")],
        "train": [p["models"]],
        "score": [p["predictions"]],
        "run": [p["models"], p["predictions"]],
    }
    for root in writes.get(command, []):
        output_lock.check_free(root, settings.storage_options)
