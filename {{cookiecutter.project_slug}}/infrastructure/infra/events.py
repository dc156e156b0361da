"""Crash detection: this cluster's ECS task state changes, delivered to the queue the Prefect worker reads.

prefect-aws's ECS worker returns once `RunTask` succeeds; its task observer learns that a flow-run task stopped (out
of memory, image pull failed, no capacity, killed) only from ECS "Task State Change" events in an SQS queue, and
then marks the run Crashed (which fires the `flow-run-crashed` automation). Without the queue such a run stays
Pending/Running for ever. The layout is prefect-aws's own (`prefect-aws ecs-worker deploy-events`), narrowed:
the rule matches this cluster only, only EventBridge's rule may send to the queue (aws:SourceArn), the queues are
encrypted (SSE-SQS: no key policy for EventBridge to need) and reachable over TLS only, and a message the worker
fails three times moves to a dead-letter queue instead of looping.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from .identity import event_queue_name
from .settings import Settings

VISIBILITY_SECONDS = 300  # prefect-aws's observer hides a message this long while it handles it
RETENTION_SECONDS = 7 * 24 * 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
MAX_RECEIVES = 3
EVENTS = "events.amazonaws.com"


def event_pattern(cluster_arn: str) -> str:
    return json.dumps(
        {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"], "detail": {"clusterArn": [cluster_arn]}}
    )


def queue_policy(queue_arn: str, rule_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyThisClustersRule",
                    "Effect": "Allow",
                    "Principal": {"Service": EVENTS},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def create(s: Settings, cluster: aws.ecs.Cluster) -> aws.sqs.Queue:
    name = event_queue_name(s.base_name)
    dead_letters = aws.sqs.Queue(
        "ecs-events-dlq",
        name=f"{name}-dlq",
        sqs_managed_sse_enabled=True,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
    )
    queue = aws.sqs.Queue(
        "ecs-events",
        name=name,
        sqs_managed_sse_enabled=True,
        visibility_timeout_seconds=VISIBILITY_SECONDS,
        message_retention_seconds=RETENTION_SECONDS,
        redrive_policy=dead_letters.arn.apply(
            lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES})
        ),
    )
    rule = aws.cloudwatch.EventRule(
        "ecs-task-events",
        name=f"{s.base_name}-ecs-task-events",
        description="This cluster's ECS task state changes, for the Prefect worker's crash detection",
        event_pattern=cluster.arn.apply(event_pattern),
    )
    aws.sqs.QueuePolicy(
        "ecs-events-policy",
        queue_url=queue.url,
        policy=pulumi.Output.all(queue.arn, rule.arn).apply(lambda v: queue_policy(v[0], v[1])),
    )
    aws.cloudwatch.EventTarget("ecs-task-events-queue", rule=rule.name, arn=queue.arn, target_id="prefect-worker")
    return queue
