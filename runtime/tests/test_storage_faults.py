"""Storage faults: a commit that fails at any point (a full disk, a refused write), a run killed with kill -9, two
runs writing the same output, and files a dataset should not hold (docs/reliability.md).

The promises: a failed commit leaves nothing under a final name and no temporary file; what a killed run leaves is
removed by the next run, which says so; a second run writing where another one writes is refused at once, naming
it, so ``_LATEST`` only moves forward.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ml_workflows import cli, output_lock, storage
from ml_workflows.project import current
from ml_workflows.testing.faults import FlakyS3Proxy, wait_for
from ml_workflows.testing.fixtures import small_settings
from ml_workflows.validation import REASON

from .test_faults import _session_members

flows = current().module("flows")
SCORE_ROWS, SCORE_FILES = 400_000, 8


def _small_env(mp: pytest.MonkeyPatch, data_url: str) -> None:
    small_settings(mp, data_url)


def _generate_and_train(mp: pytest.MonkeyPatch, data_url: str, so: dict | None) -> str:
    """Sample datasets (``SCORE_ROWS`` to score) and a model; the data URL they are under (the sample's own one,
    ``<data>/sample``, where the sample keeps its data)."""
    flows.generate_flow(score_rows=SCORE_ROWS, score_files=SCORE_FILES)
    fs, path = storage.filesystem(storage.join(data_url, "sample", "datasets"), so)
    if fs.exists(path):
        data_url = storage.join(data_url, "sample")
        mp.setenv("PIPELINE_DATA_URL", data_url)
    flows.train_flow()
    return data_url


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_server) -> Path:
    """A local data dir with committed datasets (400k rows to score) and a committed model."""
    data = tmp_path_factory.mktemp("storage-faults") / "data"
    with pytest.MonkeyPatch.context() as mp:
        _small_env(mp, str(data))
        return Path(_generate_and_train(mp, str(data), None))


@pytest.fixture
def env(trained, monkeypatch) -> Path:
    _small_env(monkeypatch, str(trained))
    return trained


@pytest.fixture(scope="module")
def s3_trained(moto_s3, prefect_server) -> tuple[str, dict[str, str]]:
    """The same on the moto S3 server: ``(data URL, environment)``."""
    import uuid

    import boto3

    bucket = f"storage-faults-{uuid.uuid4().hex[:8]}"
    environ = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - fake credentials for moto  # pragma: allowlist secret
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PIPELINE_S3_ENDPOINT_URL": moto_s3,
    }
    with pytest.MonkeyPatch.context() as mp:
        _small_env(mp, f"s3://{bucket}/pipeline")
        for key, value in environ.items():
            mp.setenv(key, value)
        boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1").create_bucket(Bucket=bucket)
        environ["PIPELINE_DATA_URL"] = _generate_and_train(mp, f"s3://{bucket}/pipeline", _so(moto_s3))
    return environ["PIPELINE_DATA_URL"], environ


def _so(endpoint: str) -> dict:
    return {"client_kwargs": {"endpoint_url": endpoint}}


def _cli(args: list[str], **extra: str) -> subprocess.Popen:
    """``python -m ml_workflows <args>`` against the test session's Prefect server, in a session of its own."""
    from prefect.settings import PREFECT_API_URL

    return subprocess.Popen(
        [sys.executable, "-m", "ml_workflows", *args],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _committed(root: str, so: dict | None = None) -> list[str]:
    fs, path = storage.filesystem(root, so)
    fs.invalidate_cache()
    return sorted(fs.glob(f"{path}/*/{storage.MANIFEST}"))


def _leftovers(root: Path) -> list[str]:
    """Every name under ``root`` but the committed results and the pointer: what a failure may have left."""
    committed = {p.parent for p in root.glob(f"*/{storage.MANIFEST}")}
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not any(c == p or c in p.parents for c in committed) and p.name != storage.LATEST
    )


