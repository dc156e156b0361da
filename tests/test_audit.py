"""The generated project's vulnerability audit (`make audit`, CI's audit job), wired end to end.

The real vulnerability database cannot be reached from here, so the real pip-audit is pointed at a
stand-in OSV API on 127.0.0.1 (`AUDIT_ARGS=--osv-url ...`): what is tested is the wiring (every locked
package of every group is asked about, a reported vulnerability fails the target, an unreachable service
fails it too instead of passing silently), not the database.
"""

from __future__ import annotations

import json
import socket
import threading
import tomllib
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from packaging.utils import canonicalize_name

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("installed")]

STUB_ID = "GHSA-stub-0000-0001"


@contextmanager
def osv_stub(vulnerable: set[str]):
    """An OSV `/v1/query` endpoint on loopback: `vulnerable` packages get one advisory, the rest none."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name, version = query["package"]["name"], query["version"]
            asked.append(name)
            body = {}
            if name in vulnerable:
                body = {
                    "vulns": [
                        {
                            "id": STUB_ID,
                            "summary": f"stand-in advisory for {name} {version}",
                            "affected": [
                                {
                                    "package": {"name": name, "ecosystem": "PyPI"},
                                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                                }
                            ],
                        }
                    ]
                }
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query", asked
    finally:
        server.shutdown()
        server.server_close()


def locked_names(project) -> tuple[set[str], set[str]]:
    """(every package of the main, dev and infra groups, those among them without an environment marker)."""
    lock = tomllib.loads(project.read("poetry.lock"))
    every, unconditional = set(), set()
    for package in lock["package"]:
        if not {"main", "dev", "infra"} & set(package.get("groups", ["main"])):
            continue
        name = canonicalize_name(package["name"])
        every.add(name)
        if not package.get("markers"):
            unconditional.add(name)
    return every, unconditional


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_make_audit_asks_about_every_locked_package_and_passes_when_none_is_vulnerable(installed_project):
    with osv_stub(vulnerable=set()) as (url, asked):
        proc = installed_project.make("audit", f"AUDIT_ARGS=--osv-url {url}", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "No known vulnerabilities found" in proc.stdout + proc.stderr
    every, unconditional = locked_names(installed_project)
    asked = {canonicalize_name(n) for n in asked}
    # Packages whose markers exclude this platform (e.g. pywin32) are not asked about; all others are.
    assert unconditional <= asked <= every, (sorted(unconditional - asked), sorted(asked - every))
    assert {"prefect", "pip-audit", "pulumi"} <= asked  # one of each group: main, dev, infra
    # The vendored runtime too: exported as its local wheel (hash-checked), it is asked about by name and version.
    assert "ml-workflows" in asked


def test_make_audit_fails_on_a_reported_vulnerability(installed_project):
    with osv_stub(vulnerable={"fastapi"}) as (url, _):
        proc = installed_project.make("audit", f"AUDIT_ARGS=--osv-url {url}", check=False)
    assert proc.returncode != 0
    assert STUB_ID in proc.stdout and "fastapi" in proc.stdout, proc.stdout[-3000:]


def test_make_audit_fails_when_the_service_cannot_be_reached(installed_project):
    """pip-audit alone reports "No known vulnerabilities" when it could check nothing; make audit must not."""
    url = f"http://127.0.0.1:{free_port()}/v1/query"  # nothing listens there
    proc = installed_project.make("audit", f"AUDIT_ARGS=--osv-url {url} --timeout 5", check=False)
    assert proc.returncode != 0
    assert "No known vulnerabilities found" not in proc.stdout + proc.stderr
