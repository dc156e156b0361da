"""Pin guard: every file that names the Python or Dask version must agree.

Python/Dask mismatches between the local environment, the image and the Dask workers
make Dask warn or fail ("Mismatched versions found"). This checker is the one
implementation of that rule, used by the cookiecutter post-gen hook, `make check-pins`
(before `make install`), CI, pre-commit and the image build. It imports the standard library only so it runs with
any Python 3.10+ and from a fresh clone, straight from the project's vendored runtime wheel:

    PYTHONPATH=vendor/ml_workflows-<version>-py3-none-any.whl python3 -m ml_workflows.deploy.pins [--root DIR] [--env]

`pyproject.toml` is the reference; every other place is compared to it and each
disagreement is printed as `file:line: what differs`. Exit 0 when all agree, 1 if not.

The same module rewrites every place at once (`make bump-dask VERSION=... [PYTHON=...]`):

    python3 -m ml_workflows.deploy.pins --set-dask 2026.7.1 [--set-python 3.12] [--check-registry]   (make bump-dask)

`--check-registry` asks ghcr.io which image tags exist (needs the network); without it the
bump is made from the version numbers alone and says so.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import namedtuple
from pathlib import Path

IMAGE_RE = re.compile(r"ghcr\.io/dask/dask:(?P<tag>[^\s\"'`]+)")
IMAGE_PREFIX = "ghcr.io/dask/dask:"  # in every line IMAGE_RE matches
IMAGE_TAG_RE = re.compile(r"^(?P<dask>\d{4}\.\d{1,2}\.\d+)-py(?P<python>\d+\.\d+)$")
PIN_RE = re.compile(
    r"""^\s*["'](?P<name>dask|distributed)(?:\[[^\]]*\])?\s*(?P<op>[=<>!~]=?=?)\s*(?P<version>[^"';,\s]+)"""
)
RUNTIME_PIN_RE = re.compile(r"""^\s*["']ml-workflows(?:\[[^\]]*\])?\s*(?P<op>[=<>!~]=?=?)\s*(?P<version>[^"';,\s]+)""")
RUNTIME_PATH_RE = re.compile(r"""^\s*ml-workflows\s*=\s*\{.*path\s*=\s*["'](?P<path>[^"']+)["']""")
RUNTIME_WHEEL_RE = re.compile(r"^ml_workflows-(?P<version>[^-]+)-py3-none-any\.whl$")
REQUIRES_PYTHON_RE = re.compile(r"""^\s*requires-python\s*=\s*["'](?P<spec>[^"']+)["']""")
PYTHON_SPEC_RE = re.compile(
    r"^>=\s*(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?\s*,\s*<\s*(?P<umajor>\d+)\.(?P<uminor>\d+)$"
)
CI_PYTHON_RE = re.compile(r"""python-version:\s*["']?(?P<version>\d+\.\d+)["']?""")
RUFF_TARGET_RE = re.compile(r"""^(?P<head>\s*target-version\s*=\s*["'])py\d+(?P<tail>["'].*)$""")
DASK_VERSION_RE = re.compile(r"^\d{4}\.\d{1,2}\.\d+$")
PYTHON_VERSION_RE = re.compile(r"^3\.\d+$")
REGISTRY = "https://ghcr.io"
IMAGE_REPOSITORY = "dask/dask"
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


# A namedtuple, not a dataclass: importing dataclasses (or typing) cost the post-gen hook more than the check.
class Claim(namedtuple("Claim", "file line what value")):
    """One place that names a version: `file:line` says `what` (python: a minor like 3.12, dask, or the ml-workflows
    runtime) is `value`."""

    __slots__ = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class Report:
    def __init__(self) -> None:
        self.claims: list[Claim] = []
        self.problems: list[str] = []

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
        if IMAGE_PREFIX not in path.read_text(encoding="utf-8", errors="replace"):
            continue  # no line can match: most files name no image, and reading them line by line was the slow part
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
        return  # a bake ships one; without it `make install` stops before anything else could disagree
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
                    "poetry.lock", no, f"locked for python {spec!r}; run `make lock` after fixing requires-python"
                )


