"""Resource and condition scoping of the generated IAM policies, checked on the calls the cloud rehearsal recorded.

moto enforces actions only (it evaluates every request against Resource "*" with no condition context), so the
rehearsal gives each role an action-level projection of its policies (aws_emulation.py). This module checks the
rest on the same run: each recorded call becomes the authorisation requests AWS would evaluate for it - its action,
the ARN of each resource it touches, the condition keys AWS sets (`ecs:cluster`, `iam:PassedToService`, `s3:prefix`,
`ecs:CreateAction`) and the implicit ones (`iam:PassRole` for the roles a task definition or RunTask passes,
`ecs:TagResource` for tags set on creation) - and each request is evaluated against the *real* generated documents
of the role that made the call: an explicit Deny wins, otherwise an Allow statement must match the action, the
resource and every condition.

An action without a rule here is reported, never skipped: a new call of a client needs its resource written down.
"""

from __future__ import annotations

import fnmatch
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_workflows import policy

ECS_TASKS = "ecs-tasks.amazonaws.com"
HARNESS = "harness"  # the rehearsal's own identity (it plays Pulumi and ECS's service scheduler): not a stack role
# Actions that support no resource-level permissions (AWS evaluates them against "*"): the policy pack's list, the
# one the generated policies are held to.
UNSCOPED = policy.ACTIONS_WITHOUT_RESOURCE_SCOPE


