"""The Prefect ECS work pool's base job template, filled from the Pulumi stack outputs (run by `make deploy`).

Each flow run becomes a Fargate task of the project image; inside it the pipeline starts its own
temporary Dask cluster (:mod:`ml_workflows.fargate`) from the same outputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from ml_workflows import tracking
from ml_workflows.fargate import (
    FLOW_RUN_CPU,
    FLOW_RUN_MEMORY,
    OutputsError,
    require_outputs,
)
from ml_workflows.project import current

# Outputs the job template needs beyond what the Dask cluster needs.
JOB_TEMPLATE_OUTPUTS = ("flow_run_family", "prefect_api_key_secret_arn")


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
    The task-definition family is the stack's own (two stacks or projects never share one), and the
    flow run's Prefect API key comes from the stack's Secrets Manager secret (`secrets` of the task
    definition, fetched by ECS with the execution role): no secret in the definition's environment.
    """
    require_outputs(outputs)
    if missing := [name for name in JOB_TEMPLATE_OUTPUTS if not outputs.get(name)]:
        raise OutputsError(
            f"Pulumi outputs lack {', '.join(missing)}; run `make deploy` (pulumi up) or check the stack's outputs"
        )
    if leaked := sorted({"PREFECT_API_KEY"} & set(env or {})):
        raise ValueError(
            f"{', '.join(leaked)} must not sit in the task definition's environment (it comes from Secrets Manager)"
        )
    if not image:
        raise ValueError("image is empty: the flow runs must use the project image pushed to ECR")
    template = copy.deepcopy(dict(base)) if base is not None else default_ecs_job_template()
    properties = template["variables"]["properties"]
    flow_env = {
        "PIPELINE_CLUSTER": "fargate",
        "PIPELINE_IMAGE": image,
        "PIPELINE_AWS_OUTPUTS": json.dumps(dict(outputs), sort_keys=True, separators=(",", ":")),
        "PIPELINE_DATA_URL": outputs["data_url"],
        # Experiment tracking: the MLflow server named when deploying, the stack's experiment (docs/lifecycle.md).
        **(tracking.deploy_env(outputs) if current().tracks else {}),
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
        "family": outputs["flow_run_family"],
        "prefect_api_key_secret_arn": outputs["prefect_api_key_secret_arn"],
        "match_latest_revision_in_family": True,  # reuse the task definition while nothing changes
        "labels": {"project": current().name},
    }
    unknown = sorted(set(defaults) - set(properties))
    if unknown:
        raise ValueError(f"prefect-aws's ECS job template has no variable(s) {', '.join(unknown)}")
    for name, value in defaults.items():
        properties[name]["default"] = value
    return template
