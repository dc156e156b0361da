"""Baking the template: file sets, every choice, every supported version pair, lint-clean output."""

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.baked import CONTEXT, JINJA_LEFTOVER, TEMPLATE, bake, project_files, supported_pairs

TEMPLATE_PROJECT = TEMPLATE / "{{cookiecutter.project_slug}}"
CONTEXT_DEFAULT_PACKAGE = "batch_scoring"
RUFF = Path(sys.executable).parent / "ruff"

# The default bake, file by file, written out by hand: a stray file in the template, or one the
# post-gen hook forgot to prune, fails the bake tests. `{package}` is the package name.
DEFAULT_FILES = {
    ".cruft.json",
    ".dockerignore",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".python-version",
    "Dockerfile",
    "Makefile",
    "README.md",
    "poetry.lock",  # the template's shipped lock for these answers (hooks/post_gen_project.py: install_lock)
    "RELIABILITY.md",
    "automations.yaml",
    "conftest.py",
    "infrastructure/Pulumi.yaml",
    "infrastructure/__main__.py",
    "infrastructure/infra/__init__.py",
    "infrastructure/infra/compute.py",
    "infrastructure/infra/identity.py",
    "infrastructure/infra/log_retention_days.json",
    "infrastructure/infra/logs.py",
    "infrastructure/infra/network.py",
    "infrastructure/infra/registry.py",
    "infrastructure/infra/settings.py",
    "infrastructure/infra/stack.py",
    "infrastructure/infra/storage.py",
    "infrastructure/policy/PulumiPolicy.yaml",
    "infrastructure/policy/__main__.py",
    "infrastructure/policy/rules.py",
    "infrastructure/preflight.py",
    "infrastructure/tests/conftest.py",
    "infrastructure/tests/infra_harness.py",
    "infrastructure/tests/test_iam_audit.py",
    "infrastructure/tests/test_infra_policy_rules.py",
    "infrastructure/tests/test_infra_preflight.py",
    "infrastructure/tests/test_infra_stack.py",
    "prefect.yaml",
    "pyproject.toml",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/deploy/__init__.py",
    "src/{package}/deploy/__main__.py",
    "src/{package}/deploy/automations.py",
    "src/{package}/deploy/commands.py",
    "src/{package}/deploy/pins.py",
    "src/{package}/deploy/rehearsal.py",
    "src/{package}/deploy/requirements.py",
    "src/{package}/deploy/work_pool.py",
    "src/{package}/flows.py",
    "src/{package}/model.py",
    "src/{package}/runtime/__init__.py",
    "src/{package}/runtime/cancel.py",
    "src/{package}/runtime/cli.py",
    "src/{package}/runtime/cluster.py",
    "src/{package}/runtime/columns.py",
    "src/{package}/runtime/drift.py",
    "src/{package}/runtime/cost.py",
    "src/{package}/runtime/fargate.py",
    "src/{package}/runtime/model_store.py",
    "src/{package}/runtime/names.py",
    "src/{package}/runtime/notifications.py",
    "src/{package}/runtime/prefect_api.py",
    "src/{package}/runtime/promotion.py",
    "src/{package}/runtime/prices.json",
    "src/{package}/runtime/quality.py",
    "src/{package}/runtime/reports.py",
    "src/{package}/runtime/scoring.py",
    "src/{package}/runtime/settings.py",
    "src/{package}/runtime/steps.py",
    "src/{package}/runtime/storage.py",
    "src/{package}/runtime/validation.py",
    "src/{package}/sample_data.py",
    "src/{package}/schema.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/deploy/__init__.py",
    "tests/deploy/aws_emulation.py",
    "tests/deploy/iam_scope.py",
    "tests/deploy/cloud_rehearsal.py",
    "tests/deploy/conftest.py",
    "tests/deploy/ecs_tasks.py",
    "tests/deploy/image.py",
    "tests/deploy/netguard/sitecustomize.py",
    "tests/deploy/test_cloud_rehearsal.py",
    "tests/deploy/test_cloud_rehearsal_units.py",
    "tests/deploy/test_deploy.py",
    "tests/deploy/test_deploy_files.py",
    "tests/deploy/test_fargate_wiring.py",
    "tests/deploy/test_image.py",
    "tests/deploy/test_names.py",
    "tests/deploy/test_pins.py",
    "tests/deploy/test_rehearsal.py",
    "tests/deploy/s3_actions.py",
    "tests/deploy/test_s3_actions.py",
    "tests/deploy/test_security.py",
    "tests/runtime/__init__.py",
    "tests/runtime/faults.py",
    "tests/runtime/test_cost.py",
    "tests/runtime/test_faults.py",
    "tests/runtime/test_fixed_cost.py",
    "tests/runtime/test_lifecycle.py",
    "tests/runtime/test_memory.py",
    "tests/runtime/test_reports_notifications.py",
    "tests/runtime/test_units.py",
    "tests/test_pipeline.py",
    "tests/test_seam.py",
}
# Files only some answers generate, and files some answers remove.
ONLY_WITH = {
    ("code_source", "git"): {"src/{package}/runtime/git_checkout.py", "tests/runtime/test_git_checkout.py"},
    ("tracking", "mlflow"): {"src/{package}/runtime/tracking.py", "tests/runtime/test_tracking.py"},
    ("prefect_worker", "True"): {"infrastructure/infra/worker.py"},
}
REMOVED_BY = {
    ("ci", "none"): {".github/workflows/ci.yml", ".github/dependabot.yml"},
}

