"""Maintainer command: the poetry.lock a bake installs, one per set of answers that changes its dependencies.

    python tools/locks.py check              # every shipped lock matches its bake's pyproject.toml (offline, fast)
    python tools/locks.py write              # lock what is missing or stale, keeping every version it can
    python tools/locks.py write --upgrade    # re-resolve everything: the newest releases the constraints allow

A bake takes `{{cookiecutter.project_slug}}/.locks/<dask>-py<python>-<tracking>.lock` as its poetry.lock
(hooks/post_gen_project.py: `lock_name`, `LOCK_ANSWERS`). `make test` proves them: every bake the tests install,
rehearse and run uses them, so a version reaches a user only after the template's CI ran it. The locks name no
package index: they are resolved against Poetry's default source, the one a user's machine has.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import answer_matrix  # tools/, beside this file

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "runtime" / "src"))
from ml_workflows.deploy.upgrade import forget_locked  # noqa: E402 - the runtime's own rule (stdlib only)

CONTEXT = json.loads((TEMPLATE / "cookiecutter.json").read_text())
PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"


def _hook():
    spec = importlib.util.spec_from_file_location("_post_gen_hook", TEMPLATE / "hooks" / "post_gen_project.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _hook()
LOCKS = PROJECT / HOOK.LOCKS_DIR


def combinations() -> list[dict[str, str]]:
    """Every answer set the template offers that changes pyproject.toml's dependencies (HOOK.LOCK_ANSWERS)."""
    dims = answer_matrix.dimensions()
    values = {name: dims[name] for name in HOOK.LOCK_ANSWERS}
    out = []
    for combo in itertools.product(*(values[k] for k in HOOK.LOCK_ANSWERS)):
        answers = dict(zip(HOOK.LOCK_ANSWERS, combo, strict=True))
        if answers["python_version"] in CONTEXT["_dask_images"][answers["dask_version"]]:
            out.append(answers)
    return out


def bake(answers: dict[str, str], out: Path) -> Path:
    """Bake `answers` (defaults elsewhere) into `out`; the project directory."""
    from cookiecutter.main import cookiecutter

    # pyproject.toml is all a lock depends on: no hooks (they would print the greeting and place a lock)
    path = cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(out), accept_hooks=False)
    return Path(path)


def is_fresh(project: Path, lock: Path) -> bool:
    """Poetry's own test (the lock's content-hash is that of the project's dependency declarations), and the runtime
    wheel in the project's vendor/ is the one the lock records by hash."""
    from poetry.packages.locker import Locker

    if not Locker(lock, tomllib.loads((project / "pyproject.toml").read_text())).is_fresh():
        return False
    return runtime_hashes(lock) == {f"sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}" for w in wheels(project)}


def wheels(project: Path) -> list[Path]:
    return sorted((project / "vendor").glob("ml_workflows-*.whl"))


def runtime_hashes(lock: Path) -> set[str]:
    """The hashes the lock records for the ml-workflows runtime."""
    packages = tomllib.loads(lock.read_text())["package"]
    return {f["hash"] for p in packages if p["name"] == "ml-workflows" for f in p.get("files", [])}


def poetry_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(POETRY_NO_INTERACTION="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def write_one(answers: dict[str, str], upgrade: bool, work: Path) -> str:
    name = HOOK.lock_name(answers)
    project = bake(answers, work / name)
    shipped = LOCKS / name
    lock = project / "poetry.lock"
    if not upgrade and shipped.exists() and is_fresh(project, shipped):
        return f"{name}: up to date"
    if upgrade:
        lock.unlink(missing_ok=True)  # resolve from nothing: the newest releases the constraints allow
    elif seed := next((p for p in (shipped, *sorted(LOCKS.glob(f"*-{answers['tracking']}.lock"))) if p.exists()), None):
        # `poetry lock` keeps every locked version that still fits: a new lock starts from a sibling's versions. The
        # runtime is resolved again: Poetry keeps a file dependency's locked hash, and the wheel may have changed.
        lock.write_text(forget_locked(seed.read_text()))
    t0 = time.monotonic()
    cmd = ["poetry", "lock", "--regenerate"] if upgrade else ["poetry", "lock"]
    proc = subprocess.run(cmd, cwd=project, env=poetry_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: poetry lock failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    text = lock.read_text()
    sources = [p.get("source") for p in tomllib.loads(text)["package"] if p.get("source")]
    # The one source a lock may name: the runtime wheel vendored with the project (a path inside the bake).
    if any(s.get("type") != "file" or not s.get("url", "").startswith("vendor/ml_workflows-") for s in sources):
        raise RuntimeError(f"{name}: the lock names a package index; lock against Poetry's default source only")
    LOCKS.mkdir(exist_ok=True)
    before = versions(shipped) if shipped.exists() else None
    shipped.write_text(text)
    after = versions(shipped)
    took = f"locked in {time.monotonic() - t0:.0f} s"
    if before is None:
        return f"{name}: new, {len(after)} packages, {took}"
    moved = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    moved.update({k: (v, None) for k, v in before.items() if k not in after})
    summary = ", ".join(f"{k} {a or 'new'} -> {b or 'gone'}" for k, (a, b) in sorted(moved.items())[:20])
    more = f" (+{len(moved) - 20} more)" if len(moved) > 20 else ""
    return f"{name}: {took}; {len(moved)} moved{': ' + summary if moved else ''}{more}"


def versions(lock: Path) -> dict[str, str]:
    """Package -> locked version."""
    return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text())["package"]}


def check(work: Path) -> Iterator[str]:
    """One line per problem: a missing or stale lock, or a lock no supported answer set uses."""
    wanted = {HOOK.lock_name(a): a for a in combinations()}
    for name, answers in wanted.items():
        lock = LOCKS / name
        if not lock.exists():
            yield f"{name}: missing (python tools/locks.py write)"
        elif not is_fresh(bake(answers, work / name), lock):
            yield f"{name}: stale, pyproject.toml's dependencies or the runtime wheel changed (tools/locks.py write)"
    for extra in sorted(p.name for p in LOCKS.glob("*.lock") if p.name not in wanted):
        yield f"{extra}: no supported answer set uses it (delete it)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="every shipped lock is present and fresh")
    write = sub.add_parser("write", help="lock what is missing or stale (keeps locked versions)")
    write.add_argument("--upgrade", action="store_true", help="re-resolve every lock to the newest releases")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="locks-") as tmp:
        if args.command == "check":
            problems = list(check(Path(tmp)))
            for line in problems:
                print(line)
            verdict = f"{len(problems)} problem(s)" if problems else "all fresh"
            print(f"{len(combinations())} locks checked: {verdict}")
            return 1 if problems else 0
        for answers in combinations():
            print(write_one(answers, args.upgrade, Path(tmp)), flush=True)
        stale = {p.name for p in LOCKS.glob("*.lock")} - {HOOK.lock_name(a) for a in combinations()}
        for name in sorted(stale):
            (LOCKS / name).unlink()
            print(f"{name}: removed (no supported answer set uses it)")
    print("Next: make test (every bake installs these locks), then commit {{cookiecutter.project_slug}}/.locks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