@dataclass(frozen=True)
class Request:
    """One authorisation AWS makes: `principal` asks for `action` on `resource` with condition keys `context`."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)
    origin: str = ""  # the recorded call it comes from: "#<n> <action>"

    def __str__(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in sorted(self.context.items()))
        return f"{self.origin}: {self.principal} {self.action} on {self.resource}" + (f" [{keys}]" if keys else "")


@dataclass
class Arns:
    """ARNs as AWS forms them in this account and region."""

    region: str
    account: str
    partition: str = "aws"

    def ecs(self, resource: str) -> str:
        return f"arn:{self.partition}:ecs:{self.region}:{self.account}:{resource}"

    def cluster(self, name_or_arn: str | None) -> str:
        value = name_or_arn or "default"
        return value if value.startswith("arn:") else self.ecs(f"cluster/{value}")

    def task(self, cluster_arn: str, task: str) -> str:
        return task if task.startswith("arn:") else self.ecs(f"task/{cluster_arn.rsplit('/', 1)[-1]}/{task}")

    def log_group(self, name: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{name}"

    def log_stream(self, group: str, stream: str) -> str:
        return f"{self.log_group(group)}:log-stream:{stream}"

    def queue(self, name: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{name}"


# -- calls -> requests ------------------------------------------------------------------------------------
class Unmapped(Exception):
    pass


def requests(calls: Iterable[Any], region: str, account: str) -> tuple[list[Request], list[str]]:
    """The authorisation requests of every allowed call of a stack role, in order; and the calls with no rule."""
    arns = Arns(region, account)
    revisions: dict[str, int] = {}  # task-definition family -> its latest revision, counted from the registrations
    roles_of: dict[str, list[str]] = {}  # task-definition ARN -> roles it passes (execution, task)
    out: list[Request] = []
    unmapped: list[str] = []
    for number, call in enumerate(calls, start=1):
        if call.denied or call.principal == HARNESS:
            if call.action == "ecs:RegisterTaskDefinition" and not call.denied:
                _register(call.params(), arns, revisions, roles_of)  # the harness's own families count too
            continue
        origin = f"#{number} {call.action}"
        try:
            for action, resource, context in _requests_of(call, arns, revisions, roles_of):
                out.append(Request(call.principal, action, resource, context, origin))
        except Unmapped as missing:
            unmapped.append(f"{origin} by {call.principal}: {missing}")
    return out, unmapped


def _register(params: Mapping[str, Any], arns: Arns, revisions: dict[str, int], roles_of: dict[str, list[str]]) -> str:
    family = params["family"]
    revisions[family] = revisions.get(family, 0) + 1
    arn = arns.ecs(f"task-definition/{family}:{revisions[family]}")
    roles_of[arn] = [r for r in (params.get("executionRoleArn"), params.get("taskRoleArn")) if r]
    return arn


def _task_definition(value: str, arns: Arns, revisions: Mapping[str, int]) -> str:
    """A RunTask taskDefinition (family, family:revision or ARN) as the ARN AWS authorises."""
    if value.startswith("arn:"):
        return value
    if ":" in value:
        return arns.ecs(f"task-definition/{value}")
    if value not in revisions:
        raise Unmapped(f"task definition family {value!r} was never registered in this run")
    return arns.ecs(f"task-definition/{value}:{revisions[value]}")


def _pass_roles(roles: Iterable[str]) -> list[tuple[str, str, dict[str, str]]]:
    return [("iam:PassRole", role, {"iam:PassedToService": ECS_TASKS}) for role in dict.fromkeys(roles)]


def _requests_of(call: Any, arns: Arns, revisions: dict[str, int], roles_of: dict[str, list[str]]):
    action, p = call.action, call.params()
    if action == "ecs:RegisterTaskDefinition":
        arn = _register(p, arns, revisions, roles_of)
        yield action, arn, {}  # the revision it creates
        yield from _pass_roles(roles_of[arn])
        if p.get("tags"):
            yield "ecs:TagResource", arn, {"ecs:CreateAction": "RegisterTaskDefinition"}
        return
    if action == "ecs:RunTask":
        cluster = arns.cluster(p.get("cluster"))
        definition = _task_definition(p["taskDefinition"], arns, revisions)
        yield action, definition, {"ecs:cluster": cluster}
        overrides = p.get("overrides") or {}
        passed = [overrides.get("executionRoleArn"), overrides.get("taskRoleArn")]
        yield from _pass_roles([r for r in [*roles_of.get(definition, []), *passed] if r])
        if p.get("tags") or p.get("propagateTags") not in (None, "NONE"):
            # The new task's ARN is not in the request; its cluster part is what a policy can scope.
            yield "ecs:TagResource", arns.task(cluster, "new-task-id"), {"ecs:CreateAction": "RunTask"}
        return
    if action in ("ecs:DescribeTasks", "ecs:StopTask"):
        cluster = arns.cluster(p.get("cluster"))
        tasks = p.get("tasks") or [p["task"]]
        for task in [tasks] if isinstance(tasks, str) else tasks:
            yield action, arns.task(cluster, task), {"ecs:cluster": cluster}
        return
    if action == "ecs:DescribeClusters":
        for cluster in p.get("clusters") or ["default"]:
            yield action, arns.cluster(cluster), {}
        return
    if action == "ecs:ListTasks":
        yield action, "*", {"ecs:cluster": arns.cluster(p.get("cluster"))}
        return
    if action == "ecs:TagResource":
        yield action, p["resourceArn"], {}
        return
    if any(fnmatch.fnmatchcase(action, pattern) for pattern in UNSCOPED):
        yield action, "*", {}
        return
    if action == "secretsmanager:GetSecretValue":
        yield action, p["SecretId"], {}
        return
    if action == "sqs:GetQueueUrl":
        yield action, arns.queue(p["QueueName"]), {}
        return
    if action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        yield action, arns.queue(p["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]), {}  # .../<account>/<queue name>
        return
    if action in ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:CreateLogGroup"):
        yield action, arns.log_group(p["logGroupName"]), {}
        return
    if action in ("logs:PutLogEvents", "logs:GetLogEvents"):
        yield action, arns.log_stream(p["logGroupName"], p["logStreamName"]), {}
        return
    if action == "s3:DeleteObject" and b"<Delete" in (call.body or b""):
        # DeleteObjects (one request, many keys): moto checks it on the bucket, AWS on each object it deletes.
        for key in re.findall(rb"<Key>(.*?)</Key>", call.body, re.S):
            yield action, f"{call.resource}/{html.unescape(key.decode())}", {}
        return
    if action == "s3:ListBucket" and call.resource.startswith("arn:"):
        # A listing's prefix is the condition key s3:prefix (absent with no prefix, as for HeadBucket).
        prefix = _listed((call.data or {}).get("prefix") or [])
        yield action, call.resource, {"s3:prefix": prefix[0]} if prefix else {}
        return
    if action.startswith("s3:") and call.resource.startswith("arn:"):
        yield action, call.resource, {}  # moto resolves the bucket/object ARN of each S3 request itself
        return
    raise Unmapped(f"no scoping rule for {action}: add its resource to iam_scope.py")


# -- evaluation ---------------------------------------------------------------------------------------------
def _pattern(value: str, ignore_case: bool = False) -> re.Pattern[str]:
    """An IAM wildcard (`*` any run of characters, `?` one character) as a regular expression."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(patterns: Any, value: str, ignore_case: bool = False) -> bool:
    return any(_pattern(p, ignore_case).match(value) for p in _listed(patterns))


