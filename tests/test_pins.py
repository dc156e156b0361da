"""The pin guard (`ml_workflows.deploy.pins`, stdlib only) catches each kind of disagreement, naming file and line.

It runs with this interpreter straight from the baked project's vendored runtime wheel, as a fresh clone's
`make check-pins` runs it (`PYTHONPATH=vendor/ml_workflows-<v>-py3-none-any.whl python3 -m ml_workflows.deploy.pins`):
no install needed. Besides Python and Dask it holds the runtime to one release: pyproject.toml's exact
`ml-workflows==V` pin, its wheel path, the one wheel in vendor/ and poetry.lock's version and hash of it.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.baked import CONTEXT

RUNTIME = CONTEXT["_runtime_version"]
WHEEL = f"vendor/ml_workflows-{RUNTIME}-py3-none-any.whl"

LOCK = """\
[[package]]
name = "dask"
version = "{dask}"
description = "Parallel PyData with Task Scheduling"
optional = false
python-versions = ">=3.10"

[[package]]
name = "distributed"
version = "{distributed}"
optional = false
python-versions = ">=3.10"

[[package]]
name = "ml-workflows"
version = "{runtime}"
optional = false
python-versions = ">=3.11"
files = [
    {{file = "ml_workflows-{runtime}-py3-none-any.whl", hash = "{hash}"}},
]

[package.source]
type = "file"
url = "vendor/ml_workflows-{runtime}-py3-none-any.whl"

[metadata]
lock-version = "2.1"
python-versions = "{python}"
content-hash = "0"
"""
OTHER_HASH = "sha256:" + "0" * 64


def wheel_hash(root):
    return "sha256:" + hashlib.sha256((root / WHEEL).read_bytes()).hexdigest()


def lock(root, dask="2026.7.1", distributed="2026.7.1", runtime=RUNTIME, python=">=3.12,<3.13", hash=None):
    return LOCK.format(
        dask=dask, distributed=distributed, runtime=runtime, python=python, hash=hash or wheel_hash(root)
    )


@pytest.fixture(scope="module")
def pristine(cookies_session):
    result = cookies_session.bake()
    assert result.exception is None
    return result.project_path


@pytest.fixture
def project(pristine, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(pristine, copy)
    return copy


def check(root, wheel=WHEEL):
    """The project's pin guard, run from its vendored wheel with --root from elsewhere, as `make check-pins` runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "ml_workflows.deploy.pins", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=root.parent,
        env={**os.environ, "PYTHONPATH": str(root / wheel)},
    )
    return proc.returncode, proc.stdout, proc.stderr


def problems(err):
    return [line for line in err.splitlines() if ": " in line and not line.startswith("pin check")]


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def line_of(path, needle, after=None):
    """The number of the first line of `path` holding `needle` (after the first line holding `after`, if given)."""
    lines = path.read_text().splitlines()
    start = 0 if after is None else next(no for no, line in enumerate(lines, 1) if after in line)
    return next(no for no, line in enumerate(lines, 1) if no > start and needle in line)


def rebuilt(wheel, target):
    """`wheel` with one more member written to `target`: a wheel of other runtime sources."""
    shutil.copyfile(wheel, target)
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr("ml_workflows/extra.py", "CHANGED = True\n")


def test_pristine_project_passes(project):
    code, out, err = check(project)
    assert code == 0, err
    assert out.startswith(f"pin check OK: python 3.12, dask 2026.7.1 and ml-workflows {RUNTIME} agree")
    # The runtime's places are among those compared: its pin, its wheel path, the wheel and the shipped lock.
    assert f"poetry.lock, pyproject.toml, {WHEEL}" in out, out


