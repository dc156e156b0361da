"""Pulumi stack outputs -> the Dask ``FargateCluster`` of a flow run, by code.

Nothing here is copied by hand: `make deploy` reads `pulumi stack output --json`, fills the ECS work
pool's job template with it (:mod:`..deploy.work_pool`) and puts the same JSON into the flow run's
environment as `PIPELINE_AWS_OUTPUTS`; inside the flow run, the cluster factory turns it into
`FargateCluster(**fargate_cluster_kwargs(...))` (a temporary Dask cluster for that run only).
The flow-run task and every Dask scheduler and worker run the same project image, so their
Python, dask and distributed versions agree by construction.

`fargate_cluster_kwargs` is pure: it takes the outputs and returns a plain dict, and the tests
check exactly what it produces.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml_workflows.project import current

MIB_PER_VCPU = 4096  # 4 GiB of memory per vCPU: valid on Fargate for 1, 2 and 4 vCPUs
SCHEDULER_VCPUS = 1
# The flow-run task only drives the Dask cluster (the work happens on the workers).
FLOW_RUN_CPU = 1024
FLOW_RUN_MEMORY = 2048
# A Fargate scheduler with no client for this long shuts itself down (a guard against leaks).
SCHEDULER_IDLE_TIMEOUT = "20 minutes"

# Every output the wiring needs; `missing_outputs` names the absent ones.
REQUIRED_OUTPUTS = (
    "aws_region",
    "vpc_id",
    "private_subnet_ids",
    "dask_security_group_id",
    "ecs_cluster_arn",
    "execution_role_arn",
    "task_role_arn",
    "flow_run_role_arn",
    "log_group_name",
    "data_url",
)
# Environment the flow-run container passes on to the Dask scheduler and workers when set. Never the Prefect API
# URL or key: the Dask workers run plain functions (client.map), not Prefect tasks, so they need no Prefect API,
# and whatever is passed here is written into their ECS task definitions, readable by every
# ecs:DescribeTaskDefinition caller and kept in every old revision.
FORWARDED_ENV = ("PREFECT_LOGGING_LEVEL", "PIPELINE_DATA_URL")
# Never forwarded, whatever a caller passes as `environment` (see above).
SECRET_ENV = ("PREFECT_API_KEY", "PREFECT_API_URL")


class OutputsError(ValueError):
    """The Pulumi outputs are missing or incomplete."""


def missing_outputs(outputs: Mapping[str, Any]) -> list[str]:
    return [name for name in REQUIRED_OUTPUTS if outputs.get(name) in (None, "", [])]


def require_outputs(outputs: Mapping[str, Any]) -> None:
    if missing := missing_outputs(outputs):
        raise OutputsError(
            f"Pulumi outputs lack {', '.join(missing)}; run `make deploy` (pulumi up) or check the stack's outputs"
        )


def load_outputs(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the outputs from PIPELINE_AWS_OUTPUTS (JSON text) or PIPELINE_AWS_OUTPUTS_FILE (a JSON file)."""
    environ = os.environ if environ is None else environ
    if text := environ.get("PIPELINE_AWS_OUTPUTS", "").strip():
        source = "PIPELINE_AWS_OUTPUTS"
    elif path := environ.get("PIPELINE_AWS_OUTPUTS_FILE", "").strip():
        try:
            source, text = path, Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise OutputsError(f"PIPELINE_AWS_OUTPUTS_FILE: cannot read {path}: {exc}") from exc
    else:
        raise OutputsError(
            "set PIPELINE_AWS_OUTPUTS (JSON of `pulumi stack output --json`) or PIPELINE_AWS_OUTPUTS_FILE"
        )
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputsError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(outputs, dict):
        raise OutputsError(f"{source} must hold a JSON object of stack outputs")
    return outputs


def uses_spot(outputs: Mapping[str, Any]) -> bool:
    """Whether the stack puts Dask workers on Fargate Spot (output ``use_fargate_spot``; a stack deployed before that
    output existed made Spot its capacity provider default, so on)."""
    return outputs.get("use_fargate_spot", True) not in (False, "false", "False", 0)


def dask_cluster_name(outputs: Mapping[str, Any], run_id: str | None = None) -> str:
    """<ECS cluster name>_<run id>: FargateCluster names its task definition families dask-<this>-scheduler/-worker,
    so they are this stack's (the flow-run role may register and run only those: infra/identity.py
    dask_family_prefix) and each run's own."""
    import uuid

    return f"{str(outputs['ecs_cluster_arn']).rsplit('/', 1)[-1]}_{run_id or uuid.uuid4().hex[:8]}"


def worker_resources(vcpus: int) -> dict[str, int]:
    """Fargate CPU units and memory (MiB) for one Dask worker, and its thread count."""
    if vcpus not in (1, 2, 4):
        raise ValueError(f"worker vCPUs must be 1, 2 or 4, not {vcpus!r}")
    return {"worker_cpu": vcpus * 1024, "worker_mem": vcpus * MIB_PER_VCPU, "worker_nthreads": vcpus}


