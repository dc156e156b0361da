"""IAM roles for ECS tasks, least privilege:

- task execution role: ECS pulls the project image, writes container logs (this repository, this log group) and
  reads the Prefect API key from Secrets Manager into the containers that declare it as a `secret`;
- Dask task role (scheduler and workers): the project bucket's data prefix, nothing else;
- flow-run role: what `dask_cloudprovider.aws.FargateCluster` does with an existing cluster, network and roles
  (read the account's ARN-format setting, register this stack's Dask task definitions and deregister them after
  the run, run/stop/describe tasks in this cluster, describe ENIs to find the scheduler's IP, read its logs),
  `iam:PassRole` on exactly the two roles above, and the project bucket's data (and tracking) prefixes;
- Prefect worker role: what prefect-aws's ECS worker does to start a flow run (register/describe the flow-run
  task definition, run/stop/describe it in this cluster, check the VPC and subnets of the work pool),
  `iam:PassRole` on exactly the execution and flow-run roles, and read this cluster's task events from the stack's
  queue (crash detection, infra/events.py). The worker runs as a Fargate service of the stack
  (infra/worker.py) or, when that is off, wherever the user attaches `worker_policy` (README).

Which call needs which statement is shown by the cloud rehearsal (`make rehearse-cloud`), which records every
call the real clients make and checks it against these documents.

Policies are built from ARNs computed from resource names, so their full text is known at `pulumi preview` and
the policy pack can check it before anything is created.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

ECS_TASKS = "ecs-tasks.amazonaws.com"


@dataclass(frozen=True)
class Arns:
    """ARNs of this stack's resources, from their names (all created with explicit names)."""

    partition: str
    region: str
    account: str
    base_name: str
    bucket_name: str
    log_group_name: str

    def _arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if region else ''}:{self.account}:{resource}"

    def role(self, suffix: str) -> str:
        return self._arn("iam", f"role/{role_name(self.base_name, self.region, suffix)}", region=False)

    @property
    def cluster(self) -> str:
        return self._arn("ecs", f"cluster/{self.base_name}")

    @property
    def cluster_tasks(self) -> str:
        return self._arn("ecs", f"task/{self.base_name}/*")

    @property
    def dask_task_definitions(self) -> str:
        # FargateCluster registers families dask-<its name>-scheduler / -worker; the runtime names each cluster
        # <ECS cluster name>_<run id> (ml_workflows.fargate: dask_cluster_name), so these are this stack's only: base
        # names hold no "_" (settings.Settings).
        return self._arn("ecs", f"task-definition/{dask_family_prefix(self.base_name)}*")

    @property
    def flow_run_task_definitions(self) -> str:
        # prefect-aws registers the work pool's task definition family (ml_workflows.deploy.work_pool: <base>-flow-run).
        return self._arn("ecs", f"task-definition/{self.base_name}-flow-run:*")

    @property
    def prefect_api_key_secret(self) -> str:
        # Secrets Manager appends "-" and six random characters to the name.
        return self._arn("secretsmanager", f"secret:{prefect_api_key_secret_name(self.base_name)}-??????")

    @property
    def event_queue(self) -> str:
        return self._arn("sqs", event_queue_name(self.base_name))

    @property
    def log_group(self) -> str:
        return self._arn("logs", f"log-group:{self.log_group_name}")

    @property
    def repository(self) -> str:
        return self._arn("ecr", f"repository/{self.base_name}")

    @property
    def bucket(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket_name}"


EXECUTION, DASK_TASK, FLOW_RUN, PREFECT_WORKER = "task-execution", "dask-task", "flow-run", "prefect-worker"
# Actions that support no resource-level permissions: "*" is the only valid Resource for them.
FLOW_RUN_UNSCOPED = (
    "ecs:ListAccountSettings",  # FargateCluster asks whether tasks may be tagged before every RunTask
    # After the run, FargateCluster's two task definitions (ml_workflows.fargate); IAM offers no resource or condition
    # key for it, so "*" is the only form. Registering and running stay this stack's families (dask_task_definitions).
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
)
WORKER_UNSCOPED = (
    "ecs:DescribeTaskDefinition",
    "ec2:DescribeVpcs",  # the worker checks that the work pool's subnets belong to its VPC
    "ec2:DescribeSubnets",
)


ROLE_SUFFIXES = (EXECUTION, DASK_TASK, FLOW_RUN, PREFECT_WORKER)


def role_name(base_name: str, region: str, suffix: str) -> str:
    """IAM names are global: the region keeps the same stack name in two regions apart (at most 64 characters,
    checked by settings.Settings)."""
    return f"{base_name}-{region}-{suffix}"


