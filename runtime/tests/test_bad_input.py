"""Bad input fails fast, in one line, and is never retried (docs/reliability.md).

A missing dataset or model, a file of other columns, s3:// without credentials, a memory limit Dask cannot read:
the command exits 2 with one line naming the input and what to do, before Prefect and Dask are even imported
(the whole process in about a second or two here; asserted under a generous bound, measured by
``ml_workflows.testing`` users with ``time``). A deployment does not go through the CLI: the flow makes the same
footer check before any file is scored. An error no retry can fix runs once, on Prefect's side and on Dask's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_workflows import cli, inputs, steps, storage
from ml_workflows.project import current
from ml_workflows.testing.fixtures import SMALL, small_settings

flows = current().module("flows")
QUALITY_GATE = current().module("model").QUALITY_GATE
make_partition = current().module("sample_data").make_partition
SCHEMA = current().module("schema").SCHEMA

GOOD_FILES = 8  # a refused file comes last: before the check, every other file was scored first
WHOLE_PROCESS_BOUND = 20.0  # seconds; measured ~1-2 s (the goal: about 2 s). Generous: a loaded CI runner


def _frame(rows: int, first_id: int, index: int, labelled: bool = False) -> pd.DataFrame:
    return make_partition(index, rows, first_id, 42, malformed_fraction=0.0, labelled=labelled)  # one signal: seed 42


def _write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _dataset(ds: Path, last: pd.DataFrame | None = None, labelled: bool = False) -> Path:
    """GOOD_FILES good parquet files, and ``last`` as the file that sorts last."""
    for i in range(GOOD_FILES):
        _write(ds / f"part-{i:05d}.parquet", _frame(500, 500 * i, i, labelled))
    if last is not None:
        _write(ds / "part-99999.parquet", last)
    return ds


def _cli(argv: list[str], env: dict[str, str]) -> tuple[int, list[str], list[str], float]:
    """The CLI as a whole process: exit status, its stderr lines, which of Prefect and Dask's cluster library
    (distributed) it imported, seconds. (Dask's byte parser reads a memory limit: ``dask`` alone may be imported.)"""
    code = (
        "import json, sys\nfrom ml_workflows import cli\n"
        f"code = cli.main({argv!r})\n"
        "print(json.dumps([code, sorted(m for m in ('prefect', 'distributed') if m in sys.modules)]))"
    )
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    seconds = time.monotonic() - t0
    status, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    return status, [line for line in proc.stderr.splitlines() if line.strip()], imported, seconds


# -- each case: (argv, env, what the one line must say), built under a data dir ---------------------------------
def _missing_path(data: Path) -> tuple[list[str], dict, list[str]]:
    return ["score", "--dataset", str(data / "nope")], {}, [str(data / "nope"), "does not exist"]


def _empty_dataset(data: Path) -> tuple[list[str], dict, list[str]]:
    (data / "empty").mkdir()
    return ["score", "--dataset", str(data / "empty")], {}, ["no parquet files under", str(data / "empty")]


def _memory_limit(data: Path) -> tuple[list[str], dict, list[str]]:
    return ["score", "--memory-limit", "banana"], {}, ["PIPELINE_MEMORY_LIMIT='banana'", "2GiB"]


def _missing_model(data: Path) -> tuple[list[str], dict, list[str]]:
    ds = _dataset(data / "ds")
    argv = ["score", "--dataset", str(ds), "--model", str(data / "models" / "nope")]
    return argv, {}, [str(data / "models" / "nope"), "does not exist"]


def _uncommitted_model(data: Path) -> tuple[list[str], dict, list[str]]:
    ds, model = _dataset(data / "ds"), data / "models" / "half-written"
    model.mkdir(parents=True)
    (model / "model.pkl").write_bytes(b"")
    return ["score", "--dataset", str(ds), "--model", str(model)], {}, [str(model), "not a committed model"]


def _no_current_model(data: Path) -> tuple[list[str], dict, list[str]]:
    ds = _dataset(data / "ds")
    return ["score", "--dataset", str(ds)], {}, [f"no current model under {data / 'models'}", "train"]


def _missing_column(data: Path) -> tuple[list[str], dict, list[str]]:
    name = SCHEMA.feature_names[-1]
    ds = _dataset(data / "ds", _frame(100, 10**6, 99).drop(columns=[name]))
    return ["score", "--dataset", str(ds)], {}, ["part-99999.parquet", f"lacks columns [{name!r}]"]


def _wrongly_typed_column(data: Path) -> tuple[list[str], dict, list[str]]:
    frame = _frame(100, 10**6, 99)
    name = SCHEMA.numeric[0].name
    frame[name] = frame[name].astype(str)
    ds = _dataset(data / "ds", frame)
    return ["score", "--dataset", str(ds)], {}, ["part-99999.parquet", repr(name), "not of the kind schema.py declares"]


def _truncated_file(data: Path) -> tuple[list[str], dict, list[str]]:
    ds = _dataset(data / "ds")
    whole = (ds / "part-00000.parquet").read_bytes()
    (ds / "part-99999.parquet").write_bytes(whole[: len(whole) // 2])  # an upload cut short
    return ["score", "--dataset", str(ds)], {}, ["part-99999.parquet", "not a readable parquet file"]


def _unlabelled_training_data(data: Path) -> tuple[list[str], dict, list[str]]:
    ds = _dataset(data / "ds")  # scoring data: no label
    return ["train", "--dataset", str(ds)], {}, ["training dataset", f"lacks columns [{SCHEMA.label!r}]"]


def _no_data_of_yours_yet(data: Path) -> tuple[list[str], dict, list[str]]:
    # `train` right after `make run`: the sample keeps to its own data URL, which the line names.
    return ["train"], {}, [str(data / "datasets" / "train"), "does not exist", str(data / "sample" / "datasets")]


CASES = [
    _missing_path,
    _no_data_of_yours_yet,
    _empty_dataset,
    _memory_limit,
    _missing_model,
    _uncommitted_model,
    _no_current_model,
    _missing_column,
    _wrongly_typed_column,
    _truncated_file,
    _unlabelled_training_data,
]


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """SMALL settings, data under tmp_path, no Prefect API configured: a bad input must not need one."""
    for key in [k for k in os.environ if k.startswith(("PIPELINE_", "PREFECT_API"))]:
        monkeypatch.delenv(key)
    env = {**SMALL, "PIPELINE_DATA_URL": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path / "prefect-home")}
    (tmp_path / "data").mkdir()
    return tmp_path / "data", env


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.lstrip("_") for c in CASES])
def test_bad_input_fails_in_one_line_before_prefect_and_dask_start(clean_env, case):
    data, env = clean_env
    argv, extra, expected = case(data)
    status, lines, imported, seconds = _cli(argv, {**env, **extra})
    assert status == cli.EXIT_USAGE, lines
    assert len(lines) == 1, lines  # one line, no traceback
    assert all(text in lines[0] for text in expected), lines[0]
    assert imported == [], imported  # refused before Prefect and Dask's cluster were imported, let alone started
    assert not (data / "predictions").exists() and not (data / "models" / "_staging").exists()
    assert seconds < WHOLE_PROCESS_BOUND
    print(f"{case.__name__}: exit {status} in {seconds:.1f}s: {lines[0][:160]}")