# Non-default answers, one at a time (every choice value, plus free-form answers), each with the files that
# must differ from the default bake because of it and, where one is telling, a text the answer must put there.
# An answer the template ignored leaves its files as in the default bake and fails here.
PKG = "src/{package}"
VARIATIONS = [
    (
        {"python_version": "3.11"},
        {
            ".python-version": "3.11",
            "Dockerfile": "-py3.11",
            "pyproject.toml": ">=3.11,<3.12",
            ".github/workflows/ci.yml": '"3.11"',
        },
    ),
    (
        {"python_version": "3.13"},
        {
            ".python-version": "3.13",
            "Dockerfile": "-py3.13",
            "pyproject.toml": ">=3.13,<3.14",
            ".github/workflows/ci.yml": '"3.13"',
        },
    ),
    (
        {"nat_strategy": "per-az"},
        {"infrastructure/Pulumi.yaml": "default: per-az", f"{PKG}/runtime/cost.py": "NAT_GATEWAYS = 2"},
    ),
    (
        {"use_fargate_spot": False},
        {
            "infrastructure/Pulumi.yaml": "default: false",
            f"{PKG}/runtime/cost.py": "USE_FARGATE_SPOT = False",
            f"{PKG}/runtime/fargate.py": "USE_FARGATE_SPOT = False",
        },
    ),
    (
        {"worker_vcpus": "2"},
        {f"{PKG}/runtime/cost.py": "WORKER_VCPUS = 2", f"{PKG}/runtime/fargate.py": "WORKER_VCPUS = 2"},
    ),
    (
        {"worker_vcpus": "4"},
        {f"{PKG}/runtime/cost.py": "WORKER_VCPUS = 4", f"{PKG}/runtime/fargate.py": "WORKER_VCPUS = 4"},
    ),
    ({"log_retention_days": "7"}, {"infrastructure/Pulumi.yaml": "default: 7"}),
    ({"log_retention_days": "365"}, {"infrastructure/Pulumi.yaml": "default: 365"}),
    ({"log_retention_days": "3653"}, {"infrastructure/Pulumi.yaml": "default: 3653"}),
    ({"ci": "none"}, {"README.md": None}),
    (
        {"code_source": "git"},
        {
            "prefect.yaml": "git_clone",
            f"{PKG}/deploy/commands.py": "def git_source(",
            f"{PKG}/runtime/cluster.py": "ship_to_workers",
            "README.md": None,
            ".github/workflows/ci.yml": "PIPELINE_GIT_BRANCH: ${{ github.ref_name }}",
        },
    ),
    (
        {"tracking": "mlflow"},
        {
            "pyproject.toml": '"mlflow-skinny',
            f"{PKG}/runtime/steps.py": "log_training(",
            "tests/conftest.py": "PIPELINE_MLFLOW_TRACKING_URI",
            "README.md": None,
        },
    ),
    (
        {"prefect_worker": False},
        {
            "infrastructure/Pulumi.yaml": "default: false",
            "infrastructure/infra/settings.py": "prefect_worker: bool = False",
            "infrastructure/infra/stack.py": None,
            "infrastructure/tests/test_infra_stack.py": "def test_no_worker_resources_in_this_project",
            f"{PKG}/deploy/commands.py": "PREFECT_WORKER_IN_STACK = False",
            "tests/deploy/test_deploy.py": "def test_readme_worker_policy_is_the_code_s",
            "README.md": '"Sid": "PassOnlyTheFlowRunRoles"',
        },
    ),
    (
        {"aws_region": "eu-west-1"},
        {
            "infrastructure/Pulumi.yaml": "aws:region: eu-west-1",
            f"{PKG}/runtime/fargate.py": '"eu-west-1"',
            ".github/workflows/ci.yml": "eu-west-1",
        },
    ),
    (
        {"vpc_cidr": "172.20.0.0/20", "dask_access_cidr": "172.20.0.0/20"},
        {"infrastructure/Pulumi.yaml": "default: 172.20.0.0/20"},
    ),
    ({"dask_access_cidr": "203.0.113.7/32"}, {"infrastructure/Pulumi.yaml": "default: 203.0.113.7/32"}),
    (
        {"max_workers": "32"},
        {f"{PKG}/runtime/fargate.py": "MAX_WORKERS = 32", f"{PKG}/runtime/cost.py": "MAX_WORKERS = 32"},
    ),
    (
        {"project_name": "Churn Model", "author_name": "Ana Lytics", "author_email": "ana@corp.example"},
        {
            "pyproject.toml": '"Ana Lytics", email = "ana@corp.example"',
            "README.md": "# Churn Model",
            "prefect.yaml": "name: churn-model",
            "infrastructure/Pulumi.yaml": "name: churn-model",
        },
    ),
]


