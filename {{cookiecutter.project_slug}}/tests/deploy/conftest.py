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


def pytest_collection_modifyitems(config, items):
    """The cloud rehearsal runs only when a marker expression names it (`make rehearse-cloud`: -m cloud): it needs
    root and minutes. Deselecting it here, rather than with -m in `make test`, leaves -m to the caller
    (PYTEST_ADDOPTS="-m 'not slow'" keeps working)."""
    if "cloud" in (config.getoption("markexpr") or ""):
        return
    cloud = [item for item in items if item.get_closest_marker("cloud")]
    if cloud:
        config.hook.pytest_deselected(items=cloud)
        items[:] = [item for item in items if not item.get_closest_marker("cloud")]
