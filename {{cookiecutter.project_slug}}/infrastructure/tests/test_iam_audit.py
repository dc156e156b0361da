"""The generated IAM policies, audited by parliament (an IAM linter that knows each action's resource types and
condition keys from the AWS documentation): no finding but the ones listed here, each with its reason.

The cloud rehearsal (`make rehearse-cloud`) shows every call the clients make is allowed; this audit shows the
documents ask for no more than those actions support (no Resource "*" where a resource can be named, no unknown
action, no malformed statement). Trust policies are resource policies, which parliament does not audit.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

from ml_workflows.testing import pulumi_program as infra_harness

# Accepted findings: (policy resource, parliament issue, actions it names) -> why.
ACCEPTED = {
    ("flow-run-policy", "RESOURCE_STAR", ("ecs:ListTasks",)): (
        "ListTasks names container instances, which Fargate tasks have none of; the statement is limited to this "
        "cluster by its ecs:cluster condition instead"
    ),
    ("flow-run-policy", "PERMISSIONS_MANAGEMENT_ACTIONS", ("",)): (
        "iam:PassRole, which starting a task with a role needs: on the execution and Dask task roles' exact ARNs, "
        "to ecs-tasks.amazonaws.com only"
    ),
    ("prefect-worker-policy", "PERMISSIONS_MANAGEMENT_ACTIONS", ("",)): (
        "iam:PassRole, which starting a flow-run task needs: on the execution and flow-run roles' exact ARNs, "
        "to ecs-tasks.amazonaws.com only"
    ),
    ("task-execution-policy", "CREDENTIALS_EXPOSURE", ("",)): (
        "ecr:GetAuthorizationToken, which ECS needs to pull the image; it takes no resource, and the token only "
        "reaches this repository (PullProjectImage)"
    ),
}
WORKER_POLICY = "prefect-worker-policy"
# The same reasons for the README's worker policy (prefect_worker = no: the user attaches it).
README_WORKER_ACCEPTED = {(issue, actions) for name, issue, actions in ACCEPTED if name == WORKER_POLICY}


def _parliament():
    """parliament 1.6 reads its data files with pkg_resources, which setuptools 81 removed and Poetry environments
    lack: give it the one function it calls, instead of pinning an old setuptools into the project."""
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: os.path.join(
            os.path.dirname(importlib.util.find_spec(package).origin), name
        )
        sys.modules["pkg_resources"] = shim
    import parliament

    return parliament


def findings(document: str) -> list[tuple[str, str, tuple[str, ...]]]:
    policy = _parliament().analyze_policy_string(document, include_community_auditors=True)
    out = []
    for finding in policy.findings:
        detail = finding.detail
        actions = tuple(sorted(detail)) if isinstance(detail, list) else (str(detail),)
        out.append((finding.issue, finding.severity, actions))
    return out


def generated_policies() -> dict[str, str]:
    """policy resource name -> document, as `pulumi up` of a fresh stack would create them."""
    return {p.name: p.inputs["policy"] for p in infra_harness.synth().of_type(":RolePolicy")}


def worker_service() -> bool:
    """prefect_worker = yes: the stack runs the worker and declares its policy (else the README gives it)."""
    project, config = infra_harness.project_config()
    return config.get(f"{project}:prefect_worker") == "true"


def readme_worker_policy() -> str:
    from infra import identity

    arns = identity.Arns("aws", "us-east-1", infra_harness.ACCOUNT, "proj-dev", "proj-dev-data", "/proj/dev")
    return identity.worker_policy(arns)


def test_generated_policies_pass_the_iam_linter():
    seen = {}
    for name, document in generated_policies().items():
        for issue, severity, actions in findings(document):
            seen[(name, issue, actions)] = severity
    unexplained = {key: severity for key, severity in seen.items() if key not in ACCEPTED}
    assert unexplained == {}, f"parliament findings without a reason in ACCEPTED: {unexplained}"


def test_the_readme_worker_policy_passes_the_iam_linter():
    """With the worker service off, users attach identity.worker_policy where they run the worker."""
    assert {(issue, actions) for issue, _, actions in findings(readme_worker_policy())} <= README_WORKER_ACCEPTED


def test_every_accepted_finding_still_occurs():
    """A reason for a finding that no longer happens is stale: take it out."""
    policies = generated_policies()
    assert (WORKER_POLICY in policies) == worker_service(), sorted(policies)
    if not worker_service():  # no worker in the stack: its reasons are checked on the policy the README gives
        policies[WORKER_POLICY] = readme_worker_policy()
    seen = {(name, issue, actions) for name, doc in policies.items() for issue, _, actions in findings(doc)}
    assert set(ACCEPTED) <= seen, set(ACCEPTED) - seen


def test_the_linter_reports_what_it_is_trusted_to_catch():
    """The audit is live: a wildcard resource on an action that names resources, and an unknown action, are found."""
    loose = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},'
        ' {"Effect": "Allow", "Action": "ecs:RunTsk", "Resource": "*"}]}'
    )
    issues = {issue for issue, _, _ in findings(loose)}
    assert {"RESOURCE_STAR", "UNKNOWN_ACTION"} <= issues, issues
