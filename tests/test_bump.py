"""One-command version bumps: the template's supported table, and every pin of a generated project."""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from tests.baked import TEMPLATE, bake

sys.path.insert(0, str(TEMPLATE / "tools"))
import bump_dask  # noqa: E402

DATA = TEMPLATE / "tests" / "data"
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


def test_loading_the_pin_module_leaves_no_bytecode_in_the_template(monkeypatch):
    """Every bake copies the template's tree: a deploy/__pycache__ written there would land in every project."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as without PYTHONDONTWRITEBYTECODE
    cache = bump_dask.PINS_FILE.parent / "__pycache__"
    assert not cache.exists()
    bump_dask.load_pins()
    assert not cache.exists() and sys.dont_write_bytecode is False


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


def test_generated_bump_rewrites_every_pinned_place(cookies, tmp_path):
    project = bake(cookies)
    checker = project.path / "src" / project.package / "deploy" / "pins.py"
    before = {p: p.read_text() for p in project.path.rglob("*") if p.is_file()}
    proc = subprocess.run(
        [sys.executable, str(checker), "--set-dask", "2026.9.0", "--set-python", "3.13"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    changed = {p.relative_to(project.path).as_posix() for p, text in before.items() if p.read_text() != text}
    assert changed >= {"pyproject.toml", "Dockerfile", ".python-version", ".github/workflows/ci.yml"}
    listed = [line.strip() for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert {where.split(":")[0] for where in listed} == changed
    assert "FROM ghcr.io/dask/dask:2026.9.0-py3.13" in project.read("Dockerfile")
    assert 'requires-python = ">=3.13,<3.14"' in project.read("pyproject.toml")
    assert '"distributed==2026.9.0"' in project.read("pyproject.toml")
    assert 'target-version = "py313"' in project.read("pyproject.toml")
    assert "Not verified" in proc.stdout
    # The shipped poetry.lock still holds the old versions: the checker names it, and only it, until it is
    # re-locked (`make bump-dask` runs `poetry lock`: test_generated_make_bump_relocks_and_checks).
    check = subprocess.run([sys.executable, str(checker)], capture_output=True, text=True)
    problems = [line for line in (check.stdout + check.stderr).splitlines() if re.match(r"\s*\S+:\d+: ", line)]
    assert check.returncode != 0 and problems, check.stdout + check.stderr
    assert all(line.strip().startswith("poetry.lock:") for line in problems), problems
    (project.path / "poetry.lock").unlink()
    check = subprocess.run([sys.executable, str(checker)], capture_output=True, text=True)
    assert check.returncode == 0 and "python 3.13 and dask 2026.9.0 agree" in check.stdout


def test_generated_make_bump_relocks_and_checks(cookies, tmp_path):
    project = bake(cookies)
    (project.path / "poetry.lock").write_text(
        '[[package]]\nname = "dask"\nversion = "2026.7.1"\n\n[metadata]\npython-versions = ">=3.12,<3.13"\n'
    )
    # A stand-in for `poetry lock` that records the call and writes what Poetry would resolve.
    fake = tmp_path / "fake-poetry"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/poetry-calls\n'
        'printf \'[[package]]\\nname = "dask"\\nversion = "2026.9.0"\\n\\n[metadata]\\n'
        'python-versions = ">=3.12,<3.13"\\n\' > poetry.lock\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    proc = project.make("bump-dask", "VERSION=2026.9.0", f"POETRY={fake}", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "poetry-calls").read_text().split() == ["lock"]
    assert "pin check OK: python 3.12 and dask 2026.9.0" in proc.stdout


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
