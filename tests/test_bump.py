"""One-command version bumps: the template's supported table, and every pin of a generated project."""

import json
import os
import re
import stat
import subprocess
import sys
import zipfile

import pytest

from tests.baked import CONTEXT, TEMPLATE, bake

sys.path.insert(0, str(TEMPLATE / "tools"))
import bump_dask  # noqa: E402

DATA = TEMPLATE / "tests" / "data"
RUNTIME = CONTEXT["_runtime_version"]
WHEEL = f"vendor/ml_workflows-{RUNTIME}-py3-none-any.whl"
PAGES = [json.loads((DATA / f"ghcr-dask-tags-page{n}.json").read_text()) for n in (1, 2)]


def recorded_registry(page_size):
    """A fetch function answering like ghcr.io from the recorded pages, `page_size` tags at a time."""
    tags = [t for page in PAGES for t in page["tags"]]
    calls = []

    def fetch(url, token):
        calls.append(url)
        if "/token?" in url:
            assert token is None and "scope=repository:dask/dask:pull" in url
            return {"token": "anonymous"}
        assert token == "anonymous" and f"n={page_size}&" in url
        last = url.split("last=")[1]
        start = tags.index(last) + 1 if last else 0
        return {"name": "dask/dask", "tags": tags[start : start + page_size]}

    return fetch, calls, set(tags)


@pytest.fixture
def pins(monkeypatch):
    """The pin module with its registry reads answered from the recorded pages (no network)."""
    module = bump_dask.load_pins()
    fetch, _, _ = recorded_registry(1000)
    real = module.image_tags
    monkeypatch.setattr(module, "image_tags", lambda: real(fetch))
    return module


@pytest.mark.parametrize(("page_size", "requests"), [(1000, 2), (5, 4), (7, 4)])
def test_registry_tags_are_read_across_pages(page_size, requests):
    pins = bump_dask.load_pins()
    fetch, calls, everything = recorded_registry(page_size)
    assert pins.image_tags(fetch, page_size=page_size) == everything
    assert len(calls) == requests  # the token, then pages until a short one


def test_the_template_tools_load_the_pin_module_every_project_runs():
    """tools/bump_dask.py reads the registry with the runtime's pin module: the very file the vendored wheel carries
    (`make check-pins`, the post-gen hook and the image build run it from there)."""
    assert bump_dask.PINS_FILE == TEMPLATE / "runtime" / "src" / "ml_workflows" / "deploy" / "pins.py"
    vendored = TEMPLATE / "{{cookiecutter.project_slug}}" / WHEEL
    with zipfile.ZipFile(vendored) as wheel:
        assert wheel.read("ml_workflows/deploy/pins.py") == bump_dask.PINS_FILE.read_bytes()


def test_loading_the_pin_module_leaves_no_bytecode_in_the_template(monkeypatch, tmp_path):
    """No deploy/__pycache__ written into runtime/src, the tree the vendored wheel is built from. Shown on a copy of
    the module: runtime/src itself may hold caches of other processes (the runtime's tests import it)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as without PYTHONDONTWRITEBYTECODE
    copy = tmp_path / "deploy" / "pins.py"
    copy.parent.mkdir()
    copy.write_bytes(bump_dask.PINS_FILE.read_bytes())
    monkeypatch.setattr(bump_dask, "PINS_FILE", copy)
    assert bump_dask.load_pins().__file__ == str(copy)
    assert not (copy.parent / "__pycache__").exists() and sys.dont_write_bytecode is False


def test_pythons_with_image_from_recorded_tags():
    pins = bump_dask.load_pins()
    tags = {t for page in PAGES for t in page["tags"]}
    assert pins.pythons_with_image("2026.7.1", tags) == ["3.10", "3.11", "3.12", "3.13", "3.14"]
    assert pins.pythons_with_image("2026.8.0", tags) == []
    assert pins.pythons_with_image("2025.9.0", tags) == []


def test_template_bump_changes_only_the_table_and_default():
    text = (TEMPLATE / "cookiecutter.json").read_text()
    new = bump_dask.bump(text, "2026.9.0", ["3.13", "3.12"])
    before, after = json.loads(text), json.loads(new)
    assert after["dask_version"] == "2026.9.0"
    assert after["_dask_images"] == {**before["_dask_images"], "2026.9.0": ["3.12", "3.13"]}
    assert {k: v for k, v in after.items() if k not in ("dask_version", "_dask_images")} == {
        k: v for k, v in before.items() if k not in ("dask_version", "_dask_images")
    }
    changed = [line for line in new.splitlines() if line not in text.splitlines()]
    assert len(changed) == 2, changed  # the default line and the new table row; formatting kept
    assert bump_dask.bump(text, before["dask_version"], before["_dask_images"][before["dask_version"]]) == text


def test_template_bump_refuses_a_release_without_supported_python():
    with pytest.raises(ValueError, match="no image for any supported python"):
        bump_dask.bump((TEMPLATE / "cookiecutter.json").read_text(), "2026.9.0", ["3.9"])


def test_template_bump_with_registry_check(monkeypatch, tmp_path, pins):
    monkeypatch.setattr(bump_dask, "load_pins", lambda: pins)
    target = tmp_path / "cookiecutter.json"
    original = (TEMPLATE / "cookiecutter.json").read_text()
    target.write_text(original)
    monkeypatch.setattr(bump_dask, "CONTEXT_FILE", target)
    assert bump_dask.main(["2026.8.0", "--check-registry"]) == 1  # no image: nothing changed
    assert target.read_text() == original
    assert bump_dask.main(["2025.7.0", "--check-registry"]) == 0
    after = json.loads(target.read_text())
    assert after["_dask_images"]["2025.7.0"] == ["3.10", "3.11", "3.12", "3.13"]
    assert after["dask_version"] == "2025.7.0"


def pins_module(project, *args):
    """The project's pin module, run from its vendored wheel in its directory as `make check-pins` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ml_workflows.deploy.pins", *args],
        capture_output=True,
        text=True,
        cwd=project.path,
        env={**os.environ, "PYTHONPATH": str(project.path / WHEEL)},
    )


