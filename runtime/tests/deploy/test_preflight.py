"""ml_workflows.deploy.preflight: every missing precondition of `make preview` / `provision` / `deprovision` gets one
actionable line, and nothing runs (no stack is created or selected) while anything is missing. A fake `pulumi`
executable stands in for the CLI."""

from __future__ import annotations

import os
import stat

import pytest

from ml_workflows.deploy import preflight
from ml_workflows.testing.pulumi_program import INFRA_DIR

FAKE_PULUMI = """#!/bin/sh
echo "$*" >> "$FAKE_PULUMI_LOG"
case "$1 $2" in
  "whoami --json") [ -n "$FAKE_LOGGED_IN" ] || { echo "error: PULUMI_ACCESS_TOKEN must be set" >&2; exit 255; }
                   echo "{\\"user\\": \\"me\\", \\"url\\": \\"$FAKE_BACKEND\\"}" ;;
  "stack ls") echo "$FAKE_STACKS" ;;
esac
exit 0
"""


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No AWS credentials, no Pulumi CLI, unless a test adds them."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "PULUMI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    log = tmp_path / "pulumi.log"
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))

    def install_pulumi(logged_in=True, backend="https://api.pulumi.com", stacks='[{"name": "dev"}]'):
        exe = bin_dir / "pulumi"
        exe.write_text(FAKE_PULUMI)
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("FAKE_LOGGED_IN", "1" if logged_in else "")
        monkeypatch.setenv("FAKE_BACKEND", backend)
        monkeypatch.setenv("FAKE_STACKS", stacks)

    def with_credentials():
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")

    def calls() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    return type(
        "Env",
        (),
        {
            "install_pulumi": staticmethod(install_pulumi),
            "with_credentials": staticmethod(with_credentials),
            "calls": staticmethod(calls),
        },
    )


def test_everything_missing_is_reported_at_once(env, capsys):
    assert preflight.main(["--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert "Pulumi CLI not found" in err and "No AWS credentials found" in err and "aws configure" in err
    assert "nothing was run" in err


def test_not_logged_in(env):
    env.install_pulumi(logged_in=False)
    env.with_credentials()
    [problem] = preflight.problems("dev")
    assert "pulumi login" in problem
    assert not any(c.startswith("stack") for c in env.calls())


def test_self_managed_backend_needs_a_passphrase(env, monkeypatch):
    env.install_pulumi(backend="s3://state-bucket")
    env.with_credentials()
    [problem] = preflight.problems("dev", create_stack=True)
    assert "PULUMI_CONFIG_PASSPHRASE" in problem
    assert not any(c.startswith("stack") for c in env.calls())  # nothing created while something is missing
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "secret")
    assert preflight.problems("dev") == []


def test_missing_credentials_stop_before_the_stack_is_touched(env):
    env.install_pulumi()
    [problem] = preflight.problems("dev", create_stack=True)
    assert "AWS credentials" in problem
    assert not any(c.startswith("stack") for c in env.calls())
    assert preflight.problems("dev", need_credentials=False) == []


def test_existing_stack_is_selected(env, capsys):
    env.install_pulumi(stacks='[{"name": "acme/dev"}, {"name": "prod"}]')
    env.with_credentials()
    assert preflight.main(["--stack", "dev"]) == 0
    assert "stack select dev --non-interactive" in env.calls()
    assert "ready" in capsys.readouterr().out


def test_missing_stack_is_created_only_when_asked(env):
    env.install_pulumi(stacks="[]")
    env.with_credentials()
    [problem] = preflight.problems("staging")
    assert "does not exist" in problem and "make infra-up PULUMI_STACK=staging" in problem
    assert preflight.problems("staging", create_stack=True) == []
    assert "stack init staging --non-interactive" in env.calls()


def test_runs_from_the_infrastructure_directory():
    assert preflight.INFRA_DIR == INFRA_DIR and (INFRA_DIR / "Pulumi.yaml").is_file()
