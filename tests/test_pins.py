"""The generated pin guard (stdlib only) catches each kind of disagreement and names the file and line.

It runs with this interpreter straight from the baked tree, as the post-gen hook and a fresh clone's
`make check-pins` run it: no install needed.
"""

import shutil
import subprocess
import sys

import pytest

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

[metadata]
lock-version = "2.1"
python-versions = "{python}"
content-hash = "0"
"""


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


def check(root):
    proc = subprocess.run(
        [sys.executable, str(root / "src" / "batch_scoring" / "deploy" / "pins.py"), "--root", str(root)],
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stdout, proc.stderr


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def line_of(path, needle):
    return next(no for no, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_pristine_project_passes(project):
    code, out, err = check(project)
    assert code == 0, err
    assert out.startswith("pin check OK: python 3.12 and dask 2026.7.1 agree")


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
    problems = [line for line in err.splitlines() if ": " in line and not line.startswith("pin check")]
    assert len(problems) == 1 and problems[0].startswith(
        f"{rel}:{line_of(path, new)}: {blamed}, but pyproject.toml:"
    ), err
    assert "pin check FAILED" in err


def test_changed_dask_pin_blames_every_other_place(project):
    edit(project / "pyproject.toml", '"dask[dataframe]==2026.7.1"', '"dask[dataframe]==2026.8.0"')
    code, _, err = check(project)
    assert code == 1
    # distributed in pyproject and the Dockerfile tag now disagree with the dask pin.
    assert f"pyproject.toml:{line_of(project / 'pyproject.toml', 'distributed==')}: dask 2026.7.1 here" in err
    assert f"Dockerfile:{line_of(project / 'Dockerfile', 'FROM ')}: dask 2026.7.1 here" in err


def test_loose_pins_are_refused(project):
    edit(project / "pyproject.toml", '"distributed==2026.7.1"', '"distributed>=2026.7.1"')
    edit(project / "pyproject.toml", 'requires-python = ">=3.12,<3.13"', 'requires-python = ">=3.11"')
    code, _, err = check(project)
    assert code == 1
    assert "distributed must be pinned exactly (==)" in err
    assert "must admit exactly one minor version" in err


def test_templated_image_tag_is_refused(project):
    edit(project / "Dockerfile", "FROM ghcr.io/dask/dask:2026.7.1-py3.12", "FROM ghcr.io/dask/dask:${DASK}-py${PY}")
    code, _, err = check(project)
    assert code == 1 and "must be a literal <dask>-py<python> tag" in err


@pytest.mark.parametrize(
    ("lock", "blamed"),
    [
        (LOCK.format(dask="2026.7.1", distributed="2026.7.1", python=">=3.12,<3.13"), None),
        (
            LOCK.format(dask="2026.6.0", distributed="2026.7.1", python=">=3.12,<3.13"),
            "poetry.lock:3: dask 2026.6.0 here",
        ),
        (
            LOCK.format(dask="2026.7.1", distributed="2026.6.0", python=">=3.12,<3.13"),
            "poetry.lock:10: dask 2026.6.0 here",
        ),
        (
            LOCK.format(dask="2026.7.1", distributed="2026.7.1", python=">=3.11,<3.12"),
            "poetry.lock:16: python 3.11 here",
        ),
    ],
)
def test_lock_file_is_checked(project, lock, blamed):
    (project / "poetry.lock").write_text(lock)
    code, _, err = check(project)
    if blamed is None:
        assert code == 0, err
    else:
        assert code == 1 and blamed in err, err


def test_dask_image_tag_anywhere_in_the_project_is_checked(project):
    (project / "src" / "batch_scoring" / "extra.py").write_text('IMAGE = "ghcr.io/dask/dask:2026.7.1-py3.11"\n')
    code, _, err = check(project)
    assert code == 1 and "src/batch_scoring/extra.py:1: python 3.11 here" in err
