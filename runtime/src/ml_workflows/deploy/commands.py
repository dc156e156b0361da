"""`make deploy` / `make destroy` / `make build` / `make push`: the cloud deploy path, in order.

    deploy   preconditions (incl. the Fargate vCPU quota) -> pulumi up -> docker build + push to ECR -> the
             Prefect API key into the stack's secret -> the worker service's image and API URL (pulumi
             config + a second pulumi up, when the stack runs the worker) -> Prefect work pools
             (ECS pool from the stack outputs) -> prefect --no-prompt deploy --all -> the
             automations of automations.yaml when notifications are configured (.automations)
    destroy  preconditions -> delete the stack's ECS deployments, automations and notification block (by their
             exact names, ml_workflows.names) and its ECS work pool -> pulumi destroy

Every precondition (Pulumi CLI and login, Docker engine, AWS credentials, Prefect API) is checked
before anything runs; each missing piece gets one line saying how to fix it, and nothing is changed
until all are present. Every step is idempotent, so a failed or repeated `make deploy` is re-run
as is.

    python -m ml_workflows.deploy {preflight,deploy,destroy,build,push,work-pool,job-template}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ml_workflows import fargate, git_checkout, names, tracking
from ml_workflows.deploy import stack_config
from ml_workflows.deploy.work_pool import work_pool_job_template
from ml_workflows.project import current
from ml_workflows.project import root as project_root

PROJECT_DIR = project_root(strict=False)
INFRA_DIR = PROJECT_DIR / "infrastructure"
# The ECS pool is the stack's (output `work_pool_name`, `<prefix>-<stack>-ecs`): prefect.yaml names it by this
# variable, which `make deploy` sets for `prefect deploy`, so two stacks or projects never share a pool.
ECS_POOL_ENV = "PIPELINE_ECS_POOL"
ECS_POOL_IN_PREFECT_YAML = "{{ $PIPELINE_ECS_POOL }}"  # = ECS_POOL_ENV
PLATFORM = "linux/amd64"  # dask-cloudprovider's default cpu_architecture (X86_64)


class PreconditionError(SystemExit):
    """Raised (exit code 2) when something the command needs is missing."""


def stack_name(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("PULUMI_STACK", "").strip() or "dev"


def stack_region(stack: str | None = None) -> str:
    """The region the stack deploys to (``aws:region`` of its Pulumi config: what `pulumi up` uses), before any
    output exists; once deployed, its ``aws_region`` output says the same."""
    return stack_config.read(PROJECT_DIR, stack or stack_name()).region


def ecs_deployments(stack: str | None = None) -> list[str]:
    """The stack's deployments on its ECS pool (``<flow>/aws-<stack>``): `make destroy` deletes exactly these."""
    return names.aws_deployments(stack or stack_name())


# ---------------------------------------------------------------- preconditions (probe only)


def _probe(cmd: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_pulumi() -> str | None:
    if not shutil.which("pulumi"):
        return (
            "Pulumi CLI not found: install it (https://www.pulumi.com/docs/iac/download-install/), "
            "then `pulumi login` (Pulumi Cloud or e.g. `pulumi login s3://<state-bucket>`)"
        )
    who = _probe(["pulumi", "whoami", "--non-interactive"])
    if who is None or who.returncode != 0:
        return "Pulumi is not logged in to a state backend: run `pulumi login` (or set PULUMI_BACKEND_URL)"
    return None


def check_docker() -> str | None:
    if not shutil.which("docker"):
        return "Docker not found: install Docker Engine or Docker Desktop (it builds and pushes the project image)"
    info = _probe(["docker", "info"])
    if info is None or info.returncode != 0:
        return "Docker engine not reachable (`docker info` failed): start Docker Desktop or the docker daemon"
    return None


def check_aws() -> str | None:
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return "boto3 is not installed: run `make install`"
    session = boto3.Session(region_name=stack_region())
    if session.get_credentials() is None:
        return (
            "AWS credentials not found: run `aws configure`, `aws sso login --profile <p>` with AWS_PROFILE=<p>, "
            "or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    try:
        sts = session.client("sts", config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}))
        sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return f"AWS credentials were found but do not work ({exc}): refresh them (e.g. `aws sso login`)"
    return None


def prefect_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def prefect_api_key() -> str | None:
    from prefect.settings import PREFECT_API_KEY

    key = PREFECT_API_KEY.value()
    return (key.get_secret_value() if hasattr(key, "get_secret_value") else key) or None