def expected_files(context: dict) -> set[str]:
    """The default file list, plus and minus what these answers add and remove."""
    files = set(DEFAULT_FILES)
    for (field, value), paths in ONLY_WITH.items():
        if str(context[field]) != value:
            files -= paths
        else:
            files |= paths
    for (field, value), paths in REMOVED_BY.items():
        if str(context[field]) == value:
            files -= paths
    return {f.format(package=context["package_name"]) for f in files}


def test_the_file_lists_name_only_template_files():
    """Every listed file exists in the template (a renamed or deleted file must be taken off the lists too)."""
    listed = set(DEFAULT_FILES).union(*ONLY_WITH.values()) - {".cruft.json", "poetry.lock"}  # written by the hook
    for rel in listed:
        path = TEMPLATE_PROJECT / rel.replace("{package}", "{{cookiecutter.package_name}}")
        assert path.is_file(), f"{rel} is listed but not in the template"


def assert_clean(project) -> None:
    """No unrendered Jinja, Python that compiles, TOML that parses, ruff-clean."""
    answers = [str(v) for k, v in project.context.items() if not k.startswith("_") and isinstance(v, str)]
    for rel in project_files(project.path):
        text = (project.path / rel).read_text()
        # An answer may legitimately contain braces: it is data, not template. A match that lies
        # inside where an answer was written is no leftover (removing the answers from the text
        # instead could break the allowed Prefect placeholders and flag them).
        written = [
            range(m.start(), m.end()) for answer in answers if answer for m in re.finditer(re.escape(answer), text)
        ]
        leftovers = [
            m.group()
            for m in JINJA_LEFTOVER.finditer(text)
            if not any(m.start() in span and m.end() - 1 in span for span in written)
        ]
        assert not leftovers, f"unrendered Jinja in {rel}: {leftovers}"
        if rel.endswith(".py"):
            compile((project.path / rel).read_text(), rel, "exec")
        if rel.endswith(".toml"):
            tomllib.loads((project.path / rel).read_text())
        if rel.endswith((".yaml", ".yml")):
            yaml.safe_load((project.path / rel).read_text())
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(RUFF), *args], cwd=project.path, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"


