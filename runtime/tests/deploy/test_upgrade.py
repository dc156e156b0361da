"""`make upgrade-runtime`: another release's wheel replaces the vendored one and both pins, checked first; the pin
guard then names the one thing left to do (re-lock), and a bad wheel changes nothing."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

from ml_workflows.deploy import pins, upgrade
from ml_workflows.project import root

PROJECT = root()


def release(wheel: Path, version: str, into: Path) -> Path:
    """The project's runtime wheel re-labelled as ``version`` (what a later release's wheel looks like): the
    template's own tool does it (this test runs from the template's checkout, runtime/tests)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
    try:
        import runtime_wheel
    finally:
        sys.path.pop(0)
    return runtime_wheel.relabel(wheel, version, into)


@pytest.fixture
def project(tmp_path):
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "poetry.lock", "Dockerfile", ".python-version", "vendor"):
        source = PROJECT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy / name)
    return copy


def test_a_new_release_replaces_the_wheel_and_both_pins_and_the_pin_guard_asks_for_the_lock(project, tmp_path):
    [current] = sorted((project / "vendor").glob("ml_workflows-*.whl"))
    new = release(current, "2099.1.1", tmp_path)
    digest = hashlib.sha256(new.read_bytes()).hexdigest()
    old_version, new_version = upgrade.upgrade(project, str(new), sha256=digest)
    assert new_version == "2099.1.1" and old_version != new_version
    assert [p.name for p in (project / "vendor").iterdir()] == [new.name]
    text = (project / "pyproject.toml").read_text()
    assert f"ml-workflows=={old_version}" not in text and "vendor/ml_workflows-2099.1.1-py3-none-any.whl" in text
    assert "ml-workflows==2099.1.1" in text or "ml-workflows[mlflow]==2099.1.1" in text
    # The runtime's entry left poetry.lock (Poetry would keep its old hash): what `make upgrade-runtime` re-locks next,
    # and what the pin guard names until then. Every other locked package stays.
    lock = (project / "poetry.lock").read_text()
    assert 'name = "ml-workflows"' not in lock and 'name = "prefect"' in lock
    assert pins.check(project).problems == [
        "poetry.lock:0: records no ml-workflows, which pyproject.toml pins: make lock"
    ]


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda w, d: d / "something-else.whl", "is not an ml-workflows wheel"),
        (lambda w, d: release(w, "2099.1.1", d), "sha256"),
    ],
)
def test_a_wrong_wheel_or_digest_changes_nothing(project, tmp_path, make_bad, message):
    [current] = sorted((project / "vendor").glob("ml_workflows-*.whl"))
    before = (project / "pyproject.toml").read_text()
    bad = make_bad(current, tmp_path)
    if not bad.exists():
        bad.write_bytes(current.read_bytes())
    with pytest.raises(upgrade.UpgradeError, match=message):
        upgrade.upgrade(project, str(bad), sha256="0" * 64)
    assert (project / "pyproject.toml").read_text() == before
    assert sorted((project / "vendor").glob("*.whl")) == [current]


def test_a_wheel_whose_metadata_is_another_version_is_refused(project, tmp_path):
    [current] = sorted((project / "vendor").glob("ml_workflows-*.whl"))
    forged = tmp_path / "ml_workflows-2099.1.1-py3-none-any.whl"
    shutil.copy2(current, forged)  # the old release under a new name
    with pytest.raises(upgrade.UpgradeError, match="not a complete ml-workflows wheel|is not ml-workflows"):
        upgrade.upgrade(project, str(forged))
