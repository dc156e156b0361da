"""AWS on loopback for the cloud rehearsal: a moto server in this process, holding what the Pulumi program declares,
with moto's IAM enforcement on and every authorised call recorded.

moto enforces actions only (it checks each request against Resource "*" with no condition context), so each role
gets an *action-level projection* of the policy documents the Pulumi program generates: the same actions,
Resource "*", no Condition. The real documents are never changed; their resource and condition scoping is checked
separately from the recorded calls (iam_scope.py).

Small patches make moto usable by the real clients; the one that touches authorisation only renames actions:
- every ENI moto creates for an awsvpc task gets an address of its own in 127.0.0.0/8 (moto invents 10.x addresses:
  never connect there); own addresses, as on Fargate, so that two schedulers (two rehearsals at once) each have
  their 8786;
- that ENI gets a private DNS name (moto 5.2 leaves it unset and RunTask then fails);
- ECS tasks keep the state the task runner gives them (moto otherwise advances it on every describe);
- S3 requests are checked as the IAM action AWS authorises for them (s3_actions.py: moto 5.2.6 names them by
  operation, s3:HeadObject for s3:GetObject); a request with no mapping is denied and names itself;
- a Fargate task definition may size only the task, not its containers (moto 5.2 adds up container memory).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import threading
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

from ml_workflows.testing import s3_actions

LOOPBACK = "127.0.0.1"
ACCOUNT = "123456789012"  # moto's default account, also the one Pulumi's mocks answer with
ECS_TASKS = "ecs-tasks.amazonaws.com"
SETUP_KEY = "AKIAREHEARSALSETUP00"  # pragma: allowlist secret - a moto-only access key id


@dataclass
class Call:
    """One request moto authorised (or denied) under enforcement."""

    principal: str  # the role (or user) whose credentials signed it
    action: str  # service:Action
    method: str
    path: str
    body: bytes
    data: Mapping[str, Any]
    resource: str  # what moto checked against ("*" for all but S3)
    denied: bool = False
    unmapped: str = ""  # why the harness could not name its IAM action (the call is then denied)

    def params(self) -> dict[str, Any]:
        """The request parameters: JSON body (ECS, logs, secrets) or the query/form data (EC2, IAM, STS)."""
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            return {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in dict(self.data).items()}


@dataclass
class CallLog:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_denied: Callable[[Call], None] | None = None

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
        if call.denied and self.on_denied:
            self.on_denied(call)

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def denied(self) -> list[Call]:
        return [c for c in self.snapshot() if c.denied]


def projection(document: str | Mapping[str, Any]) -> dict[str, Any]:
    """The action-level projection of a policy document: same effect and actions, Resource "*", no Condition.

    A Deny scoped to some resources (say, one prefix of the bucket) would deny the action everywhere once projected,
    so it is left out here; the scoping check (iam_scope.py) evaluates it on every recorded call."""
    doc = json.loads(document) if isinstance(document, str) else dict(document)
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    projected = []
    for st in statements:
        if "NotAction" in st or "NotResource" in st:
            raise ValueError(f"{st.get('Sid')}: NotAction/NotResource cannot be projected to actions")
        if st["Effect"] == "Deny" and (st["Resource"] != "*" or "Condition" in st):
            continue
        projected.append({"Sid": st.get("Sid", ""), "Effect": st["Effect"], "Action": st["Action"], "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": projected}


class MotoAws:
    """moto in this process on 127.0.0.1, patched as the module docstring says; `enforce()` turns IAM on."""

    def __init__(self, region: str):
        from moto.server import ThreadedMotoServer

        self.region = region
        self.log = CallLog()
        self.principals: dict[str, str] = {}  # access key id -> role name
        self._unpatch: list[Callable[[], None]] = []
        self._patch()
        self.server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.reset()  # moto's backends are this process's globals: start from nothing, even after an earlier run
        self.admin: dict[str, str] | None = None
        self.admin = self._harness_identity()

    def _harness_identity(self) -> dict[str, str]:
        """The harness's own user (it plays Pulumi and ECS's service scheduler); made before enforcement."""
        iam = self.client("iam")
        iam.create_user(UserName="rehearsal-harness")
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="rehearsal-harness", PolicyName="harness", PolicyDocument=json.dumps(everything))
        key = iam.create_access_key(UserName="rehearsal-harness")["AccessKey"]
        self.principals[key["AccessKeyId"]] = "harness"
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    # -- moto patches ------------------------------------------------------------------------------------
    def _patch(self) -> None:
        import moto.ecs.models as ecs_models
        from moto import settings as moto_settings
        from moto.ec2.models.elastic_network_interfaces import NetworkInterface
        from moto.iam.access_control import IAMRequestBase
        from moto.moto_api import state_manager

        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = math.inf  # off until enforce()
        original_ip = ecs_models.random_private_ip
        ecs_models.random_private_ip = lambda *a, **k: loopback_address()
        self._unpatch.append(lambda: setattr(ecs_models, "random_private_ip", original_ip))

        if not hasattr(NetworkInterface, "private_dns_name"):
            NetworkInterface.private_dns_name = "ip-127-0-0-1.ec2.internal"
            self._unpatch.append(lambda: delattr(NetworkInterface, "private_dns_name"))
        original_sizes = ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements

        def task_sizes(backend: Any, task_definition: Any) -> Any:
            if task_definition.requires_compatibilities and "FARGATE" in task_definition.requires_compatibilities:
                return {
                    "CPU": int(task_definition.cpu or 0),
                    "MEMORY": int(task_definition.memory or 0),
                    "PORTS": [],
                    "PORTS_UDP": [],
                }
            return original_sizes(backend, task_definition)

        ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements = task_sizes
        self._unpatch.append(
            lambda: setattr(
                ecs_models.EC2ContainerServiceBackend, "_calculate_task_resource_requirements", original_sizes
            )
        )
        state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})

        original_check = IAMRequestBase.check_action_permitted
        log, principals = self.log, self.principals

        def recording_check(request: Any, resource: str) -> None:
            unmapped = ""
            try:
                request._action = s3_actions.iam_action(request._action, request._path)
            except s3_actions.UnmappedS3Request as error:
                unmapped = str(error)
            key = getattr(request._access_key, "_access_key_id", None) or getattr(
                request._access_key, "access_key_id", ""
            )
            principal = principals.get(key) or _principal_of(request._access_key)
            call = Call(
                principal,
                request._action,
                request._method,
                request._path,
                request._body or b"",
                request._data or {},
                resource,
                unmapped=unmapped,
            )
            try:
                if unmapped:
                    request._raise_access_denied()
                original_check(request, resource)
            except Exception:
                call.denied = True
                log.add(call)
                raise
            log.add(call)

        IAMRequestBase.check_action_permitted = recording_check
        self._unpatch.append(lambda: setattr(IAMRequestBase, "check_action_permitted", original_check))

    def enforce(self) -> None:
        """IAM enforcement on from the next request (every earlier request was the harness's own setup)."""
        from moto import settings as moto_settings
        from moto.core.authorization import ActionAuthenticatorMixin

        ActionAuthenticatorMixin.request_count = 0
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

    def reset(self) -> None:
        """Forget every resource moto holds (its own reset endpoint, on loopback)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30)

    def close(self) -> None:
        from moto import settings as moto_settings
        from moto.moto_api import state_manager

        with contextlib.suppress(OSError):
            self.reset()
        self.server.stop()
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = math.inf
        state_manager.unset_transition("ecs::task")
        for undo in reversed(self._unpatch):
            undo()

    # -- clients -----------------------------------------------------------------------------------------
    def client(self, service: str, credentials: Mapping[str, str] | None = None):
        creds = credentials or self.admin or {"aws_access_key_id": SETUP_KEY, "aws_secret_access_key": "setup"}
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint, **creds)

    def ecs_backend(self):
        from moto.ecs.models import ecs_backends

        return ecs_backends[ACCOUNT][self.region]

    def assume(self, role_arn: str, session: str) -> dict[str, str]:
        """Temporary credentials of a role (made during setup, as ECS would for a task)."""
        creds = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=3600)
        c = creds["Credentials"]
        self.principals[c["AccessKeyId"]] = role_arn.rsplit("/", 1)[-1]
        return {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }


def loopback_address() -> str:
    """An address in 127.0.0.0/8 for one task's ENI (Linux routes the whole block to the loopback interface)."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"  # noqa: S311


def task_address(task: Any) -> str:
    """The private address moto gave a task's ENI (a loopback_address)."""
    for attachment in getattr(task, "attachments", None) or []:
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address":
                return detail["value"]
    return LOOPBACK


def _principal_of(access_key: Any) -> str:
    arn = getattr(access_key, "arn", "") or ""
    parts = arn.split("/")
    return parts[1] if ":assumed-role/" in arn and len(parts) > 1 else arn or "unknown"


class CredentialsEndpoint:
    """The container credentials endpoint of ECS, on loopback: GET /<token> answers the credentials of the role that
    token was issued for (botocore's ContainerProvider reads AWS_CONTAINER_CREDENTIALS_FULL_URI)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, str]] = {}
        tokens = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                creds = tokens.get(self.path.strip("/"))
                body = json.dumps(
                    {
                        "AccessKeyId": creds["aws_access_key_id"],
                        "SecretAccessKey": creds["aws_secret_access_key"],
                        "Token": creds["aws_session_token"],
                        "Expiration": "2099-01-01T00:00:00Z",
                    }
                    if creds
                    else {"message": "unknown task"}
                ).encode()
                self.send_response(200 if creds else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def issue(self, token: str, credentials: dict[str, str]) -> str:
        self.tokens[token] = credentials
        return f"http://{LOOPBACK}:{self.server.server_address[1]}/{token}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def put_role(aws: MotoAws, name: str, trust: str, documents: Iterable[tuple[str, str]]) -> str:
    """A role holding the action-level projection of each (policy name, generated document); its ARN."""
    iam = aws.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    for policy_name, document in documents:
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(projection(document)))
    return arn
