"""Slow: baked projects are installed with Poetry and run their own commands, as a user would."""

import pytest

from tests.baked import BakedProject

pytestmark = pytest.mark.slow

NON_DEFAULT = {
    "project_name": "Churn Model",
    "python_version": "3.13",
    "aws_region": "eu-west-1",
    "vpc_cidr": "172.20.0.0/20",
    "dask_access_cidr": "203.0.113.0/24",
    "nat_strategy": "per-az",
    "use_fargate_spot": False,
    "worker_vcpus": "2",
    "max_workers": "16",
    "log_retention_days": "90",
    "ci": "none",
}


@pytest.mark.xdist_group("installed")
def test_default_project_passes_its_own_checks(installed_project: BakedProject):
    installed_project.make("check-pins")
    installed_project.make("lint")
    proc = installed_project.make("test")
    assert " passed" in proc.stdout and " failed" not in proc.stdout


@pytest.mark.xdist_group("installed")
def test_default_project_runs_its_sample_pipeline(installed_project: BakedProject):
    proc = installed_project.make("run")
    out = proc.stdout
    assert "quarantined" in out.lower(), out[-3000:]
    assert "predictions" in out.lower(), out[-3000:]


@pytest.mark.xdist_group("non-default")
def test_non_default_project_installs_and_passes_its_tests(cookies_session):
    result = cookies_session.bake(extra_context=NON_DEFAULT)
    assert result.exception is None, result.exception
    project = BakedProject(result.project_path, result.context)
    assert project.read(".python-version").strip() == "3.13"
    project.make("install")
    project.make("check-pins")
    project.make("lint")
    proc = project.make("test")
    assert " passed" in proc.stdout and " failed" not in proc.stdout