def dask_family_prefix(base_name: str) -> str:
    """Every Dask task definition family of this stack starts so (ml_workflows.fargate: dask_cluster_name)."""
    return f"dask-{base_name}_"


def event_queue_name(base_name: str) -> str:
    """The SQS queue of this cluster's ECS task events (infra/events.py), which prefect-aws's task observer reads
    (PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME: infra/worker.py, `make worker-aws`)."""
    return f"{base_name}-ecs-events"


def prefect_api_key_secret_name(base_name: str) -> str:
    return f"{base_name}/prefect-api-key"


def api_key_secret(base_name: str) -> aws.secretsmanager.Secret:
    """The Prefect API key for the ECS worker and the flow runs. Its value is put by `make deploy`
    (ml_workflows.deploy.commands: store_api_key), never by Pulumi: it stays out of the state."""
    return aws.secretsmanager.Secret(
        "prefect-api-key",
        name=prefect_api_key_secret_name(base_name),
        description="Prefect API key for the ECS worker and flow runs (value set by make deploy)",
        recovery_window_in_days=7,
    )


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def trust_policy(a: Arns) -> str:
    """Only ECS tasks of this account may assume the roles (confused-deputy guard)."""
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": ECS_TASKS},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": a.account}},
        }
    )


# The pipeline's data, models and scores live under this prefix of the bucket (the stack output data_url).
DATA_PREFIX = "pipeline"


