"""The tests run in an environment of their own: what the caller exported does not change them.

`make -s test` exports ``MAKEFLAGS=s`` to every ``make`` a test starts; a developer's shell may hold
``PREFECT_API_URL`` (their Prefect server or Cloud), ``AWS_PROFILE`` (a real account), ``PIPELINE_*``
(their data and cluster), ``MLFLOW_*`` (their tracking server), ``POETRY_*`` or ``PULUMI_*``. All of
them are removed here, before any test module is imported (the ml_workflows pytest plugin imports this module
when pytest starts, whichever tests are selected); tests and fixtures set what they need. AWS
clients read no profile file and ask no instance metadata endpoint, so no test reaches AWS by accident.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

INHERITED_PREFIXES = ("PREFECT_", "AWS_", "PIPELINE_", "POETRY_", "PULUMI_", "MLFLOW_")
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
TEST_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def isolate_from_the_caller(environ: MutableMapping[str, str]) -> list[str]:
    """Remove inherited make flags and the INHERITED_PREFIXES variables; returns the names removed."""
    removed = sorted(k for k in environ if k.startswith(INHERITED_PREFIXES) or k in MAKE_VARIABLES)
    for key in removed:
        del environ[key]
    environ.update(TEST_DEFAULTS)
    return removed