def check_prefect() -> str | None:
    try:
        url = prefect_api_url()
    except ImportError:
        return "Prefect is not installed: run `make install`"
    if not url:
        return (
            "PREFECT_API_URL is not set: `prefect cloud login`, or `prefect config set "
            "PREFECT_API_URL=http://<server>/api` for a self-hosted Prefect server that your ECS worker also reaches"
        )
    request = urllib.request.Request(f"{url.rstrip('/')}/health")  # noqa: S310 (the configured http(s) API)
    if key := prefect_api_key():  # Prefect Cloud answers only with the key
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if response.status == 200:
                return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"Prefect API {url} not reachable ({exc}): start the server or fix PREFECT_API_URL"
    return f"Prefect API {url} did not answer /health with 200"


# Fargate vCPU quotas (Service Quotas, service code `fargate`), per account and region.
FARGATE_QUOTAS = {"FARGATE": "L-3032A538", "FARGATE_SPOT": "L-36FBB829"}
QUOTA_NAMES = {"FARGATE": "Fargate On-Demand vCPU resource count", "FARGATE_SPOT": "Fargate Spot vCPU resource count"}
PREFECT_WORKER_VCPUS = 0.25  # infrastructure/infra/worker.py: CPU 256


def vcpus_needed(
    max_workers: int | None = None,
    worker_vcpus: int | None = None,
    spot: bool | None = None,
    worker_service: bool | None = None,
) -> dict[str, float]:
    """vCPUs one flow run holds at once, per capacity provider: the Dask scheduler (1, on-demand even with Spot:
    dask-cloudprovider puts only the workers on FARGATE_SPOT), the flow-run task (1), every Dask worker, and the
    always-on Prefect worker service (0.25) when the stack runs it. Defaults: the project's worker size and count,
    the stack's Spot and worker service (infrastructure/Pulumi.yaml)."""
    project, stack = current(), stack_config.read(PROJECT_DIR, stack_name())
    max_workers = project.max_workers if max_workers is None else max_workers
    worker_vcpus = project.worker_vcpus if worker_vcpus is None else worker_vcpus
    spot = stack.fargate_spot if spot is None else spot
    worker_service = stack.prefect_worker if worker_service is None else worker_service
    workers = max_workers * worker_vcpus
    on_demand = fargate.SCHEDULER_VCPUS + fargate.FLOW_RUN_CPU / 1024 + (PREFECT_WORKER_VCPUS if worker_service else 0)
    need = {"FARGATE": on_demand + (0 if spot else workers)}
    if spot:
        need["FARGATE_SPOT"] = workers
    return need


