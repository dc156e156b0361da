"""The ECS task runner of the cloud rehearsal: every task moto reports as started runs as a local process, the way
Fargate would run it from its registered task definition.

For each task: the container's command (or its RunTask override), entry point (the image's unless the definition
sets one), environment (image, definition, override), and its `secrets` read from Secrets Manager with the
*execution role's* credentials, as the ECS agent does; the task role's credentials come from a container
credentials endpoint on loopback. The process runs in a mount namespace of its own, as the image's non-root uid
and gid, in the image's working directory with the image's ownership (root-owned, read-only for the user), with
the image's HOME and a PATH holding only the image's commands (image.py). Its output goes to the task's log
stream in CloudWatch Logs, written with the execution role's credentials.

What differs from Fargate, and why:
- the network: the task's ENI address is one of its own in 127.0.0.0/8 (aws_emulation.py), so a Dask scheduler or
  worker is started with `--host <that address>` - bound to the address the cluster was told, as on its own ENI
  in AWS (unbound, Dask would look up the machine's outbound address and advertise it);
- the image's `tini -g --` entry point is the init process: the task runs in a process group of its own instead;
- every Python process gets a connect guard (netguard/sitecustomize.py) that refuses and records any connection
  outside 127.0.0.0/8; AWS_ENDPOINT_URL points the AWS SDKs at moto.

A task whose process exits is STOPPED with its exit code; StopTask sends SIGTERM to its process group, then
SIGKILL. `stop_all()` stops every task started, pass or fail. As ECS does, each task that starts (RUNNING) or stops
(STOPPED: exit code, stop code and reason) is an "ECS Task State Change" event, put on EventBridge (moto's, with the
stack's rule and queue: the Prefect worker's crash detection reads them). `kill()` and `fail_to_start` are the two
ways a flow-run task dies in the crash runs (crashes.py): killed as by the OOM killer, or never started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_workflows.testing.aws_emulation import CredentialsEndpoint, MotoAws, task_address
from ml_workflows.testing.image import PROJECT_DIR, Image, image_commands

NETGUARD = Path(__file__).resolve().parent / "netguard"
INIT = ("tini", "-g", "--")  # the image's init: forwards signals to the task's process group
NOT_FOUND = 127


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), whatever its process group or session."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


@dataclass
class Started:
    task_arn: str
    task_id: str
    family: str
    argv: list[str]
    uid: int
    env_names: list[str]
    process: subprocess.Popen | None
    log: Path
    exit_code: int | None = None
    stopped_by: str = ""
    flow_run_id: str = ""  # prefect-aws passes the run's id to its flow-run task (PREFECT__FLOW_RUN_ID)
    stopped_at: float = 0.0  # time.monotonic() when it stopped


@dataclass
class TaskRunner:
    aws: MotoAws
    image: Image
    workdir: Path
    role_credentials: dict[str, dict[str, str]]  # role ARN -> credentials (assumed during setup)
    credentials: CredentialsEndpoint = field(default_factory=CredentialsEndpoint)
    started: dict[str, Started] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)
    fail_to_start: dict[str, str] = field(default_factory=dict)  # family -> stop reason, for its next task (one-shot)
    events: list[dict[str, Any]] = field(default_factory=list)  # the state-change events emitted

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # noqa: S103 - the image's user reads its files here
        self.network_log = self.workdir / "network-violations.log"
        self.network_log.touch()
        os.chmod(self.network_log, 0o666)  # noqa: S103 - written by the tasks' uid
        self._filesystem()

    # -- the image's filesystem ------------------------------------------------------------------------
    def _filesystem(self) -> None:
        root = self.workdir / "image"
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        self.commands = image_commands(self.image)
        for name, target in self.commands.items():
            (bin_dir / name).symlink_to(target)
        project = root / "workdir"
        project.mkdir()
        for sources, dest in self.image.copies:  # COPY into the working directory, owned by root as in the image
            if dest.startswith("/") and not dest.startswith(self.image.workdir):
                continue  # build-time files outside the working directory
            rel = dest[len(self.image.workdir) :] if dest.startswith("/") else dest
            target = project / rel.strip("/").removeprefix(".").strip("/")
            for src in sources:
                source = PROJECT_DIR / src
                into = target / source.name if dest.endswith("/") or len(sources) > 1 else target
                if source.is_dir():
                    shutil.copytree(source, into, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
                elif source.exists():
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, into)
        for path in [project, *project.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        etc = root / "etc"
        etc.mkdir()
        user = f"{self.image.user}:x:{self.image.uid}:{self.image.gid}::{self.image.home}:/usr/sbin/nologin\n"
        (etc / "passwd").write_text(Path("/etc/passwd").read_text() + user)
        (etc / "group").write_text(Path("/etc/group").read_text() + f"{self.image.user}:x:{self.image.gid}:\n")
        self.root = root

    def _open_paths(self) -> list[str]:
        """Mount commands that make the local environment reachable for the image's uid, as the image's own
        /opt/conda is: directories that are private to root here (a home directory, a test's temporary
        directory) are replaced by a traversable tmpfs holding just the needed paths."""
        needed = [PROJECT_DIR, Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), self.workdir]
        lines, stage = [], self.workdir / "stage"
        closed: dict[Path, list[Path]] = {}
        for path in needed:
            for ancestor in reversed(path.parents):
                if ancestor != Path("/") and not ancestor.stat().st_mode & stat.S_IXOTH:
                    closed.setdefault(ancestor, []).append(path)
                    break
        for i, (ancestor, paths) in enumerate(closed.items()):
            keep = stage / str(i)
            keep.mkdir(parents=True, exist_ok=True)
            lines.append(f"mount --bind {shlex.quote(str(ancestor))} {shlex.quote(str(keep))}")
            lines.append(f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(ancestor))}")
            for path in paths:
                rel = path.relative_to(ancestor)
                lines.append(f"mkdir -p {shlex.quote(str(path))}")
                lines.append(f"mount --bind {shlex.quote(str(keep / rel))} {shlex.quote(str(path))}")
        return lines

    def _script(self, home: Path) -> str:
        img = self.image
        q = shlex.quote
        lines = [
            "set -e",
            "mount --make-rprivate /",
            *self._open_paths(),
            "mount -t tmpfs -o mode=755 tmpfs /opt",
            f"mkdir -p {q(img.bin_dir)} {q(img.workdir)}",
            f"mount --bind {q(str(self.root / 'bin'))} {q(img.bin_dir)}",
            f"mount --bind {q(str(self.root / 'workdir'))} {q(img.workdir)}",
            "mount -t tmpfs -o mode=755 tmpfs /home",
            f"mkdir -p {q(img.home)}",
            f"mount --bind {q(str(home))} {q(img.home)}",
            f"mount --bind {q(str(self.root / 'etc' / 'passwd'))} /etc/passwd",
            f"mount --bind {q(str(self.root / 'etc' / 'group'))} /etc/group",
            f"cd {q(img.workdir)}",
            f'exec /usr/bin/setpriv --reuid={img.uid} --regid={img.gid} --clear-groups -- "$@"',
        ]
        return "\n".join(lines)

    # -- polling moto ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ecs-task-runner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - reported by the rehearsal, never silently lost
                self.errors.append(f"task runner: {exc!r}")
            time.sleep(0.25)

    def tick(self) -> None:
        backend = self.aws.ecs_backend()
        for cluster_tasks in list(backend.tasks.values()):
            for arn, task in list(cluster_tasks.items()):
                started = self.started.get(arn)
                if started is None and task.desired_status == "RUNNING":
                    self.started[arn] = self._launch(task)
                    if self.started[arn].exit_code is None:
                        self._emit(task, self.started[arn])
                elif started and started.process and started.exit_code is None:
                    code = started.process.poll()
                    if code is not None:
                        code = 128 - code if code < 0 else code  # killed by signal n: 128 + n, as ECS reports it
                        self._stopped(task, started, code, "Essential container in task exited")
                    elif task.desired_status == "STOPPED":
                        started.stopped_by = "StopTask"
                        self._terminate(started)

    def _launch(self, task: Any) -> Started:
        backend = self.aws.ecs_backend()
        definition = backend.describe_task_definition(task.task_definition_arn)
        container = definition.container_definitions[0]
        override = next(
            (o for o in task.overrides.get("containerOverrides", []) if o.get("name") == container.get("name")), {}
        )
        command = list(override.get("command") or container.get("command") or [])
        entrypoint = list(container.get("entryPoint") or self.image.entrypoint)
        argv = entrypoint + command
        if tuple(argv[: len(INIT)]) == INIT:
            argv = argv[len(INIT) :]
        if argv[:2] in (["dask", "scheduler"], ["dask", "worker"]):
            argv += ["--host", task_address(task)]
        task_id = task.task_arn.rsplit("/", 1)[-1]
        log = self.workdir / "tasks" / f"{definition.family}-{task_id[:8]}.log"
        log.parent.mkdir(exist_ok=True)
        execution = self.role_credentials.get(definition.execution_role_arn or "")
        env = dict(self.image.env)
        env.update({e["name"]: e["value"] for e in container.get("environment") or []})
        env.update({e["name"]: e["value"] for e in override.get("environment") or []})
        for secret in container.get("secrets") or []:  # fetched by the ECS agent with the execution role
            sm = self.aws.client("secretsmanager", execution)
            env[secret["name"]] = sm.get_secret_value(SecretId=secret["valueFrom"])["SecretString"]
        role_arn = override.get("taskRoleArn") or task.overrides.get("taskRoleArn") or definition.task_role_arn
        env.update(
            AWS_REGION=self.aws.region,
            AWS_DEFAULT_REGION=self.aws.region,
            AWS_ENDPOINT_URL=self.aws.endpoint,
            AWS_EC2_METADATA_DISABLED="true",
            PYTHONPATH=str(NETGUARD),
            REHEARSAL_NETWORK_LOG=str(self.network_log),
        )
        if role_arn:
            env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = self.credentials.issue(task_id, self.role_credentials[role_arn])
        started = Started(task.task_arn, task_id, definition.family, argv, self.image.uid, sorted(env), None, log)
        started.flow_run_id = env.get("PREFECT__FLOW_RUN_ID", "")
        if reason := self.fail_to_start.pop(definition.family, None):
            task.stop_code = "TaskFailedToStart"
            self._stopped(task, started, None, reason)
            return started
        self._logs(definition, container, task_id, execution, create=True)
        resolved = self._resolve(argv[0]) if argv else None
        if resolved is None:
            log.write_text(f"exec: {argv[0] if argv else '(no command)'}: not found in the image's PATH\n")
            self._stopped(task, started, NOT_FOUND, f"CannotStartContainerError: {argv[:1]} not in the image")
            return started
        home = self.workdir / "homes" / task_id
        home.mkdir(parents=True)
        os.chown(home, self.image.uid, self.image.gid)
        with log.open("w") as out:
            started.process = subprocess.Popen(  # noqa: S603 - the task definition's own argv
                [
                    "/usr/bin/unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "/bin/sh",
                    "-c",
                    self._script(home),
                    "task",
                    *argv,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
            )
        task.containers[0].last_status = "RUNNING"
        return started

    def _resolve(self, command: str) -> str | None:
        name = command.rsplit("/", 1)[-1]
        if command.startswith("/") and not command.startswith(self.image.bin_dir + "/"):
            return command if name in self.image.system and Path(command).exists() else None
        if name in self.commands:
            return name
        return shutil.which(name, path="/usr/bin:/bin") if name in self.image.system else None

    def _logs(
        self,
        definition: Any,
        container: dict,
        task_id: str,
        execution: Any,
        *,
        create: bool = False,
        lines: list[str] | None = None,
    ) -> None:
        """The awslogs driver: the task's log stream, written with the execution role."""
        options = (container.get("logConfiguration") or {}).get("options") or {}
        if not options.get("awslogs-group") or execution is None:
            return
        logs = self.aws.client("logs", execution)
        stream = f"{options.get('awslogs-stream-prefix')}/{container.get('name')}/{task_id}"
        group = options["awslogs-group"]
        if create:
            if options.get("awslogs-create-group") == "true":
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_group(logGroupName=group)
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            return
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line[:4000] or " "} for line in (lines or [])][-5000:]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start : start + 1000])

    def _stopped(self, task: Any, started: Started, code: int | None, reason: str) -> None:
        started.exit_code = code
        started.stopped_at = time.monotonic()
        task.containers[0].last_status = "STOPPED"
        task.containers[0].exitCode = code
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = task.stopped_reason or reason
        backend = self.aws.ecs_backend()
        definition = backend.describe_task_definition(task.task_definition_arn)
        execution = self.role_credentials.get(definition.execution_role_arn or "")
        if started.log.exists():  # a task that never started has no log stream
            try:
                lines = started.log.read_text(errors="replace").splitlines()
                self._logs(definition, definition.container_definitions[0], started.task_id, execution, lines=lines)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"logs of {started.family}: {exc!r}")
        self._emit(task, started)  # after the logs, as on ECS: the observer may forward them

    def kill(self, started: Started, reason: str) -> None:
        """The task's processes die at once, as under the OOM killer (exit 137); the next tick reports it STOPPED."""
        tasks = {arn: t for cluster in self.aws.ecs_backend().tasks.values() for arn, t in cluster.items()}
        task = tasks[started.task_arn]
        task.stopped_reason, task.stop_code, started.stopped_by = reason, "EssentialContainerExited", "kill"
        task.containers[0].reason = reason
        # Every process of the container at once, also those a program moved to a session of its own (Prefect's
        # runner starts the flow so): on ECS none outlives the container.
        for pid in [started.process.pid, *descendants(started.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _emit(self, task: Any, started: Started) -> None:
        """The ECS "Task State Change" event of the task's current state, put on the default event bus."""
        definition = self.aws.ecs_backend().describe_task_definition(task.task_definition_arn)
        stopped = started.exit_code is not None or task.desired_status == "STOPPED"
        container = {"name": definition.container_definitions[0].get("name"), "lastStatus": task.last_status}
        if started.exit_code is not None:
            container["exitCode"] = started.exit_code
        if reason := getattr(task.containers[0], "reason", "") or (
            task.stopped_reason if getattr(task, "stop_code", "") == "TaskFailedToStart" else ""
        ):
            container["reason"] = reason
        detail = {
            "clusterArn": task.cluster_arn,
            "taskArn": task.task_arn,
            "taskDefinitionArn": task.task_definition_arn,
            "launchType": task.launch_type or "FARGATE",
            "group": task.group or "",
            "lastStatus": "STOPPED" if stopped else "RUNNING",
            "desiredStatus": "STOPPED" if stopped else "RUNNING",
            "containers": [container],
        }
        if stopped:
            detail["stopCode"] = getattr(task, "stop_code", "") or (
                "UserInitiated" if started.stopped_by else "EssentialContainerExited"
            )
            detail["stoppedReason"] = task.stopped_reason
        entry = {
            "Source": "aws.ecs",
            "DetailType": "ECS Task State Change",
            "Detail": json.dumps(detail),
            "Resources": [task.task_arn],
        }
        self.events.append(detail)
        [result] = self.aws.client("events").put_events(Entries=[entry])["Entries"]
        if result.get("ErrorCode"):
            self.errors.append(f"EventBridge refused the event of {started.family}: {result}")

    def _terminate(self, started: Started, grace: float = 10.0) -> None:
        proc = started.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group (ECS: SIGKILL after the stop timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)

    def stop_all(self) -> None:
        """Stop every task started here, pass or fail, and the runner itself."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        backend = self.aws.ecs_backend()
        tasks = {arn: t for cluster in backend.tasks.values() for arn, t in cluster.items()}
        for arn, started in self.started.items():
            self._terminate(started)
            task = tasks.get(arn)
            if task is not None and started.exit_code is None and not started.stopped_at:
                started.stopped_by = started.stopped_by or "rehearsal teardown"
                self._stopped(task, started, started.process.returncode if started.process else -1, "teardown")
        self.credentials.close()

    def violations(self) -> list[str]:
        return [line for line in self.network_log.read_text().splitlines() if line.strip()]