def _logged(caplog) -> str:
    """What the runs logged (the Prefect run loggers' records)."""
    return "\n".join(record.getMessage() for record in caplog.records)


class Lines(list):
    """A logger stand-in that keeps each message."""

    def warning(self, message: str, *args: object) -> None:
        self.append(message % args)


# -- a commit that fails at any point ---------------------------------------------------------------------------------
def _staged(url: str, so: dict | None) -> str:
    staging = storage.staging_url(url, "r2")
    for name in ("part-00000.parquet", "part-00001.parquet", "quarantine/part-00000.parquet"):
        with storage.open_write(storage.join(staging, name), so) as f:
            f.write(b"rows")
    return staging


MANIFEST = {"files": [{"path": "part-00000.parquet", "rows": 1}, {"path": "part-00001.parquet", "rows": 1}]}


@pytest.mark.parametrize("point", ["manifest", "rename", "latest"])
def test_a_failed_local_commit_leaves_nothing_under_the_final_name(tmp_path, monkeypatch, point):
    """ENOSPC at the manifest write (as a full disk: a 0-byte file, then the error), a failed rename, ENOSPC at
    ``_LATEST``: each leaves no result folder, no temporary file, and ``_LATEST`` where it was."""
    from fsspec.implementations.local import LocalFileSystem

    root = tmp_path / "predictions"
    storage.commit(_staged(str(root / "r1"), None), str(root / "r1"), MANIFEST)  # the current result
    final, staging = str(root / "r2"), _staged(str(root / "r2"), None)
    target = {"manifest": storage.MANIFEST, "latest": storage.LATEST}.get(point)
    real_pipe, real_rename = LocalFileSystem.pipe_file, os.rename

    def full_disk(self, path, value, *args, **kwargs):
        if target and Path(path).name.startswith(target + ".tmp-"):
            Path(path).touch()  # the file is created, its data does not fit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_pipe(self, path, value, *args, **kwargs)

    def failing_rename(src, dst):
        if point == "rename" and str(dst) == final:
            raise OSError(errno.EIO, os.strerror(errno.EIO), dst)
        return real_rename(src, dst)

    monkeypatch.setattr(LocalFileSystem, "pipe_file", full_disk)
    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space left|Input/output error"):
        storage.commit(staging, final, MANIFEST)
    monkeypatch.undo()
    storage.remove(staging)  # what the step does on failure
    assert not Path(final).exists()
    assert _leftovers(root) == [storage.STAGING], _leftovers(root)  # an empty _staging, nothing else
    assert storage.current(str(root)) == str(root / "r1")
    storage.commit(_staged(final, None), final, MANIFEST)  # the same commit again, the disk freed: it goes through
    assert storage.current(str(root)) == final and storage.committed_files(final)[0].endswith("part-00000.parquet")


@pytest.mark.parametrize("point", ["copy", "manifest", "latest"])
def test_a_failed_s3_commit_leaves_nothing_under_the_final_prefix(point, s3_bucket, moto_s3):
    """S3 refuses a write (403) while objects are copied under the final prefix, at the manifest, at ``_LATEST``:
    what was copied is removed and ``_LATEST`` stays where it was."""
    import s3fs

    root = f"s3://{s3_bucket}/data/predictions"
    storage.commit(_staged(f"{root}/r1", _so(moto_s3)), f"{root}/r1", MANIFEST, _so(moto_s3))
    staging = _staged(f"{root}/r2", _so(moto_s3))
    key = {"copy": "/r2/part-00001.parquet", "manifest": f"/r2/{storage.MANIFEST}", "latest": f"/{storage.LATEST}"}

    def refuse(method: str, path: str, n: int) -> int | None:
        return 403 if method == "PUT" and path.split("?")[0].endswith("/predictions" + key[point]) else None

    with FlakyS3Proxy(moto_s3, refuse) as proxy:
        with pytest.raises(PermissionError):
            storage.commit(staging, f"{root}/r2", MANIFEST, _so(proxy.url))
        assert proxy.injected
    fs = s3fs.S3FileSystem(**_so(moto_s3))
    fs.invalidate_cache()
    assert not fs.find(f"{s3_bucket}/data/predictions/r2")  # nothing under the final prefix
    assert storage.current(root, _so(moto_s3)) == f"{root}/r1"


