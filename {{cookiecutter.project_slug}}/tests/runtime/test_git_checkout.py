"""Code from git: a checkout's package reaches Dask worker processes and is imported from there first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from {{ cookiecutter.package_name }}.runtime import git_checkout

PACKAGE = Path(git_checkout.__file__).parents[1]


def _marker() -> str:
    from {{ cookiecutter.package_name }} import shipped_marker  # only in the checkout, not installed

    return shipped_marker.WHERE


def test_checkout_code_is_shipped_to_worker_processes(tmp_path, monkeypatch):
    src = tmp_path / "clone" / "src"
    shutil.copytree(PACKAGE, src / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    (src / PACKAGE.name / "shipped_marker.py").write_text('WHERE = "from the checkout"\n')
    monkeypatch.setenv(git_checkout.ENV_CODE_DIR, str(src))
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1") as lc,
        Client(lc) as client,
    ):
        assert git_checkout.ship_to_workers(client) == str(src)
        [origin] = client.run(git_checkout.package_origin).values()
        assert origin.endswith("project-code") and origin != str(PACKAGE.parent)
        assert client.submit(_marker, pure=False).result() == "from the checkout"
    monkeypatch.delenv(git_checkout.ENV_CODE_DIR)
    assert git_checkout.ship_to_workers(client) is None  # not run from a checkout: nothing is sent


def test_deploy_takes_the_repository_from_the_environment_then_the_checkout(tmp_path):
    from {{ cookiecutter.package_name }}.deploy.commands import git_source

    env = {git_checkout.ENV_REPOSITORY: "https://example.invalid/r.git", git_checkout.ENV_BRANCH: "dev"}
    assert git_source(env, cwd=tmp_path) == env
    with pytest.raises(RuntimeError, match=git_checkout.ENV_REPOSITORY):
        git_source({}, cwd=tmp_path)  # not a git checkout, no repository given
