"""The cloud rehearsal's pure helpers (no moto, no tasks): the policy transforms of its negative tests, the projection
moto enforces and the scoping check's evaluation of the real policies."""

import json

from ml_workflows.testing.aws_emulation import Call, projection
from ml_workflows.testing.cloud_rehearsal import drop_action, without_action
from ml_workflows.testing.iam_scope import Request, check, decide, narrow, requests, unused

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Run", "Effect": "Allow", "Action": ["ecs:RunTask", "ecs:ListAccountSettings"], "Resource": "*"},
            {"Sid": "Only", "Effect": "Allow", "Action": "ecs:ListAccountSettings", "Resource": "*"},
            {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:*:*:*"},
        ],
    }
)


def test_without_action_takes_the_action_out_of_every_statement_and_nothing_else():
    policy = json.loads(without_action(POLICY, "ecs:ListAccountSettings"))
    assert policy["Version"] == "2012-10-17"
    assert policy["Statement"] == [
        {"Sid": "Run", "Effect": "Allow", "Action": ["ecs:RunTask"], "Resource": "*"},
        {"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:*:*:*"},
    ]
    assert (
        json.loads(without_action(POLICY, "s3:GetObject"))["Statement"][0]["Action"]
        == json.loads(POLICY)["Statement"][0]["Action"]
    )


def test_drop_action_edits_only_the_named_role():
    edit = drop_action("-flow-run", "ecs:RunTask")
    assert "ecs:RunTask" not in edit("proj-dev-flow-run", POLICY)
    assert edit("proj-dev-dask-task", POLICY) == POLICY


# -- the scoping check (iam_scope.py) ----------------------------------------------------------------------
REGION, ACCOUNT = "us-east-1", "123456789012"
CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/proj-dev"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/proj-dev-dask-task"
SCOPED = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Unscoped", "Effect": "Allow", "Action": "ecs:ListAccountSettings", "Resource": "*"},
        {
            "Sid": "RunDask",
            "Effect": "Allow",
            "Action": "ecs:RunTask",
            "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/dask-*",
            "Condition": {"ArnEquals": {"ecs:cluster": CLUSTER}},
        },
        {
            "Sid": "Pass",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": ROLE,
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
        {"Sid": "Objects", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
        {"Sid": "KeepOut", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/secret/*"},
    ],
}


def call(action, params=None, resource="*", principal="proj-dev-flow-run"):
    return Call(principal, action, "POST", "/", json.dumps(params or {}).encode(), {}, resource)


def test_scope_allows_a_call_only_with_the_resource_and_condition_keys_a_statement_names():
    definition = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/dask-x:3"

    def run(cluster):
        return Request("r", "ecs:RunTask", definition, {"ecs:cluster": cluster})

    assert decide([SCOPED], run(CLUSTER)) == "RunDask"
    assert decide([SCOPED], run(CLUSTER.replace("proj-dev", "other"))) is None  # another cluster
    assert decide([SCOPED], Request("r", "ecs:RunTask", definition)) is None  # no ecs:cluster key
    assert decide([SCOPED], Request("r", "ecs:listaccountsettings", "*")) == "Unscoped"  # actions ignore case
    assert decide([SCOPED], Request("r", "s3:GetObject", "arn:aws:s3:::b/data/x.parquet")) == "Objects"
    assert decide([SCOPED], Request("r", "s3:GetObject", "arn:aws:s3:::b/secret/x")) is None  # an explicit Deny wins
    assert decide([SCOPED], Request("r", "s3:GetObject", "arn:aws:s3:::bb/data/x")) is None


def test_scope_turns_calls_into_the_requests_aws_authorises_and_reports_what_it_cannot_map():
    calls = [
        call(
            "ecs:RegisterTaskDefinition",
            {"family": "dask-c-worker", "taskRoleArn": ROLE, "tags": [{"key": "k", "value": "v"}]},
        ),
        call("ecs:RunTask", {"cluster": "proj-dev", "taskDefinition": "dask-c-worker"}),
        call("ecs:StopTask", {"cluster": CLUSTER, "task": "abc"}),
        call("s3:GetObject", resource="arn:aws:s3:::b/k"),
        Call(  # DeleteObjects: moto checks the bucket, AWS each key
            "proj-dev-flow-run",
            "s3:DeleteObject",
            "POST",
            "/b?delete",
            b"<Delete><Object><Key>a/1</Key></Object><Object><Key>a&amp;2</Key></Object></Delete>",
            {},
            "arn:aws:s3:::b",
        ),
        call("ecs:ListTasks", {"cluster": "proj-dev"}, principal="harness"),  # the harness is not a stack role
        call("kinesis:PutRecord"),
    ]
    reqs, unmapped = requests(calls, REGION, ACCOUNT)
    shown = [(r.action, r.resource, dict(r.context)) for r in reqs]
    definition = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/dask-c-worker:1"
    assert shown == [
        ("ecs:RegisterTaskDefinition", definition, {}),
        ("iam:PassRole", ROLE, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
        ("ecs:TagResource", definition, {"ecs:CreateAction": "RegisterTaskDefinition"}),
        ("ecs:RunTask", definition, {"ecs:cluster": CLUSTER}),  # the family's latest revision, in this cluster
        ("iam:PassRole", ROLE, {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
        ("ecs:StopTask", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/proj-dev/abc", {"ecs:cluster": CLUSTER}),
        ("s3:GetObject", "arn:aws:s3:::b/k", {}),
        ("s3:DeleteObject", "arn:aws:s3:::b/a/1", {}),
        ("s3:DeleteObject", "arn:aws:s3:::b/a&2", {}),
    ]
    assert len(unmapped) == 1 and unmapped[0].startswith("#7 kinesis:PutRecord by proj-dev-flow-run")
    assert "no scoping rule for kinesis:PutRecord" in unmapped[0]


def test_scope_check_names_the_call_a_narrowed_statement_no_longer_allows():
    calls = [call("s3:GetObject", resource="arn:aws:s3:::b/data/x", principal="proj-dev-dask-task")]
    policies = {"proj-dev-dask-task": [json.dumps(SCOPED)]}
    allowed, problems = check(calls, policies, REGION, ACCOUNT)
    assert [sid for _, sid in allowed] == ["Objects"] and problems == []
    narrowed = {"proj-dev-dask-task": [narrow(json.dumps(SCOPED), "Objects", "arn:aws:s3:::b/models/*")]}
    _, problems = check(calls, narrowed, REGION, ACCOUNT)
    assert problems == [
        "#1 s3:GetObject: proj-dev-dask-task s3:GetObject on arn:aws:s3:::b/data/x: "
        "no statement of proj-dev-dask-task's generated policy allows it"
    ]


def test_projection_leaves_out_a_deny_it_cannot_scope():
    projected = projection(SCOPED)["Statement"]
    assert [s["Sid"] for s in projected] == ["Unscoped", "RunDask", "Pass", "Objects"]
    assert all(s["Resource"] == "*" and "Condition" not in s for s in projected)


def test_scope_lists_what_a_role_may_do_but_never_did():
    used = [Request("proj-dev-flow-run", "ecs:RunTask", "x"), Request("proj-dev-flow-run", "S3:GETOBJECT", "y")]
    assert unused({"proj-dev-flow-run": [json.dumps(SCOPED)]}, used) == {
        "proj-dev-flow-run": ["ecs:ListAccountSettings", "iam:PassRole"]
    }
