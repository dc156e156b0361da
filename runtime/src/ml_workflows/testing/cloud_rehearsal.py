"""The cloud rehearsal: the deployed project's AWS path, run by the real clients against moto on loopback.

1. the Pulumi program is run under Pulumi's mocks (ml_workflows.testing.pulumi_program) and what it declares
   is created in moto: network, ECS cluster, log group, bucket, the Prefect API key secret, and every role
   with the action-level projection of its generated policy documents (aws_emulation.py);
2. moto's IAM enforcement goes on; each role's credentials are served to the tasks that run as it;
3. a local Prefect server; the ECS work pool from the project's own job template and `prefect deploy`;
4. the Prefect ECS worker runs as the stack's worker service task (or, with the worker service off, as the
   user's process with the README's worker policy) - prefect-aws's real worker submitting the real template;
5. the AWS deployment is triggered; its flow-run task (Prefect's own pull steps, then the flow) starts the real
   FargateCluster with the project's arguments; every task moto reports as started runs as a local process
   (ecs_tasks.py); the flow scores data in moto's S3 on that cluster and must reach Completed;
6. every started task is stopped, pass or fail; the calls are returned for the scoping check (iam_scope.py).

With tracking = mlflow, a real MLflow tracking server (`mlflow server`, SQLite store in the work dir) stands for
the user's: its URI reaches the flow run through the job template's environment as `make deploy` passes it
(deploy/work_pool.py: tracking.deploy_env, with the stack's own experiment). The flow run's MLflow client writes
the artifacts straight to the project bucket's tracking prefix with the flow-run role's credentials (the server never
touches S3: --no-serve-artifacts), and after the run the rehearsal reads the run back through MLflow's client and
lists its artifacts in moto's S3.
With code_source = git, the project is committed to a bare repository the flow-run task clones (its pull steps).

After a Completed run: which task definitions are still ACTIVE, then the crash runs (crashes.py) - a flow-run task
killed mid-run and one whose image cannot be pulled - each to be noticed through ECS's task events, the stack's
queue and prefect-aws's observer, with the stack's automations posting to a webhook on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from ml_workflows.deploy.rehearsal import free_port, http_ok, server_env  # the local rehearsal's
from ml_workflows.project import current
from ml_workflows.testing import iam_scope
from ml_workflows.testing.aws_emulation import ACCOUNT, ECS_TASKS, LOOPBACK, Call, MotoAws, put_role
from ml_workflows.testing.ecs_tasks import NETGUARD, TaskRunner
from ml_workflows.testing.image import PROJECT_DIR, read

for _path in (PROJECT_DIR / "infrastructure", PROJECT_DIR / "infrastructure" / "tests"):  # the project's Pulumi program
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
from ml_workflows.testing import pulumi_program as infra_harness  # noqa: E402

BIN = Path(sys.executable).parent
FAKE_API_KEY = "pnu_rehearsal0secret0value0never0in0a0task0definition"  # pragma: allowlist secret
STACK = "rehearsal"
# A small run: the point is the path through AWS, not the volume (make bench measures that). The sample sizes
# are settings of the flow-run container (ml_workflows.settings), so they go into the job template's environment.
SAMPLE_ENV = {
    "PIPELINE_SAMPLE_TRAIN_ROWS": "20000",
    "PIPELINE_SAMPLE_TRAIN_FILES": "2",
    "PIPELINE_SAMPLE_SCORE_ROWS": "40000",
    "PIPELINE_SAMPLE_SCORE_FILES": "4",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # MLflow's usage reports go to the internet (tracking = mlflow): loopback only
}


class RehearsalError(RuntimeError):
    pass


@dataclass
class Result:
    state: str
    calls: list[Call]
    policies: dict[str, list[str]]  # role name -> the generated policy documents attached to it
    outputs: dict[str, Any]
    tasks: list[Any]
    violations: list[str]
    secrets_seen: list[str]
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0
    region: str = ""
    workdir: Path | None = None  # task logs and the image's stand-in files; the caller removes it
    tracking: dict[str, Any] = field(
        default_factory=dict
    )  # tracking = mlflow: the training run as MLflow and S3 hold it
    active_task_definitions: list[str] = field(default_factory=list)  # ACTIVE after the run, but the harness's own
    crashes: list[Any] = field(default_factory=list)  # crashes.CrashRun of each crash run
    events: list[dict[str, Any]] = field(default_factory=list)  # the ECS task state changes emitted

    def scope(self, policies: dict[str, list[str]] | None = None) -> tuple[list, list[str]]:
        """The scoping check of this run's calls (iam_scope.py) against `policies` (default: the generated ones)."""
        return iam_scope.check(self.calls, policies or self.policies, self.region, ACCOUNT)


