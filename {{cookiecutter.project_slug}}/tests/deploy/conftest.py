"""The cloud rehearsal's helpers (this directory) and the Pulumi program's test harness are importable here."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parents[1] / "infrastructure", HERE.parents[1] / "infrastructure" / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")
    config.addinivalue_line("filterwarnings", "ignore:There is no current event loop:DeprecationWarning:pulumi.*")
