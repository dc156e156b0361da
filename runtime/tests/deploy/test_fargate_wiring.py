"""Pulumi outputs -> ECS work pool job template and FargateCluster arguments, checked by what they produce."""

import asyncio
import json
import re

import pytest

from ml_workflows import fargate
from ml_workflows.deploy import stack_config, work_pool
from ml_workflows.project import current

from ..outputs import IMAGE, NAME, OUTPUTS


def test_answers_reach_the_wiring():
    """The project's worker size and cap (its Project) and the stack's region and Spot (its outputs, which say what
    infrastructure/Pulumi.yaml declares) are what FargateCluster is given."""
    project = current()
    kwargs = fargate.fargate_cluster_kwargs(OUTPUTS, IMAGE, 1000, environment={})
    assert kwargs["n_workers"] == project.max_workers
    assert (kwargs["worker_cpu"], kwargs["worker_nthreads"]) == (1024 * project.worker_vcpus, project.worker_vcpus)
    assert kwargs["region_name"] == OUTPUTS["aws_region"] == stack_config.read().region
    assert kwargs["fargate_spot"] is OUTPUTS["use_fargate_spot"] is stack_config.read().fargate_spot
    assert kwargs["tags"] == {"project": project.name}
    elsewhere = fargate.fargate_cluster_kwargs({**OUTPUTS, "aws_region": "eu-west-3"}, IMAGE, 1, environment={})
    assert elsewhere["region_name"] == "eu-west-3"  # the stack's region, whatever this machine's default


@pytest.mark.parametrize("spot", [True, False])
def test_the_stack_s_spot_output_decides_where_the_workers_run(spot):
    kwargs = fargate.fargate_cluster_kwargs({**OUTPUTS, "use_fargate_spot": spot}, IMAGE, 1, environment={})
    assert kwargs["fargate_spot"] is spot


def test_fargate_cluster_kwargs_from_outputs():
    kwargs = fargate.fargate_cluster_kwargs(OUTPUTS, IMAGE, 2, environment={"PIPELINE_DATA_URL": OUTPUTS["data_url"]})
    vcpus = current().worker_vcpus
    name = kwargs.pop("name")
    assert re.fullmatch(rf"{NAME}-dev_[0-9a-f]{{8}}", name), name  # this stack's and this run's (dask_cluster_name)
    assert kwargs == {
        "image": IMAGE,
        "n_workers": min(2, current().max_workers),
        "cluster_arn": OUTPUTS["ecs_cluster_arn"],
        "vpc": "vpc-0123",
        "subnets": ["subnet-priv-a", "subnet-priv-b"],
        "security_groups": ["sg-dask"],
        "fargate_use_private_ip": True,
        "execution_role_arn": OUTPUTS["execution_role_arn"],
        "task_role_arn": OUTPUTS["task_role_arn"],
        "cloudwatch_logs_group": OUTPUTS["log_group_name"],
        "region_name": OUTPUTS["aws_region"],
        "fargate_spot": OUTPUTS["use_fargate_spot"],
        "scheduler_cpu": 1024,
        "scheduler_mem": 4096,
        "scheduler_timeout": fargate.SCHEDULER_IDLE_TIMEOUT,
        "worker_cpu": 1024 * vcpus,
        "worker_mem": 4096 * vcpus,
        "worker_nthreads": vcpus,
        "environment": {"PIPELINE_DATA_URL": OUTPUTS["data_url"]},
        "tags": {"project": current().name},
        "skip_cleanup": True,
    }


