"""The pairwise answer matrix (tools/answer_matrix.py), one bake per row: installed from its shipped lock, its own
lint, whole suite and cloud rehearsal. Hours in all, so it runs only where a marker expression names it: the
template's GitHub workflow `answer-matrix.yml` (weekly, and on pull requests that move the locks) gives each row a
job of its own (`make matrix ROW=<n>` here)."""

import json
import os
import re
import shutil

import answer_matrix
import pytest

from tests.baked import bake

ROWS = answer_matrix.pairwise()
pytestmark = [pytest.mark.matrix, pytest.mark.slow, pytest.mark.timeout(5400)]


@pytest.mark.parametrize("row", ROWS, ids=[f"bake-{i}" for i in range(len(ROWS))])
def test_a_bake_of_the_matrix_passes_its_own_checks_and_rehearsal(cookies, row, tmp_path):
    project = bake(cookies, **row)
    project.make("check-pins")
    project.make("install")
    project.assert_installs_the_shipped_lock()
    project.make("lint")
    tests = project.make("test", timeout=3000)
    assert re.search(r"\d+ passed", tests.stdout) and " failed" not in tests.stdout.splitlines()[-1]
    if os.geteuid() == 0 and shutil.which("unshare"):
        report_file = tmp_path / "cloud-rehearsal.json"
        proc = project.make("rehearse-cloud", timeout=2400, check=False, REHEARSAL_REPORT=str(report_file))
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        report = json.loads(report_file.read_text())
        assert report["state"] == "Completed" and report["scope_problems"] == [], report
    else:  # the cloud rehearsal needs root; the local one still runs the deploy path on loopback
        out = project.make("rehearse", timeout=1500).stdout
        assert "rehearsal PASSED: flow run Completed" in out, out[-4000:]
    assert project.processes() == []
