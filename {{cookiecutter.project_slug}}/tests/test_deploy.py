"""`make deploy` checks every precondition first and stops, changing nothing, when one is missing."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import deploy

PROJECT = Path(__file__).resolve().parents[1]
# Stand-ins for the Pulumi CLI and Docker: they log every call and fail like a logged-out Pulumi
# and a Docker client without an engine.
FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
exit 1
"""


def test_preflight_reports_every_missing_piece(capsys):
    checks = {
        "pulumi": lambda: "no pulumi",
        "docker": lambda: None,
        "aws": lambda: "no aws",
        "prefect": lambda: "no prefect",
    }
    assert deploy.preflight(deploy.NEEDS["deploy"], checks) == ["no pulumi", "no aws", "no prefect"]
    assert deploy.preflight(deploy.NEEDS["build"], checks) == []
    with pytest.raises(SystemExit) as stopped:
        deploy.require("destroy", checks)
    assert stopped.value.code == 2
    assert "`make destroy` stopped before changing anything: 3 precondition(s) missing" in capsys.readouterr().err


def _bare_env(tmp_path: Path, with_fakes: bool) -> tuple[dict[str, str], Path]:
    """An environment with no cloud tools, no AWS credentials and no Prefect API."""
    log = tmp_path / "calls.log"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    if with_fakes:
        for tool in ("pulumi", "docker"):
            path = fake_bin / tool
            path.write_text(FAKE_TOOL.format(log=log))
            path.chmod(path.stat().st_mode | stat.S_IEXEC)
    dirs = [str(fake_bin), str(Path(sys.executable).parent)]
    if with_fakes:  # make, sh and poetry are needed too; the fakes shadow any docker client found later
        poetry = shutil.which("poetry")
        dirs += ([str(Path(poetry).parent)] if poetry else []) + ["/usr/local/bin", "/usr/bin", "/bin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_", "PULUMI_"))}
    env.update(
        PATH=os.pathsep.join(dirs),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL="",
        PULUMI_HOME=str(tmp_path / "pulumi-home"),
    )
    return env, log


@pytest.mark.parametrize("with_fakes", [False, True], ids=["tools-absent", "tools-unusable"])
def test_deploy_stops_at_once_with_one_message_per_missing_piece(tmp_path, with_fakes):
    env, log = _bare_env(tmp_path, with_fakes)
    proc = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}.deploy", "deploy"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    missing = [line for line in proc.stderr.splitlines() if line.startswith("missing: ")]
    assert len(missing) == 4, proc.stderr
    pulumi, docker, aws, prefect = missing
    assert ("not logged in" if with_fakes else "Pulumi CLI not found") in pulumi
    assert ("Docker engine not reachable" if with_fakes else "Docker not found") in docker
    assert "AWS credentials not found" in aws
    assert "PREFECT_API_URL is not set" in prefect
    assert "stopped before changing anything" in proc.stderr
    assert "+ " not in proc.stdout  # no step ran
    calls = log.read_text().splitlines() if log.exists() else []
    assert sorted(calls) == (["docker info", "pulumi whoami --non-interactive"] if with_fakes else [])


@pytest.mark.skipif(not shutil.which("make") or not shutil.which("poetry"), reason="needs make and poetry")
def test_make_deploy_and_destroy_stop_on_this_machine(tmp_path):
    env, log = _bare_env(tmp_path, with_fakes=True)
    for target, count in (("deploy", 4), ("destroy", 3)):
        proc = subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode != 0
        assert sum(line.startswith("missing: ") for line in proc.stderr.splitlines()) == count, proc.stderr
        assert f"`make {target}` stopped before changing anything" in proc.stderr
    assert {line.split()[1] for line in log.read_text().splitlines()} == {"whoami", "info"}
