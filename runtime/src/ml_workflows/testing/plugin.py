"""The ml_workflows pytest plugin, loaded by pytest in every project that installs ml-workflows (``pytest11``).

- the tests run in an environment of their own (:mod:`.isolation`): what the caller exported does not change them;
- fixtures: ``prefect_server``, ``pipeline_env``, ``moto_s3``, ``s3_bucket`` (:mod:`.fixtures`);
- the project's ``infrastructure/`` and ``infrastructure/tests/`` are importable (its Pulumi program, ``infra``), so
  the cloud rehearsal and a project's own tests reach it (:mod:`.pulumi_program` runs it under Pulumi's mocks);
- markers ``slow`` and ``cloud``; the cloud rehearsal runs only when a marker expression names it (`make
  rehearse-cloud`: ``-m cloud``): it needs root and minutes. Deselecting it here, rather than with -m in `make
  test`, leaves -m to the caller (PYTEST_ADDOPTS="-m 'not slow'" keeps working).

The cloud rehearsal itself is a test module of this package: ``pytest --pyargs ml_workflows.testing -m cloud``
runs it against the project in the working directory.
"""

from __future__ import annotations

import os
import sys

from ml_workflows.project import root as project_root

from .fixtures import moto_s3, pipeline_env, prefect_server, s3_bucket  # noqa: F401 - fixtures of the plugin
from .isolation import isolate_from_the_caller

REMOVED = isolate_from_the_caller(os.environ)


def pytest_configure(config) -> None:
    root = project_root(strict=False)
    for path in (root / "infrastructure", root / "infrastructure" / "tests"):
        if path.is_dir() and str(path) not in sys.path:
            sys.path.insert(0, str(path))
    config.addinivalue_line("markers", "slow: end-to-end runs (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "cloud: the cloud rehearsal against moto (make rehearse-cloud; needs root)")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")
    config.addinivalue_line("filterwarnings", "ignore:There is no current event loop:DeprecationWarning:pulumi.*")


def pytest_report_header(config) -> str:
    names = ", ".join(REMOVED) if REMOVED else "none"
    return f"inherited environment removed for the tests (ml_workflows.testing.isolation): {names}"


def pytest_collection_modifyitems(config, items) -> None:
    if "cloud" in (config.getoption("markexpr") or ""):
        return
    cloud = [item for item in items if item.get_closest_marker("cloud")]
    if cloud:
        config.hook.pytest_deselected(items=cloud)
        items[:] = [item for item in items if not item.get_closest_marker("cloud")]