def without_action(document: str, action: str) -> str:
    """The policy document with one action taken out of every statement (a statement left empty is dropped).

    For the negative test: the rehearsal must then fail naming that action."""
    policy = json.loads(document)
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    kept = []
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else list(actions)
        remaining = [a for a in actions if a.lower() != action.lower()]
        if len(remaining) == len(actions):
            kept.append(statement)  # untouched
        elif remaining:
            kept.append({**statement, "Action": remaining})
    return json.dumps({**policy, "Statement": kept})


def drop_action(role_suffix: str, action: str) -> Callable[[str, str], str]:
    """An `edit_policy` hook removing `action` from the generated policies of the role whose name ends so."""
    return lambda role, document: without_action(document, action) if role.endswith(role_suffix) else document


def report(result: Result) -> dict[str, Any]:
    """What one run did, as JSON: the AWS calls in order with the role of each, the commands each emulated task
    ran and as which uid, the variable names of every registered task definition, and the run's duration."""
    registered = []
    for call in result.calls:
        if call.action == "ecs:RegisterTaskDefinition" and not call.denied:
            params = call.params()
            for container in params.get("containerDefinitions", []):
                registered.append(
                    {
                        "family": params.get("family"),
                        "command": container.get("command"),
                        "environment": sorted(e["name"] for e in container.get("environment", [])),
                        "secrets": sorted(e["name"] for e in container.get("secrets", [])),
                    }
                )
    allowed, problems = result.scope()
    return {
        "state": result.state,
        "seconds": round(result.seconds, 1),
        "calls": [[c.principal, c.action, "denied" if c.denied else "allowed"] for c in result.calls],
        # What AWS would authorise for each call (resource ARN, condition keys) and the statement that allows it.
        "scope": [[str(request), sid] for request, sid in allowed],
        "scope_problems": problems,
        # Least privilege, for review: what each role may do that this run never asked for (cancellation, retries,
        # multipart uploads and log reading are paths a Completed run does not take).
        "granted_not_used": iam_scope.unused(result.policies, [request for request, _ in allowed]),
        "tasks": [
            {"family": t.family, "argv": t.argv, "uid": t.uid, "exit_code": t.exit_code, "stopped_by": t.stopped_by}
            for t in result.tasks
        ],
        "task_definitions": registered,
        "violations": result.violations,
        "secrets_seen": result.secrets_seen,
        "active_task_definitions": result.active_task_definitions,
        "crashes": [run.as_dict() for run in result.crashes],
        "task_events": [
            [e["taskDefinitionArn"].rsplit("/", 1)[-1], e["lastStatus"], e.get("stopCode", "")] for e in result.events
        ],
        **({"tracking": result.tracking} if current().tracks else {}),
    }


def say(log: list[str], message: str) -> None:
    log.append(message)
    print(f"[cloud rehearsal] {message}", flush=True)


def stack(image: str, api_url: str, worker: bool) -> infra_harness.Synth:
    return infra_harness.synth(stack=STACK, prefect_worker=worker, prefect_worker_image=image, prefect_api_url=api_url)


def generated_policies(s: infra_harness.Synth) -> dict[str, list[tuple[str, str]]]:
    """role name -> [(policy resource name, document)] as the Pulumi program declares them."""
    out: dict[str, list[tuple[str, str]]] = {}
    for policy in s.of_type(":RolePolicy"):
        out.setdefault(policy.inputs["role"], []).append((policy.name, policy.inputs["policy"]))
    return out


