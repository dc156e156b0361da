"""`make deploy` checks every precondition first and stops, changing nothing, when one is missing."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ml_workflows import names
from ml_workflows.deploy import commands as deploy
from ml_workflows.deploy import stack_config
from ml_workflows.project import current, root

from ..outputs import OUTPUTS

PROJECT = root()  # the project the tests run in (its directory is the working directory)
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
        "quota": lambda: None,
        "git": lambda: None,  # code_source=git: the repository the flow runs clone
        "tracking": lambda: None,  # tracking=mlflow: the tracking server
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
        PIPELINE_GIT_REPOSITORY="https://git.example.invalid/team/project.git",  # code_source=git: a clonable source
    )
    return env, log


@pytest.mark.parametrize("with_fakes", [False, True], ids=["tools-absent", "tools-unusable"])
def test_deploy_stops_at_once_with_one_message_per_missing_piece(tmp_path, with_fakes):
    env, log = _bare_env(tmp_path, with_fakes)
    proc = subprocess.run(
        [sys.executable, "-m", "ml_workflows.deploy", "deploy"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    missing = [line for line in proc.stderr.splitlines() if line.startswith("missing: ")]
    assert len(missing) == 4 + current().tracks, proc.stderr  # tracking = mlflow: the tracking server too
    pulumi, docker, aws, prefect = missing[:4]
    if current().tracks:
        assert missing[4].startswith("missing: PIPELINE_MLFLOW_TRACKING_URI is not set")
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
    for target, count in (("deploy", 4 + current().tracks), ("destroy", 3)):
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


# A dry run of the whole `deploy`/`destroy` sequence: stand-ins for the pulumi, docker and prefect CLIs log
# their calls (pulumi answers with stack outputs), AWS is moto, and the Prefect API is a /health endpoint.
STAND_IN = """#!/bin/sh
tool=$(basename "$0")
echo "$tool $*" >> "@LOG@"
[ -n "$PIPELINE_IMAGE" ] && echo "env PIPELINE_IMAGE=$PIPELINE_IMAGE" >> "@LOG@"
[ -n "$PIPELINE_ECS_POOL" ] && echo "env PIPELINE_ECS_POOL=$PIPELINE_ECS_POOL" >> "@LOG@"
[ -n "$PIPELINE_STACK" ] && echo "env PIPELINE_STACK=$PIPELINE_STACK" >> "@LOG@"
prev=""
for arg in "$@"; do
  [ "$prev" = "--base-job-template" ] && cp "$arg" "@TMP@/template.json"
  prev="$arg"
done
case "$tool $1 $2" in
  "pulumi whoami"*) cat "@TMP@/whoami.json" ;;
  "pulumi stack ls") echo '[{"name": "dev"}]' ;;
  "pulumi stack output") cat "@TMP@/outputs.json" ;;
  "docker login"*) cat > /dev/null ;;
