"""The baked project's deploy path, rehearsed on loopback: a real Prefect server, process work pool and
worker, an external `dask scheduler` + `dask worker`, the deployment applied, triggered and Completed."""

import re
from pathlib import Path

import pytest


def _leftovers(project_path: Path) -> list[str]:
    """Command lines of processes still running the project's prefect, dask or python (Linux /proc)."""
    bins = (f"{project_path}/.venv/bin/prefect", f"{project_path}/.venv/bin/dask", f"{project_path}/.venv/bin/python")
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(b in args for b in bins):
            found.append(args)
    return found


@pytest.mark.slow
@pytest.mark.xdist_group("installed")
def test_rehearsal_reaches_a_completed_flow_run(installed_project):
    proc = installed_project.make("rehearse", timeout=1500)
    out = proc.stdout
    assert "rehearsal PASSED: flow run Completed" in out, out[-4000:] + proc.stderr[-4000:]
    assert re.search(r"flow run '[^']+' of batch-pipeline/batch-pipeline-local: Completed", out)
    for started in (
        "prefect server start --host 127.0.0.1",
        "dask scheduler --host 127.0.0.1",
        "dask worker tcp://127.0.0.1:",
        "prefect worker start --pool",
    ):
        assert started in out
    assert "stopping everything started here" in out
    if Path("/proc/self/cmdline").exists():
        assert _leftovers(installed_project.path) == []
