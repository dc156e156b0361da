"""Maintainer command: build the ml-workflows runtime wheel from runtime/ into the template's vendor/ directory.

    python tools/runtime_wheel.py build   # (re)write {{cookiecutter.project_slug}}/vendor/ml_workflows-<v>-...whl
    python tools/runtime_wheel.py check   # the vendored wheel holds exactly runtime/'s sources and metadata

Standard library only and reproducible: files in sorted order, fixed timestamps and permissions, so a rebuild of
unchanged sources gives the same bytes, and the hash every shipped lock records (`make locks`) stays valid. A bake
carries the wheel of its template revision: its poetry.lock pins it by hash, its image installs it hash-checked,
and `make check-pins` runs the pin guard straight from it before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import tomllib
import zipfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
RUNTIME = TEMPLATE / "runtime"
SOURCES = RUNTIME / "src"
VENDOR = TEMPLATE / "{{cookiecutter.project_slug}}" / "vendor"
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no build time in the bytes
INCLUDE = (".py", ".json")


def project() -> dict:
    return tomllib.loads((RUNTIME / "pyproject.toml").read_text())["project"]


def wheel_name(meta: dict | None = None) -> str:
    meta = meta or project()
    return f"{meta['name'].replace('-', '_')}-{meta['version']}-py3-none-any.whl"


def metadata(meta: dict) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {meta['name']}",
        f"Version: {meta['version']}",
        f"Summary: {meta['description']}",
        f"Requires-Python: {meta['requires-python']}",
    ]
    lines += [f"Requires-Dist: {req}" for req in meta["dependencies"]]
    for extra, reqs in meta.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for req in reqs:
            name, sep, rest = req.partition(";")
            marker = f"({rest.strip()}) and extra == '{extra}'" if sep else f"extra == '{extra}'"
            lines.append(f"Requires-Dist: {name.strip()} ; {marker}")
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + (RUNTIME / meta["readme"]).read_text()


def entry_points(meta: dict) -> str:
    out = []
    for group, items in meta.get("entry-points", {}).items():
        out.append(f"[{group}]")
        out += [f"{name} = {target}" for name, target in items.items()]
        out.append("")
    return "\n".join(out)


def members() -> dict[str, bytes]:
    """Archive name -> bytes of everything the wheel holds, RECORD excepted."""
    meta = project()
    files = {
        path.relative_to(SOURCES).as_posix(): path.read_bytes()
        for path in sorted(SOURCES.rglob("*"))
        if path.is_file() and path.suffix in INCLUDE and "__pycache__" not in path.parts
    }
    info = f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    files[f"{info}/METADATA"] = metadata(meta).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: ml-workflows tools/runtime_wheel.py\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{info}/entry_points.txt"] = entry_points(meta).encode()
    return files


def archive(files: dict[str, bytes], info: str) -> bytes:
    """A wheel's bytes: ``files`` plus their RECORD (``info``: the .dist-info directory), reproducibly."""
    files = {name: data for name, data in files.items() if name != f"{info}/RECORD"}
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(entry, data, compresslevel=9)
    return buffer.getvalue()


def build(out: Path = VENDOR) -> Path:
    meta = project()
    info = f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    data = archive(members(), info)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("ml_workflows-*.whl"):
        old.unlink()
    target = out / wheel_name(meta)
    target.write_bytes(data)
    return target


def relabel(wheel: Path, version: str, out: Path) -> Path:
    """``wheel`` as release ``version`` would ship the same code (tests of upgrades): metadata, directory, RECORD."""
    old = wheel.name.split("-")[1]
    info, new_info = f"ml_workflows-{old}.dist-info", f"ml_workflows-{version}.dist-info"
    files = {}
    with zipfile.ZipFile(wheel) as src:
        for name in src.namelist():
            data = src.read(name)
            if name == f"{info}/METADATA":
                data = data.replace(f"\nVersion: {old}\n".encode(), f"\nVersion: {version}\n".encode())
            files[name.replace(info, new_info)] = data
    target = out / f"ml_workflows-{version}-py3-none-any.whl"
    target.write_bytes(archive(files, new_info))
    return target


def check(out: Path = VENDOR) -> list[str]:
    """One line per difference between the vendored wheel and what `build` would write now."""
    wheels = sorted(out.glob("ml_workflows-*.whl"))
    if [w.name for w in wheels] != [wheel_name()]:
        return [f"vendor/ holds {[w.name for w in wheels]}, not {wheel_name()}: python tools/runtime_wheel.py build"]
    with zipfile.ZipFile(wheels[0]) as archive:
        held = {name: archive.read(name) for name in archive.namelist() if not name.endswith("/RECORD")}
    wanted = members()
    problems = [f"{name}: differs from runtime/src" for name in sorted(wanted) if held.get(name) != wanted[name]]
    problems += [f"{name}: no longer in runtime/src" for name in sorted(set(held) - set(wanted))]
    return [f"{p} (python tools/runtime_wheel.py build, then make locks)" for p in problems]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "check"))
    args = parser.parse_args(argv)
    if args.command == "build":
        target = build()
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"built {target.relative_to(TEMPLATE)} ({target.stat().st_size // 1024} KiB, sha256 {digest[:16]}...)")
        print("Next: make locks (every shipped lock records the wheel's hash), then make test.")
        return 0
    problems = check()
    for line in problems:
        print(line)
    print(f"{wheel_name()}: {'up to date' if not problems else f'{len(problems)} difference(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