def test_s3_without_credentials_names_the_url_and_where_credentials_are_looked_for(clean_env, moto_s3):
    """No AWS_* variables, no profile files, no instance metadata (the test environment's isolation)."""
    data, env = clean_env
    url = "s3://no-credentials-bucket/data"
    argv = ["score", "--data-url", url]
    status, lines, imported, _ = _cli(argv, {**env, "PIPELINE_S3_ENDPOINT_URL": moto_s3})
    assert status == cli.EXIT_USAGE and len(lines) == 1, lines
    for text in (url, "no AWS credentials found", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "~/.aws/credentials", "role"):
        assert text in lines[0], lines[0]
    assert imported == []


def test_an_s3_dataset_that_does_not_exist_is_named(clean_env, s3_bucket, moto_s3):
    data, env = clean_env
    url = f"s3://{s3_bucket}/nothing/here"
    creds = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    argv = ["score", "--data-url", f"s3://{s3_bucket}/data", "--dataset", url]
    status, lines, _, _ = _cli(argv, {**env, **creds, "PIPELINE_S3_ENDPOINT_URL": moto_s3})
    assert status == cli.EXIT_USAGE and len(lines) == 1, lines
    assert f"{url} does not exist" in lines[0]


# -- inside the flow: deployments do not go through the CLI -------------------------------------------------------
def test_the_flows_check_every_footer_before_any_file_is_scored(pipeline_env, monkeypatch):
    name = SCHEMA.feature_names[-1]
    ds = _dataset(pipeline_env / "ds", _frame(100, 10**6, 99).drop(columns=[name]))
    scored = pipeline_env / "scored.log"  # a file: Dask pickles the task, closures are copies

    def recording(in_url, *args, **kwargs):
        with scored.open("a") as f:
            f.write(in_url + "\n")
        raise AssertionError("no file may be scored")

    monkeypatch.setattr(steps, "score_file", recording)
    with pytest.raises(inputs.InputError, match=r"part-99999\.parquet: lacks columns"):
        flows.score_flow(model_url=str(pipeline_env / "models" / "unused"), dataset_url=str(ds))
    assert not scored.exists()
    assert not list((pipeline_env / "predictions").glob("*/" + storage.MANIFEST))
    assert not list((pipeline_env / "predictions" / storage.STAGING).glob("*/*"))

    with pytest.raises(inputs.InputError, match=rf"training dataset: .*lacks columns \[{SCHEMA.label!r}\]"):
        flows.train_flow(dataset_url=str(_dataset(pipeline_env / "unlabelled")))
    assert not list((pipeline_env / "models").glob("*/" + storage.MANIFEST))


