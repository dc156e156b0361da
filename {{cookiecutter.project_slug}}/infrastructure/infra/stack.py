"""Wire the modules together and return the stack outputs (names are a contract: the deploy step, the ECS work
pool job template and FargateCluster settings read them)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from . import compute, events, identity, logs, network, registry, storage
{%- if cookiecutter.prefect_worker|string|lower in ["true", "yes", "y", "1"] %}, worker{% endif %}
from .settings import Settings

OUTPUT_NAMES = (
    "aws_region",
    "vpc_id",
    "private_subnet_ids",
    "public_subnet_ids",
    "dask_security_group_id",
    "ecs_cluster_arn",
    "ecs_cluster_name",
    "execution_role_arn",
    "task_role_arn",
    "flow_run_role_arn",
    "log_group_name",
    "bucket_name",
    "data_url",
    "ecr_repository_url",
    "work_pool_name",
    "flow_run_family",
    "prefect_api_key_secret_arn",
    "prefect_worker_role_arn",
    "prefect_worker_service",
    "use_fargate_spot",
)


def build(s: Settings) -> dict[str, pulumi.Output]:
    account = aws.get_caller_identity_output().account_id
    partition = aws.get_partition_output().partition
    bucket_name = account.apply(lambda acct: storage.bucket_name_for(s, acct))

    net = network.create(s)
    bucket = storage.create(s, bucket_name, partition)
    repo = registry.create(s)
    log_group = logs.create(s)
    cluster = compute.create(s)
    arns = pulumi.Output.all(account, partition, bucket_name).apply(
        lambda v: identity.Arns(
            partition=v[1],
            region=s.region,
            account=v[0],
            base_name=s.base_name,
            bucket_name=v[2],
            log_group_name=logs.log_group_name_for(s),
        )
    )
    roles = identity.create(arns, s.base_name, s.region, with_worker=s.prefect_worker)
    events.create(s, cluster)  # crash detection: the worker's task observer reads this queue
    api_key = identity.api_key_secret(s.base_name)
    service = None
{%- if cookiecutter.prefect_worker|string|lower in ["true", "yes", "y", "1"] %}
    if roles.worker_role is not None:
        service = worker.create(
            s,
            api_key,
            cluster=cluster,
            subnets=net.private_subnets,
            vpc=net.vpc,
            log_group=log_group,
            execution_role=roles.execution_role,
            worker_role=roles.worker_role,
        )
{%- endif %}

    outputs = {
        "aws_region": pulumi.Output.from_input(s.region),
        "vpc_id": net.vpc.id,
        "private_subnet_ids": pulumi.Output.all(*[subnet.id for subnet in net.private_subnets]),
        "public_subnet_ids": pulumi.Output.all(*[subnet.id for subnet in net.public_subnets]),
        "dask_security_group_id": net.dask_security_group.id,
        "ecs_cluster_arn": cluster.arn,
        "ecs_cluster_name": cluster.name,
        "execution_role_arn": roles.execution_role.arn,
        "task_role_arn": roles.task_role.arn,
        "flow_run_role_arn": roles.flow_run_role.arn,
        "log_group_name": log_group.name,
        "bucket_name": bucket.bucket,
        "data_url": bucket.bucket.apply(lambda name: f"s3://{name}/pipeline"),
        "ecr_repository_url": repo.repository_url,
        "work_pool_name": pulumi.Output.from_input(s.work_pool_name),
        "flow_run_family": pulumi.Output.from_input(s.flow_run_family),
        "prefect_api_key_secret_arn": api_key.arn,
        # Empty when the worker runs outside the stack (prefect_worker = false; README "The Prefect worker").
        "prefect_worker_role_arn": roles.worker_role.arn if roles.worker_role else pulumi.Output.from_input(""),
        "prefect_worker_service": service.name if service else pulumi.Output.from_input(""),
        # FargateCluster puts the Dask workers on FARGATE_SPOT when the stack says so (the runtime reads it here).
        "use_fargate_spot": pulumi.Output.from_input(s.use_fargate_spot),
    }
    if tuple(outputs) != OUTPUT_NAMES:  # the names are a contract; keep this list and the dict in step
        raise RuntimeError("stack outputs drifted from OUTPUT_NAMES")
    return outputs
