"""The security rules of an ml-workflows stack, and the Pulumi policy pack that enforces them.

Rules are plain functions over a resource's type and properties (the engine's camelCase names, as `pulumi preview`
and Pulumi's test mocks both see them); :func:`policies` wraps each as a mandatory policy and :func:`serve` runs
the pack (a project's ``infrastructure/policy/__main__.py`` calls it, so `make preview` / `make provision` refuse a
stack that breaks a rule). The runtime's tests call the rules on deliberately bad examples; a project's own tests
call them on its program's resources.

Each rule returns a list of violation messages (empty: compliant). Values unknown at preview (None) pass.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

DASK_PORTS = (8786, 8787)
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
ENCRYPTION_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}
# Actions that support no resource-level permissions: the only place an Allow may use Resource "*".
ACTIONS_WITHOUT_RESOURCE_SCOPE = (
    "ecr:GetAuthorizationToken",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "ecs:ListClusters",
    "ecs:ListTasks",
    "ecs:ListAccountSettings",
    "ec2:Describe*",
    "logs:DescribeLogGroups",
    "sts:GetCallerIdentity",
)

Props = Mapping[str, Any]


# --- network -------------------------------------------------------------------------------------------------


def _is_world(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


def _ports(rule: Props) -> tuple[int, int]:
    if str(rule.get("ipProtocol", rule.get("protocol", ""))) in ("-1", "all"):
        return 0, 65535
    return int(rule.get("fromPort") or 0), int(rule.get("toPort") or 65535)


def _ingress_rules(resource_type: str, props: Props) -> list[tuple[Props, list[Any]]]:
    """(rule, source CIDRs) for every ingress rule a resource declares, whichever resource type declares it."""
    if resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        return [(props, [props.get("cidrIpv4"), props.get("cidrIpv6")])]
    if resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        return [(props, [*(props.get("cidrBlocks") or []), *(props.get("ipv6CidrBlocks") or [])])]
    if resource_type in ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
        return [
            (r, [*(r.get("cidrBlocks") or []), *(r.get("ipv6CidrBlocks") or [])]) for r in props.get("ingress") or []
        ]
    return []


def no_public_ingress(resource_type: str, props: Props) -> list[str]:
    """No security group accepts traffic from the whole internet (0.0.0.0/0 or ::/0) - above all not the Dask
    scheduler (8786) and dashboard (8787): nothing in this stack serves the public."""
    violations = []
    for rule, sources in _ingress_rules(resource_type, props):
        low, high = _ports(rule)
        for cidr in sources:
            if cidr is not None and _is_world(cidr):
                dask = [p for p in DASK_PORTS if low <= p <= high]
                what = f"the Dask port(s) {dask}" if dask else f"ports {low}-{high}"
                violations.append(f"ingress from {cidr} to {what}; allow the VPC CIDR or a specific range instead")
    return violations


# --- S3 ------------------------------------------------------------------------------------------------------


def _principal_is_anyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


def bucket_not_public(resource_type: str, props: Props) -> list[str]:
    """Buckets are never public: no public ACL, no website, every public-access-block flag on, no Allow to anyone."""
    violations = []
    if resource_type in ("aws:s3/bucket:Bucket", "aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2"):
        if props.get("acl") in PUBLIC_ACLS:
            violations.append(f"public ACL {props['acl']!r}")
        if props.get("website"):
            violations.append("static website hosting makes the bucket public")
    if resource_type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
            if props.get(flag) is not True:
                violations.append(f"public access block: {flag} must be true")
    if resource_type == "aws:s3/bucketPolicy:BucketPolicy":
        for stmt in _statements(props.get("policy")):
            if stmt.get("Effect") == "Allow" and _principal_is_anyone(stmt.get("Principal")):
                violations.append("bucket policy allows Principal '*'")
    return violations


def bucket_encrypted(resource_type: str, props: Props) -> list[str]:
    """Bucket encryption configurations use SSE-S3 or SSE-KMS."""
    if resource_type != "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        return []
    algorithms = [
        (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for rule in props.get("rules") or []
    ]
    if not algorithms or any(a not in ENCRYPTION_ALGORITHMS for a in algorithms):
        return [f"server-side encryption must be one of {sorted(ENCRYPTION_ALGORITHMS)}, got {algorithms}"]
    return []


def bucket_versioned(resource_type: str, props: Props) -> list[str]:
    """Bucket versioning is Enabled (an overwritten or deleted object can be recovered)."""
    if resource_type != "aws:s3/bucketVersioning:BucketVersioning":
        return []
    status = (props.get("versioningConfiguration") or {}).get("status")
    return [] if status == "Enabled" else [f"versioning must be Enabled, got {status!r}"]


# --- ECR and logs --------------------------------------------------------------------------------------------


def ecr_scan_on_push(resource_type: str, props: Props) -> list[str]:
    """ECR repositories scan every pushed image for known vulnerabilities."""
    if resource_type != "aws:ecr/repository:Repository":
        return []
    scanning = props.get("imageScanningConfiguration") or {}
    return [] if scanning.get("scanOnPush") is True else ["image scanning on push must be enabled"]


def log_retention(resource_type: str, props: Props) -> list[str]:
    """Log groups have a retention period."""
    if resource_type != "aws:cloudwatch/logGroup:LogGroup":
        return []
    days = props.get("retentionInDays")
    return [] if days else ["log group needs a retention period (logs are otherwise kept and billed forever)"]


# --- IAM -----------------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _statements(policy: Any) -> list[dict]:
    if policy is None:
        return []  # unknown at preview
    doc = json.loads(policy) if isinstance(policy, str) else policy
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def _policy_documents(resource_type: str, props: Props) -> list[Any]:
    if resource_type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:iam/userPolicy:UserPolicy"):
        return [props.get("policy")]
    if resource_type == "aws:iam/role:Role":
        return [p.get("policy") for p in props.get("inlinePolicies") or []]
    return []


def _needs_no_resource_scope(action: str) -> bool:
    return any(fnmatchcase(action, pattern) for pattern in ACTIONS_WITHOUT_RESOURCE_SCOPE)


def statement_violations(stmt: Mapping[str, Any]) -> list[str]:
    """One Allow statement: no "*" or "service:*" actions, no NotAction/NotResource, Resource "*" only for actions
    that cannot be scoped, iam:PassRole only on named roles."""
    if stmt.get("Effect") != "Allow":
        return []
    sid = stmt.get("Sid", "(no Sid)")
    actions = [str(a) for a in _as_list(stmt.get("Action"))]
    resources = [str(r) for r in _as_list(stmt.get("Resource"))]
    violations = []
    if "NotAction" in stmt or "NotResource" in stmt:
        violations.append(f"{sid}: NotAction/NotResource grant more than they name")
    for action in actions:
        if action == "*" or action.endswith(":*"):
            violations.append(f"{sid}: wildcard action {action!r}")
    if "*" in resources:
        scoped = [a for a in actions if not _needs_no_resource_scope(a)]
        if scoped:
            violations.append(f"{sid}: Resource '*' for actions that can name their resources: {scoped}")
    passes_roles = any(fnmatchcase("iam:PassRole", a) or a.lower() == "iam:passrole" for a in actions)
    if passes_roles and (not resources or any("*" in r or ":role/" not in r for r in resources)):
        violations.append(f"{sid}: iam:PassRole must list exact role ARNs, got {resources}")
    return violations


def iam_least_privilege(resource_type: str, props: Props) -> list[str]:
    """IAM policies name their actions and resources; PassRole lists exact roles; trust policies name a principal."""
    violations = []
    for doc in _policy_documents(resource_type, props):
        for stmt in _statements(doc):
            violations.extend(statement_violations(stmt))
    if resource_type == "aws:iam/role:Role":
        for stmt in _statements(props.get("assumeRolePolicy")):
            if stmt.get("Effect") == "Allow" and _principal_is_anyone(stmt.get("Principal")):
                violations.append("trust policy lets anyone assume the role")
    return violations


RESOURCE_RULES = {
    "no-public-ingress": no_public_ingress,
    "s3-bucket-not-public": bucket_not_public,
    "s3-bucket-encrypted": bucket_encrypted,
    "s3-bucket-versioned": bucket_versioned,
    "ecr-scan-on-push": ecr_scan_on_push,
    "log-group-retention": log_retention,
    "iam-least-privilege": iam_least_privilege,
}


# --- whole stack ---------------------------------------------------------------------------------------------


@dataclass
class Resource:
    """What a stack rule sees of a resource: `deps` maps a property to the names of resources it references
    (the policy pack fills it from property dependencies, which are known even when values are not)."""

    type: str
    name: str
    props: Props
    deps: dict[str, list[str]] = field(default_factory=dict)


COMPANIONS = {
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "a public access block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "server-side encryption",
    "aws:s3/bucketVersioning:BucketVersioning": "versioning",
}


def _refers_to(companion: Resource, prop: str, target: Resource, target_keys: Iterable[str]) -> bool:
    if target.name in companion.deps.get(prop, []):
        return True
    value = companion.props.get(prop)
    return value is not None and any(value == target.props.get(k) for k in target_keys)


def buckets_fully_protected(resources: list[Resource]) -> list[str]:
    """Every bucket has a public access block, server-side encryption and versioning attached."""
    violations = []
    for bucket in (r for r in resources if r.type == "aws:s3/bucket:Bucket"):
        for companion_type, what in COMPANIONS.items():
            if not any(
                r.type == companion_type and _refers_to(r, "bucket", bucket, ("bucket", "id")) for r in resources
            ):
                violations.append(f"bucket {bucket.name} has no {what}")
    return violations


def repositories_have_lifecycle(resources: list[Resource]) -> list[str]:
    """Every ECR repository has a lifecycle policy (old images otherwise accumulate, billed per GB)."""
    policies = [r for r in resources if r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy"]
    return [
        f"repository {repo.name} has no lifecycle policy"
        for repo in (r for r in resources if r.type == "aws:ecr/repository:Repository")
        if not any(_refers_to(p, "repository", repo, ("name",)) for p in policies)
    ]


STACK_RULES = {
    "s3-bucket-protection-attached": buckets_fully_protected,
    "ecr-lifecycle-policy-attached": repositories_have_lifecycle,
}


# -- the policy pack --------------------------------------------------------------------------------------------


def _resource_policy(name, rule):
    from pulumi_policy import ResourceValidationPolicy

    def validate(args, report_violation):
        for message in rule(args.resource_type, args.props):
            report_violation(message)

    return ResourceValidationPolicy(
        name=name, description=(rule.__doc__ or name).strip().splitlines()[0], validate=validate
    )


def _stack_policy(name, rule):
    from pulumi_policy import StackValidationPolicy

    def validate(args, report_violation):
        resources = [
            Resource(
                type=r.resource_type,
                name=r.name,
                props=r.props,
                deps={prop: [d.name for d in deps] for prop, deps in (r.property_dependencies or {}).items()},
            )
            for r in args.resources
        ]
        for message in rule(resources):
            report_violation(message)

    return StackValidationPolicy(
        name=name, description=(rule.__doc__ or name).strip().splitlines()[0], validate=validate
    )


def policies() -> list:
    """Every rule as a policy (the pack's enforcement level, mandatory, applies to each)."""
    return [
        *(_resource_policy(name, rule) for name, rule in RESOURCE_RULES.items()),
        *(_stack_policy(name, rule) for name, rule in STACK_RULES.items()),
    ]


def serve(name: str) -> None:
    """Serve the pack to the Pulumi CLI (it runs the project's policy/__main__.py, which calls this)."""
    from pulumi_policy import EnforcementLevel, PolicyPack

    PolicyPack(name=name, enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
