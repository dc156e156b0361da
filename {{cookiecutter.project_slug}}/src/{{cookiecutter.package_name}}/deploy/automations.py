"""Create or update the Prefect automations declared in ``automations.yaml`` (run by `make deploy`).

Off unless a notification destination is configured (``PIPELINE_NOTIFY_WEBHOOK_URL`` or
``PIPELINE_NOTIFY_SECRET_BLOCK``, see :mod:`..runtime.notifications`). Then the webhook URL is saved in a Prefect
``CustomWebhookNotificationBlock`` (as a secret value, posting Slack/Teams-compatible
``{"text": ...}``), every ``send-notification`` action is pointed at that block, and each
automation is created, or updated in place when one with its name exists (idempotent).

    python -m {{ cookiecutter.package_name }}.deploy.automations [--file automations.yaml]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from {{ cookiecutter.package_name }}.runtime.notifications import NotifySettings

AUTOMATIONS_FILE = Path(__file__).resolve().parents[3] / "automations.yaml"


def load(path: Path = AUTOMATIONS_FILE) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not spec.get("notify_block") or not isinstance(spec.get("automations"), list):
        raise ValueError(f"{path}: needs `notify_block` and a list of `automations`")
    return spec


def save_notification_block(name: str, url: str) -> UUID:
    """A webhook notification block posting ``{"text": subject + body}``; the URL is kept as a secret."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url="{{ '{{webhook_url}}' }}",
        json_data={"text": "{{ '{{subject}}\\n{{body}}' }}"},
        secrets={"webhook_url": url},
    )
    return block.save(name, overwrite=True)


def upsert_automations(path: Path = AUTOMATIONS_FILE, settings: NotifySettings | None = None) -> list[str]:
    """Create or update every automation of ``path``; returns their names ([] when notifications are off)."""
    from prefect.automations import Automation

    settings = settings or NotifySettings.from_env()
    if not settings.enabled:
        print("notifications off (no PIPELINE_NOTIFY_WEBHOOK_URL / PIPELINE_NOTIFY_SECRET_BLOCK): no automations")
        return []
    spec = load(path)
    block_id = save_notification_block(spec["notify_block"], settings.destination())
    names = []
    for item in spec["automations"]:
        item = copy.deepcopy(item)
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
        names.append(automation.name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=AUTOMATIONS_FILE)
    args = parser.parse_args(argv)
    upsert_automations(args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