def test_the_dask_task_definitions_get_no_prefect_api_url_or_key(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "https://api.prefect.cloud/api/accounts/a/workspaces/w")
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_secret")
    monkeypatch.setenv("PIPELINE_DATA_URL", OUTPUTS["data_url"])
    environment = fargate.fargate_cluster_kwargs(OUTPUTS, IMAGE, 2)["environment"]
    assert environment == {"PIPELINE_DATA_URL": OUTPUTS["data_url"]}
    for name in ("PREFECT_API_KEY", "PREFECT_API_URL"):
        with pytest.raises(ValueError, match=name):
            fargate.fargate_cluster_kwargs(OUTPUTS, IMAGE, 2, environment={name: "x"})


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["dask-scheduler", "--idle-timeout", "20 minutes"], ["dask", "scheduler", "--idle-timeout", "20 minutes"]),
        (
            ["dask-worker", "tcp://1.2.3.4:8786", "--nthreads", "1"],
            ["dask", "worker", "tcp://1.2.3.4:8786", "--nthreads", "1"],
        ),
        (["dask", "worker", "tcp://a:8786"], ["dask", "worker", "tcp://a:8786"]),
        (["prefect", "flow-run", "execute"], ["prefect", "flow-run", "execute"]),
        ([], []),
        (None, None),
    ],
)
def test_dask_cli_command_uses_the_commands_distributed_still_has(command, expected):
    assert fargate.dask_cli_command(command) == expected


def test_register_and_run_task_requests_are_rewritten_other_calls_untouched():
    register = {
        "family": "dask-x",
        "containerDefinitions": [{"name": "x", "command": ["dask-worker", "tcp://s:8786"]}, {"name": "y"}],
    }
    assert fargate.rewrite_ecs_request("register_task_definition", register)["containerDefinitions"] == [
        {"name": "x", "command": ["dask", "worker", "tcp://s:8786"]},
        {"name": "y"},
    ]
    run = {"overrides": {"containerOverrides": [{"name": "x", "command": ["dask-scheduler", "--host", "0.0.0.0"]}]}}
    fargate.rewrite_ecs_request("run_task", run)
    assert run["overrides"]["containerOverrides"][0]["command"] == ["dask", "scheduler", "--host", "0.0.0.0"]
    other = {"containerDefinitions": [{"command": ["dask-worker"]}]}
    assert fargate.rewrite_ecs_request("describe_tasks", other) == {
        "containerDefinitions": [{"command": ["dask-worker"]}]
    }


def test_the_project_cluster_class_rewrites_what_it_sends_to_ecs():
    from dask_cloudprovider.aws import FargateCluster

    sent = []

    class FakeEcs:
        async def register_task_definition(self, **params):
            sent.append(("register", params))

        async def run_task(self, **params):
            sent.append(("run", params))

    class FakeContext:
        async def __aenter__(self):
            return FakeEcs()

        async def __aexit__(self, *exc):
            return False

    cls = fargate.fargate_cluster_class()
    assert issubclass(cls, FargateCluster)
    cluster = cls.__new__(cls)  # no __init__: nothing starts
    original = FargateCluster._client
    try:
        FargateCluster._client = lambda self, name: FakeContext()

        async def use():
            async with cluster._client("ecs") as ecs:
                await ecs.register_task_definition(containerDefinitions=[{"command": ["dask-scheduler"]}])
                await ecs.run_task(overrides={"containerOverrides": [{"command": ["dask-worker", "tcp://s:8786"]}]})

        loop = asyncio.new_event_loop()  # not asyncio.run: that unsets the current loop Pulumi's mocks use later
        try:
            loop.run_until_complete(use())
        finally:
            loop.close()
    finally:
        FargateCluster._client = original
    assert sent == [
        ("register", {"containerDefinitions": [{"command": ["dask", "scheduler"]}]}),
        ("run", {"overrides": {"containerOverrides": [{"command": ["dask", "worker", "tcp://s:8786"]}]}}),
    ]