def read_runtime(root: Path, report: Report) -> None:
    """The ml-workflows runtime: pyproject's exact pin and wheel path, the one wheel in vendor/, and poetry.lock's
    version and hash of it all name the same release, and the lock's hash is the wheel's (the image installs it
    hash-checked)."""
    import hashlib

    path = root / "pyproject.toml"
    if not path.exists():
        return
    wheel_path, path_line = None, 0
    for no, text in _lines(path):
        if m := RUNTIME_PIN_RE.match(text):
            if m["op"] != "==":
                report.problem(
                    "pyproject.toml", no, f"ml-workflows must be pinned exactly (==), not {m['op']}{m['version']}"
                )
            else:
                report.claim("pyproject.toml", no, "runtime", m["version"])
        elif m := RUNTIME_PATH_RE.match(text):
            wheel_path, path_line = m["path"], no
            if w := RUNTIME_WHEEL_RE.match(Path(wheel_path).name):
                report.claim("pyproject.toml", no, "runtime", w["version"])
    wheels = sorted((root / "vendor").glob("ml_workflows-*.whl"))
    if len(wheels) != 1:
        report.problem("vendor", 0, f"holds {len(wheels)} ml_workflows wheels, not one (the runtime this project pins)")
        return
    wheel = wheels[0]
    if m := RUNTIME_WHEEL_RE.match(wheel.name):
        report.claim(f"vendor/{wheel.name}", 0, "runtime", m["version"])
    if wheel_path is not None and wheel_path != f"vendor/{wheel.name}":
        report.problem(
            "pyproject.toml", path_line, f"ml-workflows path {wheel_path!r} is not the vendored vendor/{wheel.name}"
        )
    lock = root / "poetry.lock"
    if not lock.exists():
        return
    digest = "sha256:" + hashlib.sha256(wheel.read_bytes()).hexdigest()
    in_package, package_line, hashed = False, 0, False
    for no, text in _lines(lock):
        stripped = text.strip()
        if stripped == "[[package]]":
            in_package = False
        elif stripped == 'name = "ml-workflows"':
            in_package, package_line = True, no
        elif in_package and stripped.startswith("version = "):
            report.claim("poetry.lock", no, "runtime", stripped.split("=", 1)[1].strip().strip('"'))
        elif in_package and '"sha256:' in stripped:
            hashed = True
            if digest in stripped:
                continue
            report.problem(
                "poetry.lock",
                no,
                f"records another hash of the runtime than vendor/{wheel.name}'s ({digest[:20]}...): restore the "
                f"wheel (git checkout vendor/) or pin this one (make upgrade-runtime WHEEL=vendor/{wheel.name})",
            )
    if not package_line and any(c.what == "runtime" and c.file == "pyproject.toml" for c in report.claims):
        report.problem("poetry.lock", 0, "records no ml-workflows, which pyproject.toml pins: make lock")
    if package_line and not hashed:
        report.problem(
            "poetry.lock", package_line, f"records no hash of vendor/{wheel.name} for ml-workflows: make lock"
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
    for dist, what in (("dask", "dask"), ("distributed", "dask"), ("ml-workflows", "runtime")):
        try:
            report.claim("(this environment)", 0, what, metadata.version(dist))
        except metadata.PackageNotFoundError:
            report.problem("(this environment)", 0, f"{dist} is not installed; run `make install`")


def check(root: Path, environment: bool = False) -> Report:
    report = Report()
    read_pyproject(root, report)
    read_dockerfile(root, report)
    read_image_tags(root, report)
    read_python_version(root, report)
    read_lock(root, report)
    read_runtime(root, report)
    read_ci(root, report)
    if environment:
        read_environment(report)
    for what in ("python", "dask", "runtime"):
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


def image_tags(fetch=None, page_size: int = 1000) -> set[str]:
    """All tags of ghcr.io/dask/dask (anonymous pull token, paginated). Needs the network."""
    fetch = fetch or _fetch_json
    token = fetch(f"{REGISTRY}/token?scope=repository:{IMAGE_REPOSITORY}:pull", None)["token"]
    tags: set[str] = set()
    last = ""
    while True:
        url = f"{REGISTRY}/v2/{IMAGE_REPOSITORY}/tags/list?n={page_size}&last={last}"
        page = fetch(url, token).get("tags") or []
        tags.update(page)
        if len(page) < page_size:
            return tags
        last = page[-1]


def _fetch_json(url: str, token: str | None) -> dict:
    import urllib.request  # here, not at the top: it costs more than the whole check, which never needs it

    if not url.startswith(REGISTRY + "/"):
        raise ValueError(f"refusing to fetch {url!r}: only {REGISTRY} is asked")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - https only, checked above
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.load(response)


def pythons_with_image(dask: str, tags: set[str]) -> list[str]:
    """Python versions that have a `<dask>-py<python>` image among `tags`, oldest first."""
    found = [m["python"] for tag in tags if (m := IMAGE_TAG_RE.match(tag)) and m["dask"] == dask]
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def bump(root: Path, dask: str | None = None, python: str | None = None) -> list[str]:
    """Rewrite every pinned place to the new versions; return `file:line` of each changed line.

    poetry.lock is not edited by hand: `make bump-dask` runs `poetry lock` afterwards (keeping every other version).
    """
    if dask is not None and not DASK_VERSION_RE.match(dask):
        raise ValueError(f"dask version {dask!r} is not a release like 2026.7.1")
    if python is not None and not PYTHON_VERSION_RE.match(python):
        raise ValueError(f"python version {python!r} is not a minor version like 3.12")
    current = check(root)
    old_python = next((c.value for c in current.claims if c.what == "python" and c.file == "pyproject.toml"), None)
    old_dask = next((c.value for c in current.claims if c.what == "dask" and c.file == "pyproject.toml"), None)
    dask = dask or old_dask
    python = python or old_python
    if dask is None or python is None:
        raise ValueError("pyproject.toml has no dask pin or requires-python to start from; fix it by hand first")
    minor = int(python.split(".")[1])

    def pyproject_line(text: str) -> str:
        if m := PIN_RE.match(text):
            return text[: m.start("version")] + dask + text[m.end("version") :]
        if m := REQUIRES_PYTHON_RE.match(text):
            return text[: m.start("spec")] + f">={python},<3.{minor + 1}" + text[m.end("spec") :]
        if m := RUFF_TARGET_RE.match(text):
            return f"{m['head']}py3{minor}{m['tail']}"
        return text

    def image_line(text: str) -> str:
        return IMAGE_RE.sub(
            lambda m: f"ghcr.io/dask/dask:{dask}-py{python}" if IMAGE_TAG_RE.match(m["tag"]) else m[0], text
        )

    def ci_line(text: str) -> str:
        return CI_PYTHON_RE.sub(lambda m: m[0].replace(m["version"], python), text)

    # Each file gets the rewrites of the places the checker reads in it (see read_*), image tags everywhere.
    rewrites = {path: [image_line] for path in _text_files(root) if path.name != "pins.py"}
    rewrites.setdefault(root / "pyproject.toml", []).insert(0, pyproject_line)
    rewrites[root / ".python-version"] = [lambda text: python]
    workflows = root / ".github" / "workflows"
    for path in workflows.glob("*.y*ml") if workflows.is_dir() else []:
        rewrites.setdefault(path, []).append(ci_line)
    changed = []
    for path, steps in rewrites.items():
        if not path.exists():
            continue
        original = path.read_text(encoding="utf-8")
        lines = original.splitlines(keepends=True)
        out = []
        for no, line in enumerate(lines, start=1):
            body = line.rstrip("\r\n")
            new = body
            for step in steps if body.strip() else []:
                new = step(new)
            if new != body:
                changed.append(f"{path.relative_to(root).as_posix()}:{no}")
            out.append(new + line[len(body) :])
        text = "".join(out)
        if text != original:
            path.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check (or bump) the Python and Dask version pins across the project.")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: the working directory)")
    parser.add_argument("--env", action="store_true", help="also compare the running interpreter and installed dask")
    parser.add_argument("--set-dask", metavar="VERSION", help="rewrite every dask pin and image tag to VERSION")
    parser.add_argument("--set-python", metavar="X.Y", help="rewrite every python version to X.Y")
    parser.add_argument("--check-registry", action="store_true", help="with --set-*: verify the image tag exists")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.set_dask or args.set_python:
        return _bump_command(root, args.set_dask, args.set_python, args.check_registry)
    report = check(root, environment=args.env)
    if report.problems:
        for problem in report.problems:
            print(problem, file=sys.stderr)
        print(
            f"pin check FAILED: {len(report.problems)} problem(s). Make the places above agree with pyproject.toml "
            "(or change them all at once with `make bump-dask`), then run `make check-pins` again.",
            file=sys.stderr,
        )
        return 1
    python = next(c.value for c in report.claims if c.what == "python")
    dask = next(c.value for c in report.claims if c.what == "dask")
    runtime = next((c.value for c in report.claims if c.what == "runtime"), None)
    files = sorted({c.file for c in report.claims})
    agree = f"python {python}, dask {dask}" + (f" and ml-workflows {runtime}" if runtime else "")
    print(f"pin check OK: {agree} agree in {len(report.claims)} places across {', '.join(files)}")
    return 0


