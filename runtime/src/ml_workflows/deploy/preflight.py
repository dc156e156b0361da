"""Check what `pulumi preview/up/destroy` need before running any of them, and say exactly what is missing.

    python -m ml_workflows.deploy.preflight --stack dev [--create-stack] [--no-credentials]   (make preview, ...)

Checks, all of them before anything runs: the Pulumi CLI is on PATH; you are logged in to a Pulumi backend
(and, for a self-managed backend, a secrets passphrase is set); AWS credentials can be found; the project's
Python packages are installed; the stack exists (created with --create-stack) - then selects it.
Exit status 0: ready, the stack is selected. 1: one line per missing piece on stderr, nothing was changed.
Standard library only, so it works before `make install` too (the package check then tells you to run it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ml_workflows.project import root as project_root

INFRA_DIR = project_root(strict=False) / "infrastructure"  # the project's Pulumi program (run from the project)
INSTALL_PULUMI = "install the Pulumi CLI (https://www.pulumi.com/docs/iac/download-install/), then re-run"
AWS_CREDENTIALS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def _pulumi(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the Pulumi CLI found on PATH (fixed arguments, no shell)."""
    executable = shutil.which("pulumi") or "pulumi"
    return subprocess.run(  # noqa: S603
        [executable, *args, "--non-interactive"], cwd=cwd, capture_output=True, text=True, check=False
    )


def aws_credentials_found(env: dict[str, str] | None = None) -> bool:
    """Whether boto's credential chain would find credentials (env vars, profile, SSO, container, instance role)."""
    env = os.environ if env is None else env
    try:
        import botocore.session  # optional: present once the project is installed

        return botocore.session.get_session().get_credentials() is not None
    except ImportError:
        pass
    if any(env.get(name) for name in AWS_CREDENTIALS_ENV):
        return True
    home = Path(env.get("HOME", "~")).expanduser()
    files = [
        env.get("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials"),
        env.get("AWS_CONFIG_FILE", home / ".aws" / "config"),
    ]
    return any(Path(f).is_file() and Path(f).stat().st_size > 0 for f in files)


def missing_packages() -> list[str]:
    return [name for name in ("pulumi", "pulumi_aws", "pulumi_policy") if importlib.util.find_spec(name) is None]


def problems(
    stack: str, *, create_stack: bool = False, need_credentials: bool = True, cwd: Path = INFRA_DIR
) -> list[str]:
    """Everything that stops `pulumi <command> --stack <stack>` from running, one actionable line each.
    When nothing is missing, the stack is selected (and created first if `create_stack`)."""
    found = []
    packages = missing_packages()
    if packages:
        found.append(f"Python packages missing ({', '.join(packages)}): run `make install`")
    if need_credentials and not aws_credentials_found():
        found.append(
            "No AWS credentials found: run `aws configure` (or `aws sso login --profile NAME` and "
            "`export AWS_PROFILE=NAME`), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if shutil.which("pulumi") is None:
        found.append(f"Pulumi CLI not found on PATH: {INSTALL_PULUMI}")
        return found  # the remaining checks need the CLI

    whoami = _pulumi(["whoami", "--json"], cwd)
    if whoami.returncode != 0:
        found.append(
            "Not logged in to a Pulumi backend: run `pulumi login` (Pulumi Cloud), or `pulumi login --local` / "
            "`pulumi login s3://<state-bucket>` for a self-managed backend"
        )
        return found
    backend = _json(whoami.stdout).get("url", "")
    if (
        backend
        and not backend.startswith("https://")
        and not (os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"))
    ):
        found.append(
            f"Self-managed backend ({backend}) needs the stack's secrets passphrase: "
            "export PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)"
        )
    if found:
        return found  # nothing is created or selected while something else is missing

    listing = _pulumi(["stack", "ls", "--json"], cwd)
    names = {s.get("name", "") for s in _json(listing.stdout, default=[])} if listing.returncode == 0 else set()
    exists = any(n == stack or n.endswith(f"/{stack}") for n in names)
    if exists:
        result = _pulumi(["stack", "select", stack], cwd)
    elif create_stack:
        result = _pulumi(["stack", "init", stack], cwd)
    else:
        return [
            f"Stack {stack!r} does not exist: create it with `make infra-up PULUMI_STACK={stack}` "
            f"(or `pulumi stack init {stack} --cwd infrastructure`)"
        ]
    if result.returncode != 0:
        action = "select" if exists else "create"
        detail = (result.stderr or result.stdout).strip().splitlines()
        found.append(f"Could not {action} stack {stack!r}: {detail[-1] if detail else 'pulumi failed'}")
    return found


def _json(text: str, default=None):
    try:
        return json.loads(text)
    except ValueError:
        return {} if default is None else default


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=os.environ.get("PULUMI_STACK", "dev"), help="stack name (default: dev)")
    parser.add_argument("--create-stack", action="store_true", help="create the stack when it does not exist")
    parser.add_argument("--no-credentials", action="store_true", help="do not require AWS credentials")
    args = parser.parse_args(argv)
    found = problems(args.stack, create_stack=args.create_stack, need_credentials=not args.no_credentials)
    for line in found:
        print(f"infra: {line}", file=sys.stderr)
    if found:
        print("infra: nothing was run; fix the above and re-run", file=sys.stderr)
        return 1
    print(f"infra: ready (stack {args.stack!r} selected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