@pytest.mark.parametrize(
    ("rel", "old", "new", "blamed"),
    [
        ("Dockerfile", "dask:2026.7.1-py3.12", "dask:2026.7.1-py3.11", "python 3.11 here"),
        ("Dockerfile", "dask:2026.7.1-py3.12", "dask:2026.6.0-py3.12", "dask 2026.6.0 here"),
        (".python-version", "3.12", "3.13", "python 3.13 here"),
        (".github/workflows/ci.yml", 'python-version: "3.12"', 'python-version: "3.11"', "python 3.11 here"),
    ],
)
def test_a_changed_place_is_blamed_with_file_and_line(project, rel, old, new, blamed):
    path = project / rel
    edit(path, old, new)
    code, _, err = check(project)
    assert code == 1
    found = problems(err)
    assert len(found) == 1 and found[0].startswith(f"{rel}:{line_of(path, new)}: {blamed}, but pyproject.toml:"), err
    assert "pin check FAILED" in err


def test_changed_dask_pin_blames_every_other_place(project):
    edit(project / "pyproject.toml", '"dask[dataframe]==2026.7.1"', '"dask[dataframe]==2026.8.0"')
    code, _, err = check(project)
    assert code == 1
    # distributed in pyproject and the Dockerfile tag now disagree with the dask pin.
    assert f"pyproject.toml:{line_of(project / 'pyproject.toml', 'distributed==')}: dask 2026.7.1 here" in err
    assert f"Dockerfile:{line_of(project / 'Dockerfile', 'FROM ')}: dask 2026.7.1 here" in err


def test_changed_runtime_pin_blames_every_other_place(project):
    pyproject = project / "pyproject.toml"
    edit(pyproject, f'"ml-workflows=={RUNTIME}"', '"ml-workflows==2026.12.99"')
    code, _, err = check(project)
    assert code == 1
    pin = f"pyproject.toml:{line_of(pyproject, 'ml-workflows==')} pins runtime 2026.12.99"
    lock_version = line_of(project / "poetry.lock", "version = ", after='name = "ml-workflows"')
    path = line_of(pyproject, f'path = "{WHEEL}"')
    assert sorted(problems(err)) == sorted(
        [
            f"pyproject.toml:{path}: runtime {RUNTIME} here, but {pin}",
            f"{WHEEL}:0: runtime {RUNTIME} here, but {pin}",
            f"poetry.lock:{lock_version}: runtime {RUNTIME} here, but {pin}",
        ]
    ), err


def test_swapped_wheel_is_blamed_by_the_lock_hash(project):
    """Another wheel under the same name (other runtime sources): poetry.lock's hash of it is blamed, on its line."""
    wheel = project / WHEEL
    rebuilt(wheel, project / "other.whl")
    (project / "other.whl").replace(wheel)
    code, _, err = check(project)
    assert code == 1
    hash_line = line_of(project / "poetry.lock", '"sha256:', after='name = "ml-workflows"')
    assert problems(err) == [
        f"poetry.lock:{hash_line}: records another hash of the runtime than {WHEEL}'s ({wheel_hash(project)[:20]}...): "
        f"restore the wheel (git checkout vendor/) or pin this one (make upgrade-runtime WHEEL={WHEEL})"
    ], err


def test_lock_hash_mismatch_is_blamed_with_file_and_line(project):
    lock_file = project / "poetry.lock"
    edit(lock_file, wheel_hash(project), OTHER_HASH)
    code, _, err = check(project)
    assert code == 1
    found = problems(err)
    assert len(found) == 1 and found[0].startswith(
        f"poetry.lock:{line_of(lock_file, OTHER_HASH)}: records another hash of the runtime than {WHEEL}'s"
    ), err


def swap_in_another_release(project):
    """vendor/ holds a wheel of another release (other bytes, other name) instead of the pinned one."""
    other = "vendor/ml_workflows-2026.12.99-py3-none-any.whl"
    rebuilt(project / WHEEL, project / other)
    (project / WHEEL).unlink()
    code, _, err = check(project, other)
    assert code == 1
    return other, problems(err), err