@pytest.mark.parametrize(("vcpus", "spot", "asked", "cap", "workers"), [(1, False, 50, 8, 8), (4, True, 3, 100, 3)])
def test_fargate_cluster_kwargs_other_answers(vcpus, spot, asked, cap, workers):
    kwargs = fargate.fargate_cluster_kwargs(
        OUTPUTS, IMAGE, asked, worker_vcpus=vcpus, fargate_spot=spot, max_workers=cap, environment={}
    )
    assert (kwargs["worker_cpu"], kwargs["worker_mem"]) == (vcpus * 1024, vcpus * 4096)
    assert kwargs["worker_nthreads"] == vcpus
    assert kwargs["fargate_spot"] is spot
    assert kwargs["n_workers"] == workers


def test_fargate_cluster_accepts_the_kwargs_without_starting():
    """dask-cloudprovider validates the arguments; asynchronous=True builds the object but starts nothing."""
    from dask_cloudprovider.aws import FargateCluster

    kwargs = fargate.fargate_cluster_kwargs(OUTPUTS, IMAGE, 2, environment={})

    async def construct():
        return FargateCluster(asynchronous=True, **kwargs)

    loop = asyncio.new_event_loop()  # not asyncio.run: that unsets the current loop other tests rely on
    try:
        cluster = loop.run_until_complete(construct())
    finally:
        loop.close()
    assert cluster.status.name == "created"  # never started: no AWS call was made
    assert cluster.image == IMAGE
    assert cluster.cluster_arn == OUTPUTS["ecs_cluster_arn"]
    assert cluster._vpc_subnets == OUTPUTS["private_subnet_ids"]
    assert cluster._security_groups == ["sg-dask"]
    assert cluster._fargate_use_private_ip is True
    assert cluster._skip_cleanup is True
    assert cluster._fargate_scheduler is cluster._fargate_workers is True


def test_missing_outputs_are_named():
    partial = {k: v for k, v in OUTPUTS.items() if k not in ("vpc_id", "flow_run_role_arn")}
    with pytest.raises(fargate.OutputsError, match="vpc_id, flow_run_role_arn"):
        work_pool.work_pool_job_template(partial, IMAGE)
    with pytest.raises(fargate.OutputsError, match="vpc_id"):
        fargate.fargate_cluster_kwargs(partial, IMAGE, 1)
    # No silent fallback to dask-cloudprovider's default image: workers must run the project image.
    with pytest.raises(ValueError, match="project image"):
        fargate.fargate_cluster_kwargs(OUTPUTS, "", 1)


def test_load_outputs_from_env_and_file(tmp_path):
    assert fargate.load_outputs({"PIPELINE_AWS_OUTPUTS": json.dumps(OUTPUTS)}) == OUTPUTS
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(OUTPUTS))
    assert fargate.load_outputs({"PIPELINE_AWS_OUTPUTS_FILE": str(path)}) == OUTPUTS
    with pytest.raises(fargate.OutputsError, match="not valid JSON"):
        fargate.load_outputs({"PIPELINE_AWS_OUTPUTS": "{oops"})
    with pytest.raises(fargate.OutputsError, match="PIPELINE_AWS_OUTPUTS"):
        fargate.load_outputs({})