def fargate_cluster_kwargs(
    outputs: Mapping[str, Any],
    image: str,
    n_workers: int,
    *,
    worker_vcpus: int | None = None,
    fargate_spot: bool | None = None,
    max_workers: int | None = None,
    environment: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `dask_cloudprovider.aws.FargateCluster` built from the stack outputs.

    The cluster lives in the private subnets (no public IP; the NAT gateway reaches ECR and S3),
    behind the Dask security group, on the stack's ECS cluster, with the stack's roles and log
    group, so dask-cloudprovider creates nothing but the tasks and their task definitions
    (`skip_cleanup=True`: it must not sweep other clusters' resources). `n_workers` is capped by
    `max_workers`. `environment` defaults to the forwarded variables present in this process. The worker size and
    the most workers are the project's (``Project.worker_vcpus`` / ``max_workers``), Spot is the stack's output
    ``use_fargate_spot`` (on when a stack predates that output, as its capacity provider default was).
    """
    require_outputs(outputs)
    project = current()
    cluster_name = dask_cluster_name(outputs)
    worker_vcpus = project.worker_vcpus if worker_vcpus is None else worker_vcpus
    max_workers = project.max_workers if max_workers is None else max_workers
    if fargate_spot is None:
        fargate_spot = uses_spot(outputs)
    if not image:
        raise ValueError("image is empty: the Dask workers must run the project image (PIPELINE_IMAGE)")
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, not {n_workers}")
    if environment is None:
        environment = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    if leaked := sorted(set(environment) & set(SECRET_ENV)):
        raise ValueError(
            f"{', '.join(leaked)} would be written into the Dask task definitions; the workers need no Prefect API"
        )
    return {
        "name": cluster_name,
        "image": image,
        "n_workers": min(n_workers, max_workers),
        "cluster_arn": outputs["ecs_cluster_arn"],
        "vpc": outputs["vpc_id"],
        "subnets": list(outputs["private_subnet_ids"]),
        "security_groups": [outputs["dask_security_group_id"]],
        "fargate_use_private_ip": True,
        "execution_role_arn": outputs["execution_role_arn"],
        "task_role_arn": outputs["task_role_arn"],
        "cloudwatch_logs_group": outputs["log_group_name"],
        "region_name": outputs["aws_region"],
        "fargate_spot": bool(fargate_spot),
        "scheduler_cpu": SCHEDULER_VCPUS * 1024,
        "scheduler_mem": SCHEDULER_VCPUS * MIB_PER_VCPU,
        "scheduler_timeout": SCHEDULER_IDLE_TIMEOUT,
        **worker_resources(worker_vcpus),
        "environment": dict(environment),
        "tags": {"project": project.name, **(tags or {})},
        "skip_cleanup": True,
    }


# -- dask-cloudprovider's container commands ---------------------------------------------------------------
# dask-cloudprovider (2025.9.0, its newest release) writes `dask-scheduler` / `dask-worker` into the task
# definitions and RunTask overrides; distributed 2026.6.0 removed those console scripts (the image has
# `dask scheduler` / `dask worker`), so the containers would exit 127. Every command it sends to ECS is
# rewritten at the API boundary, task definitions and overrides alike.
DASK_CLI = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}


def dask_cli_command(command: list[str] | None) -> list[str] | None:
    """`dask-scheduler ...` -> `dask scheduler ...` (and the worker); anything else unchanged."""
    if command and command[0] in DASK_CLI:
        return [*DASK_CLI[command[0]], *command[1:]]
    return command


def rewrite_ecs_request(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Rewrite, in place, the container commands of a RegisterTaskDefinition / RunTask request."""
    if operation == "register_task_definition":
        containers = params.get("containerDefinitions", [])
    elif operation == "run_task":
        containers = params.get("overrides", {}).get("containerOverrides", [])
    else:
        return params
    for container in containers:
        if "command" in container:
            container["command"] = dask_cli_command(container["command"])
    return params


class _RewritingClient:
    """An aiobotocore ECS client context whose RegisterTaskDefinition/RunTask commands use the dask CLI."""

    def __init__(self, context: Any) -> None:
        self._context = context

    async def __aenter__(self) -> Any:
        client = await self._context.__aenter__()
        for operation in ("register_task_definition", "run_task"):
            original = getattr(client, operation)

            async def call(*args: Any, _original: Any = original, _operation: str = operation, **params: Any) -> Any:
                return await _original(*args, **rewrite_ecs_request(_operation, params))

            setattr(client, operation, call)
        return client

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._context.__aexit__(*exc)


def fargate_cluster_class() -> type:
    """`FargateCluster` whose ECS containers run commands the project image has (see DASK_CLI)."""
    from dask_cloudprovider.aws import FargateCluster

    class ProjectFargateCluster(FargateCluster):
        def _client(self, name: str) -> Any:
            context = super()._client(name)
            return _RewritingClient(context) if name == "ecs" else context

        async def _close(self) -> None:
            # dask-cloudprovider deregisters its task definitions only from a garbage-collection finalizer, which
            # never gets to run in a flow-run process that exits: every run would leave two ACTIVE definitions.
            try:
                await super()._close()
            finally:
                await _deregister_task_definitions(self)

    return ProjectFargateCluster


async def _deregister_task_definitions(cluster: Any) -> None:
    """The scheduler and worker task definitions this cluster registered, deregistered once (the finalizers then
    find them marked as provided and do nothing)."""
    for kind in ("scheduler", "worker"):
        arn = getattr(cluster, f"{kind}_task_definition_arn", None)
        if arn and not getattr(cluster, f"_{kind}_task_definition_arn_provided", True):
            async with cluster._client("ecs") as ecs:
                await ecs.deregister_task_definition(taskDefinition=arn)
            setattr(cluster, f"_{kind}_task_definition_arn_provided", True)