def build_aws(aws: MotoAws, s: infra_harness.Synth, edit: Callable[[str, str], str] | None) -> dict[str, Any]:
    """Create in moto what the program declares; the stack outputs with moto's ids in place of the mocks'."""
    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    ids: dict[str, str] = {}
    [vpc] = s.of_type(":Vpc")
    ids[vpc.id] = ec2.create_vpc(CidrBlock=vpc.inputs["cidrBlock"])["Vpc"]["VpcId"]
    for subnet in s.of_type(":Subnet"):
        ids[subnet.id] = ec2.create_subnet(
            VpcId=ids[vpc.id], CidrBlock=subnet.inputs["cidrBlock"], AvailabilityZone=subnet.inputs["availabilityZone"]
        )["Subnet"]["SubnetId"]
    for sg in s.of_type(":SecurityGroup"):
        ids[sg.id] = ec2.create_security_group(
            GroupName=sg.inputs["name"], Description=sg.inputs["description"], VpcId=ids[vpc.id]
        )["GroupId"]
    [cluster] = s.of_type(":Cluster")
    ecs.create_cluster(clusterName=cluster.inputs["name"])
    ecs.put_cluster_capacity_providers(
        cluster=cluster.inputs["name"],
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
    )
    ecs.put_account_setting(name="taskLongArnFormat", value="enabled")  # the default of every account
    [group] = s.of_type(":LogGroup")
    aws.client("logs").create_log_group(logGroupName=group.inputs["name"])
    [bucket] = s.of_type(":Bucket")
    aws.client("s3").create_bucket(Bucket=bucket.inputs["bucket"], **_location(aws.region))
    [secret] = s.of_type(":Secret")
    secret_arn = aws.client("secretsmanager").create_secret(Name=secret.inputs["name"], SecretString=FAKE_API_KEY)[
        "ARN"
    ]
    ids[secret.state["arn"]] = secret_arn
    build_task_events(aws, s)
    for role in s.of_type(":Role"):
        documents = generated_policies(s).get(role.inputs["name"], [])
        if edit:
            documents = [(name, edit(role.inputs["name"], doc)) for name, doc in documents]
        put_role(aws, role.inputs["name"], role.inputs["assumeRolePolicy"], documents)
    return _translate(s.outputs, ids)


def build_task_events(aws: MotoAws, s: infra_harness.Synth) -> None:
    """The stack's crash detection (infra/events.py) in moto: the queues as declared (encryption, redrive), the
    EventBridge rule with its pattern and the queue as its target (moto's EventBridge delivers matching events)."""
    sqs, events = aws.client("sqs"), aws.client("events")
    arns: dict[str, str] = {}
    for queue in sorted(s.of_type(":Queue"), key=lambda q: "redrivePolicy" in q.inputs):  # dead letters first
        attributes = {"SqsManagedSseEnabled": str(queue.inputs.get("sqsManagedSseEnabled", False)).lower()}
        if redrive := queue.inputs.get("redrivePolicy"):
            attributes["RedrivePolicy"] = _translate(redrive, arns)
        url = sqs.create_queue(QueueName=queue.inputs["name"], Attributes=attributes)["QueueUrl"]
        arns[queue.state["arn"]] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    for rule in s.of_type(":EventRule"):
        events.put_rule(Name=rule.inputs["name"], EventPattern=rule.inputs["eventPattern"], State="ENABLED")
    for target in s.of_type(":EventTarget"):
        events.put_targets(
            Rule=target.inputs["rule"], Targets=[{"Id": target.inputs["targetId"], "Arn": arns[target.inputs["arn"]]}]
        )


def _location(region: str) -> dict[str, Any]:
    return {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}


def _translate(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _translate(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, ids) for v in value]
    if isinstance(value, str):
        for old, new in ids.items():
            value = value.replace(old, new)
    return value


def user_worker_policy(aws: MotoAws, s: infra_harness.Synth) -> str:
    """The README's worker policy exactly as printed, made this stack's as the README tells the user to: the account
    id for ACCOUNT_ID, the stack's name for `-dev`."""
    import re

    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    [printed] = re.findall(r"```json\n(.*?)\n```", readme, flags=re.S)
    prefix = _cfg(s, "name_prefix")
    return printed.replace("ACCOUNT_ID", ACCOUNT).replace(f"{prefix}-dev", f"{prefix}-{STACK}")


def stack_worker_role(s: infra_harness.Synth) -> str:
    """The name of the stack's worker-service role (declared when prefect_worker = yes)."""
    from infra import identity

    return identity.role_name(f"{_cfg(s, 'name_prefix')}-{STACK}", s.config["aws:region"], identity.PREFECT_WORKER)