# -- never retried: Prefect's retries of a step, Dask's of a task -------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_server):
    """A data dir with a scoring dataset and a committed, current model."""
    data = tmp_path_factory.mktemp("bad-input") / "data"
    with pytest.MonkeyPatch.context() as mp:
        small_settings(mp, data, PIPELINE_QUALITY_GATE_MIN="-1e9" if QUALITY_GATE.higher_is_better else "1e9")
        _dataset(data / "train", labelled=True)
        _dataset(data / "score")
        flows.train_flow(dataset_url=str(data / "train"))
    return data


@pytest.fixture
def retrying_env(trained, monkeypatch):
    small_settings(monkeypatch, trained, PIPELINE_RETRIES="2")
    return trained


def test_an_error_no_retry_heals_runs_once_on_a_dask_worker(retrying_env, monkeypatch):
    """A ValueError in one file's task: once (not 3 Dask attempts in each of 3 Prefect attempts), and the step
    fails at it; an OSError would still be retried (the project's test_injected_failure_commits_nothing...)."""
    attempts = retrying_env.parent / "attempts.log"
    real_score_file = steps.score_file

    def malformed(in_url, *args, **kwargs):
        if in_url.endswith("part-00003.parquet"):
            with attempts.open("a") as f:
                f.write(in_url + "\n")
            raise ValueError("injected: a value no retry can fix")
        return real_score_file(in_url, *args, **kwargs)

    monkeypatch.setattr(steps, "score_file", malformed)
    with pytest.raises(ValueError, match="injected: a value no retry can fix"):
        flows.score_flow(dataset_url=str(retrying_env / "score"))
    assert len(attempts.read_text().splitlines()) == 1
    assert not list((retrying_env / "predictions").glob("*/" + storage.MANIFEST))


def test_an_error_no_retry_heals_runs_once_in_a_prefect_step(retrying_env, monkeypatch):
    """A model file gone from a committed model (FileNotFoundError): the step is not retried."""
    calls = []

    def gone(url, *args, **kwargs):
        calls.append(url)
        raise FileNotFoundError(f"{url}/model.pkl: no such file")

    monkeypatch.setattr(steps, "load_model", gone)
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError, match="no such file"):
        flows.score_flow(dataset_url=str(retrying_env / "score"))
    assert len(calls) == 1, calls
    print(f"failed once, in {time.monotonic() - t0:.1f}s (PIPELINE_RETRIES=2)")
