"""Which Prefect API a command talks to: the local server ``make`` starts once, else a temporary one.

Without an API URL, Prefect starts a temporary server inside every command: seconds before the first
line of work, and gone when the run ends, so the UI cannot show the run afterwards. ``make run`` (and
``make server``) start ``prefect server start`` once, detached, on ``PREFECT_SERVER_API_HOST`` /
``PREFECT_SERVER_API_PORT`` (Prefect's settings; 127.0.0.1:4200 by default), its output in
``$PREFECT_HOME/server.log`` and its process in Prefect's pid file (``prefect server stop`` stops it
too); the CLI uses it when it answers and falls back to the temporary server when it does not. An API
you configured yourself (``PREFECT_API_URL``, a Prefect profile, Prefect Cloud) always wins.
``make server-stop`` stops it.

    python -m ml_workflows.prefect_api start | stop | status

Standard library only at import: ``make run`` asks whether the server is up before every run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT = 180.0  # a first start migrates a new database: slow on a busy laptop or CI runner


def local_url(env: dict[str, str] | None = None) -> str:
    """The API address ``make server`` starts the server on."""
    env = os.environ if env is None else env
    host = env.get("PREFECT_SERVER_API_HOST") or "127.0.0.1"
    port = env.get("PREFECT_SERVER_API_PORT") or "4200"
    return f"http://{host}:{port}/api"


def is_up(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:  # noqa: S310 - http(s) from settings
            return response.status == 200
    except OSError:
        return False


def use_local_server() -> str | None:
    """In this process, point Prefect at the local server when no API is configured and it answers.

    Returns the API URL Prefect will use, ``None`` for its temporary server.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        return configured
    url = local_url()
    if not is_up(url):
        return None
    os.environ["PREFECT_API_URL"] = url  # for this process (its settings are re-read below) and its children
    refresh_global_settings_context()
    return url


def _home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _pid_file() -> Path:
    """Prefect's own record of a background server: ``prefect server stop`` and ``--background`` read it too."""
    return _home() / "server.pid"


def _log_file() -> Path:
    return _home() / "server.log"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:  # Linux; elsewhere os.kill alone decides
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        return False


def _server_pid() -> int | None:
    """The recorded server's process id, if that process still runs."""
    try:
        pid = int(_pid_file().read_text().strip())
    except (OSError, ValueError):  # no file, or an empty one
        return None
    return pid if _alive(pid) else None


def _listens(url: str) -> bool:
    host, port = url.removeprefix("http://").removesuffix("/api").rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def start(timeout: float = START_TIMEOUT) -> int:
    """Start ``prefect server start`` detached, its output in ``$PREFECT_HOME/server.log``; wait until it answers.

    The server runs in a session of its own (Ctrl-C in the terminal of ``make run`` does not stop it) and is
    recorded in Prefect's pid file, so ``prefect server stop`` stops it as well as ``make server-stop``.
    """
    url = local_url()
    if is_up(url):
        print(f"Prefect server up at {url.removesuffix('/api')} (make server-stop stops it)")
        return 0
    if _server_pid() is not None:  # started, not answering yet: another make is starting it
        return _wait_until_up(url, None, timeout)
    if _listens(url):  # answers, but not as a Prefect server
        print(
            f"{url.removesuffix('/api')} is taken by something that is not a Prefect server: set "
            "PREFECT_SERVER_API_PORT to a free port (commands fall back to a temporary server meanwhile)",
            file=sys.stderr,
        )
        return 1
    host, port = url.removeprefix("http://").removesuffix("/api").rsplit(":", 1)
    _home().mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", port]
    with open(_log_file(), "w") as log:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter's own prefect
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _pid_file().write_text(str(proc.pid))
    return _wait_until_up(url, proc, timeout)


def _wait_until_up(url: str, proc: subprocess.Popen | None, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while not is_up(url, timeout=1.0):
        exited = proc.poll() is not None if proc else _server_pid() is None
        if exited or time.monotonic() > deadline:
            if exited:
                _pid_file().unlink(missing_ok=True)
            else:
                stop()  # too slow to be of use: nothing is left half-started
            tail = _log_file().read_text(errors="replace")[-1500:] if _log_file().exists() else ""
            what = "exited before it answered" if exited else f"did not answer within {timeout:.0f} s and was stopped"
            print(
                f"{tail}\nthe Prefect server at {url} {what} (its log: {_log_file()}). "
                "Commands fall back to a temporary server; `make server` tries again.",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.25)
    print(f"Prefect server up at {url.removesuffix('/api')} (UI and API; make server-stop stops it)")
    return 0


def stop(timeout: float = 30.0) -> int:
    """Stop the server and wait until its process has exited and its port is closed (SIGKILL after ``timeout``)."""
    pid = _server_pid()
    if pid is not None:
        # make server leads a session of its own: signal all of it (prefect and what it started). A pid from
        # `prefect server start --background` is uvicorn alone.
        try:
            group = os.getpgid(pid) == pid
        except ProcessLookupError:
            group = False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pid, sig) if group else os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(pid):
                break
    _pid_file().unlink(missing_ok=True)
    url = local_url()
    deadline = time.monotonic() + 10.0
    while _listens(url) and time.monotonic() < deadline:  # the socket closes after the process is gone
        time.sleep(0.1)
    if _listens(url):
        where = url.removesuffix("/api")
        print(f"something still listens at {where}: not a server make server started", file=sys.stderr)
        return 1
    print("Prefect server stopped" if pid else "no Prefect server started by make server")
    return 0


def main(argv: list[str] | None = None) -> int:
    action = (argv if argv is not None else sys.argv[1:]) or ["status"]
    if action[0] == "start":
        return start()
    if action[0] == "stop":
        return stop()
    if action[0] == "status":
        up = is_up(local_url())
        print(f"Prefect server {'up' if up else 'not running'} at {local_url().removesuffix('/api')}")
        return 0 if up else 1
    print("usage: python -m ml_workflows.prefect_api start | stop | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
