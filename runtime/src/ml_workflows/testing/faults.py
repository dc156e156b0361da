"""Fault injection helpers (the runtime's tests/test_faults.py, and yours): a flaky S3 proxy, real Dask processes,
process trees.

Everything here is real: the proxy is an HTTP server on 127.0.0.1 in front of the moto S3 server
(s3fs talks to it as to any S3 endpoint), and the Dask scheduler and workers are the ``dask`` command
line programs of this environment, started as separate processes so that one can be SIGKILLed.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
S3_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    403: ("AccessDenied", "Access Denied"),
}

# decide(method, path, request_number) -> HTTP status to inject, or None to forward the request
Decider = Callable[[str, str, int], "int | None"]


class FlakyS3Proxy:
    """An HTTP proxy on 127.0.0.1 that forwards to ``upstream`` unless ``decide`` injects an S3 error."""

    def __init__(self, upstream: str, decide: Decider) -> None:
        self.upstream = urlsplit(upstream)
        self.decide = decide
        self.requests = 0
        self.injected: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests += 1
                    number = proxy.requests
                status = proxy.decide(self.command, self.path, number)
                if status is not None:
                    with proxy._lock:
                        proxy.injected.append((self.command, self.path, status))
                    code, message = S3_ERRORS.get(status, ("InternalError", "injected"))
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><RequestId>injected</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    # HEAD: the object's size, as the upstream said (the body is empty)
                    length = response.getheader("Content-Length", "0") if self.command == "HEAD" else len(payload)
                    self.send_header("Content-Length", str(length))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- real Dask processes ----------------------------------------------------------------------------
def _dask_cli() -> str:
    return str(Path(sys.executable).with_name("dask"))


@contextmanager
def dask_processes(tmp: Path, n_workers: int = 2) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """``dask scheduler`` + ``n_workers`` x ``dask worker --no-nanny`` on 127.0.0.1 (random ports).

    Yields the scheduler address and the worker processes; everything is stopped (and reaped) at exit.
    Workers have no nanny, so a SIGKILLed worker stays dead: its tasks must move to the others.
    """
    scheduler_file = tmp / "scheduler.json"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "start_new_session": True}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [_dask_cli(), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0"]
                + ["--scheduler-file", str(scheduler_file)],
                **common,
            )
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.1)
        address = re.search(r'"address": "([^"]+)"', scheduler_file.read_text()).group(1)
        workers = [
            subprocess.Popen(
                [_dask_cli(), "worker", address, "--no-nanny", "--nthreads", "1", "--host", "127.0.0.1"]
                + ["--no-dashboard", "--memory-limit", "2GiB", "--name", f"w{i}"],
                **common,
            )
            for i in range(n_workers)
        ]
        procs += workers
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def descendants(pid: int) -> list[int]:
    """Process ids of every live descendant of ``pid`` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_processes(pid: int) -> list[int]:
    """Descendants of ``pid`` that run Dask work: not multiprocessing's long-lived helper processes
    (``resource_tracker``, ``forkserver``), which Python keeps for the life of the parent."""
    found = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"resource_tracker" not in cmdline and b"forkserver" not in cmdline:
            found.append(child)
    return found


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> object:
    """Poll ``predicate`` until it returns something truthy; that value, or ``None`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