def test_generated_bump_rewrites_every_pinned_place(cookies, tmp_path):
    project = bake(cookies)
    before = {p: p.read_bytes() for p in project.path.rglob("*") if p.is_file()}
    proc = pins_module(project, "--set-dask", "2026.9.0", "--set-python", "3.13")
    assert proc.returncode == 0, proc.stderr
    changed = {p.relative_to(project.path).as_posix() for p, data in before.items() if p.read_bytes() != data}
    assert changed >= {"pyproject.toml", "Dockerfile", ".python-version", ".github/workflows/ci.yml"}
    assert not {WHEEL, "poetry.lock"} & changed  # the runtime is not the bump's: its wheel and pin stay
    assert f'"ml-workflows=={RUNTIME}"' in project.read("pyproject.toml")
    listed = [line.strip() for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert {where.split(":")[0] for where in listed} == changed
    assert "FROM ghcr.io/dask/dask:2026.9.0-py3.13" in project.read("Dockerfile")
    assert 'requires-python = ">=3.13,<3.14"' in project.read("pyproject.toml")
    assert '"distributed==2026.9.0"' in project.read("pyproject.toml")
    assert 'target-version = "py313"' in project.read("pyproject.toml")
    assert "Not verified" in proc.stdout
    # The shipped poetry.lock still holds the old versions: the checker names it, and only it, until it is
    # re-locked (`make bump-dask` runs `poetry lock`: test_generated_make_bump_relocks_and_checks).
    check = pins_module(project)
    problems = [line for line in (check.stdout + check.stderr).splitlines() if re.match(r"\s*\S+:\d+: ", line)]
    assert check.returncode != 0 and problems, check.stdout + check.stderr
    assert all(line.strip().startswith("poetry.lock:") for line in problems), problems
    (project.path / "poetry.lock").unlink()
    check = pins_module(project)
    assert check.returncode == 0, check.stderr
    assert f"python 3.13, dask 2026.9.0 and ml-workflows {RUNTIME} agree" in check.stdout


RELOCK = r"""
import pathlib, re, sys

with open(sys.argv[0] + "-calls", "a") as calls:
    print(*sys.argv[1:], file=calls)
lock = pathlib.Path("poetry.lock")
text = re.sub(r'(name = "(?:dask|distributed)"\nversion = )"[^"]+"', r'\1"2026.9.0"', lock.read_text())
lock.write_text(text)
"""


def test_generated_make_bump_relocks_and_checks(cookies, tmp_path):
    project = bake(cookies)
    shipped = project.read("poetry.lock")
    # A stand-in for `poetry lock` that records the call and does what Poetry would: moves dask and distributed in the
    # shipped lock and keeps every other package (the vendored runtime, its version and hash, included).
    fake = tmp_path / "fake-poetry"
    fake.write_text(f"#!{sys.executable}\n{RELOCK}")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = project.make("bump-dask", "VERSION=2026.9.0", f"POETRY={fake}", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "fake-poetry-calls").read_text().split() == ["lock"]
    relocked = project.read("poetry.lock")
    moved = [(old, new) for old, new in zip(shipped.splitlines(), relocked.splitlines(), strict=True) if old != new]
    assert moved == [('version = "2026.7.1"', 'version = "2026.9.0"')] * 2  # dask and distributed, nothing else
    ok = next(line for line in proc.stdout.splitlines() if line.startswith("pin check OK:"))
    assert ok.startswith(f"pin check OK: python 3.12, dask 2026.9.0 and ml-workflows {RUNTIME} agree"), ok
    assert f"poetry.lock, pyproject.toml, {WHEEL}" in ok  # the relocked lock's dask and runtime were compared too


def test_generated_make_bump_needs_a_version(cookies):
    project = bake(cookies)
    proc = project.make("bump-dask", check=False)
    assert proc.returncode != 0 and "usage: make bump-dask VERSION=" in proc.stdout
    assert os.path.getsize(project.path / "Dockerfile") > 0


def test_generated_bump_checks_the_registry_before_changing_anything(cookies, pins):
    project = bake(cookies)
    before = project.read("Dockerfile")
    args = ["--root", str(project.path), "--check-registry", "--set-dask"]
    assert pins.main([*args, "2026.8.0"]) == 1
    assert project.read("Dockerfile") == before
    assert pins.main([*args, "2026.7.1", "--set-python", "3.13"]) == 0
    assert "FROM ghcr.io/dask/dask:2026.7.1-py3.13" in project.read("Dockerfile")
