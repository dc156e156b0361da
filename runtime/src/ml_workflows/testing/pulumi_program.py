"""Run the project's real Pulumi program (``infrastructure/``: its ``infra`` package) against Pulumi's mocks and
record every resource it registers. The project's infrastructure tests and the cloud rehearsal use it.

`synth(**overrides)` uses the defaults declared in Pulumi.yaml (the cookiecutter answers), so a test of the
defaults tests exactly what `pulumi up` would deploy for a fresh stack; overrides are stack config values.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pulumi
import yaml

from ml_workflows.project import root as project_root

INFRA_DIR = project_root(strict=False) / "infrastructure"
ACCOUNT = "123456789012"


def project_config() -> tuple[str, dict[str, str]]:
    """(project name, {config key: default}) from Pulumi.yaml, as the Pulumi CLI would pass them."""
    project = yaml.safe_load((INFRA_DIR / "Pulumi.yaml").read_text())
    config = {}
    for key, decl in project.get("config", {}).items():
        value = decl.get("default", decl.get("value")) if isinstance(decl, dict) else decl
        full_key = key if ":" in key else f"{project['name']}:{key}"
        config[full_key] = _config_text(value)
    return project["name"], config


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass
class Resource:
    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    state: dict[str, Any]


@dataclass
class Synth:
    resources: list[Resource]
    outputs: dict[str, Any]
    config: dict[str, str]
    calls: list[str] = field(default_factory=list)
    stack: str = "dev"

    def of_type(self, suffix: str) -> list[Resource]:
        """Resources whose type token ends with `suffix` (e.g. ':NatGateway')."""
        return [r for r in self.resources if r.type.endswith(suffix)]

    def one(self, name: str) -> Resource:
        [r] = [r for r in self.resources if r.name == name]
        return r

    def by_id(self, resource_id: str) -> Resource:
        [r] = [r for r in self.resources if r.id == resource_id]
        return r

    def inventory(self) -> Counter:
        return Counter(r.type.rsplit(":", 1)[-1] for r in self.resources)


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS would for the attributes the program reads (ids, ARNs, bucket name, repository URL)."""

    def __init__(self, region: str):
        self.region = region
        self.resources: list[Resource] = []
        self.calls: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        kind = args.typ.rsplit(":", 1)[-1]
        rid = f"{kind.lower()}-{args.name}"
        state = dict(inputs)
        region, acct = self.region, ACCOUNT
        if kind == "Bucket":
            rid = inputs["bucket"]
            state["arn"] = f"arn:aws:s3:::{rid}"
        elif kind == "Role":
            state["arn"] = f"arn:aws:iam::{acct}:role/{inputs['name']}"
        elif kind == "Cluster":
            state["arn"] = f"arn:aws:ecs:{region}:{acct}:cluster/{inputs['name']}"
        elif kind == "Repository":
            state["arn"] = f"arn:aws:ecr:{region}:{acct}:repository/{inputs['name']}"
            state["repositoryUrl"] = f"{acct}.dkr.ecr.{region}.amazonaws.com/{inputs['name']}"
        elif kind == "LogGroup":
            rid = inputs["name"]
            state["arn"] = f"arn:aws:logs:{region}:{acct}:log-group:{rid}"
        elif kind == "Secret":  # Secrets Manager appends six random characters
            state["arn"] = f"arn:aws:secretsmanager:{region}:{acct}:secret:{inputs['name']}-AbCdEf"
        elif kind == "Queue":
            state["arn"] = f"arn:aws:sqs:{region}:{acct}:{inputs['name']}"
            state["url"] = f"https://sqs.{region}.amazonaws.com/{acct}/{inputs['name']}"
        elif kind == "EventRule":
            state["arn"] = f"arn:aws:events:{region}:{acct}:rule/{inputs['name']}"
        elif kind == "TaskDefinition":
            state["arn"] = f"arn:aws:ecs:{region}:{acct}:task-definition/{inputs['family']}:1"
        self.resources.append(Resource(args.typ, args.name, inputs, rid, state))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.calls.append(args.token)
        r = self.region
        answers = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                "id": r,
                "names": [f"{r}a", f"{r}b", f"{r}c"],
                "zoneIds": ["z1", "z2", "z3"],
            },
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "id": ACCOUNT,
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDA",
            },
            "aws:index/getPartition:getPartition": {
                "id": "aws",
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
            },
        }
        if args.token in answers:
            return answers[args.token]
        raise NotImplementedError(f"the program made an unexpected call: {args.token}")


def synth(stack: str = "dev", **overrides: Any) -> Synth:
    """Run the program with Pulumi.yaml's defaults plus `overrides` (keys without namespace are project keys)."""
    return _synth(stack, tuple(sorted((k, _config_text(v)) for k, v in overrides.items())))


@functools.cache
def _synth(stack: str, overrides: tuple[tuple[str, str], ...]) -> Synth:
    from infra import settings
    from infra import stack as program

    project, config = project_config()
    for key, value in overrides:
        config[key if ":" in key else f"{project}:{key}"] = value
    mocks = RecordingMocks(region=config["aws:region"])
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def run():
        exported = program.build(settings.load())
        return pulumi.Output.all(**exported).apply(outputs.update)

    run()
    return Synth(resources=mocks.resources, outputs=outputs, config=config, calls=mocks.calls, stack=stack)
