"""Code from git: a checkout's package reaches Dask worker processes and is imported from there first."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from distributed import Client, LocalCluster

from ml_workflows import git_checkout
from ml_workflows.project import current, root

if current().code_source != "git":
    pytest.skip("code_source = image: the flow code is baked into the image, not cloned", allow_module_level=True)

PACKAGE_NAME = current().package
PACKAGE = Path(importlib.import_module(PACKAGE_NAME).__file__).parent  # the project's package, as installed
PROJECT = root()  # the project the tests run in (its directory is the working directory)


def _marker() -> str:
    shipped_marker = importlib.import_module(f"{PACKAGE_NAME}.shipped_marker")  # only in the checkout, not installed
    return shipped_marker.WHERE


def test_checkout_code_is_shipped_to_worker_processes(tmp_path, monkeypatch):
    src = tmp_path / "clone" / "src"
    shutil.copytree(PACKAGE, src / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    (src / PACKAGE.name / "shipped_marker.py").write_text('WHERE = "from the checkout"\n')
    monkeypatch.setenv(git_checkout.ENV_CODE_DIR, str(src))
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1") as lc,
        Client(lc) as client,
    ):
        assert git_checkout.ship_to_workers(client) == str(src)
        [origin] = client.run(git_checkout.package_origin).values()
        assert origin.endswith("project-code") and origin != str(PACKAGE.parent)
        assert client.submit(_marker, pure=False).result() == "from the checkout"
    monkeypatch.delenv(git_checkout.ENV_CODE_DIR)
    assert git_checkout.ship_to_workers(client) is None  # not run from a checkout: nothing is sent


def test_deploy_takes_the_repository_from_the_environment_then_the_checkout(tmp_path):
    from ml_workflows.deploy.commands import git_source

    env = {git_checkout.ENV_REPOSITORY: "https://example.invalid/r.git", git_checkout.ENV_BRANCH: "dev"}
    assert git_source(env, cwd=tmp_path) == {**env, git_checkout.ENV_TOKEN_BLOCK: ""}  # no token: public
    with_token = git_source({**env, git_checkout.ENV_TOKEN_BLOCK: " git-token "}, cwd=tmp_path)
    assert with_token[git_checkout.ENV_TOKEN_BLOCK] == "git-token"
    with pytest.raises(RuntimeError, match=git_checkout.ENV_REPOSITORY):
        git_source({}, cwd=tmp_path)  # not a git checkout, no repository given
    _git(tmp_path, "init", "-q", "-b", "feature")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "first")
    _git(tmp_path, "remote", "add", "origin", "https://example.invalid/team/project.git")
    assert git_source({}, cwd=tmp_path) == {
        git_checkout.ENV_REPOSITORY: "https://example.invalid/team/project.git",
        git_checkout.ENV_BRANCH: "feature",
        git_checkout.ENV_TOKEN_BLOCK: "",
    }


def _git(cwd: Path, *args: str) -> str:
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "init.defaultBranch=main"]
    return subprocess.run([*git, *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120).stdout


# -- ssh origins: cloned over https with the token, or refused with what to set -------------------------------
@pytest.mark.parametrize(
    ("origin", "https"),
    [
        ("git@github.com:team/project.git", "https://github.com/team/project.git"),
        ("ssh://git@gitlab.example.com:2222/group/sub/project.git", "https://gitlab.example.com/group/sub/project.git"),
        ("git+ssh://git@bitbucket.org/team/project.git", "https://bitbucket.org/team/project.git"),
        ("github.com:team/project", "https://github.com/team/project"),
    ],
)
def test_an_ssh_origin_is_cloned_over_https_with_the_token_or_refused(origin, https):
    from prefect.runner.storage import GitRepository

    assert git_checkout.clone_url(origin, "git-token") == https
    # Prefect's git_clone puts the token into https URLs only (an ssh URL would get none).
    fake = "token-from-the-block"  # pragma: allowlist secret
    assert fake in GitRepository(url=https, credentials={"access_token": fake})._repository_url_with_credentials
    assert fake not in GitRepository(url=origin, credentials={"access_token": fake})._repository_url_with_credentials
    with pytest.raises(git_checkout.GitSourceError) as refused:
        git_checkout.clone_url(origin, "")
    message = str(refused.value)
    assert "\n" not in message and origin in message and https in message
    assert git_checkout.ENV_TOKEN_BLOCK in message and git_checkout.ENV_REPOSITORY in message


@pytest.mark.parametrize(
    "url", ["https://github.com/team/project.git", "/srv/git/project.git", "file:///srv/git/project.git", "./repo.git"]
)
def test_https_and_local_repositories_are_cloned_as_they_are(url):
    assert git_checkout.ssh_host_and_path(url) is None
    assert git_checkout.clone_url(url, "") == url == git_checkout.clone_url(url, "git-token")


def test_make_deploy_refuses_an_ssh_origin_without_a_token_in_one_line(tmp_path, monkeypatch, capsys):
    from ml_workflows.deploy import commands as deploy

    _git(tmp_path, "init", "-q")
    _git(tmp_path, "remote", "add", "origin", "git@github.com:team/project.git")
    monkeypatch.setattr(deploy, "PROJECT_DIR", tmp_path)  # this checkout: its origin is the ssh one
    for name in (git_checkout.ENV_REPOSITORY, git_checkout.ENV_BRANCH, git_checkout.ENV_TOKEN_BLOCK):
        monkeypatch.delenv(name, raising=False)
    checks = {name: (lambda: None) for name in deploy.NEEDS["deploy"]} | {"git": deploy.check_git}
    with pytest.raises(SystemExit) as stopped:
        deploy.require("deploy", checks)
    assert stopped.value.code == 2
    [missing] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("missing: ")]
    assert "git@github.com:team/project.git is an ssh URL" in missing and git_checkout.ENV_TOKEN_BLOCK in missing
    monkeypatch.setenv(git_checkout.ENV_TOKEN_BLOCK, "git-token")  # with a token: cloned over https
    assert deploy.check_git() is None
    assert deploy.git_source(cwd=tmp_path)[git_checkout.ENV_REPOSITORY] == "https://github.com/team/project.git"


# -- the token: named when deploying, read by the flow run from the Prefect Secret block ------------------------
def test_the_token_is_read_from_the_named_secret_block(prefect_server, monkeypatch):
    from prefect.blocks.system import Secret
    from prefect.deployments.steps.core import run_steps

    fake = "token-from-the-block"  # pragma: allowlist secret
    Secret(value=fake).save("git-token-test", overwrite=True)
    steps = [step for step in PULL_STEPS if next(iter(step)).endswith(".git_access_token")]
    loop = asyncio.new_event_loop()  # not asyncio.run: that unsets the current loop Pulumi's mocks use later
    try:
        monkeypatch.setenv(git_checkout.ENV_TOKEN_BLOCK, "git-token-test")
        assert loop.run_until_complete(run_steps(steps))["git_token"] == {"access_token": fake}
        monkeypatch.setenv(git_checkout.ENV_TOKEN_BLOCK, "")  # a public repository
        assert loop.run_until_complete(run_steps(steps))["git_token"] == {"access_token": None}
    finally:
        loop.close()
    # prefect.yaml's placeholder, left as is by a `prefect deploy` run without the variable: said, not cloned
    monkeypatch.setenv(git_checkout.ENV_TOKEN_BLOCK, "{{ $PIPELINE_GIT_TOKEN_BLOCK }}")
    with pytest.raises(git_checkout.GitSourceError, match="unresolved"):
        git_checkout.git_access_token()


# -- the pull steps as Prefect runs them, from the image's read-only working directory -------------------------
PULL_STEPS = yaml.safe_load((PROJECT / "prefect.yaml").read_text())["definitions"]["pull"]["git"]
RUNNER = """
import asyncio, json, os, sys
import yaml
from prefect.deployments.steps.core import run_steps

