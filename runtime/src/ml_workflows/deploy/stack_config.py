"""The stack's settings as the project's Pulumi files declare them (``infrastructure/Pulumi.yaml``, and
``Pulumi.<stack>.yaml`` where `pulumi config set` wrote a stack's own values).

The deploy tools read the region, the NAT strategy, Fargate Spot and the worker service from here before a stack
exists (`make cost`, the quota check of `make deploy`); once it is deployed, the stack's outputs win (the region of
``aws_region``). Nothing here is rendered at bake time: change a value in the Pulumi files and every tool sees it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INFRA_DIR = "infrastructure"


@dataclass(frozen=True)
class StackConfig:
    region: str
    name_prefix: str
    nat_gateways: int  # 1 (single) or 2 (per-az)
    fargate_spot: bool
    prefect_worker: bool


def _value(config: dict[str, Any], key: str, project: str, overrides: dict[str, Any]) -> Any:
    for name in (f"{project}:{key}", key):
        if name in overrides:
            return overrides[name]
    entry = config.get(key)
    return entry.get("default") if isinstance(entry, dict) and "value" not in entry else entry


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "1")


def read(project_dir: Path | str | None = None, stack: str | None = None) -> StackConfig:
    """The stack's settings (``stack``: default $PULUMI_STACK, then dev) from the project's Pulumi files."""
    infra = Path(project_dir or Path.cwd()) / INFRA_DIR
    declared = yaml.safe_load((infra / "Pulumi.yaml").read_text())
    config = declared.get("config") or {}
    stack = stack or os.environ.get("PULUMI_STACK") or "dev"
    stack_file = infra / f"Pulumi.{stack}.yaml"
    overrides = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {} if stack_file.exists() else {}
    project = declared["name"]
    region = overrides.get("aws:region") or config.get("aws:region")
    return StackConfig(
        region=str(region),
        name_prefix=str(_value(config, "name_prefix", project, overrides)),
        nat_gateways=2 if _value(config, "nat_strategy", project, overrides) == "per-az" else 1,
        fargate_spot=_bool(_value(config, "use_fargate_spot", project, overrides)),
        prefect_worker=_bool(_value(config, "prefect_worker", project, overrides)),
    )