def _bump_command(root: Path, dask: str | None, python: str | None, check_registry: bool) -> int:
    before = check(root)
    if before.problems:
        print("The pins disagree already; fix these first (make check-pins):", file=sys.stderr)
        for problem in before.problems:
            print(problem, file=sys.stderr)
        return 1
    old = {c.what: c.value for c in before.claims if c.file == "pyproject.toml"}
    dask, python = dask or old["dask"], python or old["python"]
    if check_registry:
        try:
            available = pythons_with_image(dask, image_tags())
        except OSError as error:
            print(
                f"Could not list ghcr.io/dask/dask tags ({error}); retry, or bump without --check-registry",
                file=sys.stderr,
            )
            return 1
        if python not in available:
            hint = f"python {', '.join(available)}" if available else "no image at all for that release"
            print(f"ghcr.io/dask/dask:{dask}-py{python} does not exist ({hint}); nothing changed", file=sys.stderr)
            return 1
    try:
        changed = bump(root, dask, python)
    except ValueError as error:
        print(f"bump refused: {error}; nothing changed", file=sys.stderr)
        return 2
    print(f"Bumped python {old['python']} -> {python}, dask {old['dask']} -> {dask} in {len(changed)} lines:")
    for where in changed:
        print(f"  {where}")
    if not check_registry:
        print(
            f"Not verified that ghcr.io/dask/dask:{dask}-py{python} exists (add --check-registry, needs the network)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