def test_default_bake(cookies):
    project = bake(cookies)
    assert project.path.name == "batch-scoring"
    assert project.package == "batch_scoring"
    assert project_files(project.path) == expected_files(project.context)
    assert ".github/workflows/ci.yml" in project_files(project.path)
    assert project.read("Dockerfile").count("FROM ghcr.io/dask/dask:2026.7.1-py3.12") == 1
    assert project.read(".python-version").strip() == "3.12"
    meta = tomllib.loads(project.read("pyproject.toml"))["project"]
    assert meta["requires-python"] == ">=3.12,<3.13"
    assert "dask[dataframe]==2026.7.1" in meta["dependencies"]
    assert "distributed==2026.7.1" in meta["dependencies"]
    assert_clean(project)


def test_leftover_check_sees_past_short_answers_and_catches_real_leftovers(cookies):
    project = bake(cookies, description="b")  # "b" occurs inside allowed placeholders such as {{ webhook_url }}
    assert_clean(project)
    readme = project.path / "README.md"
    readme.write_text(readme.read_text() + "\n{{ cookiecutter.forgotten }}\n")
    with pytest.raises(AssertionError, match="unrendered Jinja in README.md"):
        assert_clean(project)


@pytest.fixture(scope="module")
def default_bake(cookies_session):
    result = cookies_session.bake()
    assert result.exception is None, result.exception
    return Path(result.project_path)


@pytest.mark.parametrize(
    ("answers", "must_change"), VARIATIONS, ids=[",".join(f"{k}={v}" for k, v in a.items()) for a, _ in VARIATIONS]
)
def test_each_answer_varied_alone(cookies, default_bake, answers, must_change):
    project = bake(cookies, **answers)
    assert project_files(project.path) == expected_files(project.context)
    for rel, text in sorted(must_change.items()):
        mine = project.read(rel.format(package=project.package))
        theirs = (default_bake / rel.format(package=CONTEXT_DEFAULT_PACKAGE)).read_text()
        assert mine != theirs, f"{answers}: {rel} is the same as in the default bake: the answer was ignored"
        assert text is None or text in mine, f"{answers}: {rel} lacks {text!r}"
    assert_clean(project)


def test_tracking_none_leaves_no_mlflow_behind(cookies):
    """tracking = none (the default): no MLflow code, dependency or mention anywhere in the bake."""
    project = bake(cookies)
    assert project.context["tracking"] == "none"
    mentions = [rel for rel in sorted(project_files(project.path)) if "mlflow" in project.read(rel).lower()]
    assert mentions == []
    with_mlflow = bake(cookies, tracking="mlflow")
    assert "mlflow" in with_mlflow.read(f"src/{with_mlflow.package}/runtime/tracking.py")


