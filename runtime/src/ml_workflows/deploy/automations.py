"""Create or update the stack's Prefect automations declared in ``automations.yaml`` (run by `make deploy`).

Off unless a notification destination is configured (``PIPELINE_NOTIFY_WEBHOOK_URL`` or
``PIPELINE_NOTIFY_SECRET_BLOCK``, see :mod:`ml_workflows.notifications`). Then the webhook URL is saved in a Prefect
``CustomWebhookNotificationBlock`` (as a secret value, posting Slack/Teams-compatible
``{"text": ...}``), every ``send-notification`` action is pointed at that block, and each
automation is created, or updated in place when one with its name exists (idempotent).

Names and scope are the stack's (:mod:`ml_workflows.names`): automation ``<project>-<stack>-<kind>``, block
``<project>-<stack>-notify``, each trigger matching flow runs of this project's flows from the stack's deployments.
`make destroy` deletes exactly those names, so other projects and stacks in the workspace keep theirs.

    python -m ml_workflows.deploy.automations [--stack dev] [--file automations.yaml]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from ml_workflows import names
from ml_workflows.notifications import NotifySettings
from ml_workflows.project import root as project_root

AUTOMATIONS_FILE = project_root(strict=False) / "automations.yaml"


def load(path: Path = AUTOMATIONS_FILE) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("automations"), list):
        raise ValueError(f"{path}: needs a list of `automations`")
    kinds = [item.get("kind") for item in spec["automations"]]
    if sorted(map(str, kinds)) != sorted(names.AUTOMATION_KINDS):
        raise ValueError(f"{path}: automation kinds {kinds}, but make destroy deletes {names.AUTOMATION_KINDS}")
    return spec


def for_stack(item: dict[str, Any], stack: str, project: str | None = None) -> dict[str, Any]:
    """An automation of automations.yaml made the stack's: its name, and its trigger scoped to the stack's runs."""
    item = copy.deepcopy(item)
    item["name"] = names.automation(item.pop("kind"), stack, project)
    item["trigger"]["match_related"] = names.automation_scope(stack, project)
    return item


def save_notification_block(name: str, url: str) -> UUID:
    """A webhook notification block posting ``{"text": subject + body}``; the URL is kept as a secret."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url="{{webhook_url}}",
        json_data={"text": "{{subject}}\n{{body}}"},
        secrets={"webhook_url": url},
    )
    return block.save(name, overwrite=True)


def upsert_automations(
    path: Path = AUTOMATIONS_FILE,
    settings: NotifySettings | None = None,
    *,
    stack: str,
    project: str | None = None,
) -> list[str]:
    """Create or update the stack's automation of each entry of ``path``; returns their names ([] when
    notifications are off)."""
    from prefect.automations import Automation

    settings = settings or NotifySettings.from_env()
    if not settings.enabled:
        print("notifications off (no PIPELINE_NOTIFY_WEBHOOK_URL / PIPELINE_NOTIFY_SECRET_BLOCK): no automations")
        return []
    spec = load(path)
    block_id = save_notification_block(names.notify_block(stack, project), settings.destination())
    created = []
    for item in spec["automations"]:
        item = for_stack(item, stack, project)
        for action in item.get("actions", []):
            if action.get("type") == "send-notification":
                action["block_document_id"] = str(block_id)
        automation = Automation.model_validate(item)
        try:
            existing = Automation.read(name=automation.name)
        except ValueError:
            automation.create()
            verb = "created"
        else:
            automation.id = existing.id
            automation.update()
            verb = "updated"
        print(f"automation {automation.name!r} {verb}")
        created.append(automation.name)
    return created


def notify_block_slug(stack: str, project: str | None = None) -> str:
    """``<block type>/<name>`` of the stack's notification block (what `prefect block delete` takes)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return f"{CustomWebhookNotificationBlock.get_block_type_slug()}/{names.notify_block(stack, project)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=AUTOMATIONS_FILE)
    parser.add_argument("--stack", default=os.environ.get("PULUMI_STACK", "").strip() or "dev")
    args = parser.parse_args(argv)
    upsert_automations(args.file, stack=args.stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
