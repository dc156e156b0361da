"""Stand-in Pulumi stack outputs of this project's `dev` stack, as `pulumi stack output --json` gives them.

The names are the project's (``Project.name``) and the region the stack's (``aws:region`` of
``infrastructure/Pulumi.yaml``), read from the project the tests run in (its directory is the working directory).
"""

from ml_workflows.deploy import stack_config
from ml_workflows.project import current

NAME = current().name
STACK = stack_config.read()
REGION = STACK.region

IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{NAME}:abc123"
OUTPUTS = {
    "aws_region": REGION,
    "vpc_id": "vpc-0123",
    "private_subnet_ids": ["subnet-priv-a", "subnet-priv-b"],
    "public_subnet_ids": ["subnet-pub-a", "subnet-pub-b"],
    "dask_security_group_id": "sg-dask",
    "ecs_cluster_arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/{NAME}-dev",
    "ecs_cluster_name": f"{NAME}-dev",
    "execution_role_arn": "arn:aws:iam::123456789012:role/execution",
    "task_role_arn": "arn:aws:iam::123456789012:role/dask-task",
    "flow_run_role_arn": "arn:aws:iam::123456789012:role/flow-run",
    "log_group_name": f"/{NAME}/dev",
    "bucket_name": f"{NAME}-dev-data",
    "data_url": f"s3://{NAME}-dev-data/pipeline",
    "ecr_repository_url": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{NAME}",
    "work_pool_name": f"{NAME}-dev-ecs",
    "flow_run_family": f"{NAME}-dev-flow-run",
    # pragma: allowlist nextline secret - an ARN, not a secret
    "prefect_api_key_secret_arn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:prefect-api-key-AbCdEf",
    # The stack exports its Spot setting (infra/stack.py); FargateCluster puts the workers there when it is on.
    "use_fargate_spot": STACK.fargate_spot,
}
