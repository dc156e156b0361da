"""Pulumi stack outputs -> Prefect ECS work pool and Dask FargateCluster settings, by code.

Nothing here is copied by hand: `make deploy` reads `pulumi stack output --json` and passes the
dict to `work_pool_job_template` (the base job template of the ECS work pool, which runs each flow
run as a Fargate task) and puts the same JSON into that template's environment as
`PIPELINE_AWS_OUTPUTS`; inside the flow run, the pipeline's cluster factory turns it into
`FargateCluster(**fargate_cluster_kwargs(...))` (a temporary Dask cluster for that run only).
The flow-run task and every Dask scheduler and worker run the same project image, so their
Python, dask and distributed versions agree by construction.

Both functions are pure: they take the outputs and return plain dicts, and the tests check
exactly what they produce.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Answers given to cookiecutter (validated by its pre-generation hook).
PROJECT_SLUG = "{{ cookiecutter.project_slug }}"
AWS_REGION = "{{ cookiecutter.aws_region }}"
WORKER_VCPUS = {{ cookiecutter.worker_vcpus }}
MAX_WORKERS = {{ cookiecutter.max_workers }}
USE_FARGATE_SPOT = {{ "True" if cookiecutter.use_fargate_spot|string|lower in ["true", "yes", "y", "1"] else "False" }}

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
# Environment the flow-run container passes on to the Dask scheduler and workers when set: Prefect task
# runs on the workers report to the same API (with Prefect Cloud that takes the API key, which then sits
# in the workers' ECS task definition; prefer a key of a service account limited to this workspace).
FORWARDED_ENV = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_LOGGING_LEVEL", "PIPELINE_DATA_URL")


class OutputsError(ValueError):
    """The Pulumi outputs are missing or incomplete."""


def missing_outputs(outputs: Mapping[str, Any]) -> list[str]:
    return [name for name in REQUIRED_OUTPUTS if outputs.get(name) in (None, "", [])]


def _require(outputs: Mapping[str, Any]) -> None:
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
        source, text = path, Path(path).read_text(encoding="utf-8")
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


def worker_resources(vcpus: int = WORKER_VCPUS) -> dict[str, int]:
    """Fargate CPU units and memory (MiB) for one Dask worker, and its thread count."""
    if vcpus not in (1, 2, 4):
        raise ValueError(f"worker vCPUs must be 1, 2 or 4, not {vcpus!r}")
    return {"worker_cpu": vcpus * 1024, "worker_mem": vcpus * MIB_PER_VCPU, "worker_nthreads": vcpus}


def fargate_cluster_kwargs(
    outputs: Mapping[str, Any],
    image: str,
    n_workers: int,
    *,
    worker_vcpus: int = WORKER_VCPUS,
    fargate_spot: bool = USE_FARGATE_SPOT,
    max_workers: int = MAX_WORKERS,
    environment: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `dask_cloudprovider.aws.FargateCluster` built from the stack outputs.

    The cluster lives in the private subnets (no public IP; the NAT gateway reaches ECR and S3),
    behind the Dask security group, on the stack's ECS cluster, with the stack's roles and log
    group, so dask-cloudprovider creates nothing but the tasks and their task definitions
    (`skip_cleanup=True`: it must not sweep other clusters' resources). `n_workers` is capped by
    `max_workers`. `environment` defaults to the forwarded variables present in this process.
    """
    _require(outputs)
    if not image:
        raise ValueError("image is empty: the Dask workers must run the project image (PIPELINE_IMAGE)")
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, not {n_workers}")
    if environment is None:
        environment = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    return {
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
        "tags": {"project": PROJECT_SLUG, **(tags or {})},
        "skip_cleanup": True,
    }


def default_ecs_job_template() -> dict[str, Any]:
    """Prefect's own default base job template for the `ecs` worker type (from prefect-aws)."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    return copy.deepcopy(ECSWorker.get_default_base_job_template())


def work_pool_job_template(
    outputs: Mapping[str, Any],
    image: str,
    *,
    cpu: int = FLOW_RUN_CPU,
    memory: int = FLOW_RUN_MEMORY,
    env: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ECS work pool's base job template: Prefect's default with the stack's values as defaults.

    Each flow run becomes a Fargate task on the stack's cluster, in the private subnets with
    `assignPublicIp` DISABLED, behind the Dask security group (so it reaches the scheduler), with
    the execution role (image pull, logs) and the flow-run role as its task role (it starts the
    Dask cluster: ECS run/stop, iam:PassRole on the Dask roles, S3). Its environment tells the
    pipeline to use Fargate with this same image and these outputs. Logs go to the stack's group.
    """
    _require(outputs)
    if not image:
        raise ValueError("image is empty: the flow runs must use the project image pushed to ECR")
    template = copy.deepcopy(dict(base)) if base is not None else default_ecs_job_template()
    properties = template["variables"]["properties"]
    flow_env = {
        "PIPELINE_CLUSTER": "fargate",
        "PIPELINE_IMAGE": image,
        "PIPELINE_AWS_OUTPUTS": json.dumps(dict(outputs), sort_keys=True, separators=(",", ":")),
        "PIPELINE_DATA_URL": outputs["data_url"],
        **(env or {}),
    }
    defaults: dict[str, Any] = {
        "image": image,
        "cluster": outputs["ecs_cluster_arn"],
        "launch_type": "FARGATE",  # the flow run itself is not interruptible; workers may use Spot
        "vpc_id": outputs["vpc_id"],
        "network_configuration": {
            "subnets": list(outputs["private_subnet_ids"]),
            "securityGroups": [outputs["dask_security_group_id"]],
            "assignPublicIp": "DISABLED",
        },
        "execution_role_arn": outputs["execution_role_arn"],
        "task_role_arn": outputs["flow_run_role_arn"],
        "cpu": cpu,
        "memory": memory,
        "env": flow_env,
        "configure_cloudwatch_logs": True,
        "cloudwatch_logs_options": {
            "awslogs-group": outputs["log_group_name"],
            "awslogs-region": outputs["aws_region"],
            "awslogs-create-group": "false",
        },
        "cloudwatch_logs_prefix": "flow-runs",
        "family": f"{PROJECT_SLUG}-flow-run",
        "match_latest_revision_in_family": True,  # reuse the task definition while nothing changes
        "labels": {"project": PROJECT_SLUG},
    }
    unknown = sorted(set(defaults) - set(properties))
    if unknown:
        raise ValueError(f"prefect-aws's ECS job template has no variable(s) {', '.join(unknown)}")
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template