def check_fargate_quota(client: Any = None, need: Mapping[str, float] | None = None) -> str | None:
    """Refuse when a Fargate vCPU quota is below what one run needs; a quota the credentials may not read is a
    warning (on stderr), not a failure."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover (check_aws reports it)
        return None
    need = vcpus_needed() if need is None else need
    if client is None:
        try:
            client = boto3.client("service-quotas", region_name=stack_region())
        except BotoCoreError:
            return None  # no region/credentials: check_aws reports it
    for provider, vcpus in need.items():
        code = FARGATE_QUOTAS[provider]
        try:
            try:
                value = client.get_service_quota(ServiceCode="fargate", QuotaCode=code)["Quota"]["Value"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchResourceException":
                    raise
                value = client.get_aws_default_service_quota(ServiceCode="fargate", QuotaCode=code)["Quota"]["Value"]
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code", "")
            if error in ("AccessDeniedException", "AccessDenied"):
                print(
                    f"warning: cannot read the {QUOTA_NAMES[provider]} quota ({code}; servicequotas:GetServiceQuota "
                    f"denied): a run needs {vcpus:g} vCPUs of it at once - check it in the Service Quotas console",
                    file=sys.stderr,
                )
                continue
            print(f"warning: could not read the Fargate quota {code} ({error or exc}): not checked", file=sys.stderr)
            continue
        except Exception as exc:  # noqa: BLE001 (an unreadable quota is a warning, never a crash of the preflight)
            print(f"warning: could not read the Fargate quota {code} ({exc}): not checked", file=sys.stderr)
            continue
        if value < vcpus:
            return (
                f"{QUOTA_NAMES[provider]} quota ({code}) in {stack_region()} is {value:g} vCPUs, one run needs "
                f"{vcpus:g}: request an increase (`aws service-quotas request-service-quota-increase --service-code "
                f"fargate --quota-code {code} --desired-value {vcpus:g} --region {stack_region()}` or the Service "
                f"Quotas console) or lower max_workers / worker_vcpus"
            )
    return None


def check_quota() -> str | None:
    if check_aws() is not None:
        return None  # no working credentials: check_aws has said so
    return check_fargate_quota()


CHECKS: dict[str, Callable[[], str | None]] = {
    "pulumi": check_pulumi,
    "docker": check_docker,
    "aws": check_aws,
    "prefect": check_prefect,
    "quota": check_quota,
    "git": lambda: check_git(),  # defined below, with the git source (code_source = git)
    "tracking": lambda: check_tracking(),
}
NEEDS = {  # git, tracking: with code_source = git / tracking = mlflow only
    "deploy": ("pulumi", "docker", "aws", "prefect", "quota", "git", "tracking"),
    "destroy": ("pulumi", "aws", "prefect"),
    "build": ("docker",),
    "push": ("pulumi", "docker", "aws"),
    "work-pool": ("pulumi", "aws", "prefect", "tracking"),
}


def check_tracking() -> str | None:
    """tracking = mlflow: the flow runs need the tracking server, or they fail at train after the cluster started."""
    return tracking.deploy_problem() if current().tracks else None


def preflight(names: Iterable[str], checks: Mapping[str, Callable[[], str | None]] = CHECKS) -> list[str]:
    """Run every check (all of them, so the user sees every missing piece at once); return the problems."""
    return [problem for name in names if (problem := checks[name]()) is not None]


def infra_preflight(create_stack: bool) -> list[str]:
    """The infrastructure's preflight (:mod:`.preflight`): Pulumi backend, secrets passphrase, the project's Pulumi
    packages and the stack, which it selects (and creates on the first deploy)."""
    from ml_workflows.deploy import preflight

    return preflight.problems(stack_name(), create_stack=create_stack, need_credentials=False, cwd=INFRA_DIR)


def require(command: str, checks: Mapping[str, Callable[[], str | None]] | None = None) -> None:
    problems = preflight(NEEDS[command], CHECKS if checks is None else checks)
    if not problems and checks is None and "pulumi" in NEEDS[command]:
        # Last, once everything else is present: it selects the stack, creating it only for a deploy.
        problems = infra_preflight(create_stack=command == "deploy")
    if problems:
        for problem in problems:
            print(f"missing: {problem}", file=sys.stderr)
        print(
            f"`make {command}` stopped before changing anything: {len(problems)} precondition(s) missing (see above)",
            file=sys.stderr,
        )
        raise PreconditionError(2)


# ---------------------------------------------------------------- steps


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True, **kw: Any):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(list(cmd), cwd=PROJECT_DIR, env={**os.environ, **(env or {})}, check=check, **kw)  # noqa: S603


def pulumi(*args: str, capture: bool = False) -> str:
    cmd = ["pulumi", *args, "--stack", stack_name(), "--cwd", str(INFRA_DIR), "--non-interactive"]
    proc = run(cmd, capture_output=capture, text=True)
    return proc.stdout if capture else ""


def stack_outputs() -> dict[str, Any]:
    outputs = json.loads(pulumi("stack", "output", "--json", capture=True) or "{}")
    if missing := fargate.missing_outputs(outputs):
        raise SystemExit(f"stack {stack_name()} has no output(s) {', '.join(missing)}: run `make deploy` (pulumi up)")
    return outputs


def git_revision() -> str:
    """Image tag: the short git commit, with -dirty when the worktree has uncommitted changes."""
    rev = _probe(["git", "-C", str(PROJECT_DIR), "rev-parse", "--short=12", "HEAD"])
    if rev is None or rev.returncode != 0:
        return "dev"
    status = _probe(["git", "-C", str(PROJECT_DIR), "status", "--porcelain", "--untracked-files=no"])
    dirty = bool(status and status.stdout.strip())
    return rev.stdout.strip() + ("-dirty" if dirty else "")


def local_image(tag: str | None = None) -> str:
    return f"{current().name}:{tag or git_revision()}"


def build(tag: str | None = None) -> str:
    image = local_image(tag)
    run(["docker", "build", "--platform", PLATFORM, "--tag", image, "."])
    return image


def ecr_login(repository_url: str) -> None:
    import base64

    import boto3

    registry = repository_url.split("/", 1)[0]
    region = registry.split(".")[3] if registry.count(".") >= 5 else stack_region()
    token = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    run(["docker", "login", "--username", user, "--password-stdin", registry], input=password, text=True)


def push(outputs: Mapping[str, Any], tag: str | None = None) -> str:
    """Tag the local image for ECR and push it; return the pushed image URI."""
    source = local_image(tag)
    target = f"{outputs['ecr_repository_url']}:{tag or git_revision()}"
    ecr_login(outputs["ecr_repository_url"])
    run(["docker", "tag", source, target])
    run(["docker", "push", target])
    return target


def upsert_work_pool(name: str, pool_type: str, template: Mapping[str, Any] | None = None) -> None:
    """Create the work pool or overwrite its job template (idempotent)."""
    cmd = ["prefect", "--no-prompt", "work-pool", "create", name, "--type", pool_type, "--overwrite"]
    if template is None:
        run(cmd)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(template, handle)
    try:
        run([*cmd, "--base-job-template", handle.name])
    finally:
        os.unlink(handle.name)


def ecs_pool(outputs: Mapping[str, Any]) -> str:
    """The stack's ECS work pool (Pulumi output `work_pool_name`)."""
    if not (name := outputs.get("work_pool_name")):
        raise fargate.OutputsError(
            "Pulumi outputs lack work_pool_name; run `make deploy` (pulumi up) or check the stack"
        )
    return str(name)