@pytest.mark.slow
def test_a_full_disk_fails_the_run_and_leaves_nothing(env, tmp_path):
    """Real ENOSPC: ``score`` writing its predictions on a tmpfs with room for exactly the files of one run, the
    commit's manifest (offset 0), one file fewer (-1: the drift report), one more (+1: ``_LATEST`` fails after the
    rename). A user namespace mounts it (no root needed); skipped where that is not allowed."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o nr_inodes=8 tmpfs {tmp_path}"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}")
    from prefect.settings import PREFECT_API_URL

    baseline = flows.score_flow()["scoring"]["predictions_url"]
    # inodes in use just before the manifest: the root, _LOCK, _staging, the staging folder, the result's files
    # and folders (the manifest aside)
    before_manifest = 4 + sum(1 for _ in Path(baseline).rglob("*")) - 1
    seen = {}
    for offset in (-1, 0, 1, 2):
        predictions = env / "predictions"
        script = (
            f'mount -t tmpfs -o size=256m,nr_inodes={before_manifest + offset} tmpfs "{predictions}" || exit 99; '
            f'"{sys.executable}" -m ml_workflows score; rc=$?; echo "--- left ---"; find "{predictions}" -mindepth 1 '
            "-printf '%P\\n' | sort; exit $rc"
        )
        run = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script],
            env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
            capture_output=True,
            text=True,
            timeout=300,
        )
        left = run.stdout.split("--- left ---\n", 1)[1].split()
        seen[offset] = (run.returncode, left)
        if offset == 2:
            assert run.returncode == cli.EXIT_OK, run.stderr[-3000:]
            continue
        assert run.returncode == cli.EXIT_FAILED, run.stderr[-3000:]
        assert "No space left on device" in run.stderr, run.stderr[-3000:]
        assert left == [storage.STAGING], left  # no result folder, no staging, no temporary file, no lock
    print(f"full disk (inodes for the run's files + {{-1, 0, +1, +2}}): {seen}")


# -- kill -9 ----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_mid_scoring_is_cleaned_up_by_the_next_run(env, caplog):
    """``python -m ml_workflows score`` on a process-based LocalCluster, SIGKILLed mid-scoring: its lock and staging
    stay; the next run takes the lock over (its process is gone), removes the staging, says both, and commits."""
    predictions = env / "predictions"
    staging = predictions / storage.STAGING
    before = _committed(str(predictions))
    proc = _cli(["score"], PIPELINE_PROCESSES="true", PIPELINE_BATCH_ROWS="2000")
    try:
        started = wait_for(lambda: list(staging.glob("*/part-*.parquet")) or proc.poll() is not None, timeout=180)
        assert started and proc.poll() is None, "scoring never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        outlived = wait_for(lambda: not _session_members(proc.pid), timeout=20) is None
    finally:
        _stop(proc)
        if _session_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)  # what the run started and did not take with it (issue 25 item 5)
    left = [p for p in staging.rglob("*") if p.is_file()]
    holder = json.loads((predictions / output_lock.LOCK).read_text())
    assert holder["pid"] == proc.pid and left
    assert _committed(str(predictions)) == before

    assert cli.main(["score"]) == cli.EXIT_OK
    text = _logged(caplog)
    assert f"took over the lock of {predictions} from run {holder['run_id']}" in text, text[-3000:]
    assert f"its process {proc.pid} is gone" in text
    assert f"removed 1 staging folder(s) ({len(left)} files)" in text, text[-3000:]
    assert not list(staging.iterdir()) and not (predictions / output_lock.LOCK).exists()
    assert len(_committed(str(predictions))) == len(before) + 1
    print(f"kill -9: {len(left)} staging files left (processes outliving the CLI: {outlived}), removed by the next run")


@pytest.mark.slow
def test_kill_9_mid_s3_commit_leaves_copies_the_next_run_removes(s3_bucket, moto_s3, tmp_path):
    """A process SIGKILLed while its S3 commit copies objects under the final prefix (the manifest PUT held back):
    the next holder of the lock removes the copies and the staging, and says so."""
    root = f"s3://{s3_bucket}/data/predictions"
    arrived = threading.Event()

    def hold_manifest(method: str, path: str, n: int) -> int | None:
        if method == "PUT" and path.split("?")[0].endswith(f"/r1/{storage.MANIFEST}"):
            arrived.set()
            threading.Event().wait(60)  # the PUT never completes: the process is killed meanwhile
        return None

    script = textwrap.dedent(f"""
        import logging, sys
        from ml_workflows import output_lock, storage
        so = {{"client_kwargs": {{"endpoint_url": sys.argv[1]}}}}
        output_lock.acquire({root!r}, "r1", so, timeout=600, log=logging.getLogger())
        staging = storage.staging_url({root!r} + "/r1", "r1")
        for i in range(3):
            with storage.open_write(f"{{staging}}/part-{{i}}.parquet", so) as f:
                f.write(b"rows")
        storage.commit(staging, {root!r} + "/r1", {{"files": []}}, so)
    """)
    with FlakyS3Proxy(moto_s3, hold_manifest) as proxy:
        proc = subprocess.Popen([sys.executable, "-c", script, proxy.url], start_new_session=True)
        try:
            assert wait_for(lambda: arrived.is_set() or proc.poll() is not None, timeout=60) and arrived.is_set()
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            _stop(proc)
    import s3fs

    fs = s3fs.S3FileSystem(**_so(moto_s3))
    fs.invalidate_cache()
    copied = fs.find(f"{s3_bucket}/data/predictions/r1")
    assert len(copied) == 3 and not fs.exists(f"{s3_bucket}/data/predictions/r1/{storage.MANIFEST}")
    lines = Lines()
    lock = output_lock.acquire(root, "r2", _so(moto_s3), timeout=600, log=lines)
    output_lock.release(root, lock, _so(moto_s3))
    assert any(f"its process {proc.pid} is gone" in line for line in lines), lines
    assert any("removed 1 staging folder(s) (4 files)" in line for line in lines), lines  # 3 + the _COMMITTING note
    fs.invalidate_cache()
    assert not fs.find(f"{s3_bucket}/data/predictions")  # no copies, no staging, no lock


# -- two runs writing the same output ---------------------------------------------------------------------------------
def _second_run_is_refused(data_url: str, so: dict | None, command: list[str], capsys) -> dict:
    """Start ``command`` as a process; once it writes, run it here too: refused at once, naming the first run."""
    fs, data = storage.filesystem(data_url, so)
    proc = _cli(command, PIPELINE_PROCESSES="true", PIPELINE_BATCH_ROWS="2000")
    try:

        def writing() -> list[str] | bool:
            fs.invalidate_cache()
            return fs.glob(f"{data}/**/{storage.STAGING}/*/*.parquet") or proc.poll() is not None

        assert wait_for(writing, timeout=180) and proc.poll() is None, "the first run never started writing"
        [lock] = fs.glob(f"{data}/**/{output_lock.LOCK}")
        holder = json.loads(fs.cat_file(lock))
        t0 = time.monotonic()
        code = cli.main(command)
        holder["refused_after"] = round(time.monotonic() - t0, 1)
        err = capsys.readouterr().err
        assert proc.poll() is None, "the first run finished before the second one asked for the lock"
        out, first_err = proc.communicate(timeout=300)
    finally:
        _stop(proc)
    assert proc.returncode == cli.EXIT_OK, first_err[-3000:]
    assert code == cli.EXIT_FAILED
    root = ("s3://" if "://" in data_url else "") + lock.rsplit("/", 1)[0]
    refusal = (
        f"{command[0]} failed: LockHeldError: {root} is being written by run {holder['run_id']} "
        f"(host {socket.gethostname()}, pid {proc.pid}, since {holder['since']}); "
    )
    assert refusal in err, err[-3000:]
    return holder


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_second_run_writing_the_same_predictions_is_refused(where, request, monkeypatch, capsys):
    """Two ``score`` runs at once (two processes): the second is refused naming the first; the first commits and
    ``_LATEST`` names it; a later run moves ``_LATEST`` forward."""
    if where == "s3":
        data_url, environ = request.getfixturevalue("s3_trained")
        _small_env(monkeypatch, data_url)
        for key, value in environ.items():
            monkeypatch.setenv(key, value)
        so = _so(environ["PIPELINE_S3_ENDPOINT_URL"])
    else:
        data_url, so = str(request.getfixturevalue("env")), None
    root = storage.join(data_url, "predictions")
    before = _committed(root, so)
    holder = _second_run_is_refused(data_url, so, ["score"], capsys)
    after = _committed(root, so)
    assert len(after) == len(before) + 1  # the refused run committed nothing
    first = storage.current(root, so)
    assert first == storage.join(root, holder["run_id"])
    assert cli.main(["score"]) == cli.EXIT_OK
    second = storage.current(root, so)
    assert second != first
    assert storage.read_manifest(second, so)["committed_at"] > storage.read_manifest(first, so)["committed_at"]
    print(f"two score runs on {where}: the second refused {holder['refused_after']} s after it started (in-process)")


@pytest.mark.slow
def test_a_second_generate_run_is_refused(tmp_path, monkeypatch, prefect_server, capsys):
    """Two ``generate`` runs at once: the second is refused instead of silently replacing the first one's data."""
    _small_env(monkeypatch, str(tmp_path / "data"))
    monkeypatch.setenv("PIPELINE_SAMPLE_TRAIN_ROWS", "3000000")
    monkeypatch.setenv("PIPELINE_SAMPLE_TRAIN_FILES", "12")
    holder = _second_run_is_refused(str(tmp_path / "data"), None, ["generate"], capsys)
    [train] = (tmp_path / "data").rglob(f"datasets/train/{storage.MANIFEST}")
    assert json.loads(train.read_text())["rows"] == 3_000_000  # the first run's data, not replaced
    print(f"two generate runs: the second refused {holder['refused_after']} s after it started (in-process)")


