"""Policy pack: `make infra-preview` / `infra-up` run it, so `pulumi preview` and `pulumi up` refuse a stack that
breaks the project's security rules. The rules are plain functions in rules.py (tested directly)."""

import sys
from pathlib import Path

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rules  # noqa: E402


def _resource_policy(name, rule):
    def validate(args, report_violation):
        for message in rule(args.resource_type, args.props):
            report_violation(message)

    return ResourceValidationPolicy(
        name=name, description=(rule.__doc__ or name).strip().splitlines()[0], validate=validate
    )


def _stack_policy(name, rule):
    def validate(args, report_violation):
        resources = [
            rules.Resource(
                type=r.resource_type,
                name=r.name,
                props=r.props,
                deps={prop: [d.name for d in deps] for prop, deps in (r.property_dependencies or {}).items()},
            )
            for r in args.resources
        ]
        for message in rule(resources):
            report_violation(message)

    return StackValidationPolicy(
        name=name, description=(rule.__doc__ or name).strip().splitlines()[0], validate=validate
    )


def policies() -> list:
    """Every rule of rules.py as a mandatory policy."""
    return [
        *(_resource_policy(name, rule) for name, rule in rules.RESOURCE_RULES.items()),
        *(_stack_policy(name, rule) for name, rule in rules.STACK_RULES.items()),
    ]


if __name__ == "__main__":  # the Pulumi CLI runs this file as __main__; constructing the pack serves it
    PolicyPack(
        name="{{ cookiecutter.project_slug }}-security",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=policies(),
    )
