"""Prefect names unique per project and stack (runtime/names.py), and `make destroy` deleting only its own.

The second test runs on the session's real Prefect server: this project's prefect.yaml is deployed by the real
`prefect deploy --all` for two stacks (as `make deploy` runs it), next to another project's deployment,
automations and pool of the same stack name; the destroy step then runs the real `prefect` CLI commands.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_workflows import names
from ml_workflows.deploy import commands as deploy
from ml_workflows.project import current, root

flows = current().module("flows")
PROJECT = root()  # the project the tests run in (its directory is the working directory)
BIN = Path(sys.executable).parent
SLUG = current().name
OTHER = "another-project"  # a second project in the same Prefect workspace
STACKS = ("staging", "prod")  # not "dev": the session's server holds the dev automations of another test


def test_two_projects_and_two_stacks_get_distinct_names():
    assert [getattr(flows, function).name for function in names.FLOWS] == names.flow_names()
    assert names.flow_names() == [f"{SLUG}-generate", f"{SLUG}-train", f"{SLUG}-score", f"{SLUG}-batch-pipeline"]
    assert names.aws_deployments("dev") == [
        f"{SLUG}-batch-pipeline/aws-dev",
        f"{SLUG}-train/aws-dev",
        f"{SLUG}-score/aws-dev",
    ]
    assert names.local_deployment() == f"{SLUG}-batch-pipeline/local" and names.local_pool() == f"{SLUG}-local"
    owned = {
        (project, stack): {
            *names.aws_deployments(stack, project),
            *names.automations(stack, project),
            names.notify_block(stack, project),
        }
        for project in (SLUG, OTHER)
        for stack in STACKS
    }
    for a, b in itertools.combinations(owned, 2):
        assert not owned[a] & owned[b], (a, b)
    assert not set(names.flow_names()) & set(names.flow_names(OTHER))
    assert names.local_pool() != names.local_pool(OTHER)
    # Stack names as Pulumi allows them become one name token (Prefect block names take [a-z0-9-] only).
    assert names.aws_deployment("Prod_EU.1") == "aws-prod-eu-1" == names.aws_deployment("prod-eu-1")
    with pytest.raises(ValueError, match="no letters or digits"):
        names.stack_key("__")


def test_make_deploy_passes_the_stack_that_names_the_deployments():
    env = deploy.deploy_env("registry.invalid/project:abc", f"{SLUG}-prod-ecs", "prod")
    assert env[names.STACK_ENV] == "prod" and env[deploy.ECS_POOL_ENV] == f"{SLUG}-prod-ecs"
    assert deploy.ecs_deployments("prod") == names.aws_deployments("prod")


def _prefect(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(  # noqa: S603 (this environment's prefect)
        [str(BIN / "prefect"), "--no-prompt", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow  # two `prefect deploy --all` and the destroy step's prefect commands: about a minute
def test_destroy_deletes_only_its_own_stack_s_objects(prefect_server, monkeypatch, capsys):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    from ml_workflows.deploy import automations
    from ml_workflows.notifications import NotifySettings

    api = PREFECT_API_URL.value()
    monkeypatch.setenv("PREFECT_API_URL", api)  # for the prefect CLI commands of the destroy step
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")  # this environment's prefect, as make runs it
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIPELINE_")}
    pools = {(project, stack): f"{project}-{stack}-ecs" for project in (SLUG, OTHER) for stack in STACKS}
    notify = NotifySettings(webhook_url="http://127.0.0.1:9/never-called")
    with get_client(sync_client=True) as client:
        for pool in [*pools.values(), names.local_pool()]:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
        for stack in STACKS:  # this project, both stacks, as `make deploy` deploys prefect.yaml
            stack_env = {**env, **deploy.deploy_env("registry.invalid/project:abc", pools[SLUG, stack], stack)}
            if current().code_source == "git":
                source = {"PIPELINE_GIT_REPOSITORY": "https://git.example.invalid/team/project.git"}
                stack_env |= deploy.git_source({**source, "PIPELINE_GIT_BRANCH": "main"})
            _prefect(["deploy", "--all"], stack_env)
            assert automations.upsert_automations(settings=notify, stack=stack)
        # Another project with a deployment, automations and a pool for a stack of the same name.
        other = names.full_name("batch_pipeline", names.aws_deployment("staging"), OTHER)
        flow_id = client.create_flow_from_name(names.flow_name("batch_pipeline", OTHER))
        client.create_deployment(flow_id, names.aws_deployment("staging"), work_pool_name=pools[OTHER, "staging"])
        assert automations.upsert_automations(settings=notify, stack="staging", project=OTHER)

        def deployment(full_name: str):
            try:
                return client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                return None

        ours = {*names.aws_deployments("staging"), *names.aws_deployments("prod"), names.local_deployment()}
        assert all(deployment(name) for name in ours)
        first = deployment(names.aws_deployments("prod")[0])
        assert first.work_pool_name == pools[SLUG, "prod"]
        if current().code_source == "git":
            # The git source reaches the flow run through the deployment's job variables (resolved when deploying).
            assert first.job_variables["env"] == {
                "PIPELINE_GIT_REPOSITORY": "https://git.example.invalid/team/project.git",
                "PIPELINE_GIT_BRANCH": "main",
                "PIPELINE_GIT_TOKEN_BLOCK": "",
            }

        deploy.delete_prefect_objects("staging", pools[SLUG, "staging"])  # make destroy, before pulumi destroy

        assert [name for name in names.aws_deployments("staging") if deployment(name)] == []
        assert all(deployment(name) for name in [*names.aws_deployments("prod"), names.local_deployment(), other])
        left = {a.name for a in client.read_automations()}
        assert not left & set(names.automations("staging"))
        assert set(names.automations("prod")) | set(names.automations("staging", OTHER)) <= left
        blocks = {}
        for project, stack in [(SLUG, "staging"), (SLUG, "prod"), (OTHER, "staging")]:
            try:
                client.read_block_document_by_name(names.notify_block(stack, project), "custom-webhook")
                blocks[project, stack] = True
            except ObjectNotFound:
                blocks[project, stack] = False
        assert blocks == {(SLUG, "staging"): False, (SLUG, "prod"): True, (OTHER, "staging"): True}
        existing = {p.name for p in client.read_work_pools()}
        assert pools[SLUG, "staging"] not in existing
        assert {pools[SLUG, "prod"], pools[OTHER, "staging"], names.local_pool()} <= existing

        # Clean up what this test created in the session's server.
        for name in [*names.aws_deployments("prod"), names.local_deployment(), other]:
            client.delete_deployment(deployment(name).id)
        for name in [*names.automations("prod"), *names.automations("staging", OTHER)]:
            for found in client.read_automations_by_name(name=name):
                client.delete_automation(found.id)
    out = capsys.readouterr().out
    assert "deployment delete " + names.aws_deployments("staging")[0] in out  # the exact names, printed as run
