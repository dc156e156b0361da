"""Which Prefect API a command talks to, and what happens when it stops answering.

An API you configured yourself (``PREFECT_API_URL``, a Prefect profile, Prefect Cloud) always wins. Otherwise every
command uses the project's local server: ``prefect server start``, started once (by ``make server``, ``make run`` or
the first command that needs it), detached, on ``PREFECT_SERVER_API_HOST`` / ``PREFECT_SERVER_API_PORT`` (Prefect's
settings; 127.0.0.1:4200 by default), its output in ``$PREFECT_HOME/server.log`` and its process in Prefect's pid
file (``prefect server stop`` stops it too, as does ``make server-stop``). It outlives the commands on purpose and
is the only thing that does. Prefect's temporary server, which it starts inside a command when no API is set, is
never used: it costs every command seconds before its first line of work, the UI loses the runs with it, and a
command killed with SIGKILL (which no process can catch) left it running for good, ~215 MiB each time.

A run whose API stops answering (:func:`watch`) is stopped within ``API_LOST_AFTER`` seconds, naming the API and
what to do, rather than waiting out Prefect's client retries (2+4+8+16+32 s per call, a few calls in a row).

    python -m ml_workflows.prefect_api start | stop | status

Standard library only at import: ``make run`` asks whether the server is up before every run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

START_TIMEOUT = 180.0  # a first start migrates a new database: slow on a busy laptop or CI runner
# A run stops once its API has not answered for this long: a blip or a quick restart is shorter, and Prefect's
# own client retries of each call (PREFECT_CLIENT_MAX_RETRIES, CLIENT_RETRIES for CLI runs) ride those out.
API_LOST_AFTER = 10.0
PROBE_EVERY = 1.0
CLIENT_RETRIES = "2"  # ~6 s of retries per API call (Prefect's default, 5, is ~62 s per call)


class ServerError(RuntimeError):
    """The local server could not be started: a one-line reason; ``log_tail`` is the end of its own log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class ApiLost(KeyboardInterrupt):
    """Raised in the main thread when the API stopped answering: a run stops as on Ctrl-C (staging removed, the
    cluster closed), then the CLI names the API (:func:`watch`)."""


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


def answers(api_url: str, timeout: float = 2.0) -> bool:
    """Whether anything answers HTTP at the API (any status: a server with auth answers 401, and is alive)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout):  # noqa: S310 - http(s) from settings
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def choose() -> tuple[str, bool]:
    """``(url, local)``: the API you configured (``PREFECT_API_URL``, the active Prefect profile, Prefect Cloud),
    else the project's local server (``local``: start it with :func:`ensure_up`, point Prefect at it with
    :func:`use`). Never Prefect's temporary server."""
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    return (configured, False) if configured else (local_url(), True)


def use(url: str) -> None:
    """Point this process (its Prefect settings are re-read) and its children at ``url``."""
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()


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
    """``make server``: :func:`ensure_up`, saying so; exit status 1 with the reason (and the end of the server's
    log) when it cannot."""
    try:
        ensure_up(timeout)
    except ServerError as exc:
        print(f"{exc.log_tail}\n{exc}" if exc.log_tail else str(exc), file=sys.stderr)
        return 1
    print(f"Prefect server up at {local_url().removesuffix('/api')} (UI and API; make server-stop stops it)")
    return 0


def ensure_up(timeout: float = START_TIMEOUT) -> bool:
    """Start ``prefect server start`` detached unless it answers, its output in ``$PREFECT_HOME/server.log``; wait
    until it answers. True if this call started it; :class:`ServerError` if it cannot be started.

    The server runs in a session of its own (Ctrl-C in the terminal of ``make run`` does not stop it, nor does a
    command that started it ending, however it ends) and is recorded in Prefect's pid file, so ``prefect server
    stop`` stops it as well as ``make server-stop``.
    """
    url = local_url()
    if is_up(url):
        return False
    if _server_pid() is not None:  # started, not answering yet: another command is starting it
        _wait_until_up(url, None, timeout)
        return False
    if _listens(url):  # answers, but not as a Prefect server
        raise ServerError(
            f"{url.removesuffix('/api')} is taken by something that is not a Prefect server: set "
            "PREFECT_SERVER_API_PORT to a free port (or PREFECT_API_URL to a Prefect server of yours)"
        )
    host, port = url.removeprefix("http://").removesuffix("/api").rsplit(":", 1)
    _home().mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", port]
    with open(_log_file(), "w") as log:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter's own prefect
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    _pid_file().write_text(str(proc.pid))
    _wait_until_up(url, proc, timeout)
    return True


def _wait_until_up(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
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
            raise ServerError(
                f"the Prefect server at {url} {what} (its log: {_log_file()}): commands need it, or PREFECT_API_URL "
                "set to another server; once its log's problem is fixed, `make server` starts it",
                tail,
            )
        time.sleep(0.25)


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


class Watch:
    """What :func:`watch` found: ``lost`` is the one-line report once the API stopped answering, else ``None``."""

    def __init__(self, api_url: str, restart: str) -> None:
        self.api_url, self.restart = api_url, restart
        self.lost: str | None = None


@contextmanager
def watch(api_url: str, restart: str = "start it again", lost_after: float = API_LOST_AFTER) -> Iterator[Watch]:
    """Probe the API every PROBE_EVERY seconds while the block runs; once it has not answered for ``lost_after``
    seconds, set ``Watch.lost`` and raise :class:`ApiLost` in the main thread (a signal: it also ends a sleep or a
    wait there). ``restart`` says what brings the API back (``make server`` for the local one)."""
    found = Watch(api_url, restart)
    done, signalling = threading.Event(), threading.Lock()  # no signal once the block has ended (SIGUSR1 kills)
    main = threading.main_thread()
    in_main = threading.current_thread() is main and hasattr(signal, "pthread_kill")
    if in_main:
        previous = signal.signal(signal.SIGUSR1, _raise_api_lost)

    def probe() -> None:
        silent_since: float | None = None
        while not done.wait(PROBE_EVERY):
            if answers(api_url, timeout=min(5.0, lost_after / 2)):
                silent_since = None
                continue
            now = time.monotonic()
            silent_since = now if silent_since is None else silent_since
            if now - silent_since >= lost_after - PROBE_EVERY:  # the last answer came a probe before that
                found.lost = (
                    f"the Prefect API at {api_url} stopped answering (nothing for {lost_after:.0f} s), so the run was "
                    f"stopped: {restart}, then run the command again"
                )
                _no_more_retries()
                with signalling:
                    if in_main and not done.is_set():
                        signal.pthread_kill(main.ident, signal.SIGUSR1)
                return

    thread = threading.Thread(target=probe, name="prefect-api-watch", daemon=True)
    if api_url.startswith(("http://", "https://")):
        thread.start()
    try:
        yield found
    finally:
        with signalling:
            done.set()
        if in_main:
            signal.signal(signal.SIGUSR1, previous)


def _no_more_retries() -> None:
    """Prefect's engines still report the stopped run's state (each call retried): to an API known gone, once."""
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "0"
    refresh_global_settings_context()


def _raise_api_lost(signum: int, frame: Any) -> None:
    raise ApiLost("the Prefect API stopped answering")


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