# -- the lock itself --------------------------------------------------------------------------------------------------
def _set_lock(root: str, so: dict | None, **fields: object) -> dict:
    """Rewrite the lock as another run's (``fields`` changed); returns what it now says."""
    fs, path = storage.filesystem(storage.join(root, output_lock.LOCK), so)
    holder = {**json.loads(fs.cat_file(path)), "token": "someone else", **fields}
    fs.pipe_file(path, json.dumps(holder).encode())
    fs.invalidate_cache()
    return holder


@pytest.mark.parametrize("where", ["local", "s3"])
def test_stale_locks_are_taken_over_and_live_ones_refused(where, tmp_path, request):
    if where == "s3":
        bucket, endpoint = request.getfixturevalue("s3_bucket"), request.getfixturevalue("moto_s3")
        root, so = f"s3://{bucket}/data/predictions", _so(endpoint)
    else:
        root, so = str(tmp_path / "predictions"), None
    lines = Lines()
    lock = output_lock.acquire(root, "run-a", so, timeout=600, log=lines)
    me = rf"run run-a \(host {socket.gethostname()}, pid {os.getpid()},"
    with pytest.raises(output_lock.LockHeldError, match=me):
        output_lock.acquire(root, "run-b", so, timeout=600, log=lines)  # this process, in time: alive

    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    dead = _set_lock(root, so, pid=pid, run_id="run-dead")
    lock = output_lock.acquire(root, "run-c", so, timeout=600, log=lines)  # same host, its process gone
    assert lines[-1] == f"took over the lock of {root} from {output_lock.describe(dead)}: its process {pid} is gone"

    _set_lock(root, so, host="elsewhere", run_id="run-far")
    with pytest.raises(output_lock.LockHeldError, match=r"run run-far \(host elsewhere"):
        output_lock.acquire(root, "run-d", so, timeout=600, log=lines)  # another machine, in time: may be alive
    late = _set_lock(root, so, host="elsewhere", run_id="run-late", expires="2000-01-01T00:00:00+00:00")
    lock = output_lock.acquire(root, "run-e", so, timeout=600, log=lines)  # another machine, past its timeout
    assert lines[-1] == f"took over the lock of {root} from {output_lock.describe(late)}: " + (
        "it is past its timeout (expired 2000-01-01T00:00:00+00:00)"
    )

    # run-e loses its lock (it ran past its timeout and another run took over): it commits nothing
    _set_lock(root, so, run_id="run-f")
    staging = _staged(f"{root}/run-e", so)
    with pytest.raises(output_lock.LockLostError, match="taken over .* now held by run run-f"):
        storage.commit(staging, f"{root}/run-e", MANIFEST, so)
    with pytest.raises(storage.NotCommittedError):
        storage.read_manifest(f"{root}/run-e", so)
    output_lock.release(root, lock, so)  # leaves run-f's lock alone
    fs, path = storage.filesystem(storage.join(root, output_lock.LOCK), so)
    fs.invalidate_cache()
    assert json.loads(fs.cat_file(path))["run_id"] == "run-f"


