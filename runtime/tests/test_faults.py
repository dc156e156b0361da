"""Faults injected into real runs: a lost worker, flaky and broken storage, malformed data, interruption.

Each test states the outcome the pipeline promises (see docs/reliability.md): the same result as an
undisturbed run, or a clear error with nothing committed, the cluster closed and no process left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed.core import Status

from ml_workflows import cli, cluster, storage
from ml_workflows.project import current
from ml_workflows.testing.faults import FlakyS3Proxy, dask_processes, wait_for, worker_processes
from ml_workflows.testing.fixtures import small_settings
from ml_workflows.validation import REASON

flows = current().module("flows")
make_partition = current().module("sample_data").make_partition
SCHEMA = current().module("schema").SCHEMA

SCORE_ROWS, SCORE_FILES = 600_000, 12


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_server):
    """A data dir with committed train/score datasets (600k rows to score) and a committed model."""
    data = tmp_path_factory.mktemp("faults") / "data"
    with pytest.MonkeyPatch.context() as mp:
        small_settings(mp, data)
        flows.generate_flow(score_rows=SCORE_ROWS, score_files=SCORE_FILES)
        data = data / "sample"  # the sample's own data URL: its datasets, the model and predictions there
        mp.setenv("PIPELINE_DATA_URL", str(data))
        flows.train_flow()
    return data


@pytest.fixture
def env(trained, monkeypatch):
    small_settings(monkeypatch, trained, PIPELINE_BATCH_ROWS="20000")
    return trained


def _predictions(url: str) -> pd.DataFrame:
    frame = pd.concat(pd.read_parquet(f) for f in storage.committed_files(url))
    return frame.sort_values(SCHEMA.id).reset_index(drop=True)


def _committed(root: Path) -> list[Path]:
    return sorted(root.glob("*/" + storage.MANIFEST)) if root.exists() else []


def _recording(monkeypatch) -> list:
    created, real = [], cluster.make_cluster

    def record(settings):
        created.append(real(settings))
        return created[-1]

    monkeypatch.setattr(cluster, "make_cluster", record)
    return created


# -- worker loss ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_worker_loss_mid_scoring_gives_the_same_predictions(env, tmp_path, monkeypatch):
    """SIGKILL one of two `dask worker` processes while files are being scored: same rows, same scores."""
    staging = env / "predictions" / storage.STAGING
    with dask_processes(tmp_path, n_workers=2) as (address, workers):
        monkeypatch.setenv("PIPELINE_CLUSTER", "existing")
        monkeypatch.setenv("PIPELINE_SCHEDULER_ADDRESS", address)
        monkeypatch.setenv("PIPELINE_BATCH_ROWS", "5000")  # smaller batches: a longer run to hit
        baseline = flows.score_flow()["scoring"]

        seen: dict[str, object] = {}

        def kill_mid_run() -> None:
            started = wait_for(lambda: len(list(staging.glob("*/part-*.parquet"))) >= 2, timeout=120)
            seen["files_started"] = len(list(staging.glob("*/part-*.parquet"))) if started else None
            workers[0].send_signal(signal.SIGKILL)
            seen["killed_at"] = time.monotonic()

        killer = threading.Thread(target=kill_mid_run)
        t0 = time.monotonic()
        killer.start()
        disturbed = flows.score_flow()["scoring"]
        seen["finished_at"] = time.monotonic()
        killer.join()
        assert workers[0].wait(timeout=10) == -signal.SIGKILL
        assert workers[1].poll() is None  # the survivor did the rest

    # The kill landed during scoring: after some files started and before the run finished.
    assert seen["files_started"] is not None and seen["files_started"] < SCORE_FILES
    assert t0 < seen["killed_at"] < seen["finished_at"]
    assert disturbed["rows"] == baseline["rows"]
    assert disturbed["rows"] + disturbed["quarantined_rows"] == SCORE_ROWS
    a, b = _predictions(baseline["predictions_url"]), _predictions(disturbed["predictions_url"])
    assert len(b) == disturbed["rows"] and b[SCHEMA.id].is_unique
    pd.testing.assert_frame_equal(a, b)
    print(
        f"worker loss: killed after {seen['files_started']}/{SCORE_FILES} files started, "
        f"{len(b):,} rows identical, run {seen['finished_at'] - t0:.1f}s (undisturbed {baseline['seconds']}s scoring)"
    )


# -- flaky and broken storage -----------------------------------------------------------------------
@pytest.mark.slow
def test_flaky_s3_is_retried_and_a_permanent_error_commits_nothing(
    pipeline_env, monkeypatch, s3_bucket, moto_s3, capsys
):
    data_url = f"s3://{s3_bucket}/pipeline"
    monkeypatch.setenv("PIPELINE_DATA_URL", data_url)
    for key, value in {"TRAIN_ROWS": "4000", "SCORE_ROWS": "8000", "SCORE_FILES": "2"}.items():
        monkeypatch.setenv(f"PIPELINE_SAMPLE_{key}", value)
    so = {"client_kwargs": {"endpoint_url": moto_s3}}

    # Transient: every 4th request answers 503 SlowDown (S3's throttling reply).
    with FlakyS3Proxy(moto_s3, lambda method, path, n: 503 if n % 4 == 0 else None) as proxy:
        monkeypatch.setenv("PIPELINE_S3_ENDPOINT_URL", proxy.url)
        result = flows.batch_pipeline()
    scoring = result["scoring"]
    assert scoring["rows"] + scoring["quarantined_rows"] == 8000
    assert storage.read_manifest(scoring["predictions_url"], so)["rows"] == scoring["rows"]
    assert len(proxy.injected) >= 10, proxy.injected  # faults really hit the run, and were retried
    flaky = f"flaky S3: {len(proxy.injected)} of {proxy.requests} requests answered 503, run completed"

    # Permanent: every write under predictions/ is refused (403 AccessDenied, e.g. a bucket policy).
    monkeypatch.setenv("PIPELINE_PROCESSES", "true")  # worker processes: check none is left behind
    monkeypatch.setenv("PIPELINE_RETRIES", "1")
    created = _recording(monkeypatch)
    before = set(worker_processes(os.getpid()))

    def deny(method: str, path: str, n: int) -> int | None:
        return 403 if method in ("PUT", "POST") and "/predictions/" in path else None

    data_url += "/sample"  # the sample run's own data URL: score with its model, in its lineage
    monkeypatch.setenv("PIPELINE_DATA_URL", data_url)
    with FlakyS3Proxy(moto_s3, deny) as proxy:
        monkeypatch.setenv("PIPELINE_S3_ENDPOINT_URL", proxy.url)
        code = cli.main(["score"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "score failed: PermissionError" in err and "Access Denied" in err, err[-2000:]
    assert proxy.injected
    import s3fs

    fs = s3fs.S3FileSystem(**so)
    fs.invalidate_cache()
    manifests = fs.glob(f"{data_url}/predictions/*/{storage.MANIFEST}")
    assert manifests == [storage.join(scoring["predictions_url"], storage.MANIFEST).removeprefix("s3://")]
    assert storage.current(f"{data_url}/predictions", so) == scoring["predictions_url"]  # unchanged
    closed = wait_for(lambda: all(c.status == Status.closed for c in created), 10)
    assert created and closed, [c.status for c in created]
    assert wait_for(lambda: set(worker_processes(os.getpid())) <= before, timeout=30), worker_processes(os.getpid())
    print(f"{flaky}\npermanent S3 error: {len(proxy.injected)} writes refused, exit {code}, nothing committed")


# -- malformed data (built from SCHEMA: the same checks hold for your own columns) --------------------
NUMERIC = SCHEMA.numeric[0]  # the column the malformed values go into
CATEGORICAL = SCHEMA.categorical[0] if SCHEMA.categorical else None


def _frame(rows: int, first_id: int, seed: int) -> pd.DataFrame:
    frame = make_partition(seed, max(rows, 1), first_id, seed, malformed_fraction=0.0, labelled=False).iloc[:rows]
    return frame.reset_index(drop=True)


def _write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def test_malformed_rows_and_partitions_each_have_a_counted_outcome(env, capsys):
    """Other dtypes, extra columns, forbidden values, a missing id and an empty file: all counted."""
    ds = env / "malformed"
    other = _frame(1000, 0, 1)
    if NUMERIC.dtype.startswith("float"):
        other[NUMERIC.name] = other[NUMERIC.name].astype(np.float64 if NUMERIC.dtype == "float32" else np.float32)
    else:
        other[NUMERIC.name] = other[NUMERIC.name].astype(np.float64)  # integer values stored as floats
    other["comment"] = "extra column"  # extra columns are ignored
    other[SCHEMA.label] = np.int8(1)  # a label column is ignored when scoring
    _write(ds / "part-00000.parquet", other)
    bad = _frame(1000, 1000, 2)
    bad[NUMERIC.name] = bad[NUMERIC.name].astype(np.float64)
    expected = []
    lo, hi = NUMERIC.bounds
    values = [(np.inf, f"infinite {NUMERIC.name}"), (-np.inf, f"infinite {NUMERIC.name}")]
    if not NUMERIC.nullable:
        values.append((np.nan, f"missing {NUMERIC.name}"))
    if np.isfinite(hi):
        values.append((hi * 10 + 1 if hi > 0 else hi + 1e6, f"{NUMERIC.name} out of range"))
    for row, (value, reason) in enumerate(values, start=3):
        bad.loc[row, NUMERIC.name] = value
        expected.append(reason)
    if CATEGORICAL is not None:
        bad.loc[9, CATEGORICAL.name] = "?not a category?"
        expected.append(f"{CATEGORICAL.name} unknown category")
    if SCHEMA.id_dtype == "int64":
        bad[SCHEMA.id] = bad[SCHEMA.id].astype("float64")
        bad.loc[8, SCHEMA.id] = np.nan
    else:
        bad.loc[8, SCHEMA.id] = None
    expected.append(f"missing {SCHEMA.id}")
    _write(ds / "part-00001.parquet", bad)
    _write(ds / "part-00002.parquet", _frame(0, 0, 3))  # an empty partition

    assert cli.main(["score", "--dataset", str(ds)]) == cli.EXIT_OK
    url = storage.current(str(env / "predictions"))
    manifest = storage.read_manifest(url)
    n_bad = len(expected)
    assert manifest["rows"] == 2000 - n_bad and manifest["quarantined_rows"] == n_bad
    assert [f["rows"] for f in manifest["files"]] == [1000, 1000 - n_bad, 0]
    quarantine = pd.concat(pd.read_parquet(storage.join(url, f["path"])) for f in manifest["quarantine_files"])
    assert sorted(quarantine[REASON]) == sorted(expected)
    scored = _predictions(url)
    assert len(scored) == 2000 - n_bad and scored[SCHEMA.id].is_unique
    assert f"{n_bad} malformed rows" in capsys.readouterr().out


def _missing_column(ds: Path) -> str:
    name = SCHEMA.feature_names[-1]
    _write(ds / "part-00000.parquet", _frame(100, 0, 1).drop(columns=[name]))
    return f"lacks columns [{name!r}]"


def _text_column(ds: Path) -> str:
    frame = _frame(100, 0, 1)
    frame[NUMERIC.name] = frame[NUMERIC.name].astype(str)
    _write(ds / "part-00000.parquet", frame)
    return "{" + repr(NUMERIC.name) + ": 'large_string'} are not of the kind schema.py declares"


def _corrupt_file(ds: Path) -> str:
    _write(ds / "part-00000.parquet", _frame(100, 0, 1))
    data = (ds / "part-00000.parquet").read_bytes()
    (ds / "part-00001.parquet").write_bytes(data[: len(data) // 2])  # truncated upload
    return "part-00001.parquet: not a readable parquet file"


def _empty_dataset(ds: Path) -> str:
    ds.mkdir(parents=True)
    return "no parquet files under"


@pytest.mark.parametrize("make", [_missing_column, _text_column, _corrupt_file, _empty_dataset])
def test_unusable_input_fails_the_run_with_a_clear_error(env, make, capsys):
    ds = env / "unusable" / make.__name__
    expected = make(ds)
    before = _committed(env / "predictions")
    # Refused before the run starts, in one line (exit 2: fix the input; test_bad_input.py has the whole process).
    assert cli.main(["score", "--dataset", str(ds)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("score: dataset to score (--dataset)") and expected in err, err[-2000:]
    assert len(err.splitlines()) == 1, err[-2000:]
    assert _committed(env / "predictions") == before
    assert not any((env / "predictions" / storage.STAGING).glob("*/*"))


# -- interruption -----------------------------------------------------------------------------------
def _session_members(sid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_score_commits_nothing_and_leaves_no_process(env, sig):
    """`python -m ml_workflows score` on a process-based LocalCluster, signalled mid-scoring: exit 130/143."""
    from prefect.settings import PREFECT_API_URL

    predictions = env / "predictions"
    before = _committed(predictions)
    staging = predictions / storage.STAGING
    environ = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PIPELINE_PROCESSES": "true",
        "PIPELINE_BATCH_ROWS": "2000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ml_workflows", "score"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        started = wait_for(lambda: list(staging.glob("*/part-*.parquet")) or proc.poll() is not None, timeout=180)
        assert started and proc.poll() is None, "scoring never started"
        time.sleep(0.3)
        assert proc.poll() is None, "the run finished before the signal"
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=90)
        stop_seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == (cli.EXIT_INTERRUPTED if sig == signal.SIGINT else cli.EXIT_TERMINATED), err[-3000:]
    assert "nothing committed" in err
    assert _committed(predictions) == before
    assert wait_for(lambda: not list(staging.glob("*/*")), timeout=10), list(staging.glob("*/*"))
    assert wait_for(lambda: not _session_members(proc.pid), timeout=30), _session_members(proc.pid)
    print(f"{sig.name}: exit {proc.returncode} {stop_seconds:.1f}s after the signal, nothing committed or left running")
