"""The stack's settings as the project's Pulumi files declare them (``infrastructure/Pulumi.yaml``, and
``Pulumi.<stack>.yaml`` where `pulumi config set` wrote a stack's own values).

The deploy tools read the region, the NAT strategy, Fargate Spot and the worker service from here before a stack
exists (`make cost`, the quota check of `make deploy`); once it is deployed, the stack's outputs win (the region of
``aws_region``). Nothing here is rendered at bake time: change a value in the Pulumi files and every tool sees it.
"""

from __future__ import annotations

import argparse
import os
import sys
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


def base_name(stack: str, config: StackConfig) -> str:
    """The stack's resource name, as infrastructure/infra/settings.py forms it (Settings.base_name)."""
    return f"{config.name_prefix}-{stack}".lower()


def worker_names(stack: str, project_dir: Path | str | None = None) -> tuple[str, str]:
    """The stack's ECS work pool and its task-event queue (infra/settings.py work_pool_name, infra/identity.py
    event_queue_name), from the Pulumi files alone: the worker's credentials need no access to the stack's state."""
    base = base_name(stack, read(project_dir, stack))
    return f"{base}-ecs", f"{base}-ecs-events"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Names of a stack, from the project's Pulumi files")
    parser.add_argument("--stack", default=os.environ.get("PULUMI_STACK") or "dev")
    parser.add_argument("what", choices=["worker"], help="worker: the ECS work pool and the task-event queue")
    args = parser.parse_args(argv)
    print(*worker_names(args.stack))
    return 0


if __name__ == "__main__":
    sys.exit(main())