def test_work_pool_job_template_is_prefects_default_filled_in():
    from prefect.utilities.templating import apply_values
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSVariables, ECSWorker

    template = work_pool.work_pool_job_template(OUTPUTS, IMAGE)
    default = ECSWorker.get_default_base_job_template()
    assert template["job_configuration"] == default["job_configuration"]
    assert set(template["variables"]["properties"]) == set(default["variables"]["properties"])

    # Resolve it the way the ECS worker does: variables (validated by prefect-aws) into the job configuration.
    properties = template["variables"]["properties"]
    variables = ECSVariables(**{k: v["default"] for k, v in properties.items() if "default" in v}).model_dump()
    resolved = apply_values(template["job_configuration"], {k: v for k, v in variables.items() if v is not None})
    resolved.pop("aws_credentials")
    job = ECSJobConfiguration.model_validate(resolved)

    assert job.cluster == OUTPUTS["ecs_cluster_arn"]
    assert job.vpc_id == "vpc-0123"
    assert job.network_configuration == {
        "subnets": ["subnet-priv-a", "subnet-priv-b"],
        "securityGroups": ["sg-dask"],
        "assignPublicIp": "DISABLED",
    }
    assert job.task_definition["containerDefinitions"][0]["image"] == IMAGE
    assert job.task_definition["executionRoleArn"] == OUTPUTS["execution_role_arn"]
    assert job.task_run_request["overrides"]["taskRoleArn"] == OUTPUTS["flow_run_role_arn"]
    assert job.task_run_request["launchType"] == "FARGATE"
    assert (job.task_definition["cpu"], job.task_definition["memory"]) == (1024, 2048)
    assert job.configure_cloudwatch_logs is True
    assert job.cloudwatch_logs_options["awslogs-group"] == OUTPUTS["log_group_name"]
    assert job.cloudwatch_logs_options["awslogs-region"] == OUTPUTS["aws_region"]

    env = job.env
    assert env["PIPELINE_CLUSTER"] == "fargate"
    assert env["PIPELINE_DATA_URL"] == OUTPUTS["data_url"]
    # The Dask workers get exactly the image the flow run runs in (one image, matching versions).
    assert env["PIPELINE_IMAGE"] == IMAGE
    outputs = fargate.load_outputs({"PIPELINE_AWS_OUTPUTS": env["PIPELINE_AWS_OUTPUTS"]})
    assert outputs == OUTPUTS
    assert fargate.fargate_cluster_kwargs(outputs, env["PIPELINE_IMAGE"], 1, environment={})["image"] == IMAGE
    # The stack's own family, and the flow run's Prefect API key from Secrets Manager, never in the environment.
    assert job.task_definition["family"] == OUTPUTS["flow_run_family"]
    assert job.prefect_api_key_secret_arn == OUTPUTS["prefect_api_key_secret_arn"]
    assert "PREFECT_API_KEY" not in env


def test_work_pool_job_template_needs_the_stack_family_and_secret_and_refuses_a_key_in_env():
    for name in work_pool.JOB_TEMPLATE_OUTPUTS:
        with pytest.raises(fargate.OutputsError, match=name):
            work_pool.work_pool_job_template({k: v for k, v in OUTPUTS.items() if k != name}, IMAGE)
    with pytest.raises(ValueError, match="PREFECT_API_KEY"):
        # pragma: allowlist nextline secret - a stand-in
        work_pool.work_pool_job_template(OUTPUTS, IMAGE, env={"PREFECT_API_KEY": "pnu_secret"})


def test_each_fargate_cluster_registers_this_stacks_own_task_definition_families():
    """FargateCluster names its families dask-<name>-scheduler/-worker: with the stack's prefix, per run, and within
    what the flow-run role may register (infra/identity.py dask_family_prefix)."""
    from infra import identity

    first, second = (fargate.fargate_cluster_kwargs(OUTPUTS, IMAGE, 1, environment={})["name"] for _ in range(2))
    assert first != second
    assert f"dask-{first}-scheduler".startswith(identity.dask_family_prefix(OUTPUTS["ecs_cluster_name"]))


def test_closing_a_fargate_cluster_deregisters_the_task_definitions_it_registered():
    """dask-cloudprovider deregisters them only in a garbage-collection finalizer: the project's cluster does it on
    close, once, and never one it was given."""
    calls = []

    class Ecs:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return None

        async def deregister_task_definition(self, taskDefinition):  # noqa: N803 - botocore's parameter name
            calls.append(taskDefinition)

    class Cluster:
        scheduler_task_definition_arn, _scheduler_task_definition_arn_provided = "td/dask-s:1", False
        worker_task_definition_arn, _worker_task_definition_arn_provided = "td/given:3", True

        def _client(self, name):
            return Ecs()

    cluster = Cluster()
    asyncio.run(fargate._deregister_task_definitions(cluster))
    asyncio.run(fargate._deregister_task_definitions(cluster))
    assert calls == ["td/dask-s:1"]
