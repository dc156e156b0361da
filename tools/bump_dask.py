"""Maintainer command: add a Dask release to the supported table and make it the default.

    python tools/bump_dask.py 2026.7.1 --pythons 3.10,3.11,3.12,3.13,3.14
    python tools/bump_dask.py 2026.7.1 --check-registry      # ask ghcr.io which pythons have an image

`cookiecutter.json` stays the single source: `_dask_images` (release -> pythons with a
ghcr.io/dask/dask image) and the `dask_version` default. The hooks and tests read only that.
The registry is read with the pin module of the runtime (runtime/src/ml_workflows/deploy/pins.py, the module the
vendored wheel carries and every generated project runs), so there is one implementation of "which image tags exist".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
CONTEXT_FILE = TEMPLATE / "cookiecutter.json"
PINS_FILE = TEMPLATE / "runtime" / "src" / "ml_workflows" / "deploy" / "pins.py"
TABLE_RE = re.compile(r'"_dask_images": \{[^{}]*\}')
DEFAULT_RE = re.compile(r'^(  "dask_version": )"[^"]*"', re.MULTILINE)


def load_pins():
    spec = importlib.util.spec_from_file_location("template_pins", PINS_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    # No bytecode cache written into runtime/src, the tree the vendored wheel is built from (tools/runtime_wheel.py).
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def render_table(table: dict[str, list[str]]) -> str:
    rows = ",\n".join(
        f"    {json.dumps(release)}: {json.dumps(table[release])}"
        for release in sorted(table, key=_release_key, reverse=True)
    )
    return '"_dask_images": {\n' + rows + "\n  }"


def bump(text: str, release: str, pythons: list[str]) -> str:
    """Return cookiecutter.json's text with `release` in the table and as the default; format kept."""
    context = json.loads(text)
    table = dict(context["_dask_images"])
    table[release] = sorted(set(pythons), key=_release_key)
    if not set(table[release]) & set(context["_supported_python"]):
        raise ValueError(
            f"dask {release} has no image for any supported python ({', '.join(context['_supported_python'])})"
        )
    text = TABLE_RE.sub(lambda _: render_table(table), text, count=1)
    text = DEFAULT_RE.sub(lambda m: f'{m[1]}"{release}"', text, count=1)
    after = json.loads(text)  # still valid JSON, and exactly the intended change
    assert after["_dask_images"] == table and after["dask_version"] == release
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", help="Dask release, e.g. 2026.7.1")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--pythons", help="comma-separated python versions that have an image")
    group.add_argument("--check-registry", action="store_true", help="read the pythons from ghcr.io (network)")
    args = parser.parse_args(argv)
    pins = load_pins()
    if not pins.DASK_VERSION_RE.match(args.release):
        print(f"ERROR: {args.release!r} is not a Dask release like 2026.7.1", file=sys.stderr)
        return 2
    if args.check_registry:
        try:
            pythons = pins.pythons_with_image(args.release, pins.image_tags())
        except OSError as error:
            print(f"ERROR: could not list ghcr.io/dask/dask tags: {error}", file=sys.stderr)
            return 1
        if not pythons:
            print(f"ERROR: ghcr.io/dask/dask has no image for {args.release}; nothing changed", file=sys.stderr)
            return 1
    else:
        pythons = [p.strip() for p in args.pythons.split(",") if p.strip()]
    bad = [p for p in pythons if not pins.PYTHON_VERSION_RE.match(p)]
    if bad:
        print(f"ERROR: not python minor versions: {', '.join(bad)}", file=sys.stderr)
        return 2
    try:
        CONTEXT_FILE.write_text(bump(CONTEXT_FILE.read_text(), args.release, pythons))
    except ValueError as error:
        print(f"ERROR: {error}; nothing changed", file=sys.stderr)
        return 1
    print(f"cookiecutter.json: dask {args.release} (python {', '.join(pythons)}) added and made the default.")
    print("Next: make locks (a lock for each new answer set), make test (bakes every supported pair), then commit.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
