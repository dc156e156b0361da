"""The policy pack's rules, called directly: each one flags a deliberately bad resource and passes a good one.
(A project's own resources pass every rule: its infrastructure/tests/test_infra_stack.py.)"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import SimpleNamespace

import pytest

from ml_workflows import policy as rules
from ml_workflows.project import root

INFRA_DIR = root() / "infrastructure"

SG_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def _policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


BAD = [
    ("no-public-ingress", SG_RULE, {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 8786, "toPort": 8786}),
    ("no-public-ingress", SG_RULE, {"cidrIpv6": "::/0", "ipProtocol": "-1"}),
    (
        "no-public-ingress",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        {
            "type": "ingress",
            "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"],
            "fromPort": 8787,
            "toPort": 8787,
            "protocol": "tcp",
        },
    ),
    (
        "no-public-ingress",
        "aws:ec2/securityGroup:SecurityGroup",
        {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 0, "toPort": 65535, "protocol": "tcp"}]},
    ),
    ("s3-bucket-not-public", "aws:s3/bucket:Bucket", {"acl": "public-read"}),
    ("s3-bucket-not-public", "aws:s3/bucketAclV2:BucketAclV2", {"acl": "public-read-write"}),
    (
        "s3-bucket-not-public",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {"blockPublicAcls": True, "blockPublicPolicy": False, "ignorePublicAcls": True, "restrictPublicBuckets": True},
    ),
    (
        "s3-bucket-not-public",
        "aws:s3/bucketPolicy:BucketPolicy",
        {
            "policy": _policy(
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "x/*"}
            )
        },
    ),
    (
        "s3-bucket-encrypted",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"rules": []},
    ),
    (
        "s3-bucket-versioned",
        "aws:s3/bucketVersioning:BucketVersioning",
        {"versioningConfiguration": {"status": "Suspended"}},
    ),
    ("ecr-scan-on-push", "aws:ecr/repository:Repository", {"imageScanningConfiguration": {"scanOnPush": False}}),
    ("ecr-scan-on-push", "aws:ecr/repository:Repository", {}),
    ("log-group-retention", "aws:cloudwatch/logGroup:LogGroup", {"name": "/ecs/x"}),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": _policy({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b"})},
    ),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": _policy({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"})},
    ),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
    ),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": _policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})},
    ),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": _policy({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})},
    ),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {"policy": _policy({"Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "arn:aws:iam::1:role/dask-*"})},
    ),
    (
        "iam-least-privilege",
        "aws:iam/role:Role",
        {"assumeRolePolicy": _policy({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"})},
    ),
]

GOOD = [
    ("no-public-ingress", SG_RULE, {"cidrIpv4": "10.42.0.0/16", "ipProtocol": "tcp", "fromPort": 8786, "toPort": 8786}),
    ("no-public-ingress", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", {"cidrIpv4": "0.0.0.0/0"}),
    (
        "s3-bucket-not-public",
        "aws:s3/bucketPolicy:BucketPolicy",
        {"policy": _policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"})},
    ),
    (
        "iam-least-privilege",
        ROLE_POLICY,
        {
            "policy": _policy(
                {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ec2:DescribeSubnets"], "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": ["arn:aws:iam::1:role/a", "arn:aws:iam::1:role/b"],
                },
            )
        },
    ),
    ("iam-least-privilege", ROLE_POLICY, {}),  # policy text unknown at preview: judged at `pulumi up`
]


@pytest.mark.parametrize(("rule", "resource_type", "props"), BAD)
def test_rule_flags_a_bad_resource(rule, resource_type, props):
    assert rules.RESOURCE_RULES[rule](resource_type, props)


@pytest.mark.parametrize(("rule", "resource_type", "props"), GOOD)
def test_rule_passes_a_good_resource(rule, resource_type, props):
    assert rules.RESOURCE_RULES[rule](resource_type, props) == []


def test_dask_port_named_in_the_message():
    [message] = rules.no_public_ingress(
        SG_RULE, {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 8787, "toPort": 8787}
    )
    assert "8787" in message and "0.0.0.0/0" in message


def _bucket_set(*missing: str) -> list:
    kinds = {
        "pab": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "sse": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "versioning": "aws:s3/bucketVersioning:BucketVersioning",
    }
    resources = [rules.Resource("aws:s3/bucket:Bucket", "data", {"bucket": "b1"})]
    resources += [rules.Resource(t, k, {"bucket": "b1"}) for k, t in kinds.items() if k not in missing]
    return resources


def test_stack_rule_requires_every_bucket_companion():
    assert rules.buckets_fully_protected(_bucket_set()) == []
    assert rules.buckets_fully_protected(_bucket_set("sse")) == ["bucket data has no server-side encryption"]
    assert len(rules.buckets_fully_protected(_bucket_set("pab", "versioning"))) == 2
    # at preview the bucket reference may be unknown: property dependencies identify it instead
    by_dependency = [
        r if r.type.endswith(":Bucket") else rules.Resource(r.type, r.name, {}, {"bucket": ["data"]})
        for r in _bucket_set()
    ]
    assert rules.buckets_fully_protected(by_dependency) == []


def test_stack_rule_requires_ecr_lifecycle_policy():
    repo = rules.Resource("aws:ecr/repository:Repository", "repo", {"name": "r"})
    policy = rules.Resource("aws:ecr/lifecyclePolicy:LifecyclePolicy", "lc", {"repository": "r"})
    assert rules.repositories_have_lifecycle([repo, policy]) == []
    assert rules.repositories_have_lifecycle([repo]) == ["repository repo has no lifecycle policy"]


def test_policy_pack_wraps_every_rule():
    """The project's pack module (run by the Pulumi CLI) turns each rule into a policy that reports its violations."""
    spec = importlib.util.spec_from_file_location("infra_policy_pack", INFRA_DIR / "policy" / "__main__.py")
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)  # not as __main__: serves nothing
    assert pack.serve is rules.serve  # the project's pack is the runtime's
    policies = {p.name: p for p in rules.policies()}
    assert set(policies) == set(rules.RESOURCE_RULES) | set(rules.STACK_RULES)
    assert all(p.enforcement_level is None for p in policies.values())  # the pack's MANDATORY level applies

    reported = []
    bad = SimpleNamespace(resource_type=SG_RULE, props={"cidrIpv4": "0.0.0.0/0", "ipProtocol": "-1"})
    policies["no-public-ingress"].validate(bad, lambda message, urn=None: reported.append(message))
    assert len(reported) == 1 and "8786" in reported[0]

    reported.clear()
    stack = SimpleNamespace(
        resources=[
            SimpleNamespace(resource_type=r.type, name=r.name, props=r.props, property_dependencies={})
            for r in _bucket_set("versioning")
        ]
    )
    policies["s3-bucket-protection-attached"].validate(stack, lambda message, urn=None: reported.append(message))
    assert reported == ["bucket data has no versioning"]