@pytest.mark.parametrize("tracking", ["none", "mlflow"])
def test_generated_tests_shed_the_callers_make_flags_and_environment(cookies, tracking):
    """The baked root conftest.py, run in a child with a hostile environment, leaves none of it behind.

    (The whole generated suite runs under such an environment in test_generated_project.py.)
    """
    project = bake(cookies, tracking=tracking)
    hostile = {
        "MAKEFLAGS": "s",
        "MAKELEVEL": "1",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "AWS_PROFILE": "hostile-no-such-profile",
        "PIPELINE_CLUSTER": "fargate",
        "POETRY_VIRTUALENVS_CREATE": "false",
        "PULUMI_BACKEND_URL": "file://nowhere",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    code = "import json, os, runpy; runpy.run_path('conftest.py'); print(json.dumps(dict(os.environ)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project.path, env={**os.environ, **hostile}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    left = json.loads(proc.stdout)
    kept = {"MLFLOW_S3_ENDPOINT_URL"} if tracking == "none" else set()  # no MLflow in such a project
    assert {k for k in hostile if k in left} == kept
    assert left["AWS_EC2_METADATA_DISABLED"] == "true" and left["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_ci_none_prunes_the_workflow(cookies):
    project = bake(cookies, ci="none")
    assert not (project.path / ".github").exists()


@pytest.mark.parametrize(("dask", "python"), supported_pairs(), ids=lambda v: str(v))
def test_every_supported_pair_gets_its_image(cookies, dask, python):
    project = bake(cookies, dask_version=dask, python_version=python)
    from_lines = [line for line in project.read("Dockerfile").splitlines() if line.startswith("FROM ")]
    assert from_lines == [f"FROM ghcr.io/dask/dask:{dask}-py{python}"]
    assert project.read(".python-version").strip() == python
    minor = int(python.split(".")[1])
    assert tomllib.loads(project.read("pyproject.toml"))["project"]["requires-python"] == f">={python},<3.{minor + 1}"


def test_files_copied_without_rendering_hold_no_jinja():
    """`_copy_without_render` saves the bake a Jinja compile per file; it may list plain files only."""
    root = TEMPLATE / "{{cookiecutter.project_slug}}"
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for pattern in CONTEXT["_copy_without_render"]:
        matched = [rel for rel in files if fnmatch.fnmatch(rel, pattern)]
        assert matched, f"{pattern!r} in _copy_without_render matches no template file"
        for rel in matched:
            assert not re.search(r"\{\{|\{%|\{#", (root / rel).read_text()), (
                f"{rel} has Jinja but is copied without rendering: take {pattern!r} out of _copy_without_render"
            )


def test_supported_table_is_consistent():
    assert CONTEXT["python_version"][0] == "3.12"  # the documented default
    assert set(CONTEXT["python_version"]) == set(CONTEXT["_supported_python"])
    assert CONTEXT["dask_version"] in CONTEXT["_dask_images"]
    assert supported_pairs(), "no (dask, python) pair is bakeable"


def test_supported_table_matches_the_upstream_image_build():
    """_dask_images lists, per release, exactly the Pythons dask-docker builds images for; the default is its
    newest tag; the README says which published Pythons are not offered, and why."""
    upstream = json.loads((TEMPLATE / "tests" / "data" / "dask-docker-builds.json").read_text())
    for release, pythons in CONTEXT["_dask_images"].items():
        assert release in upstream["builds"], f"dask-docker has no {release} tag: no image"
        assert pythons == upstream["builds"][release]["python"], release
    assert CONTEXT["dask_version"] == upstream["newest_tag"]
    readme = (TEMPLATE / "README.md").read_text()
    section = readme.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    for release, pythons in CONTEXT["_dask_images"].items():
        offered = [p for p in pythons if p in CONTEXT["_supported_python"]]
        not_offered = [p for p in pythons if p not in CONTEXT["_supported_python"]]
        row = next(line for line in section.splitlines() if line.startswith(f"| {release} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == ", ".join(pythons) and cells[2] == ", ".join(offered), row
        for python in not_offered:
            assert re.search(rf"{re.escape(python)}: \w+", cells[3]), f"python {python}: no reason given in {row}"
