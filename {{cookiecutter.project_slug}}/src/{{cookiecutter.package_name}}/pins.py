"""Pin guard: every file that names the Python or Dask version must agree.

Python/Dask mismatches between the local environment, the image and the Dask workers
make Dask warn or fail ("Mismatched versions found"). This checker is the one
implementation of that rule, used by the cookiecutter post-gen hook, `make check-pins`
(before `make install`), CI and pre-commit. It imports the standard library only so it
runs with any Python 3.10+ and from a fresh clone:

    python3 src/{{ cookiecutter.package_name }}/pins.py [--root DIR] [--env]

`pyproject.toml` is the reference; every other place is compared to it and each
disagreement is printed as `file:line: what differs`. Exit 0 when all agree, 1 if not.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_RE = re.compile(r"ghcr\.io/dask/dask:(?P<tag>[^\s\"'`]+)")
IMAGE_TAG_RE = re.compile(r"^(?P<dask>\d{4}\.\d{1,2}\.\d+)-py(?P<python>\d+\.\d+)$")
PIN_RE = re.compile(
    r"""^\s*["'](?P<name>dask|distributed)(?:\[[^\]]*\])?\s*(?P<op>[=<>!~]=?=?)\s*(?P<version>[^"';,\s]+)"""
)
REQUIRES_PYTHON_RE = re.compile(r"""^\s*requires-python\s*=\s*["'](?P<spec>[^"']+)["']""")
PYTHON_SPEC_RE = re.compile(
    r"^>=\s*(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?\s*,\s*<\s*(?P<umajor>\d+)\.(?P<uminor>\d+)$"
)
CI_PYTHON_RE = re.compile(r"""python-version:\s*["']?(?P<version>\d+\.\d+)["']?""")
# Where version literals may legitimately live; build outputs, envs and data are skipped.
SCAN_SUFFIXES = {".py", ".toml", ".yaml", ".yml", ".json", ".md", ".cfg", ".ini", ".sh", ".txt", ""}
SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "data",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


@dataclass(frozen=True)
class Claim:
    """One place that names a version: `file:line` says `what` is `value`."""

    file: str
    line: int
    what: str  # "python" (minor, e.g. 3.12) or "dask"
    value: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Report:
    claims: list[Claim] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def claim(self, file: str, line: int, what: str, value: str) -> None:
        self.claims.append(Claim(file, line, what, value))

    def problem(self, file: str, line: int, message: str) -> None:
        self.problems.append(f"{file}:{line}: {message}")


def _lines(path: Path):
    return enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1)


def read_pyproject(root: Path, report: Report) -> None:
    path = root / "pyproject.toml"
    if not path.exists():
        report.problem("pyproject.toml", 0, "missing: it is the reference for the python and dask pins")
        return
    found = set()
    for no, text in _lines(path):
        if m := REQUIRES_PYTHON_RE.match(text):
            spec = m["spec"].replace(" ", "")
            s = PYTHON_SPEC_RE.match(spec)
            if not s or (s["major"], int(s["minor"]) + 1) != (s["umajor"], int(s["uminor"])):
                report.problem(
                    "pyproject.toml",
                    no,
                    f"requires-python {m['spec']!r} must admit exactly one minor version, like '>=3.12,<3.13'",
                )
                continue
            report.claim("pyproject.toml", no, "python", f"{s['major']}.{s['minor']}")
            found.add("python")
        elif m := PIN_RE.match(text):
            if m["op"] != "==":
                report.problem(
                    "pyproject.toml", no, f"{m['name']} must be pinned exactly (==), not {m['op']}{m['version']}"
                )
                continue
            report.claim("pyproject.toml", no, "dask", m["version"])
            found.add(m["name"])
    for needed in ("python", "dask", "distributed"):
        if needed not in found:
            what = "requires-python" if needed == "python" else f'an exact "{needed}==..." pin'
            report.problem("pyproject.toml", 0, f"{what} not found in [project]")


def read_dockerfile(root: Path, report: Report) -> None:
    path = root / "Dockerfile"
    if not path.exists():
        report.problem("Dockerfile", 0, "missing: its FROM tag must name the python and dask versions")
        return
    for no, text in _lines(path):
        if text.strip().upper().startswith("FROM "):
            image = text.split()[1]
            if not image.startswith("ghcr.io/dask/dask:"):
                report.problem(
                    "Dockerfile",
                    no,
                    f"base image {image!r} must be ghcr.io/dask/dask:<dask>-py<python> (a literal tag)",
                )
            return  # image tags (this FROM included) are read by read_image_tags
    report.problem("Dockerfile", 0, "no FROM line")