def user_worker_role(aws: MotoAws, s: infra_harness.Synth) -> str:
    """With the worker service off, the user runs the worker with the README's policy (user_worker_policy)."""
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": ECS_TASKS}, "Action": "sts:AssumeRole"}],
        }
    )
    name = f"{_cfg(s, 'name_prefix')}-{STACK}-user-worker"
    return put_role(aws, name, trust, [("worker-policy", user_worker_policy(aws, s))])


def _cfg(s: infra_harness.Synth, key: str) -> str:
    project, _ = infra_harness.project_config()
    return s.config[f"{project}:{key}"]


class Processes:
    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.env, self.started = workdir, env, []

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        out = (self.workdir / f"{name}.log").open("w")
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_DIR,
            env={**self.env, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,  # noqa: S603
            start_new_session=True,
        )
        out.close()
        self.started.append(proc)
        return proc

    def run(self, cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
        proc = subprocess.run(
            cmd,
            cwd=PROJECT_DIR,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,  # noqa: S603
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RehearsalError(
                f"`{' '.join(cmd[:4])} ...` failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # Prefect's server stops on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def wait_for(what: str, ready: Callable[[], bool], timeout: float, check: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        if ready():
            return
        time.sleep(0.5)
    raise RehearsalError(f"{what} not ready after {timeout:.0f} s")


def rehearse(
    *,
    edit_policy: Callable[[str, str], str] | None = None,
    timeout: float = 900,
    workdir: Path | None = None,
    crash_runs_on: bool = True,
) -> Result:
    """Run the rehearsal; RehearsalError names what failed (a denied call names its action and role)."""
    t0 = time.monotonic()
    log: list[str] = []
    # Not under pytest's tmp_path: that is private to root, and the tasks' uid must reach this directory.
    workdir = workdir or Path(tempfile.mkdtemp(prefix="cloud-rehearsal-", dir="/tmp"))
    os.chmod(workdir, 0o755)  # noqa: S103 - the tasks' uid reads their files here
    image_facts = read()
    api_port = free_port()
    api_url = f"http://{LOOPBACK}:{api_port}/api"
    # This process talks to the rehearsal's Prefect server (set before Prefect reads its settings).
    os.environ.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(workdir / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    from ml_workflows import names
    from ml_workflows import tracking as ml_tracking
    from ml_workflows.deploy import commands as deploy_commands
    from ml_workflows.deploy import work_pool

    project, config = infra_harness.project_config()
    worker_service = config.get(f"{project}:prefect_worker") == "true"
    s0 = stack("pending", api_url, worker_service)
    image = f"{s0.outputs['ecr_repository_url']}:rehearsal"
    s = stack(image, api_url, worker_service)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_", "PIPELINE_"))},
        **server_env(workdir, api_port),
        "PYTHONPATH": str(NETGUARD),
        "REHEARSAL_NETWORK_LOG": str(workdir / "network-violations-host.log"),
    }
    aws = MotoAws(s.config["aws:region"])
    denied: list[Call] = []
    aws.log.on_denied = denied.append
    processes = Processes(workdir, env)
    runner = None
    state = "not started"
    policies: dict[str, list[str]] = {}
    tracking: dict[str, Any] = {}
    active: list[str] = []
    crashes: list[Any] = []
    try:
        say(log, f"moto on {aws.endpoint}; creating what the Pulumi program declares (stack {STACK!r})")
        outputs = build_aws(aws, s, edit_policy)
        roles = {r.inputs["name"]: r.state["arn"] for r in s.of_type(":Role")}
        worker_role = roles.get(stack_worker_role(s)) or user_worker_role(aws, s)
        policies = {k: [d for _, d in v] for k, v in generated_policies(s).items()}
        if worker_role not in roles.values():  # the user's worker: the README's policy
            policies[worker_role.rsplit("/", 1)[-1]] = [user_worker_policy(aws, s)]
        creds = {arn: aws.assume(arn, "ecs-task") for arn in {*roles.values(), worker_role}}
        aws.enforce()
        say(log, "IAM enforcement on (action-level projection of the generated policies)")
        runner = TaskRunner(aws, image_facts, workdir / "ecs", creds)
        runner.start()

        processes.start(
            "prefect-server", [str(BIN / "prefect"), "server", "start", "--host", LOOPBACK, "--port", str(api_port)]
        )
        wait_for("Prefect server", lambda: http_ok(f"{api_url}/health"), 180, lambda: _alive(processes))
        say(log, f"Prefect server on {api_url}")
        tracking_env: dict[str, str] = {}
        if current().tracks:
            tracking_env = start_tracking_server(processes, workdir, outputs)
            say(log, f"MLflow tracking server on {tracking_env[ml_tracking.ENV_URI]}")
        # `make deploy` passes the tracking server from its own environment into the job template's.
        with mock.patch.dict(os.environ, tracking_env):
            template = work_pool.work_pool_job_template(outputs, image, env=SAMPLE_ENV)
        template_file = workdir / "job-template.json"
        template_file.write_text(json.dumps(template))
        pool = outputs["work_pool_name"]
        prefect = [str(BIN / "prefect"), "--no-prompt"]
        processes.run(
            [
                *prefect,
                "work-pool",
                "create",
                pool,
                "--type",
                "ecs",
                "--overwrite",
                "--base-job-template",
                str(template_file),
            ]
        )
        deployment = names.full_name("batch_pipeline", names.aws_deployment(STACK))
        deploy_env = deploy_commands.deploy_env(image, pool, STACK)
        if current().code_source == "git":
            deploy_env.update(code_repository(workdir, image_facts))
            say(
                log,
                f"code from git: {deploy_env['PIPELINE_GIT_REPOSITORY']} (branch main), cloned by the flow-run task",
            )
        processes.run([*prefect, "deploy", "--name", names.aws_deploy_selector("batch_pipeline")], env=deploy_env)
        say(log, f"work pool {pool!r} and deployment {deployment} created")

        _start_worker(aws, s, outputs, worker_role, worker_service, image, api_url)
        say(log, "Prefect ECS worker task started")
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Prefect caches its settings per process: an earlier rehearsal in this process had another API.
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            flow_run = run_deployment(deployment, timeout=0)
            say(log, f"flow run {flow_run.name!r} triggered")
            state = _wait_for_run(flow_run.id, timeout, runner, denied)
        say(log, f"flow run {flow_run.name!r}: {state}")
        # As on Fargate, the flow-run task ends by itself once its run is final.
        wait_for(
            "the flow-run task to exit",
            lambda: all(
                t.exit_code is not None for t in runner.started.values() if t.family == outputs["flow_run_family"]
            ),
            90,
        )
        if tracking_env and state == "Completed":  # read back while the server and moto are up
            tracking_env = {**tracking_env, **ml_tracking.deploy_env(outputs, tracking_env)}
            tracking = read_tracking(aws, tracking_env)
            say(log, f"MLflow run {tracking['run_id']}: decision {tracking['tags'].get('decision')!r}")
        active = active_task_definitions(aws, exclude=f"{outputs['work_pool_name']}-worker")
        say(log, f"task definitions still ACTIVE after the run: {active or 'none'}")
        if state == "Completed" and crash_runs_on:
            crashes = rehearse_crashes(deployment, runner, outputs["flow_run_family"], api_url, log)
    finally:
        if runner is not None:
            runner.stop_all()
        processes.stop_all()
        tasks = list(runner.started.values()) if runner else []
        violations = (runner.violations() if runner else []) + _lines(workdir / "network-violations-host.log")
        secrets_seen = _secrets_in_task_definitions(aws)
        calls = aws.log.snapshot()
        aws.close()
    result = Result(
        state,
        calls,
        policies,
        outputs,
        tasks,
        violations,
        secrets_seen,
        log,
        time.monotonic() - t0,
        aws.region,
        workdir,
        tracking,
        active,
        crashes,
        list(runner.events) if runner else [],
    )
    if denied:
        first = next((call for call in denied if call.unmapped), denied[0])
        if first.unmapped:
            raise RehearsalError(f"{first.unmapped} (called by {first.principal})")
        raise RehearsalError(f"AWS denied {first.action} to role {first.principal} ({len(denied)} denied call(s))")
    if runner and runner.errors:
        raise RehearsalError("; ".join(runner.errors))
    return result


def active_task_definitions(aws: MotoAws, exclude: str) -> list[str]:
    """Task definitions left ACTIVE in the account (the family `exclude` is the harness's own worker task)."""
    return sorted(
        revision.arn
        for family, revisions in aws.ecs_backend().task_definitions.items()
        if family != exclude
        for revision in revisions.values()
        if revision.status == "ACTIVE"
    )


def rehearse_crashes(deployment: str, runner: TaskRunner, family: str, api_url: str, log: list[str]) -> list[Any]:
    """The stack's automations with a webhook on loopback (as `make deploy` creates them), then the crash runs."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ml_workflows.deploy.automations import upsert_automations
    from ml_workflows.notifications import NotifySettings
    from ml_workflows.testing.crashes import crash_runs
    from ml_workflows.testing.webhook import Receiver

    with Receiver() as receiver, temporary_settings(updates={PREFECT_API_URL: api_url}):
        upsert_automations(settings=NotifySettings(webhook_url=receiver.url), stack=STACK)
        runs = crash_runs(deployment, runner, family, receiver)
    for run in runs:
        say(
            log, f"crash run {run.kind}: {run.flow_run!r} {run.state} {run.seconds_to_crashed} s after its task stopped"
        )
    return runs


def code_repository(workdir: Path, image_facts) -> dict[str, str]:
    """The project committed to a bare repository the flow-run task clones (owned by the image's user: git refuses
    a repository another user owns); the deployment's git variables for it."""
    from ml_workflows.deploy.rehearsal import bare_repository

    url = bare_repository(workdir)
    for path in [workdir / "project.git", *(workdir / "project.git").rglob("*")]:
        os.chown(path, image_facts.uid, image_facts.gid)
    return {"PIPELINE_GIT_REPOSITORY": url, "PIPELINE_GIT_BRANCH": "main", "PIPELINE_GIT_TOKEN_BLOCK": ""}  # public


def start_tracking_server(processes: Processes, workdir: Path, outputs: dict[str, Any]) -> dict[str, str]:
    """A real MLflow tracking server on loopback, as the user runs one: runs in a SQLite file of the work dir, new
    experiments' artifacts under the bucket's tracking prefix. It serves no artifacts: clients write them to S3
    themselves, so the flow run does with its own role (README: the one prefix the flow-run role writes them to).
    Returns the deploy environment naming it (tracking.ENV_URI)."""
    from infra import identity

    from ml_workflows import tracking

    port = free_port()
    uri = f"http://{LOOPBACK}:{port}"
    store = workdir / "mlflow"
    store.mkdir()
    processes.start(
        "mlflow-server",
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--default-artifact-root",
            f"s3://{outputs['bucket_name']}/{identity.TRACKING_PREFIX}",  # the flow run names its own: the same
            "--no-serve-artifacts",
        ],
        env={"MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    wait_for("MLflow tracking server", lambda: http_ok(f"{uri}/health"), 180, lambda: _alive(processes))
    return {tracking.ENV_URI: uri}  # the experiment: the stack's own (tracking.deploy_env)


def read_tracking(aws: MotoAws, tracking_env: dict[str, str]) -> dict[str, Any]:
    """The flow run's training run, read back through MLflow's client, and the S3 keys of its artifacts and logged
    model as moto holds them (listed with the harness's credentials)."""
    from mlflow.tracking import MlflowClient

    from ml_workflows import tracking

    with mock.patch.dict(os.environ, {"MLFLOW_DISABLE_TELEMETRY": "true"}):
        client = MlflowClient(tracking_uri=tracking_env[tracking.ENV_URI])
        name = f"{tracking_env[tracking.ENV_EXPERIMENT]}-sample"  # the deployment's run is the sample pipeline's
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise RehearsalError(f"MLflow has no experiment {name!r}")
        runs = client.search_runs([experiment.experiment_id])
        if len(runs) != 1:
            raise RehearsalError(f"MLflow holds {len(runs)} run(s) in {experiment.name!r}, not the one training run")
        [run] = runs
        model_uri = run.data.tags.get("mlflow_model_uri", "")
        model = client.get_logged_model(model_uri.removeprefix("models:/")) if model_uri else None
    return {
        "tracking_uri": tracking_env[tracking.ENV_URI],
        "experiment": experiment.name,
        "experiment_artifact_location": experiment.artifact_location,
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "status": run.info.status,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "params": run.data.params,
        "metrics": run.data.metrics,
        "artifact_uri": run.info.artifact_uri,
        "artifacts": _s3_keys(aws, run.info.artifact_uri),
        "model_uri": model_uri,
        "model_artifact_location": model.artifact_location if model else "",
        "model_artifacts": _s3_keys(aws, model.artifact_location) if model else [],
    }


def _s3_keys(aws: MotoAws, url: str) -> list[str]:
    """The object keys under an s3:// URL, relative to it (empty for any other URL: nothing in the bucket)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3":
        return []
    prefix = parts.path.strip("/") + "/"
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=parts.netloc, Prefix=prefix)
    return sorted(obj["Key"][len(prefix) :] for page in pages for obj in page.get("Contents", []))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _alive(processes: Processes) -> None:
    for proc in processes.started:
        if proc.poll() is not None:
            raise RehearsalError(f"{proc.args[:3]} exited with {proc.returncode}")


def _start_worker(aws: MotoAws, s, outputs, worker_role: str, service: bool, image: str, api_url: str) -> None:
    """The worker service's task, as ECS's service scheduler starts it (or the user's worker, same command)."""
    ecs = aws.client("ecs")  # the harness's own credentials
    cpu, memory = "256", "512"  # the user's worker: as small as the service's (infra/worker.py CPU, MEMORY)
    if service:
        from infra import worker

        cpu, memory = str(worker.CPU), str(worker.MEMORY)
        [definition] = s.of_type(":TaskDefinition")
        containers = json.loads(
            _translate(
                definition.inputs["containerDefinitions"],
                {s.one("prefect-api-key").state["arn"]: outputs["prefect_api_key_secret_arn"]},
            )
        )
    else:
        from ml_workflows.deploy import stack_config

        # As `make worker-aws` starts it: the pool and the stack's task-event queue named from the Pulumi files (no
        # stack state), the queue being the one the README's policy lets the worker read.
        pool, queue = stack_config.worker_names(STACK, PROJECT_DIR)
        containers = [
            {
                "name": "prefect-worker",
                "image": image,
                "command": ["prefect", "worker", "start", "--pool", pool, "--type", "ecs"],
                "environment": [
                    {"name": "PREFECT_API_URL", "value": api_url},
                    {"name": "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME", "value": queue},
                ],
                "secrets": [{"name": "PREFECT_API_KEY", "valueFrom": outputs["prefect_api_key_secret_arn"]}],
            }
        ]
    arn = ecs.register_task_definition(
        family=f"{outputs['work_pool_name']}-worker",
        containerDefinitions=containers,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu=cpu,
        memory=memory,
        executionRoleArn=outputs["execution_role_arn"],
        taskRoleArn=worker_role,
    )["taskDefinition"]["taskDefinitionArn"]
    groups = [outputs["dask_security_group_id"]]
    if service:
        ec2 = aws.client("ec2")
        groups = [
            g["GroupId"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] == f"{outputs['work_pool_name'][: -len('-ecs')]}-prefect-worker"
        ]
    ecs.run_task(
        cluster=outputs["ecs_cluster_arn"],
        taskDefinition=arn,
        launchType="FARGATE",
        startedBy="ecs-svc",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": outputs["private_subnet_ids"],
                "securityGroups": groups,
                "assignPublicIp": "DISABLED",
            }
        },
    )


def _wait_for_run(flow_run_id, timeout: float, runner: TaskRunner, denied: list[Call]) -> str:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run.state.name
            if denied:
                return f"stopped: AWS denied {denied[0].action} to {denied[0].principal}"
            if runner.errors:
                return f"stopped: {runner.errors[0]}"
            time.sleep(2)
    return "timed out"


def _secrets_in_task_definitions(aws: MotoAws) -> list[str]:
    """Where the Prefect API key shows up in a task definition or a task's overrides (nowhere, is the rule)."""
    backend = aws.ecs_backend()
    found = []
    for family in backend.task_definitions.values():
        for revision in family.values():
            if FAKE_API_KEY in json.dumps(revision.container_definitions, default=str):
                found.append(revision.arn)
    for cluster in backend.tasks.values():
        for arn, task in cluster.items():
            if FAKE_API_KEY in json.dumps(task.overrides, default=str):
                found.append(f"{arn} (RunTask overrides)")
    return found