def deploy_env(image: str, pool: str, stack: str | None = None) -> dict[str, str]:
    """What `prefect deploy` resolves prefect.yaml with: the image, the stack's ECS pool and the stack (the AWS
    deployments' name, ``aws-<stack>``)."""
    return {"PIPELINE_IMAGE": image, ECS_POOL_ENV: pool, names.STACK_ENV: names.stack_key(stack or stack_name())}


def prefect_deploy(image: str, pool: str, *deployments: str) -> None:
    selection = [arg for name in deployments for arg in ("--name", name)] or ["--all"]
    # code_source = git: repository, branch, token block for the flow runs' git_clone pull steps.
    git = git_source(cwd=PROJECT_DIR) if current().code_source == "git" else {}
    run(["prefect", "--no-prompt", "deploy", *selection], env={**deploy_env(image, pool), **git})


def git_source(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """``PIPELINE_GIT_REPOSITORY`` / ``_BRANCH`` / ``_TOKEN_BLOCK`` for `prefect deploy` (prefect.yaml puts them into
    the deployments' ``job_variables.env``): the environment's, else this checkout's origin remote and branch."""
    environ = dict(os.environ if environ is None else environ)

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)  # noqa: S603, S607
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip()

    repository = environ.get(git_checkout.ENV_REPOSITORY) or git("remote", "get-url", "origin")
    branch = environ.get(git_checkout.ENV_BRANCH) or git("rev-parse", "--abbrev-ref", "HEAD") or "main"
    token_block = environ.get(git_checkout.ENV_TOKEN_BLOCK, "").strip()
    if not repository:
        raise RuntimeError("code from git: set PIPELINE_GIT_REPOSITORY (or an `origin` remote) before deploying")
    return {
        git_checkout.ENV_REPOSITORY: git_checkout.clone_url(repository, token_block),  # ssh: https, or refused
        git_checkout.ENV_BRANCH: branch,
        git_checkout.ENV_TOKEN_BLOCK: token_block,  # empty: a public repository
    }


def check_git() -> str | None:
    """The repository the flow runs will clone: known, and clonable by them (an ssh origin needs a token)."""
    if current().code_source != "git":
        return None
    try:
        git_source(cwd=PROJECT_DIR)
    except (RuntimeError, git_checkout.GitSourceError) as exc:
        return str(exc)
    return None


def store_api_key(outputs: Mapping[str, Any], key: str | None = None) -> bool:
    """Put the Prefect API key (``PREFECT_API_KEY`` or the Prefect profile's) into the stack's Secrets Manager
    secret, which the ECS worker and the flow runs read. The key goes from memory to AWS only: never printed,
    never written to a file. Returns False (and says so) when there is no key, e.g. a self-hosted server."""
    import boto3

    key = prefect_api_key() if key is None else key
    arn = outputs.get("prefect_api_key_secret_arn")
    if not key or not arn:
        print("no Prefect API key configured (self-hosted server without auth?): the stack's secret is left as is")
        return False
    client = boto3.client("secretsmanager", region_name=outputs.get("aws_region") or stack_region())
    client.put_secret_value(SecretId=arn, SecretString=key)
    print(f"stored the Prefect API key in {arn}")
    return True


def worker_in_stack(outputs: Mapping[str, Any]) -> bool:
    """Whether the stack runs the Prefect ECS worker (output `prefect_worker_service`, empty when it does not)."""
    return bool(outputs.get("prefect_worker_service"))


def start_worker_service(image: str, api_url: str) -> None:
    """Give the stack's worker service its image and Prefect API URL (the keys infra/settings.py reads) and
    apply them: the service then runs one task (`desired_count` 1, infra/worker.py)."""
    pulumi("config", "set", "prefect_worker_image", image)
    pulumi("config", "set", "prefect_api_url", api_url)
    pulumi("up", "--yes", "--skip-preview", "--policy-pack", str(INFRA_DIR / "policy"))