def _bucket_statements(a: Arns, prefixes: tuple[str, ...], list_all: bool) -> list[dict]:
    """The bucket's objects under `prefixes` only. Listing: the whole bucket (`list_all`: s3fs's HeadBucket is an
    s3:ListBucket with no prefix), or only under `prefixes` (s3:prefix)."""
    listing = {"Sid": "ListOwnPrefixes", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": a.bucket}
    if not list_all:
        listing["Condition"] = {"StringLike": {"s3:prefix": [form for p in prefixes for form in (p, f"{p}/*")]}}
    return [
        {
            "Sid": "ProjectBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
            "Resource": a.bucket,
        },
        listing,
        {
            "Sid": "ProjectBucketObjects",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": [f"{a.bucket}/{p}/*" for p in prefixes],
        },
    ]


def execution_policy(a: Arns) -> str:
    return _doc(
        {
            # Containers that declare PREFECT_API_KEY as a `secret` (the Prefect worker, flow runs) get it from here,
            # so the key is in no task definition and no environment a DescribeTasks caller can read.
            "Sid": "PrefectApiKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": a.prefect_api_key_secret,
        },
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "PullProjectImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            "Resource": a.repository,
        },
        {
            # FargateCluster's task definitions set awslogs-create-group, which needs CreateLogGroup even though
            # the group exists; it is granted on this group only.
            "Sid": "ContainerLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [a.log_group, f"{a.log_group}:*"],
        },
    )


{% if cookiecutter.tracking == "mlflow" -%}
# MLflow artifacts (tracking = mlflow; ml_workflows.tracking): the flow run writes them under this prefix of the
# project bucket, beside the data prefix. The Dask scheduler and workers are granted the data prefix only (an
# allow-list: no spelling of a key and no listing reaches the artifacts).
TRACKING_PREFIX = "mlflow"


def dask_task_policy(a: Arns) -> str:
    return _doc(*_bucket_statements(a, prefixes=(DATA_PREFIX,), list_all=False))


def flow_run_bucket_statements(a: Arns) -> list[dict]:
    return _bucket_statements(a, prefixes=(DATA_PREFIX, TRACKING_PREFIX), list_all=True)
{%- else -%}
def dask_task_policy(a: Arns) -> str:
    return _doc(*_bucket_statements(a, prefixes=(DATA_PREFIX,), list_all=False))


def flow_run_bucket_statements(a: Arns) -> list[dict]:
    return _bucket_statements(a, prefixes=(DATA_PREFIX,), list_all=True)
{%- endif %}


def flow_run_policy(a: Arns) -> str:
    in_cluster = {"ArnEquals": {"ecs:cluster": a.cluster}}
    return _doc(
        {
            "Sid": "TaskDefinitionsAndNetworkLookups",
            "Effect": "Allow",
            "Action": list(FLOW_RUN_UNSCOPED),
            "Resource": "*",
        },
        {
            # Registering names the new revision's ARN: only FargateCluster's own families.
            "Sid": "RegisterDaskTaskDefinitions",
            "Effect": "Allow",
            "Action": "ecs:RegisterTaskDefinition",
            "Resource": a.dask_task_definitions,
        },
        {
            "Sid": "ListTasksInThisCluster",
            "Effect": "Allow",
            "Action": "ecs:ListTasks",
            "Resource": "*",
            "Condition": in_cluster,
        },
        {
            "Sid": "RunDaskTasksInThisCluster",
            "Effect": "Allow",
            "Action": "ecs:RunTask",
            "Resource": a.dask_task_definitions,
            "Condition": in_cluster,
        },
        {
            "Sid": "ManageTasksInThisCluster",
            "Effect": "Allow",
            "Action": ["ecs:StopTask", "ecs:DescribeTasks"],
            "Resource": a.cluster_tasks,
            "Condition": in_cluster,
        },
        {"Sid": "DescribeThisCluster", "Effect": "Allow", "Action": "ecs:DescribeClusters", "Resource": a.cluster},
        {
            # FargateCluster tags its task definitions and tasks when it creates them.
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            "Action": "ecs:TagResource",
            "Resource": [a.dask_task_definitions, a.cluster_tasks],
            "Condition": {"StringEquals": {"ecs:CreateAction": ["RegisterTaskDefinition", "RunTask"]}},
        },
        {
            "Sid": "PassOnlyTheDaskRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": [a.role(EXECUTION), a.role(DASK_TASK)],
            "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}},
        },
        {
            "Sid": "LogsOfThisProject",
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:GetLogEvents",
                "logs:DescribeLogStreams",
                "logs:FilterLogEvents",
            ],
            "Resource": [a.log_group, f"{a.log_group}:*"],
        },
        *flow_run_bucket_statements(a),
    )


def worker_policy(a: Arns) -> str:
    """The Prefect ECS worker: start each flow run of this project's work pool as a Fargate task of this cluster."""
    in_cluster = {"ArnEquals": {"ecs:cluster": a.cluster}}
    return _doc(
        {"Sid": "LookupsWithoutResources", "Effect": "Allow", "Action": list(WORKER_UNSCOPED), "Resource": "*"},
        {
            "Sid": "RegisterFlowRunTaskDefinitions",
            "Effect": "Allow",
            "Action": "ecs:RegisterTaskDefinition",
            "Resource": a.flow_run_task_definitions,
        },
        {
            "Sid": "RunFlowRunsInThisCluster",
            "Effect": "Allow",
            "Action": "ecs:RunTask",
            "Resource": a.flow_run_task_definitions,
            "Condition": in_cluster,
        },
        {
            # Cancelling a flow run stops its task; the worker looks tasks up to report them.
            "Sid": "ManageFlowRunTasks",
            "Effect": "Allow",
            "Action": ["ecs:StopTask", "ecs:DescribeTasks"],
            "Resource": a.cluster_tasks,
            "Condition": in_cluster,
        },
        {
            # The work pool's labels become tags of each flow-run task.
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            "Action": "ecs:TagResource",
            "Resource": [a.flow_run_task_definitions, a.cluster_tasks],
            "Condition": {"StringEquals": {"ecs:CreateAction": ["RegisterTaskDefinition", "RunTask"]}},
        },
        {
            "Sid": "PassOnlyTheFlowRunRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": [a.role(EXECUTION), a.role(FLOW_RUN)],
            "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}},
        },
        {
            # prefect-aws's task observer reads this cluster's task events (infra/events.py) and marks the run of a
            # stopped flow-run task Crashed.
            "Sid": "ReadTaskEvents",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
            "Resource": a.event_queue,
        },
        {
            # ...and copies the end of a crashed run's container log into the run's Prefect logs.
            "Sid": "CrashedRunLogs",
            "Effect": "Allow",
            "Action": "logs:GetLogEvents",
            "Resource": f"{a.log_group}:log-stream:*",
        },
    )


@dataclass
class Identity:
    execution_role: aws.iam.Role
    task_role: aws.iam.Role
    flow_run_role: aws.iam.Role
    worker_role: aws.iam.Role | None


def create(arns: pulumi.Output[Arns], base_name: str, region: str, with_worker: bool) -> Identity:
    def role(suffix: str, description: str, policy) -> aws.iam.Role:
        r = aws.iam.Role(
            f"{suffix}-role",
            name=role_name(base_name, region, suffix),
            description=description,
            assume_role_policy=arns.apply(trust_policy),
            max_session_duration=3600,
        )
        aws.iam.RolePolicy(f"{suffix}-policy", role=r.name, policy=arns.apply(policy))
        return r

    return Identity(
        execution_role=role(EXECUTION, "ECS pulls the project image and writes task logs", execution_policy),
        task_role=role(DASK_TASK, "Dask scheduler and workers: the project bucket only", dask_task_policy),
        flow_run_role=role(
            FLOW_RUN, "Flow runs: start and stop temporary Dask clusters in this ECS cluster", flow_run_policy
        ),
        worker_role=role(PREFECT_WORKER, "Prefect ECS worker: start flow runs as Fargate tasks", worker_policy)
        if with_worker
        else None,
    )
