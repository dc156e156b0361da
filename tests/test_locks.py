"""Reproducible bakes: each bake gets the poetry.lock the template's CI proved for its answers, and the answer sets
the template is proven with cover every value (tools/locks.py, tools/answer_matrix.py)."""

import hashlib
import itertools
import re
import tomllib
import zipfile
from pathlib import Path

import answer_matrix  # tools/, on sys.path through tests.baked
import locks
import pytest

from tests.baked import CONTEXT, TEMPLATE, bake

LOCK_FILES = sorted(locks.LOCKS.glob("*.lock"))
RUNTIME_WHEEL = f"vendor/ml_workflows-{CONTEXT['_runtime_version']}-py3-none-any.whl"


def fresh(project_path: Path) -> bool:
    return locks.is_fresh(project_path, project_path / "poetry.lock")


def test_every_offered_answer_set_has_a_fresh_lock_and_no_other_lock_is_shipped(tmp_path):
    assert len(locks.combinations()) == len(LOCK_FILES) >= 6, [p.name for p in LOCK_FILES]
    assert list(locks.check(tmp_path)) == []


@pytest.mark.parametrize("lock", LOCK_FILES, ids=[p.name for p in LOCK_FILES])
def test_a_shipped_lock_names_no_package_index(lock):
    """Locked against Poetry's default source: one `[package.source]` only, the runtime wheel vendored with the
    project (a path inside the bake, no address), and no URL of a file; the hash it records is that wheel's."""
    text = lock.read_text()
    assert text.count("[package.source]") == 1, "a package source other than the vendored runtime (a mirror?)"
    assert re.findall(r"^url = .*$", text, re.M) == [f'url = "{RUNTIME_WHEEL}"']
    data = tomllib.loads(text)
    sources = {p["name"]: p["source"] for p in data["package"] if "source" in p}
    assert sources == {"ml-workflows": {"type": "file", "url": RUNTIME_WHEEL}}
    assert all("url" not in f for p in data["package"] for f in p.get("files", []))
    assert all(p.get("files") for p in data["package"]), "every package locked with its files' hashes"
    (runtime,) = [p for p in data["package"] if p["name"] == "ml-workflows"]
    assert runtime["version"] == CONTEXT["_runtime_version"]
    wheel = (locks.PROJECT / RUNTIME_WHEEL).read_bytes()
    assert runtime["files"] == [
        {"file": Path(RUNTIME_WHEEL).name, "hash": f"sha256:{hashlib.sha256(wheel).hexdigest()}"}
    ], "the lock's hash of the runtime is not the vendored wheel's: python tools/locks.py write"


def test_a_bake_installs_its_answers_lock_byte_for_byte_and_carries_no_other(cookies):
    project = bake(cookies, python_version="3.13", tracking="mlflow")
    shipped = locks.LOCKS / "2026.7.1-py3.13-mlflow.lock"
    assert (project.path / "poetry.lock").read_bytes() == shipped.read_bytes()
    assert not (project.path / ".locks").exists()
    assert fresh(project.path)


def test_a_lock_is_stale_once_the_vendored_runtime_wheel_changes(cookies):
    """The runtime wheel is part of what a lock proves: another wheel under the same name (runtime/src rebuilt without
    `make locks`) leaves pyproject.toml as it was, yet the lock is stale."""
    project = bake(cookies)
    assert fresh(project.path)
    with zipfile.ZipFile(project.path / RUNTIME_WHEEL, "a") as wheel:
        wheel.writestr("ml_workflows/extra.py", "CHANGED = True\n")
    assert not fresh(project.path)


@pytest.mark.parametrize("row", answer_matrix.pairwise(), ids=lambda row: "-".join(str(v) for v in row.values()))
def test_no_answer_but_the_lock_answers_changes_the_dependencies(cookies, row):
    """Every bake of the pairwise matrix gets a lock that is fresh for its pyproject.toml: an answer outside
    LOCK_ANSWERS that changed the dependencies would make its bake's lock stale here."""
    project = bake(cookies, **row)
    assert fresh(project.path), f"{row}: poetry.lock is stale for this bake's pyproject.toml"


def test_the_hook_warns_and_bakes_on_when_no_lock_is_shipped(tmp_path):
    (tmp_path / locks.HOOK.LOCKS_DIR).mkdir()
    answers = {"dask_version": "2099.1.0", "python_version": "3.12", "tracking": "none"}
    assert locks.HOOK.install_lock(tmp_path, answers) is False
    assert not (tmp_path / "poetry.lock").exists() and not (tmp_path / locks.HOOK.LOCKS_DIR).exists()


def test_the_pairwise_matrix_covers_every_pair_of_values_and_starts_with_the_defaults():
    dims = answer_matrix.dimensions()
    assert {"python_version", "tracking", "prefect_worker", "code_source", "use_fargate_spot"} <= set(dims)
    rows = answer_matrix.pairwise()
    assert rows[0] == answer_matrix.answers_of({})
    for a, b in itertools.combinations(dims, 2):
        seen = {(row[a], row[b]) for row in rows}
        assert seen == set(itertools.product(dims[a], dims[b])), (a, b)
    assert len(rows) <= 2 * max(len(v) for v in dims.values()) ** 2  # small: a matrix job each


def test_the_bakes_ci_runs_whole_cover_every_value_of_every_answer():
    """Each value is in a bake whose own lint, tests and cloud rehearsal run in .ci/run."""
    bakes = [answer_matrix.answers_of(b) for b in answer_matrix.CI_BAKES.values()]
    for name, values in answer_matrix.dimensions().items():
        assert {b[name] for b in bakes} == set(values), name
    ci_tests = (TEMPLATE / "tests" / "test_generated_project.py").read_text() + (
        TEMPLATE / "tests" / "test_rehearsal.py"
    ).read_text()
    for name in answer_matrix.CI_BAKES:
        assert f'CI_BAKES["{name}"]' in ci_tests or name == "default", f"no CI test installs the {name} bake"


def test_make_install_refuses_a_lock_that_no_longer_matches_and_installs_nothing(cookies):
    """Real Poetry: after an edit of the dependencies `make install` names `make lock` instead of re-locking (which
    would move versions on its own); without a lock it says how to get one back."""
    project = bake(cookies)
    pyproject = project.path / "pyproject.toml"
    edited = pyproject.read_text().replace('    "scikit-learn>=1.6",\n', '    "scikit-learn>=1.6",\n    "tabulate",\n')
    assert '"tabulate"' in edited
    pyproject.write_text(edited)
    proc = project.make("install", check=False)
    assert proc.returncode != 0
    assert "pyproject.toml's dependencies changed since poetry.lock was written: make lock" in proc.stdout
    assert not list((project.path / ".venv").glob("lib/python*/site-packages/dask")), "installed despite the refusal"
    (project.path / "poetry.lock").unlink()
    proc = project.make("install", check=False)
    assert proc.returncode != 0 and "poetry.lock is missing: git checkout poetry.lock restores it" in proc.stdout
