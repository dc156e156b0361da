"""Dockerfile, prefect.yaml, CI workflow and the lock export agree with each other and pass their linters."""

import ast
import hashlib
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from ml_workflows import names
from ml_workflows.deploy import commands as deploy
from ml_workflows.deploy import pins
from ml_workflows.deploy import requirements as locked_requirements
from ml_workflows.project import current, root

PROJECT = root()  # the project the tests run in (its directory is the working directory)
BIN = Path(sys.executable).parent
CODE_SOURCE = current().code_source
CI_WORKFLOW = PROJECT / ".github" / "workflows" / "ci.yml"  # generated with ci = github only


def _image_dask_version() -> str:
    """The Dask release of the project image: the Dockerfile's FROM ghcr.io/dask/dask:<dask>-py<python> tag."""
    text = (PROJECT / "Dockerfile").read_text()
    line = next(line for line in text.splitlines() if line.strip().upper().startswith("FROM "))
    tag = pins.IMAGE_TAG_RE.match(pins.IMAGE_RE.search(line)["tag"])
    assert tag, line
    return tag["dask"]


def test_dockerfile_is_hadolint_clean():
    proc = subprocess.run([str(BIN / "hadolint"), "Dockerfile"], cwd=PROJECT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_the_lock_as_non_root_and_checks_the_pins():
    text = (PROJECT / "Dockerfile").read_text()
    assert re.search(r"^FROM ghcr\.io/dask/dask:\d{4}\.\d+\.\d+-py3\.\d+$", text, re.M)  # literal tag
    assert "--require-hashes" in text and re.search(r"pins(\.py)? --root /opt/project --env", text)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    copied = set(re.findall(r"^COPY (.+) \S+$", text, re.M))
    allowed = (PROJECT / ".dockerignore").read_text()
    for sources in copied:
        for source in sources.split():
            top = source.split("/")[0]
            assert f"!{top}" in allowed, f"{source} is copied but excluded by .dockerignore"


def test_lock_export_matches_the_installed_environment():
    """Every exported (main group) requirement has hashes and is exactly what Poetry installed from the lock."""
    lock = tomllib.loads((PROJECT / "poetry.lock").read_text())
    lines = locked_requirements.requirements(lock)
    pinned = {}
    for entry in lines:
        spec, *hashes = [part.strip() for part in entry.split("\\\n")]
        assert hashes and all(h.startswith("--hash=sha256:") for h in hashes), entry
        if spec.startswith("./"):  # the vendored runtime wheel: pip checks the file against the lock's hash
            wheel = PROJECT / spec
            assert hashes == [f"--hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"], entry
            name, version = wheel.name.split("-")[:2]
            pinned[name.replace("_", "-")] = version
            continue
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate():
            pinned[req.name.lower()] = str(req.specifier).removeprefix("==")
    dask = _image_dask_version()
    assert pinned["dask"] == pinned["distributed"] == dask
    assert "pytest" not in pinned and "pulumi" not in pinned  # dev and infra groups stay out of the image
    assert pinned["ml-workflows"] == metadata.version("ml-workflows")  # the runtime, from vendor/
    for name, version in pinned.items():
        assert metadata.version(name) == version, name


def test_prefect_yaml_matches_the_deploy_code_and_the_image():
    config = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
    # prefect.yaml records the Prefect range it was written for: the one the runtime requires and this env has.
    prefect = next(r for r in map(Requirement, metadata.requires("ml-workflows")) if r.name == "prefect")
    assert SpecifierSet(config["prefect-version"]) == prefect.specifier, (config["prefect-version"], prefect)
    assert SpecifierSet(config["prefect-version"]).contains(metadata.version("prefect"))
    deployments = {(d["entrypoint"], d["name"]): d for d in config["deployments"]}
    assert len(deployments) == len(config["deployments"])  # one deployment per flow and name
    flows_file = PROJECT / "src" / Path(*current().package.split(".")) / "flows.py"
    functions = {n.name for n in ast.walk(ast.parse(flows_file.read_text())) if isinstance(n, ast.FunctionDef)}
    workdir = re.search(r"^WORKDIR (\S+)", (PROJECT / "Dockerfile").read_text(), re.M)[1]
    pulls = config["definitions"]["pull"]
    if CODE_SOURCE == "git":  # clone, then run from the clone; every deployment, the local one too
        assert set(pulls) == {"git"}
        expected = pulls["git"]
        assert [next(iter(step)) for step in expected] == [
            "ml_workflows.git_checkout.writable_directory",  # the image's workdir is root's
            "prefect.deployments.steps.set_working_directory",
            "ml_workflows.git_checkout.git_access_token",
            "prefect.deployments.steps.git_clone",
            "ml_workflows.git_checkout.use_checkout",
        ]
        # What the pull steps read reaches the flow run through each deployment's job variables, which
        # `prefect deploy` resolves from make deploy's environment (deploy.git_source).
        git_env = {
            "PIPELINE_GIT_REPOSITORY": "{{ $PIPELINE_GIT_REPOSITORY }}",
            "PIPELINE_GIT_BRANCH": "{{ $PIPELINE_GIT_BRANCH }}",
            "PIPELINE_GIT_TOKEN_BLOCK": "{{ $PIPELINE_GIT_TOKEN_BLOCK }}",
        }
        assert set(git_env) == set(deploy.git_source({"PIPELINE_GIT_REPOSITORY": "https://example.invalid/r.git"}))
        for d in deployments.values():
            assert d["work_pool"]["job_variables"]["env"] == git_env, d["name"]
    else:  # the code baked into the image
        assert set(pulls) == {"image"}
        expected = pulls["image"]
        assert expected == [{"prefect.deployments.steps.set_working_directory": {"directory": workdir}}]
    for name, d in deployments.items():
        # A module entrypoint: Dask workers import the flow's tasks by module name.
        module, function = d["entrypoint"].split(":")
        assert module == f"{current().package}.flows" and function in functions, name
        if d["work_pool"]["name"] == deploy.ECS_POOL_IN_PREFECT_YAML:
            assert d["pull"] == expected, name
            assert d["name"] == names.AWS_DEPLOYMENT_IN_PREFECT_YAML, name  # aws-<stack>
        else:
            assert d["work_pool"]["name"] == names.local_pool(), name
            assert d.get("pull") == (expected if CODE_SOURCE == "git" else None), name
            assert d["name"] == names.LOCAL_DEPLOYMENT, name
    aws = names.AWS_DEPLOYMENT_IN_PREFECT_YAML
    ecs = {d["entrypoint"].split(":")[1] for d in deployments.values() if d["name"] == aws}
    assert ecs == set(names.AWS_FLOWS)  # what `make destroy` deletes (deploy.ecs_deployments)
    assert any(d.get("schedules") for d in deployments.values())
    assert (f"{current().package}.flows:batch_pipeline", names.LOCAL_DEPLOYMENT) in deployments


@pytest.mark.skipif(not CI_WORKFLOW.exists(), reason="generated without CI (ci = none): no .github/workflows/ci.yml")
def test_ci_workflow_is_valid_and_runs_the_checks():
    workflow = CI_WORKFLOW
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    steps = [step.get("run", "") for step in jobs["test"]["steps"]]
    for command in ("make check-pins", "make lint", "make lint-docker", "make test", "make rehearse"):
        assert command in steps
    assert "make deploy" in [step.get("run", "") for step in jobs["deploy"]["steps"]]
    assert "${{" in workflow.read_text()  # GitHub expressions survived the bake
