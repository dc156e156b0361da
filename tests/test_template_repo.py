"""The template repository's own files: CI workflow and entry points."""

import subprocess
import sys
from pathlib import Path

from tests.baked import TEMPLATE

BIN = Path(sys.executable).parent


def test_template_workflow_is_a_valid_github_workflow():
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", ".github/workflows/ci.yml"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_entry_point_runs_the_readme_test_command():
    ci = (TEMPLATE / ".ci" / "run").read_text()
    readme = (TEMPLATE / "README.md").read_text()
    assert "make test" in ci and "`make test`" in readme and "`make demo`" in readme