steps = yaml.safe_load(open(sys.argv[1]))["definitions"]["pull"]["git"]
if len(sys.argv) > 2:  # only the steps whose name ends so
    steps = [step for step in steps if next(iter(step)).endswith(sys.argv[2])]
report = {"start": os.getcwd(), "start_writable": os.access(".", os.W_OK)}
try:
    report["output"] = asyncio.run(run_steps(steps))
except Exception as exc:
    cause = exc.__cause__ or exc
    report["error"] = f"{type(exc).__name__}: {exc} (from {type(cause).__name__}: {cause})"
else:
    import importlib

    report["flows"] = importlib.import_module(sys.argv[3] + ".flows").__file__
    report["cwd"] = os.getcwd()
print("REPORT " + json.dumps(report))
"""


def _run_from_read_only_directory(workdir: Path, argv: list[str], env: dict[str, str]) -> dict:
    """Run ``argv`` with a read-only current directory, as the image's root-owned WORKDIR is for its non-root
    user: a read-only bind mount in a mount namespace of its own when run as root (root writes anywhere
    else), the directory's write bits removed otherwise."""
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("needs unshare (util-linux) to make a read-only directory for root")
        mount = 'mount --make-rprivate / && mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && cd "$0"'
        cmd, cwd = ["unshare", "--mount", "sh", "-c", mount + ' && exec "$@"', str(workdir), *argv], None
    else:
        workdir.chmod(0o555)
        cmd, cwd = argv, workdir
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603
    reports = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and reports, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(reports[-1].removeprefix("REPORT "))


def test_pull_steps_clone_from_a_read_only_working_directory_and_run_the_clone(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    from ml_workflows.deploy.rehearsal import bare_repository

    bare = Path(urlparse(bare_repository(tmp_path)).path)  # this project, committed: a local bare repository
    workdir, scratch = tmp_path / "opt-project", tmp_path / "tmp"
    workdir.mkdir()
    scratch.mkdir()
    runner = tmp_path / "run_pull_steps.py"
    runner.write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "PREFECT_API"))}
    env |= {
        # What the deployment's job variables give the flow run (make deploy: deploy.git_source).
        git_checkout.ENV_REPOSITORY: str(bare),  # a file path: no network
        git_checkout.ENV_BRANCH: "main",
        git_checkout.ENV_TOKEN_BLOCK: "",
        "TMPDIR": str(scratch),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # as in a flow run
    }
    argv = [sys.executable, str(runner), str(PROJECT / "prefect.yaml")]
    package = PACKAGE_NAME

    # Prefect's git_clone alone clones into the current directory: there it cannot.
    alone = _run_from_read_only_directory(workdir, [*argv, ".git_clone", package], env)
    assert alone["start_writable"] is False
    assert "Read-only file system" in alone["error"] or "Permission denied" in alone["error"], alone

    report = _run_from_read_only_directory(workdir, [*argv, "", package], env)
    assert report["start_writable"] is False and "error" not in report, report
    checkout = Path(report["output"]["directory"])  # use_checkout's: the clone, in a fresh writable directory
    assert checkout.parent.parent == scratch and checkout.parent.name.startswith(f"{package}-code-")
    assert report["output"]["clone"]["directory"] == checkout.name
    assert report["cwd"] == str(checkout)
    assert report["flows"] == str(checkout / "src" / package / "flows.py")  # the flow is imported from the clone
    assert _git(checkout, "rev-parse", "HEAD") == _git(bare, "rev-parse", "main")
    assert not any(workdir.iterdir())
