"""What every run pays before and after its work: imports, the Prefect API, the end of the run.

Timings are measured by the template's benchmark (BENCHMARKS.md), never asserted here: these tests keep
the causes away (a library imported by a command that does not need it, a Prefect server that is not
used, or one left running).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from ml_workflows import prefect_api, storage
from ml_workflows.project import current

flows = current().module("flows")
PACKAGE = current().package  # the project's: schema.py, model.py, sample_data.py, flows.py
RUNTIME = "ml_workflows"  # the CLI and the plumbing (`python -m ml_workflows`)
# Libraries a command needs only to train (or that the plumbing must never pull in for scoring).
TRAINING_ONLY = ("dask_ml", "dask_glm", "sklearn", "scipy", "dask.dataframe", "dask.array")


def _imported_by(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints a JSON value (what it found in sys.modules)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_neither_prefect_nor_dask_nor_pandas():
    heavy = ("prefect", "distributed", "dask", "pandas", "numpy")
    code = (
        f"import sys, json\nfrom {RUNTIME} import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    assert _imported_by(code) == []


def test_help_names_the_command_a_user_types():
    name = current().name
    script = str(Path(sys.executable).with_name(name))  # the console script, named after the project
    for argv, prog in (([script], name), ([sys.executable, "-m", RUNTIME], f"python -m {RUNTIME}")):
        usage = subprocess.run([*argv, "--help"], capture_output=True, text=True, check=True).stdout
        assert usage.startswith(f"usage: {prog} "), usage[:200]


def test_score_imports_no_library_the_model_does_not_need(pipeline_env):
    """A `score` run imports nothing for training beyond what unpickling the model itself imports."""
    from prefect.settings import PREFECT_API_URL

    flows.generate_flow()
    datasets = storage.join(str(pipeline_env), "sample", "datasets")
    model_url = flows.train_flow(dataset_url=storage.join(datasets, "train"))["model"]["model_url"]
    model_pkl = Path(storage.join(model_url, "model.pkl"))
    assert pickle.loads(model_pkl.read_bytes())  # loadable here; the subprocess measures what it imports
    code = (
        "import sys, json, pickle\n"
        f"from {PACKAGE} import model\n"
        f"pickle.loads(open({str(model_pkl)!r}, 'rb').read())\n"
        f"before = set(m for m in {TRAINING_ONLY!r} if m in sys.modules)\n"
        f"from {RUNTIME} import cli\n"
        f"code = cli.main(['score', '--model', {model_url!r}, '--dataset', {storage.join(datasets, 'score')!r}])\n"
        f"print(json.dumps([code, sorted(m for m in {TRAINING_ONLY!r} if m in sys.modules and m not in before)]))"
    )
    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PIPELINE_DATA_URL": str(pipeline_env)}
    assert _imported_by(code, env) == [0, []]


def test_an_api_you_configured_wins_and_no_server_is_asked(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setattr(prefect_api, "is_up", lambda *a, **k: pytest.fail("probed a server"))
    with temporary_settings(updates={PREFECT_API_URL: "http://prefect.example.invalid/api"}):
        assert prefect_api.choose() == ("http://prefect.example.invalid/api", False)


def test_without_an_api_the_local_server_is_used_never_a_temporary_one(tmp_path):
    """Prefect's own settings decide what is configured: checked in a clean interpreter and Prefect home. Without
    an API, the project's local server (the CLI starts it if it does not answer): Prefect's temporary server
    outlived a command killed with SIGKILL (test_cli_processes.py)."""
    code = (
        "import json\n"
        f"from {RUNTIME} import prefect_api\n"
        "from prefect.settings import get_current_settings\n"
        "api, local = prefect_api.choose()\n"
        "prefect_api.use(api)\n"
        "print(json.dumps([api, local, get_current_settings().api.url]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_API_PORT="4299", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    url = "http://127.0.0.1:4299/api"
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [url, True, url]


def test_is_up_is_false_when_nothing_listens():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening
        assert not prefect_api.is_up(f"http://127.0.0.1:{port}/api", timeout=0.5)


def _alive(pid: int) -> bool:
    stat = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(stat) and not stat.startswith("Z")


@pytest.mark.slow
def test_make_server_starts_once_the_cli_uses_it_and_server_stop_leaves_nothing(tmp_path):
    """`make server` / the CLI / `make server-stop`, through the module they call, on a free port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PIPELINE_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_API_PORT=str(port), PREFECT_SERVER_ANALYTICS_ENABLED="false")

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env={**env, "PIPELINE_DATA_URL": str(tmp_path)})

    server = f"{RUNTIME}.prefect_api"
    pid = None
    try:
        started = run(server, "start")
        assert started.returncode == 0, started.stderr
        pid = int((home / "server.pid").read_text())
        assert f"http://127.0.0.1:{port}" in (home / "server.log").read_text()  # the server's own output, kept
        again = run(server, "start")  # already up: nothing new is started
        assert again.returncode == 0 and int((home / "server.pid").read_text()) == pid
        sizes = ["--train-rows", "2000", "--train-files", "1", "--score-rows", "2000", "--score-files", "1"]
        generated = run(RUNTIME, "generate", *sizes)
        assert generated.returncode == 0, generated.stderr
        assert f"Prefect API http://127.0.0.1:{port}/api" in generated.stderr
    finally:
        stopped = run(server, "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not (home / "server.pid").exists()
    assert not prefect_api.is_up(f"http://127.0.0.1:{port}/api", timeout=0.5)
    assert not _alive(pid)


def test_a_port_taken_by_something_else_is_named_and_nothing_is_started(tmp_path):
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_API_PORT=str(port))
        cmd = [sys.executable, "-m", f"{RUNTIME}.prefect_api", "start"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert f"http://127.0.0.1:{port} is taken by something that is not a Prefect server" in proc.stderr
    assert "PREFECT_SERVER_API_PORT" in proc.stderr
    assert not (tmp_path / "server.pid").exists() and not (tmp_path / "server.log").exists()


@pytest.mark.slow
def test_a_server_that_fails_to_start_is_reported_with_its_log_and_leaves_no_pid_file(tmp_path):
    """A database it cannot reach (a closed port on loopback): `prefect server start` exits, and `start` says
    so with the end of the server's own log, records no server and tells where commands go instead."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        api_port, db_port = s.getsockname()[1], 1  # nothing listens on port 1
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_API_PORT=str(api_port),
        PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://127.0.0.1:{db_port}/prefect",
    )
    cmd = [sys.executable, "-m", f"{RUNTIME}.prefect_api", "start"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1
    assert "Application startup failed" in proc.stderr, proc.stderr  # the server's own words, from its log
    assert f"exited before it answered (its log: {home / 'server.log'})" in proc.stderr
    assert "`make server` starts it" in proc.stderr
    assert not (home / "server.pid").exists()
