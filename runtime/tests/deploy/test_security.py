"""`make security`: secret scan + ruff's security rules + infrastructure policy tests; it fails on a leaked key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_workflows.project import root

ROOT = root()  # the project the tests run in (its directory is the working directory)


def _make(*args: str) -> subprocess.CompletedProcess:
    # RUN= : call the tools of this environment directly (the target runs them through `poetry run`)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "security", "RUN=", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_security_passes_on_the_project_and_fails_on_a_leaked_aws_key(tmp_path):
    clean = _make()
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert "detect-secrets-hook" in clean.stdout and "ruff check --select S" in clean.stdout

    leaked = tmp_path / "settings.py"
    key_id = "AKIA" + "Q3EGRIPL" + "7XKZ4WNM"  # built at run time: no key-shaped literal in this file
    key_body = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCY" + "Q3EGRIPL7XKZ"
    leaked.write_text(f'AWS_ACCESS_KEY_ID = "{key_id}"\nAWS_SECRET_ACCESS_KEY = "{key_body}"\n')
    dirty = _make(f"SECRETS_FILES={leaked}")
    assert dirty.returncode != 0
    assert "AWS Access Key" in dirty.stdout + dirty.stderr