def test_wheel_of_another_release_is_blamed(project):
    other, found, err = swap_in_another_release(project)
    pin = f"pyproject.toml:{line_of(project / 'pyproject.toml', 'ml-workflows==')} pins runtime {RUNTIME}"
    hash_line = line_of(project / "poetry.lock", '"sha256:', after='name = "ml-workflows"')
    assert f"{other}:0: runtime 2026.12.99 here, but {pin}" in found, err
    assert any(
        p.startswith(f"poetry.lock:{hash_line}: records another hash of the runtime than {other}'s") for p in found
    )
    path_problems = [p for p in found if f"ml-workflows path '{WHEEL}' is not the vendored {other}" in p]
    assert len(path_problems) == 1 and path_problems[0].startswith("pyproject.toml:"), err
    assert len(found) == 3, err


def test_wheel_path_mismatch_names_the_path_line(project):
    other, found, err = swap_in_another_release(project)
    path_line = line_of(project / "pyproject.toml", "ml-workflows = { path")
    assert f"pyproject.toml:{path_line}: ml-workflows path '{WHEEL}' is not the vendored {other}" in found, err


def test_a_second_wheel_is_refused(project):
    rebuilt(project / WHEEL, project / "vendor" / "ml_workflows-2026.12.99-py3-none-any.whl")
    code, _, err = check(project)  # run from the pinned wheel: vendor/ must hold it alone
    assert code == 1 and "vendor:0: holds 2 ml_workflows wheels, not one" in err, err


def test_a_lock_that_records_no_hash_of_the_runtime_is_refused(project):
    lock = project / "poetry.lock"
    text = lock.read_text()
    start = text.index('name = "ml-workflows"')
    files_at = text.index("files = [", start)
    end = text.index("]", files_at) + 1
    lock.write_text(text[:files_at] + "files = []" + text[end:])
    code, _, err = check(project)
    line = line_of(lock, 'name = "ml-workflows"')
    assert code == 1 and f"poetry.lock:{line}: records no hash of vendor/" in err, err


def test_loose_pins_are_refused(project):
    edit(project / "pyproject.toml", '"distributed==2026.7.1"', '"distributed>=2026.7.1"')
    edit(project / "pyproject.toml", 'requires-python = ">=3.12,<3.13"', 'requires-python = ">=3.11"')
    edit(project / "pyproject.toml", f'"ml-workflows=={RUNTIME}"', f'"ml-workflows>={RUNTIME}"')
    code, _, err = check(project)
    assert code == 1
    assert "distributed must be pinned exactly (==)" in err
    assert "must admit exactly one minor version" in err
    line = line_of(project / "pyproject.toml", "ml-workflows>=")
    assert f"pyproject.toml:{line}: ml-workflows must be pinned exactly (==), not >={RUNTIME}" in err


def test_templated_image_tag_is_refused(project):
    edit(project / "Dockerfile", "FROM ghcr.io/dask/dask:2026.7.1-py3.12", "FROM ghcr.io/dask/dask:${DASK}-py${PY}")
    code, _, err = check(project)
    assert code == 1 and "must be a literal <dask>-py<python> tag" in err


@pytest.mark.parametrize(
    ("fields", "blamed"),
    [
        ({}, None),
        ({"dask": "2026.6.0"}, "poetry.lock:3: dask 2026.6.0 here"),
        ({"distributed": "2026.6.0"}, "poetry.lock:10: dask 2026.6.0 here"),
        ({"python": ">=3.11,<3.12"}, "poetry.lock:29: python 3.11 here"),
        ({"runtime": "2026.12.5"}, "poetry.lock:16: runtime 2026.12.5 here, but pyproject.toml:"),
        ({"hash": OTHER_HASH}, f"poetry.lock:20: records another hash of the runtime than {WHEEL}'s"),
    ],
)
def test_lock_file_is_checked(project, fields, blamed):
    (project / "poetry.lock").write_text(lock(project, **fields))
    code, _, err = check(project)
    if blamed is None:
        assert code == 0, err
    else:
        assert code == 1 and blamed in err and len(problems(err)) == 1, err


def test_dask_image_tag_anywhere_in_the_project_is_checked(project):
    (project / "src" / "batch_scoring" / "extra.py").write_text('IMAGE = "ghcr.io/dask/dask:2026.7.1-py3.11"\n')
    code, _, err = check(project)
    assert code == 1 and "src/batch_scoring/extra.py:1: python 3.11 here" in err