def read_image_tags(root: Path, report: Report) -> None:
    """Every ghcr.io/dask/dask:<dask>-py<python> tag anywhere in the project (Dockerfile, config, docs)."""
    for path in sorted(_text_files(root)):
        rel = path.relative_to(root).as_posix()
        if rel.endswith("pins.py"):
            continue
        for no, text in _lines(path):
            for m in IMAGE_RE.finditer(text):
                tag = IMAGE_TAG_RE.match(m["tag"])
                if not tag:
                    report.problem(rel, no, f"image tag {m['tag']!r} must be a literal <dask>-py<python> tag")
                    continue
                report.claim(rel, no, "dask", tag["dask"])
                report.claim(rel, no, "python", tag["python"])


def read_python_version(root: Path, report: Report) -> None:
    path = root / ".python-version"
    if not path.exists():
        report.problem(".python-version", 0, "missing: pyenv and Poetry use it to pick the interpreter")
        return
    for no, text in _lines(path):
        if text.strip():
            report.claim(".python-version", no, "python", ".".join(text.strip().split(".")[:2]))
            return


def read_lock(root: Path, report: Report) -> None:
    path = root / "poetry.lock"
    if not path.exists():
        return  # optional until the first `poetry lock`
    section, name = "", None
    for no, text in _lines(path):
        stripped = text.strip()
        if stripped.startswith("["):
            section, name = stripped, None
        elif section == "[[package]]" and stripped.startswith("name = "):
            name = stripped.split("=", 1)[1].strip().strip('"')
        elif section == "[[package]]" and stripped.startswith("version = ") and name in ("dask", "distributed"):
            report.claim("poetry.lock", no, "dask", stripped.split("=", 1)[1].strip().strip('"'))
        elif section == "[metadata]" and stripped.startswith("python-versions = "):
            spec = stripped.split("=", 1)[1].strip().strip('"').replace(" ", "")
            if s := PYTHON_SPEC_RE.match(spec):
                report.claim("poetry.lock", no, "python", f"{s['major']}.{s['minor']}")
            else:
                report.problem(
                    "poetry.lock", no, f"locked for python {spec!r}; run `poetry lock` after fixing requires-python"
                )


def read_ci(root: Path, report: Report) -> None:
    workflows = root / ".github" / "workflows"
    if not workflows.is_dir():
        return  # generated without CI
    for path in sorted(workflows.glob("*.y*ml")):
        rel = path.relative_to(root).as_posix()
        for no, text in _lines(path):
            if m := CI_PYTHON_RE.search(text):
                report.claim(rel, no, "python", m["version"])


def _text_files(root: Path):
    for path in root.rglob("*"):
        if any(part in SKIP_DIRS for part in path.relative_to(root).parts[:-1]):
            continue
        if (
            path.is_file()
            and (path.suffix in SCAN_SUFFIXES or path.name == "Dockerfile")
            and path.stat().st_size < 1_000_000
        ):
            yield path


def read_environment(report: Report) -> None:
    """With --env: the interpreter and installed dask/distributed running this check."""
    from importlib import metadata

    report.claim("(this environment)", 0, "python", f"{sys.version_info.major}.{sys.version_info.minor}")
    for dist in ("dask", "distributed"):
        try:
            report.claim("(this environment)", 0, "dask", metadata.version(dist))
        except metadata.PackageNotFoundError:
            report.problem("(this environment)", 0, f"{dist} is not installed; run `make install`")


def check(root: Path, environment: bool = False) -> Report:
    report = Report()
    read_pyproject(root, report)
    read_dockerfile(root, report)
    read_image_tags(root, report)
    read_python_version(root, report)
    read_lock(root, report)
    read_ci(root, report)
    if environment:
        read_environment(report)
    for what in ("python", "dask"):
        claims = [c for c in report.claims if c.what == what]
        reference = next((c for c in claims if c.file == "pyproject.toml"), None)
        if reference is None:
            continue
        for c in claims:
            if c.value != reference.value:
                report.problem(
                    c.file, c.line, f"{what} {c.value} here, but {reference.where} pins {what} {reference.value}"
                )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that Python and Dask version pins agree across the project.")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="project root (default: this file's project)",
    )
    parser.add_argument(
        "--env", action="store_true", help="also compare the running interpreter and installed dask/distributed"
    )
    args = parser.parse_args(argv)
    report = check(args.root.resolve(), environment=args.env)
    if report.problems:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        print(
            f"pin check FAILED: {len(report.problems)} problem(s). Make the places above agree with pyproject.toml "
            "(or change every place at once), then run `make check-pins` again.",
            file=sys.stderr,
        )
        return 1
    python = next(c.value for c in report.claims if c.what == "python")
    dask = next(c.value for c in report.claims if c.what == "dask")
    files = sorted({c.file for c in report.claims})
    print(
        f"pin check OK: python {python} and dask {dask} agree in {len(report.claims)} places across {', '.join(files)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
