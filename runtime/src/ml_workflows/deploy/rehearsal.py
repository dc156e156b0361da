"""`make rehearse`: the deploy path on loopback, from nothing to a Completed flow run, then torn down.

    1. a Prefect server on 127.0.0.1 (random port, throwaway database in a temporary directory)
    2. an external Dask cluster: `dask scheduler` + `dask worker` on 127.0.0.1 (random port)
    3. the local process work pool, created the way `make deploy` creates pools
    4. `prefect worker start` on that pool, and `prefect --no-prompt deploy --name local`
       with this project's prefect.yaml; the deployment is triggered with PIPELINE_CLUSTER=existing
    5. the flow run is awaited until it is final; the command fails unless it is Completed

With ``code_source = "git"`` the code comes from git, as in the AWS deployments: the project is committed to a
throwaway bare git repository on local disk, and the deployment's pull steps clone that repository (``file://``
URL) and run the flow, and the Dask worker, from the clone.

Everything started here is stopped afterwards, pass or fail (the Prefect worker and server with
SIGINT, which is what they stop on, the Dask processes with SIGTERM; SIGKILL if they linger).

    python -m ml_workflows.deploy.rehearsal [--timeout SECONDS] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ml_workflows import names
from ml_workflows.project import current
from ml_workflows.project import root as project_root

PROJECT_DIR = project_root(strict=False)
DEPLOYMENT = names.LOCAL_DEPLOYMENT
NOT_IN_REPO = (".venv", ".git", "data", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info")
BIN = Path(sys.executable).parent  # prefect and dask console scripts of this environment
LOOPBACK = "127.0.0.1"
_STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


def server_env(workdir: Path, api_port: int) -> dict[str, str]:
    """A throwaway Prefect server on loopback and its clients: its home in ``workdir``, no UI, no telemetry."""
    return {
        "PREFECT_HOME": str(workdir / "prefect-home"),
        "PREFECT_API_URL": f"http://{LOOPBACK}:{api_port}/api",
        "PREFECT_SERVER_API_HOST": LOOPBACK,
        "PREFECT_SERVER_API_PORT": str(api_port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Services:
    """Processes started by the rehearsal, each in its own process group, stopped in reverse order."""

    logs: Path
    env: dict[str, str]
    started: list[tuple[str, subprocess.Popen, signal.Signals]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], stop_signal: signal.Signals = signal.SIGTERM) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        say(f"+ {' '.join(cmd)}  (log: {name}.log)")
        proc = subprocess.Popen(  # noqa: S603 (our own argv)
            cmd, cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.started.append((name, proc, stop_signal))
        return proc

    def check_alive(self) -> None:
        for name, proc, _ in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(self.logs / f'{name}.log')}")

    def stop_all(self, grace: float = 20.0) -> None:
        for name, proc, stop_signal in reversed(self.started):
            if proc.poll() is None:
                _signal_group(proc, stop_signal)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop on {stop_signal.name}; killing it", file=sys.stderr)
            _signal_group(proc, signal.SIGKILL)  # children left in the group (e.g. uvicorn, nannies)
            if proc.poll() is None:
                proc.wait(timeout=grace)
        self.started.clear()


def kill_stragglers(marker: str) -> int:
    """SIGKILL processes that inherited this rehearsal's environment (`marker` is its unique PREFECT_HOME
    setting) but left the process groups, e.g. a flow-run process started in a session of its own. Linux."""
    needle = marker.encode()
    killed = 0
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        if pid == os.getpid():
            continue
        try:
            if needle in environ.read_bytes().split(b"\0"):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        except OSError:
            continue
    return killed


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the group started for this process only (start_new_session)


def wait_until(what: str, ready, services: Services, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        if ready():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback http)
            return response.status == 200
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) == 0


def run_step(cmd: list[str], env: dict[str, str], timeout: float = 300) -> None:
    say(f"+ {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def trigger_and_wait(timeout: float, deployment: str = DEPLOYMENT):
    """Trigger the deployment through the Prefect API and wait for the flow run's final state."""
    from prefect.deployments import run_deployment

    return run_deployment(f"{names.flow_name('batch_pipeline')}/{deployment}", timeout=timeout, poll_interval=2)


def bare_repository(workdir: Path) -> str:
    """Commit this project (without its environment and data) to a new bare repository; its file:// URL."""
    tree, bare = workdir / "repo-tree", workdir / "project.git"
    shutil.copytree(PROJECT_DIR, tree, ignore=shutil.ignore_patterns(*NOT_IN_REPO))
    git = ["git", "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost", "-c", "init.defaultBranch=main"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "rehearsal snapshot"]):
        subprocess.run([*git, *cmd], cwd=tree, check=True, capture_output=True, timeout=120)  # noqa: S603
    subprocess.run([*git, "clone", "-q", "--bare", str(tree), str(bare)], check=True, capture_output=True, timeout=120)  # noqa: S603
    return bare.as_uri()


