"""`make upgrade-runtime WHEEL=<path or https URL>`: put another ml-workflows release into the project.

Replaces the wheel in ``vendor/`` and the two places pyproject.toml pins it (``ml-workflows==<version>`` and the
wheel's path), and drops the runtime's entry from poetry.lock, and nothing else: `make upgrade-runtime` then
re-locks (the runtime resolved and hashed again, every other locked version kept), and runs the pin guard, lint
and the tests. The same wheel again re-pins a rebuilt one. The wheel is checked before anything changes: a pure-Python
``ml_workflows-<version>-py3-none-any.whl`` whose metadata says that version; with ``--sha256`` its digest too.
Standard library only: it runs from the project's current runtime wheel, before the new one is installed.

    python -m ml_workflows.deploy.upgrade WHEEL [--sha256 HEX] [--root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

WHEEL_RE = re.compile(r"^ml_workflows-(?P<version>\d+(?:\.\d+)*(?:[a-z]+\d+)?)-py3-none-any\.whl$")
PIN_RE = re.compile(r"""(?P<head>["']ml-workflows(?:\[[^\]]*\])?==)(?P<version>[^"';,\s]+)""")
PATH_RE = re.compile(r"""(?P<head>^\s*ml-workflows\s*=\s*\{.*path\s*=\s*["'])vendor/ml_workflows-[^"']+\.whl""", re.M)


class UpgradeError(ValueError):
    pass


def fetch(source: str, into: Path) -> Path:
    """The wheel at ``source`` (a local path, or an https URL such as a release asset) copied into ``into``."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if not WHEEL_RE.match(name):
        raise UpgradeError(f"{name!r} is not an ml-workflows wheel (ml_workflows-<version>-py3-none-any.whl)")
    target = into / name
    if source.startswith("https://"):
        with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - https only
            target.write_bytes(response.read())
    elif "://" in source:
        raise UpgradeError(f"{source}: give a local path or an https:// URL")
    else:
        target.write_bytes(Path(source).expanduser().read_bytes())
    return target


def verify(wheel: Path, sha256: str | None = None) -> str:
    """The wheel's version, once it is known to be an ml-workflows wheel of that version (and digest)."""
    version = WHEEL_RE.match(wheel.name)["version"]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if sha256 and digest != sha256.lower().removeprefix("sha256:"):
        raise UpgradeError(f"{wheel.name}: sha256 {digest}, not the {sha256} given")
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            metadata = archive.read(f"ml_workflows-{version}.dist-info/METADATA").decode()
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UpgradeError(f"{wheel.name} is not a complete ml-workflows wheel: {exc}") from exc
    if f"\nVersion: {version}\n" not in metadata or "ml_workflows/__init__.py" not in names:
        raise UpgradeError(f"{wheel.name}: its metadata is not ml-workflows {version}")
    return version


def forget_locked(lock_text: str, name: str = "ml-workflows") -> str:
    """poetry.lock's text without the ``[[package]]`` entry of ``name``: `poetry lock` then resolves and hashes that
    package again (a file dependency's hash is otherwise kept as locked) and keeps every other version."""
    blocks = re.split(r"(?m)^(?=\[\[package\]\]$|\[metadata\]$)", lock_text)
    return "".join(b for b in blocks if not b.startswith(f'[[package]]\nname = "{name}"\n'))


def upgrade(root: Path, source: str, sha256: str | None = None) -> tuple[str, str]:
    """Vendor the wheel at ``source`` in ``root`` and pin it; (old version, new version)."""
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    old = [m["version"] for m in PIN_RE.finditer(text)]
    if len(old) != 1 or not PATH_RE.search(text):
        raise UpgradeError("pyproject.toml must pin ml-workflows once (==) and name its wheel in vendor/ once")
    vendor = root / "vendor"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch(source, Path(tmp))
        new = verify(wheel, sha256)
        previous = sorted(vendor.glob("ml_workflows-*.whl"))
        vendor.mkdir(exist_ok=True)
        (vendor / wheel.name).write_bytes(wheel.read_bytes())
    for path in previous:
        if path.name != wheel.name:
            path.unlink()
    text = PIN_RE.sub(lambda m: m["head"] + new, text)
    text = PATH_RE.sub(lambda m: m["head"] + f"vendor/{wheel.name}", text)
    pyproject.write_text(text, encoding="utf-8")
    lock = root / "poetry.lock"
    if lock.exists():
        lock.write_text(forget_locked(lock.read_text(encoding="utf-8")), encoding="utf-8")
    return old[0], new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="path or https URL of ml_workflows-<version>-py3-none-any.whl")
    parser.add_argument("--sha256", help="the wheel's expected sha256 (e.g. from the release's notes)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project directory (default: here)")
    args = parser.parse_args(argv)
    try:
        old, new = upgrade(args.root, args.wheel, args.sha256)
    except (UpgradeError, OSError) as exc:
        print(f"upgrade-runtime: {exc}; nothing changed", file=sys.stderr)
        return 2
    print(f"ml-workflows {old} -> {new}: vendor/ and pyproject.toml updated; re-locking next (other versions stay)")
    print("What changed in the runtime: the template's CHANGELOG.md entry for this version.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
