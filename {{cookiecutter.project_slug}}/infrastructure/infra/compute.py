"""ECS cluster for flow runs and temporary Dask clusters: Fargate only, no instances to pay for when idle."""

from __future__ import annotations

import pulumi_aws as aws

from .settings import Settings


def capacity_provider_strategy(use_spot: bool) -> list[dict]:
    """Default for tasks started without a launch type. FargateCluster chooses per task (workers on Spot when
    `fargate_spot=True`, the scheduler on regular Fargate)."""
    return [{"capacity_provider": "FARGATE_SPOT" if use_spot else "FARGATE", "weight": 1, "base": 0}]


def create(s: Settings) -> aws.ecs.Cluster:
    cluster = aws.ecs.Cluster("cluster", name=s.base_name)
    aws.ecs.ClusterCapacityProviders(
        "cluster-capacity-providers",
        cluster_name=cluster.name,
        capacity_providers=["FARGATE", "FARGATE_SPOT"],
        default_capacity_provider_strategies=capacity_provider_strategy(s.use_fargate_spot),
    )
    return cluster
