"""Make the Pulumi program (infrastructure/) and the test harness importable; no cloud, no Pulumi CLI needed."""

import sys
from pathlib import Path

INFRA_DIR = Path(__file__).resolve().parents[1]
for path in (INFRA_DIR, INFRA_DIR / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def pytest_configure(config):
    # pulumi_aws warns about its own deprecated resource classes whenever a module is imported; none is used here.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")
    # Pulumi's mock runtime creates its futures before an event loop runs (harmless here).
    config.addinivalue_line("filterwarnings", "ignore:There is no current event loop:DeprecationWarning:pulumi.*")
