"""poetry.lock -> a pip requirements file with exact versions and hashes (standard library only).

The Dockerfile installs the project's locked runtime dependencies with it, without Poetry in the
image and without resolving anything again:

    python requirements.py poetry.lock > requirements.txt
    pip install --no-deps --require-hashes -r requirements.txt

Only the main group is exported (not dev or infra). Environment markers are kept, so pip skips
what does not apply to the image's platform. Packages that are already installed at the locked
version (python's own, and dask/distributed in the ghcr.io/dask/dask base image) are left as they are.

A file dependency (the project's vendored runtime wheel, ``vendor/ml_workflows-<version>-py3-none-any.whl``) is
exported as its path relative to the project, with the hash poetry.lock recorded: pip checks it like any other.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

GROUP = "main"


def requirements(lock: dict, group: str = GROUP) -> list[str]:
    lines = []
    for package in sorted(lock.get("package", []), key=lambda p: p["name"]):
        if group not in package.get("groups", [group]):
            continue
        source = package.get("source", {})
        if source.get("type", "legacy") not in ("legacy", "pypi", "file"):
            raise ValueError(f"{package['name']}: {source['type']} dependencies cannot be exported with hashes")
        hashes = [f["hash"] for f in package.get("files", []) if f.get("hash")]
        if not hashes:
            raise ValueError(f"{package['name']} {package['version']} has no file hashes in the lock file")
        markers = package.get("markers")
        if isinstance(markers, dict):
            markers = markers.get(group)
        # A file (the vendored runtime) is installed from its path and checked against the hash below.
        line = f"./{source['url']}" if source.get("type") == "file" else f"{package['name']}=={package['version']}"
        if markers:
            line += f" ; {markers}"
        lines.append(" \\\n    ".join([line, *(f"--hash={h}" for h in hashes)]))
    return lines


def name_of(line: str) -> str:
    """The distribution a requirement line installs (a file line: the wheel's name, PEP 427)."""
    first = line.split(" ", 1)[0]
    if first.startswith("./"):
        return first.rsplit("/", 1)[-1].split("-", 1)[0].replace("_", "-")
    return first.split("==", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path, nargs="?", default=Path("poetry.lock"))
    parser.add_argument("--group", default=GROUP)
    args = parser.parse_args(argv)
    lock = tomllib.loads(args.lock.read_text(encoding="utf-8"))
    print(f"# exported from {args.lock.name} (group {args.group}) by requirements.py")
    print("\n".join(requirements(lock, args.group)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