def rehearse(timeout: float = 900, keep: bool = False, code_source: str | None = None) -> int:
    global _STARTED
    started_at = _STARTED = time.monotonic()
    code_source = code_source or current().code_source
    flow, pool = names.flow_name("batch_pipeline"), names.local_pool()
    workdir = Path(tempfile.mkdtemp(prefix="rehearse-"))
    api_port, scheduler_port = free_port(), free_port()
    api_url = f"http://{LOOPBACK}:{api_port}/api"
    scheduler = f"tcp://{LOOPBACK}:{scheduler_port}"
    env = {
        **os.environ,
        **server_env(workdir, api_port),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PIPELINE_CLUSTER": "existing",
        "PIPELINE_SCHEDULER_ADDRESS": scheduler,
        "PIPELINE_DATA_URL": str(workdir / "data"),
    }
    env.pop("PIPELINE_AWS_OUTPUTS", None)
    deployment = DEPLOYMENT
    git_env: dict[str, str] = {}
    if code_source == "git":
        # Given to `prefect deploy` only, as `make deploy` does: they reach the flow run through the deployment's
        # job_variables.env (prefect.yaml), not through the worker's environment, which holds none of them.
        git_env = {"PIPELINE_GIT_REPOSITORY": bare_repository(workdir), "PIPELINE_GIT_BRANCH": "main"}
        git_env["PIPELINE_GIT_TOKEN_BLOCK"] = ""  # noqa: S105 - no token: a local repository
        for key in git_env:
            env.pop(key, None)
        say(f"code from git: {git_env['PIPELINE_GIT_REPOSITORY']} (branch main)")
    os.environ.update({k: env[k] for k in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")})
    services = Services(logs=workdir, env=env)
    prefect, dask = [str(BIN / "prefect")], [str(BIN / "dask")]
    status = 1
    try:
        server = [*prefect, "server", "start", "--host", LOOPBACK, "--port", str(api_port)]
        services.start("prefect-server", server, signal.SIGINT)
        dashboard = f"{LOOPBACK}:0"
        services.start(
            "dask-scheduler",
            [*dask, "scheduler", "--host", LOOPBACK, "--port", str(scheduler_port), "--dashboard-address", dashboard],
        )
        wait_until("Dask scheduler", lambda: port_open(scheduler_port), services, 120)
        services.start(
            "dask-worker",
            [*dask, "worker", scheduler, "--host", LOOPBACK, "--nworkers", "1", "--nthreads", "2", "--no-dashboard"],
        )
        wait_until("Prefect server", lambda: http_ok(f"{api_url}/health"), services, 180)
        say(f"Prefect server ready at {api_url}; Dask scheduler at {scheduler}")
        run_step([*prefect, "--no-prompt", "work-pool", "create", pool, "--type", "process", "--overwrite"], env)
        # The worker starts while the deployment is applied (it polls the pool until a run is due).
        worker = [*prefect, "worker", "start", "--pool", pool, "--type", "process"]
        services.start("prefect-worker", worker, signal.SIGINT)
        run_step([*prefect, "--no-prompt", "deploy", "--name", deployment], {**env, **git_env})
        say(f"triggering {flow}/{deployment} and waiting for the run")
        flow_run = trigger_and_wait(timeout, deployment)
        state = flow_run.state
        say(f"flow run {flow_run.name!r} of {flow}/{deployment}: {state.name if state else 'no state'}")
        if state is not None and state.is_completed():
            status = 0
            if code_source == "git":  # the flow run says where the Dask worker imported the code from
                log = _tail(workdir / "prefect-worker.log", 400).splitlines()
                shipped = [line for line in log if "project code from" in line]
                say(shipped[-1].strip() if shipped else "no sign that the clone's code reached the Dask worker")
                status = 0 if shipped else 1
        else:
            print(f"--- prefect-worker.log ---\n{_tail(workdir / 'prefect-worker.log', 80)}", file=sys.stderr)
    except Exception as exc:  # report, then tear down below
        print(f"rehearsal failed: {exc}", file=sys.stderr)
    finally:
        say("stopping everything started here")
        services.stop_all()
        if stragglers := kill_stragglers(f"PREFECT_HOME={env['PREFECT_HOME']}"):
            say(f"killed {stragglers} leftover process(es)")
        if keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started_at
    print(f"rehearsal {'PASSED: flow run Completed' if status == 0 else 'FAILED'} in {elapsed:.0f} s")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rehearse the deploy path on loopback (see module docstring).")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the flow run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory with the logs")
    args = parser.parse_args(argv)
    return rehearse(args.timeout, args.keep)


if __name__ == "__main__":
    sys.exit(main())
