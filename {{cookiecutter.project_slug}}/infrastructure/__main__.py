"""Pulumi program entry point: read the stack config, build the resources, export the outputs.

The resources live in the `infra` package, one module per concern; `infra.stack.build` wires them.
"""

import pulumi
from infra import settings, stack

outputs = stack.build(settings.load())
for name, value in outputs.items():
    pulumi.export(name, value)
