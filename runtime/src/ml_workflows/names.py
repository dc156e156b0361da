"""The names of this project's Prefect objects: one rule each, unique per project and per stack.

Several projects, and the stacks of one project (dev, prod, ...), may share one Prefect workspace, so no
name is generic:

    flow         <project>-<flow>             batch-scoring-batch-pipeline, batch-scoring-train, ...
    deployment   <flow name>/aws-<stack>      batch-scoring-batch-pipeline/aws-dev   (the stack's ECS deployments)
                 <flow name>/local            batch-scoring-batch-pipeline/local     (this machine's process pool)
    work pool    <name_prefix>-<stack>-ecs    the stack's ECS pool (Pulumi output `work_pool_name`, infra/settings.py)
                 <project>-local              the local process pool
    automation   <project>-<stack>-<kind>     batch-scoring-dev-flow-run-crashed, ... (automations.yaml)
    block        <project>-<stack>-notify     the stack's notification block (the webhook the automations post to)
    artifact     <project>-<kind>             batch-scoring-pipeline-summary, ... (each key's history is the project's)

The flows carry the project (Prefect's UI lists deployments under their flow, so a project's deployments sit
together), the deployments, automations and notification block carry the stack. `make deploy` gives
`prefect deploy` the stack as ``PIPELINE_STACK`` (prefect.yaml: ``aws-{{ $PIPELINE_STACK }}``), and
`make destroy` deletes exactly the names built here for its stack: never a generic name, never a pattern.
``<project>`` is the project's ``Project.name`` (its package's ``__init__.py``; ``batch-scoring`` above).
"""

from __future__ import annotations

import re

from .project import current

STACK_ENV = "PIPELINE_STACK"  # set by `make deploy` for `prefect deploy`: prefect.yaml names the deployments by it

# The flows of flows.py: entrypoint function -> the flow's short name (its Prefect name is project-prefixed).
FLOWS = {
    "generate_flow": "generate",
    "train_flow": "train",
    "score_flow": "score",
    "batch_pipeline": "batch-pipeline",
}
# The flows deployed to the stack's ECS pool (prefect.yaml), by entrypoint function.
AWS_FLOWS = ("batch_pipeline", "train_flow", "score_flow")
LOCAL_DEPLOYMENT = "local"
AUTOMATION_KINDS = ("flow-run-crashed", "flow-run-too-long")  # automations.yaml, by `kind`
# The Prefect artifacts runs publish (ml_workflows.reports), by kind.
ARTIFACT_KINDS = (
    "pipeline-metrics",
    "pipeline-summary",
    "pipeline-rows",
    "pipeline-stages",
    "pipeline-cluster",
    "dask-performance-report",
    "model-comparison",
    "model-comparison-metrics",
    "drift-report",
)

_AWS_DEPLOYMENT = "aws-{stack}"
# How prefect.yaml spells the AWS deployments' name: `prefect deploy` resolves it from make deploy's environment.
AWS_DEPLOYMENT_IN_PREFECT_YAML = _AWS_DEPLOYMENT.format(stack="{{ $PIPELINE_STACK }}")  # STACK_ENV


def stack_key(stack: str) -> str:
    """The stack as it appears in names: lower case, runs of anything but letters, digits and '-' as one '-'
    (Pulumi allows '_' and '.' in stack names; Prefect block names allow neither)."""
    key = re.sub(r"[^a-z0-9-]+", "-", stack.strip().lower()).strip("-")
    if not key:
        raise ValueError(f"stack name {stack!r} has no letters or digits")
    return key


def flow_name(function: str, project: str | None = None) -> str:
    """The Prefect flow name of the flow function ``function`` of flows.py (e.g. ``batch_pipeline``)."""
    project = project or current().name
    return f"{project}-{FLOWS[function]}"


def flow_names(project: str | None = None) -> list[str]:
    project = project or current().name
    return [flow_name(function, project) for function in FLOWS]


def aws_deployment(stack: str) -> str:
    """Name of the stack's ECS deployment of each AWS flow (unique per project through the flow name)."""
    return _AWS_DEPLOYMENT.format(stack=stack_key(stack))


def full_name(function: str, deployment: str, project: str | None = None) -> str:
    """``<flow name>/<deployment name>``: how Prefect (run_deployment, `prefect deployment ...`) finds one."""
    project = project or current().name
    return f"{flow_name(function, project)}/{deployment}"


def aws_deployments(stack: str, project: str | None = None) -> list[str]:
    """The full names of the stack's ECS deployments: what `make deploy` creates and `make destroy` deletes."""
    project = project or current().name
    return [full_name(function, aws_deployment(stack), project) for function in AWS_FLOWS]


def aws_deploy_selector(function: str) -> str:
    """What `prefect deploy --name` takes to pick the AWS deployment of one flow: prefect deploy matches
    prefect.yaml's names before resolving them, and the flow part by the entrypoint's function name."""
    return f"{function}/{AWS_DEPLOYMENT_IN_PREFECT_YAML}"


def local_deployment(function: str = "batch_pipeline", project: str | None = None) -> str:
    project = project or current().name
    return full_name(function, LOCAL_DEPLOYMENT, project)


def local_pool(project: str | None = None) -> str:
    """The local process work pool (`make worker`, `make rehearse`): one per project, no stack."""
    project = project or current().name
    return f"{project}-local"


def automation(kind: str, stack: str, project: str | None = None) -> str:
    """Name of the stack's automation of ``kind`` (automations.yaml)."""
    project = project or current().name
    return f"{project}-{stack_key(stack)}-{kind}"


def automations(stack: str, project: str | None = None) -> list[str]:
    project = project or current().name
    return [automation(kind, stack, project) for kind in AUTOMATION_KINDS]


def notify_block(stack: str, project: str | None = None) -> str:
    """Name of the stack's notification block (the webhook its automations post to)."""
    project = project or current().name
    return f"{project}-{stack_key(stack)}-notify"


def automation_scope(stack: str, project: str | None = None) -> list[dict[str, object]]:
    """``match_related`` of the stack's automations: flow runs of this project's flows (all must match) from the
    stack's deployments - never another project's runs, nor another stack's."""
    project = project or current().name
    return [
        {"prefect.resource.role": "flow", "prefect.resource.name": flow_names(project)},
        {"prefect.resource.role": "deployment", "prefect.resource.name": aws_deployment(stack)},
    ]


def artifact(kind: str, project: str | None = None) -> str:
    """A Prefect artifact key: keys are workspace-wide, so two projects' `pipeline-summary` histories would mix."""
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}: add it to names.ARTIFACT_KINDS")
    project = project or current().name
    return f"{project}-{kind}"
