"""Helpers to bake the template and run commands inside the result (a 'baked project')."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
sys.path.insert(0, str(TEMPLATE / "tools"))
from index_url import index_url  # noqa: E402

# Files whose text is not ours to scan (binary, caches, virtualenvs).
SKIP_PARTS = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "data", ".git"}
# Prefect's own templates (prefect.yaml pull steps, automations.yaml messages, the notification block)
# are not cookiecutter leftovers: `{{ $ENV_VAR }}`, step outputs, flow/flow_run fields, block placeholders.
PREFECT_TEMPLATE = (
    r"\{\{ ?(\$PIPELINE_\w+|\w*token\.\w+|(?:clone|workdir)\.\w+|flow_run[^}]*|flow\.\w+|webhook_url|subject|body)"
    r" ?\}\}"
)
JINJA_LEFTOVER = re.compile(r"(?<!\$)(?!" + PREFECT_TEMPLATE + r")\{\{|\{%|\{#")


def supported_pairs() -> list[tuple[str, str]]:
    """(dask, python) pairs the template offers: a published image and a supported python."""
    return [
        (dask, python)
        for dask, pythons in CONTEXT["_dask_images"].items()
        for python in pythons
        if python in CONTEXT["_supported_python"]
    ]


def project_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not SKIP_PARTS.intersection(p.relative_to(root).parts)
    }


@cache
def mirror() -> str:
    """The package index a corporate user would pass as `make install PYPI_MIRROR=...` (here: pip's own)."""
    return index_url()


class BakedProject:
    """A baked project on disk, with its own Poetry venv (.venv inside it)."""

    def __init__(self, path: Path, context: dict):
        self.path = Path(path)
        self.context = context
        self.package = context["package_name"]
        # Its own Prefect home and local server port: bakes tested in parallel (and a developer's own
        # Prefect server on the default port) never share a server.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.prefect_port = s.getsockname()[1]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",  # poetry, ruff of the dev venv
            POETRY_VIRTUALENVS_IN_PROJECT="true",
            POETRY_NO_INTERACTION="1",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_HOME=str(self.path.parent / f".prefect-home-{self.path.name}"),
            PREFECT_SERVER_API_PORT=str(self.prefect_port),
        )
        # Python's default bytecode cache, as a user has it: without it every command of a baked project
        # compiles Prefect, Dask and pandas again (seconds of CPU per process, over the whole slow suite).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTEST_ADDOPTS", None)
        env.pop("PYTEST_XDIST_WORKER", None)
        env.update(extra)
        return env

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 1800, unset: tuple[str, ...] = (), **env: str
    ) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in self.env(**env).items() if k not in unset}
        proc = subprocess.run(
            cmd, cwd=self.path, env=environ, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`{' '.join(cmd)}` failed in {self.path} (exit {proc.returncode})\n"
                f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        return proc

    def make(self, *targets: str, check: bool = True, timeout: float = 1800, **env: str) -> subprocess.CompletedProcess:
        return self.run("make", "--no-print-directory", *targets, check=check, timeout=timeout, **env)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def runtime_tests(self, *selection: str, timeout: float = 2400) -> subprocess.CompletedProcess:
        """The runtime's own tests (runtime/tests of this repository: they run here, once, never in a bake) against
        this installed project, from its directory with its environment, as they were written to run. `selection`:
        paths under runtime/tests (default: all) and pytest options."""
        paths = [str(TEMPLATE / "runtime" / "tests" / s) for s in selection if not s.startswith("-")] or [
            str(TEMPLATE / "runtime" / "tests")
        ]
        options = [s for s in selection if s.startswith("-")]
        python = str(self.path / ".venv" / "bin" / "python")
        proc = self.run(
            python, "-m", "pytest", "-p", "no:cacheprovider", *options, *paths, check=False, timeout=timeout
        )
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        assert proc.returncode == 0 and " passed" in summary and "failed" not in summary, (
            proc.stdout[-8000:] + proc.stderr[-3000:]
        )
        return proc

    def assert_installs_the_shipped_lock(self) -> None:
        """The environment `make install` made holds exactly the versions of the template's lock for these answers:
        Poetry finds nothing to change, and every installed distribution has the version the lock records."""
        import locks  # tools/

        locked = locks.versions(locks.LOCKS / locks.HOOK.lock_name(self.context))
        mine = locks.versions(self.path / "poetry.lock")
        moved = {k: (locked.get(k), mine.get(k)) for k in set(mine) | set(locked) if mine.get(k) != locked.get(k)}
        assert not moved, f"poetry.lock moved from the shipped lock (shipped, now): {moved}"
        dry = self.run("poetry", "sync", "--dry-run", "--with", "dev,infra").stdout
        assert re.search(r"Package operations: 0 installs, 0 updates, 0 removals", dry), dry[-3000:]
        script = (
            "import importlib.metadata as m, json, re; print(json.dumps("
            "{re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version for d in m.distributions()}))"
        )
        installed = json.loads(self.run("poetry", "run", "python", "-c", script).stdout)
        unlocked = set(installed) - set(locked) - {self.context["project_slug"], "pip", "setuptools", "wheel"}
        assert not unlocked, f"installed but not in the lock: {sorted(unlocked)}"
        differ = {k: (v, locked[k]) for k, v in installed.items() if k in locked and v != locked[k]}
        assert not differ, f"installed version != locked version: {differ}"

    def processes(self) -> list[str]:
        """Command lines of processes still running this project's prefect, dask or python (Linux /proc)."""
        bins = [str(self.path / ".venv" / "bin" / name) for name in ("prefect", "dask", "python")]
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(b in args for b in bins):
                found.append(args)
        return found

    @contextmanager
    def prefect_server(self) -> Iterator[None]:
        """For tests that run `make run` (which starts the project's local Prefect server): stopped after,
        and nothing of it left running."""
        try:
            yield
        finally:
            self.make("server-stop")
            pid_file = Path(self.env()["PREFECT_HOME"]) / "server.pid"
            assert not pid_file.exists(), "make server-stop left the server's pid file"
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", self.prefect_port)) != 0, "the Prefect server still listens"
            if Path("/proc/self/cmdline").exists():
                assert self.processes() == [], "make server-stop left processes"


def bake(cookies, **extra_context) -> BakedProject:
    """Bake with the given answers and insist it worked."""
    result = cookies.bake(extra_context={k: v for k, v in extra_context.items()})
    assert result.exception is None, f"bake failed: {result.exception!r}"
    assert result.exit_code == 0
    return BakedProject(result.project_path, result.context)