def deploy(tag: str | None = None) -> None:
    require("deploy")
    pulumi("up", "--yes", "--skip-preview", "--policy-pack", str(INFRA_DIR / "policy"))
    outputs = stack_outputs()
    build(tag)
    image = push(outputs, tag)
    store_api_key(outputs)
    worker = worker_in_stack(outputs)
    if worker:
        start_worker_service(image, str(prefect_api_url()))
    pool = ecs_pool(outputs)
    upsert_work_pool(pool, "ecs", work_pool_job_template(outputs, image))
    upsert_work_pool(names.local_pool(), "process")
    prefect_deploy(image, pool)
    from ml_workflows.deploy.automations import upsert_automations

    upsert_automations(stack=stack_name())
    if worker:
        print(f"Deployed {image}.\nThe stack's ECS worker ({outputs['prefect_worker_service']}) polls {pool!r}.")
    else:
        print(
            f"Deployed {image}.\nFlow runs on work pool {pool!r} start when an ECS worker polls it, e.g. "
            f"`make worker-aws` with the worker policy of README.md attached to its credentials."
        )


def delete_images(repository_url: str, region: str | None = None) -> None:
    """Delete the project's images from ECR (rebuildable; pulumi keeps a repository that still holds images), in
    the stack's region (its ``aws_region`` output)."""
    import boto3

    ecr = boto3.client("ecr", region_name=region or stack_region())
    name = repository_url.split("/", 1)[1]
    image_ids = [i for page in ecr.get_paginator("list_images").paginate(repositoryName=name) for i in page["imageIds"]]
    for start in range(0, len(image_ids), 100):
        ecr.batch_delete_image(repositoryName=name, imageIds=image_ids[start : start + 100])
    print(f"deleted {len(image_ids)} image(s) from {repository_url}")


def delete_prefect_objects(stack: str, pool: str | None) -> None:
    """Delete the stack's deployments, automations and notification block, and its ECS pool, each by its exact
    name (ml_workflows.names; the pool from the Pulumi outputs), so other projects and stacks keep theirs. Absent
    ones are fine (notifications may never have been on)."""
    from ml_workflows.deploy.automations import notify_block_slug

    for name in ecs_deployments(stack):
        run(["prefect", "--no-prompt", "deployment", "delete", name], check=False)
    for name in names.automations(stack):
        run(["prefect", "--no-prompt", "automation", "delete", name], check=False)
    run(["prefect", "--no-prompt", "block", "delete", notify_block_slug(stack)], check=False)
    if pool:
        run(["prefect", "--no-prompt", "work-pool", "delete", pool], check=False)


def destroy() -> None:
    require("destroy")
    outputs = json.loads(pulumi("stack", "output", "--json", capture=True) or "{}")
    pool = outputs.get("work_pool_name")
    delete_prefect_objects(stack_name(), pool)
    if outputs.get("ecr_repository_url"):
        delete_images(outputs["ecr_repository_url"], outputs.get("aws_region"))
    pulumi("destroy", "--yes", "--skip-preview")  # a bucket that holds data stays: docs/deploy.md "Infrastructure"
    print(f"Destroyed stack {stack_name()}" + (f" and the Prefect work pool {pool!r}." if pool else "."))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "build", "push"):
        sub.add_parser(name).add_argument("--tag", help="image tag (default: the git revision)")
    sub.add_parser("destroy")
    sub.add_parser("preflight").add_argument("--for", dest="target", choices=sorted(NEEDS), default="deploy")
    pool = sub.add_parser("work-pool", help="create/update the ECS work pool from the stack outputs")
    pool.add_argument("--image", required=True)
    tpl = sub.add_parser("job-template", help="print the ECS base job template for a JSON file of stack outputs")
    tpl.add_argument("outputs", type=Path)
    tpl.add_argument("--image", required=True)
    args = parser.parse_args(argv)

    if args.command == "preflight":
        require(args.target)
        print(f"preconditions for `make {args.target}`: all present")
    elif args.command == "deploy":
        deploy(args.tag)
    elif args.command == "destroy":
        destroy()
    elif args.command == "build":
        require("build")
        print(build(args.tag))
    elif args.command == "push":
        require("push")
        print(push(stack_outputs(), args.tag))
    elif args.command == "work-pool":
        require("work-pool")
        outputs = stack_outputs()
        upsert_work_pool(ecs_pool(outputs), "ecs", work_pool_job_template(outputs, args.image))
    elif args.command == "job-template":
        outputs = json.loads(args.outputs.read_text(encoding="utf-8"))
        print(json.dumps(work_pool_job_template(outputs, args.image), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