def test_promote_by_hand_is_refused_while_a_training_run_holds_the_models(env, capsys):
    """``promote`` / ``rollback`` write ``models/_LATEST``: not while a training run decides there."""
    models = str(env / "models")
    current = storage.current(models)
    lock = output_lock.acquire(models, "run-training", None, timeout=600, log=Lines())
    try:
        code = cli.main(["promote", "--model", current])
    finally:
        output_lock.release(models, lock, None)
    assert code == cli.EXIT_FAILED
    assert f"promote refused: {models} is being written by run run-training" in capsys.readouterr().err
    assert cli.main(["promote", "--model", current]) == cli.EXIT_OK  # once it is done


# -- what a dataset holds, where the quarantine is ---------------------------------------------------------------------
def test_non_parquet_files_are_named_and_quarantine_files_are_listed(env, caplog):
    """Files of a dataset that are not parquet are named in a warning (``_`` markers aside); readers get the
    quarantine files of predictions and of a model from the manifest (``storage.quarantine_files``)."""
    source = storage.list_parquet(str(env / "datasets" / "score"))[:2]
    ds = env / "with-extras"
    ds.mkdir()
    for i, f in enumerate(source):
        shutil.copy(f, ds / f"part-{i}.parquet")
    (ds / "notes.txt").write_text("not data")
    (ds / "old.csv").write_text("id\n1\n")
    (ds / "_SUCCESS").write_text("")
    assert cli.main(["score", "--dataset", str(ds)]) == cli.EXIT_OK
    assert f"{ds}: 2 file(s) skipped, not *.parquet: notes.txt, old.csv" in _logged(caplog)

    predictions = storage.current(str(env / "predictions"))
    manifest = storage.read_manifest(predictions)
    quarantined = storage.quarantine_files(predictions)
    assert quarantined == [storage.join(predictions, f["path"]) for f in manifest["quarantine_files"]]
    assert not set(quarantined) & set(storage.committed_files(predictions))
    rows = pd.concat(pd.read_parquet(f) for f in quarantined)
    assert len(rows) == manifest["quarantined_rows"] > 0 and rows[REASON].notna().all()

    model = storage.current(str(env / "models"))
    model_rows = pd.concat(pd.read_parquet(f) for f in storage.quarantine_files(model))
    assert len(model_rows) == storage.read_manifest(model)["rows"]["train_quarantined_rows"] > 0
