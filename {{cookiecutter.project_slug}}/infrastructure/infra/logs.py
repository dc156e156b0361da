"""The CloudWatch log group that flow runs and Dask scheduler/worker tasks write to."""

from __future__ import annotations

import pulumi_aws as aws

from .settings import Settings


def log_group_name_for(s: Settings) -> str:
    return f"/ecs/{s.base_name}"


def create(s: Settings) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup("log-group", name=log_group_name_for(s), retention_in_days=s.log_retention_days)