CONDITIONS = {
    "StringEquals": lambda expected, actual: actual in expected,
    "ArnEquals": lambda expected, actual: actual in expected,
    "StringLike": lambda expected, actual: any(_pattern(e).match(actual) for e in expected),
    "ArnLike": lambda expected, actual: any(_pattern(e).match(actual) for e in expected),
}


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        if operator not in CONDITIONS:
            raise ValueError(f"condition operator {operator} is not evaluated here: add it to iam_scope.CONDITIONS")
        for key, expected in keys.items():
            actual = context.get(key)
            if actual is None or not CONDITIONS[operator](_listed(expected), actual):
                return False
    return True


def _statements(documents: Iterable[str | Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = []
    for document in documents:
        doc = json.loads(document) if isinstance(document, str) else document
        statements = doc["Statement"]
        out.extend([statements] if isinstance(statements, Mapping) else statements)
    return out


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise ValueError(f"statement {statement.get('Sid')!r}: NotAction/NotResource are not evaluated here")
    return (
        _matches(statement["Action"], request.action, ignore_case=True)
        and _matches(statement["Resource"], request.resource)
        and _conditions_hold(statement.get("Condition", {}), request.context)
    )


def decide(documents: Sequence[str | Mapping[str, Any]], request: Request) -> str | None:
    """The Sid of the statement allowing `request` ("" when it has none), or None when the documents deny it."""
    statements = _statements(documents)
    if any(s["Effect"] == "Deny" and _applies(s, request) for s in statements):
        return None
    return next((s.get("Sid", "") for s in statements if s["Effect"] == "Allow" and _applies(s, request)), None)


def check(
    calls: Iterable[Any], policies: Mapping[str, Sequence[str]], region: str, account: str
) -> tuple[list[tuple[Request, str]], list[str]]:
    """Every recorded call's requests against its role's generated documents: (allowed requests with the Sid that
    allows each, problems). A problem names the call, its resource and condition keys."""
    reqs, problems = requests(calls, region, account)
    allowed = []
    for request in reqs:
        documents = policies.get(request.principal)
        if documents is None:
            problems.append(f"{request}: no generated policy for role {request.principal!r}")
            continue
        sid = decide(documents, request)
        if sid is None:
            problems.append(f"{request}: no statement of {request.principal}'s generated policy allows it")
        else:
            allowed.append((request, sid))
    return allowed, problems


def unused(policies: Mapping[str, Sequence[str]], allowed: Iterable[Request]) -> dict[str, list[str]]:
    """role -> the actions its Allow statements grant that none of `allowed` used."""
    used = {(r.principal, r.action.lower()) for r in allowed}
    out = {}
    for role, documents in policies.items():
        granted = {a for s in _statements(documents) if s["Effect"] == "Allow" for a in _listed(s["Action"])}
        out[role] = sorted(a for a in granted if (role, a.lower()) not in used)
    return out


def narrow(document: str, sid: str, resource: str) -> str:
    """The document with statement `sid`'s Resource replaced (for the negative test: narrower than a call needs)."""
    policy = json.loads(document)
    for statement in policy["Statement"]:
        if statement.get("Sid") == sid:
            statement["Resource"] = resource
            return json.dumps(policy)
    raise KeyError(f"no statement {sid!r}")
