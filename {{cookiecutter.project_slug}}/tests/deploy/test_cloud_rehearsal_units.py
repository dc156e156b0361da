"""The cloud rehearsal's pure helpers (no moto, no tasks): the policy transform of its negative test."""

import json

from cloud_rehearsal import drop_action, without_action

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
