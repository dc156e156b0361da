"""Which Prefect API a command talks to: the local server ``make`` starts once, else a temporary one.

Without an API URL, Prefect starts a temporary server inside every command: seconds before the first
line of work, and gone when the run ends, so the UI cannot show the run afterwards. ``make run`` (and
``make server``) start ``prefect server start --background`` once, on ``PREFECT_SERVER_API_HOST`` /
``PREFECT_SERVER_API_PORT`` (Prefect's settings; 127.0.0.1:4200 by default); the CLI uses it when it
answers and falls back to the temporary server when it does not. An API you configured yourself
(``PREFECT_API_URL``, a Prefect profile, Prefect Cloud) always wins. ``make server-stop`` stops it.

    python -m {{ cookiecutter.package_name }}.runtime.prefect_api start | stop | status

Standard library only at import: ``make run`` asks whether the server is up before every run.
"""

from __future__ import annotations

import os
import signal
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


def _pid_file() -> Path:
    """Where ``prefect server start --background`` records its process (``prefect server stop`` reads it)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser() / "server.pid"


def _server_pid() -> int | None:
    """The background server's process id, if that process is still a running Prefect server."""
    try:
        pid = int(_pid_file().read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):  # no file, no such process
        return None
    # The id may have been reused since: only a Prefect server (uvicorn serving prefect) counts.
    cmd = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True)  # noqa: S603, S607
    stat, _, command = cmd.stdout.strip().partition(" ")
    return pid if "uvicorn" in command and "prefect" in command and not stat.startswith("Z") else None


def start(timeout: float = START_TIMEOUT) -> int:
    url = local_url()
    if is_up(url):
        print(f"Prefect server up at {url.removesuffix('/api')} (make server-stop stops it)")
        return 0
    host, port = url.removeprefix("http://").removesuffix("/api").rsplit(":", 1)
    if _server_pid() is None:
        _pid_file().unlink(missing_ok=True)  # left by a server that died: Prefect would refuse to start
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--background", "--host", host, "--port", port]
    # A session of its own: Ctrl-C in the terminal that ran `make run` must not stop the server.
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, start_new_session=True)  # noqa: S603
    if proc.returncode != 0:
        print(f"prefect server start failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    while not is_up(url, timeout=0.5):
        if _server_pid() is None or time.monotonic() > deadline:
            print(
                f"the Prefect server did not answer at {url} (`poetry run prefect server start` shows why); "
                "commands fall back to a temporary server",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)
    print(f"Prefect server up at {url.removesuffix('/api')} (UI and API; make server-stop stops it)")
    return 0


def stop(timeout: float = 30.0) -> int:
    """Stop the background server and wait until it has exited (SIGKILL after ``timeout``)."""
    pid = _server_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _server_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if _server_pid() is not None:
            os.kill(pid, signal.SIGKILL)
    _pid_file().unlink(missing_ok=True)
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
    print("usage: python -m {{ cookiecutter.package_name }}.runtime.prefect_api start | stop | status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