esac
exit 0
"""


API_KEY = "pnu_stand-in-key-0123456789"  # pragma: allowlist secret - a stand-in


@pytest.fixture(params=[True, False], ids=["worker-in-stack", "worker-elsewhere"])
def stand_ins(tmp_path, monkeypatch, request):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from moto import mock_aws
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

    log = tmp_path / "calls.log"
    (tmp_path / "whoami.json").write_text(json.dumps({"url": "https://api.pulumi.com", "user": "ci"}))
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for tool in ("pulumi", "docker", "prefect"):
        path = fake_bin / tool
        path.write_text(STAND_IN.replace("@LOG@", str(log)).replace("@TMP@", str(tmp_path)))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PULUMI_STACK", "dev")
    monkeypatch.setenv("PIPELINE_GIT_REPOSITORY", "https://git.example.invalid/team/project.git")  # code_source=git
    monkeypatch.setenv("PIPELINE_MLFLOW_TRACKING_URI", "https://mlflow.example.invalid")  # tracking=mlflow
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    with mock_aws(), temporary_settings(updates={PREFECT_API_URL: url, PREFECT_API_KEY: API_KEY}):
        import boto3

        boto3.client("ecr", region_name=OUTPUTS["aws_region"]).create_repository(
            repositoryName=OUTPUTS["ecr_repository_url"].split("/", 1)[1]
        )
        secret = boto3.client("secretsmanager", region_name=OUTPUTS["aws_region"]).create_secret(
            Name=f"{current().name}-dev-prefect-api-key"
        )
        outputs = {**OUTPUTS, "prefect_api_key_secret_arn": secret["ARN"]}
        if request.param:  # the stack runs the Prefect worker (prefect_worker = yes)
            outputs |= {"prefect_worker_service": f"{current().name}-dev-prefect-worker"}
        (tmp_path / "outputs.json").write_text(json.dumps(outputs))
        yield log, tmp_path, outputs, url
    server.shutdown()


def _calls(log: Path) -> list[str]:
    return [" ".join(line.split()[:3]) for line in log.read_text().splitlines()]


def test_deploy_runs_every_step_in_order(stand_ins, capsys):
    import json

    import boto3

    log, tmp, outputs, url = stand_ins
    in_stack = bool(outputs.get("prefect_worker_service"))
    deploy.deploy()
    image = f"{OUTPUTS['ecr_repository_url']}:{deploy.git_revision()}"
    text = log.read_text()
    worker_steps = ["pulumi config set", "pulumi config set", "pulumi up --yes"] if in_stack else []
    assert _calls(log) == [
        "pulumi whoami --non-interactive",
        "docker info",
        "pulumi whoami --json",  # infrastructure/preflight.py, once all else is present
        "pulumi stack ls",
        "pulumi stack select",
        "pulumi up --yes",
        "pulumi stack output",
        "docker build --platform",
        "docker login --username",
        f"docker tag {current().name}:{deploy.git_revision()}",
        "docker push " + image,
        *worker_steps,  # the worker service gets the pushed image and the API URL, then runs
        "prefect --no-prompt work-pool",
        "prefect --no-prompt work-pool",
        "prefect --no-prompt deploy",
        "env PIPELINE_IMAGE=" + image,
        "env PIPELINE_ECS_POOL=" + OUTPUTS["work_pool_name"],  # prefect.yaml's ECS pool is the stack's
        "env PIPELINE_STACK=dev",  # ... and its deployments' names: aws-dev
    ]
    assert "--policy-pack" in text and "--stack dev" in text
    if in_stack:
        assert f"pulumi config set prefect_worker_image {image} --stack dev" in text
        assert f"pulumi config set prefect_api_url {url} --stack dev" in text
    else:
        assert "config set" not in text
    assert f"work-pool create {OUTPUTS['work_pool_name']} --type ecs --overwrite --base-job-template" in text
    assert f"work-pool create {names.local_pool()} --type process --overwrite" in text
    assert "prefect --no-prompt deploy --all" in text
    template = json.loads((tmp / "template.json").read_text())
    assert template["variables"]["properties"]["image"]["default"] == image
    # The key is in the stack's secret (for the worker and the flow runs), and nowhere else.
    secrets = boto3.client("secretsmanager", region_name=OUTPUTS["aws_region"])
    assert secrets.get_secret_value(SecretId=outputs["prefect_api_key_secret_arn"])["SecretString"] == API_KEY
    seen = capsys.readouterr()
    assert API_KEY not in seen.out + seen.err + text
    assert not [p for p in tmp.rglob("*") if p.is_file() and API_KEY in p.read_text(errors="replace")]


def test_destroy_reverses_deploy(stand_ins):
    log, *_ = stand_ins
    deploy.destroy()
    calls = _calls(log)
    assert calls[-9:] == [
        "pulumi stack output",
        "prefect --no-prompt deployment",
        "prefect --no-prompt deployment",
        "prefect --no-prompt deployment",
        "prefect --no-prompt automation",
        "prefect --no-prompt automation",
        "prefect --no-prompt block",
        "prefect --no-prompt work-pool",
        "pulumi destroy --yes",
    ]
    # Each by its exact name, the stack's (PULUMI_STACK=dev): never a generic name or a pattern.
    deleted = [line.split(None, 4)[4] for line in log.read_text().splitlines() if " delete " in line]
    name = current().name
    assert deleted == [
        f"{name}-batch-pipeline/aws-dev",
        f"{name}-train/aws-dev",
        f"{name}-score/aws-dev",
        f"{name}-dev-flow-run-crashed",
        f"{name}-dev-flow-run-too-long",
        f"custom-webhook/{name}-dev-notify",
        OUTPUTS["work_pool_name"],
    ]


# ---------------------------------------------------------------- Fargate vCPU quotas (Service Quotas)


def _quota_client(answers):
    """A real botocore service-quotas client whose answers are stubbed (botocore validates the calls against
    its service model): ``answers`` maps a quota code to its value or to an error code."""
    import boto3
    from botocore.stub import Stubber

    credentials = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    client = boto3.client("service-quotas", region_name=stack_config.read().region, **credentials)
    stub = Stubber(client)
    for code, answer in answers:
        params = {"ServiceCode": "fargate", "QuotaCode": code}
        if isinstance(answer, str):
            stub.add_client_error("get_service_quota", service_error_code=answer, expected_params=params)
        else:
            stub.add_response("get_service_quota", {"Quota": {"QuotaCode": code, "Value": answer}}, params)
    stub.activate()
    return client, stub


def test_quota_codes_are_the_fargate_vcpu_quotas():
    assert deploy.FARGATE_QUOTAS == {"FARGATE": "L-3032A538", "FARGATE_SPOT": "L-36FBB829"}


def test_vcpus_needed_for_one_run():
    # scheduler 1 + flow run 1 (+ worker service 0.25) on-demand; the Dask workers where they run
    assert deploy.vcpus_needed(8, 1, spot=False, worker_service=True) == {"FARGATE": 10.25}
    assert deploy.vcpus_needed(20, 4, spot=True, worker_service=True) == {"FARGATE": 2.25, "FARGATE_SPOT": 80}
    assert deploy.vcpus_needed(20, 4, spot=False, worker_service=False) == {"FARGATE": 82}


def test_quota_below_the_need_refuses_with_one_line():
    client, stub = _quota_client([("L-3032A538", 6.0)])
    problem = deploy.check_fargate_quota(client, {"FARGATE": 10.25})
    stub.assert_no_pending_responses()
    assert problem is not None and "\n" not in problem
    assert "Fargate On-Demand vCPU" in problem and "L-3032A538" in problem
    assert "is 6 vCPUs, one run needs 10.25" in problem
    assert "request-service-quota-increase" in problem


def test_spot_quota_is_read_when_workers_use_spot():
    client, stub = _quota_client([("L-3032A538", 100.0), ("L-36FBB829", 16.0)])
    problem = deploy.check_fargate_quota(client, {"FARGATE": 2.25, "FARGATE_SPOT": 80})
    stub.assert_no_pending_responses()
    assert "Fargate Spot vCPU" in problem and "L-36FBB829" in problem and "one run needs 80" in problem


def test_enough_quota_passes():
    client, stub = _quota_client([("L-3032A538", 100.0), ("L-36FBB829", 100.0)])
    assert deploy.check_fargate_quota(client, {"FARGATE": 2.25, "FARGATE_SPOT": 80}) is None
    stub.assert_no_pending_responses()


def test_quota_access_denied_is_a_warning(capsys):
    client, stub = _quota_client([("L-3032A538", "AccessDeniedException")])
    assert deploy.check_fargate_quota(client, {"FARGATE": 10.25}) is None
    err = capsys.readouterr().err
    assert err.startswith("warning: cannot read the Fargate On-Demand vCPU") and "10.25" in err


def test_readme_gives_the_vcpus_a_run_needs():
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    for provider, vcpus in deploy.vcpus_needed().items():
        assert f"**{vcpus:g} vCPU** of" in text and deploy.FARGATE_QUOTAS[provider] in text


@pytest.mark.skipif(stack_config.read().prefect_worker, reason="prefect_worker = yes: the stack runs the worker")
def test_readme_worker_policy_is_the_code_s():
    """prefect_worker = no: the README's policy is exactly what infra/identity.py gives the worker role."""
    import json
    import re
    import types

    from infra import identity, logs  # infrastructure/ is on sys.path (the ml_workflows.testing plugin)

    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```json\n(.*?)\n```", text, flags=re.S)
    arns = identity.Arns(
        partition="aws",
        region=stack_config.read().region,
        account="ACCOUNT_ID",
        base_name=f"{current().name}-dev",
        bucket_name="",
        log_group_name=logs.log_group_name_for(types.SimpleNamespace(base_name=f"{current().name}-dev")),
    )
    assert json.loads(block) == json.loads(identity.worker_policy(arns))
    assert not (PROJECT / "infrastructure" / "infra" / "worker.py").exists()


def test_make_worker_aws_names_the_pool_and_queue_the_stack_creates_without_its_state(capsys):
    """`make worker-aws` reads the names from the Pulumi files (the worker's credentials need no state backend);
    they are the ones infra/settings.py and infra/identity.py give the stack's pool and task-event queue."""
    from infra import identity, settings  # infrastructure/ is on sys.path (the ml_workflows.testing plugin)

    config = stack_config.read(stack="prod")
    s = settings.Settings(
        project=current().name,
        stack="prod",
        region=config.region,
        name_prefix=config.name_prefix,
        vpc_cidr="10.42.0.0/16",
        dask_access_cidr="10.42.0.0/16",
    )
    assert stack_config.main(["--stack", "prod", "worker"]) == 0
    assert capsys.readouterr().out.split() == [s.work_pool_name, identity.event_queue_name(s.base_name)]
