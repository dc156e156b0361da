"""The Prefect ECS worker as an always-on, small Fargate service of the stack (the `prefect_worker` setting).

It polls this project's work pool and starts each flow run as a Fargate task (prefect-aws's ECS worker, from the
project image: same Prefect and prefect-aws versions as the flow runs). Its task role is `identity.worker_policy`;
the Prefect API key reaches it from Secrets Manager as a container `secret` (never in the task definition).
`make deploy` stores the key in the secret and sets `prefect_worker_image` / `prefect_api_url`; until both are
set the service is declared with no task running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .identity import event_queue_name
from .settings import Settings

CPU, MEMORY = 256, 512  # 0.25 vCPU / 0.5 GiB: the worker only polls and calls the ECS API
CONTAINER = "prefect-worker"


def observer_env(s: Settings) -> dict[str, str]:
    """prefect-aws's task observer reads this cluster's ECS task events from the stack's queue (infra/events.py) and
    marks the run of a flow-run task that stopped without finishing it Crashed; its role may read that one queue
    only (identity.worker_policy). Unset, prefect-aws would look for a shared default queue."""
    return {"PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": event_queue_name(s.base_name)}


@dataclass
class Worker:
    api_key_secret: aws.secretsmanager.Secret
    service: aws.ecs.Service | None


def command(s: Settings) -> list[str]:
    return ["prefect", "worker", "start", "--pool", s.work_pool_name, "--type", "ecs"]


def container_definitions(s: Settings, secret_arn: str, log_group: str) -> str:
    return json.dumps(
        [
            {
                "name": CONTAINER,
                "image": s.prefect_worker_image or "unset",
                "essential": True,
                "command": command(s),
                "environment": [
                    {"name": "PREFECT_API_URL", "value": s.prefect_api_url},
                    *({"name": k, "value": v} for k, v in observer_env(s).items()),
                ],
                "secrets": [{"name": "PREFECT_API_KEY", "valueFrom": secret_arn}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": s.region,
                        "awslogs-stream-prefix": "prefect-worker",
                    },
                },
            }
        ]
    )


def create(
    s: Settings,
    secret: aws.secretsmanager.Secret,
    *,
    cluster: aws.ecs.Cluster,
    subnets: list[aws.ec2.Subnet],
    vpc: aws.ec2.Vpc,
    log_group: aws.cloudwatch.LogGroup,
    execution_role: aws.iam.Role,
    worker_role: aws.iam.Role,
) -> aws.ecs.Service:
    # Outbound only (the Prefect API through the NAT gateway - a self-hosted server may listen on any port - and
    # the AWS APIs): nothing connects to the worker.
    sg = aws.ec2.SecurityGroup(
        "prefect-worker-sg",
        name=f"{s.base_name}-prefect-worker",
        description="Prefect ECS worker: outbound only",
        vpc_id=vpc.id,
        tags={"Name": f"{s.base_name}-prefect-worker"},
    )
    aws.vpc.SecurityGroupEgressRule(
        "prefect-worker-sg-egress",
        security_group_id=sg.id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=0,
        to_port=65535,
        description="Prefect API and AWS APIs",
    )
    definition = aws.ecs.TaskDefinition(
        "prefect-worker-task",
        family=f"{s.base_name}-prefect-worker",
        cpu=str(CPU),
        memory=str(MEMORY),
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
        execution_role_arn=execution_role.arn,
        task_role_arn=worker_role.arn,
        container_definitions=pulumi.Output.all(secret.arn, log_group.name).apply(
            lambda v: container_definitions(s, v[0], v[1])
        ),
    )
    return aws.ecs.Service(
        "prefect-worker",
        name=f"{s.base_name}-prefect-worker",
        cluster=cluster.arn,
        task_definition=definition.arn,
        desired_count=1 if s.worker_running else 0,
        launch_type="FARGATE",
        network_configuration={
            "subnets": [subnet.id for subnet in subnets],
            "security_groups": [sg.id],
            "assign_public_ip": False,
        },
        deployment_minimum_healthy_percent=0,  # one worker: replace it rather than run two
        deployment_maximum_percent=100,
        enable_execute_command=False,
    )
