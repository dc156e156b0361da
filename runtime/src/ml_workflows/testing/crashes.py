"""The cloud rehearsal's crash runs: flow-run tasks that stop without finishing their run, and who notices.

On AWS nothing inside a dead container reports its run: ECS emits a "Task State Change" event, the stack's rule puts
it into the stack's queue (infra/events.py), prefect-aws's task observer in the ECS worker reads it and marks the run
Crashed, and the stack's `flow-run-crashed` automation sends the crash notice. Here the harness plays ECS (it emits
the event through moto's EventBridge, ecs_tasks.py), everything after that is the real clients':

- killed: the flow-run task of a running run is killed as the kernel's OOM killer would (SIGKILL, exit 137, stop
  reason "OutOfMemoryError"); the run must become Crashed and the webhook must receive the crash notice;
- pull-failed: the next flow-run task fails to start with `CannotPullContainerError`; the run must become Crashed
  and its logs must carry that reason (the observer's diagnosis).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ml_workflows.testing.ecs_tasks import TaskRunner

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
PULL_REASON = (
    "CannotPullContainerError: pull image manifest has been retried 7 time(s): failed to resolve ref "
    "rehearsal-image: not found"
)


class CrashRehearsalError(RuntimeError):
    pass


@dataclass
class CrashRun:
    kind: str
    flow_run: str
    state: str
    message: str
    seconds_to_crashed: float  # from the task stopping to the run being Crashed
    notices: list[str] = field(default_factory=list)  # webhook bodies that name the run
    logs: list[str] = field(default_factory=list)  # the run's log lines from the worker's observer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wait(what: str, ready, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        time.sleep(1)
    raise CrashRehearsalError(f"{what} not seen after {timeout:.0f} s")


def _state(client, flow_run_id) -> tuple[str, str]:
    run = client.read_flow_run(flow_run_id)
    return (run.state.name, run.state.message or "") if run.state else ("", "")


def _observer_logs(client, flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs if "observer" in (log.name or "")]


def _flow_run_task(runner: TaskRunner, family: str, flow_run_id) -> Any:
    """The started task of this flow run (prefect-aws puts the run's id into the task's environment)."""
    for task in list(runner.started.values()):
        if task.family == family and task.flow_run_id == str(flow_run_id):
            return task
    return None


def crash_runs(deployment: str, runner: TaskRunner, family: str, receiver, timeout: float = 240) -> list[CrashRun]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runs = []
    with get_client(sync_client=True) as client:
        # killed mid-run
        flow_run = run_deployment(deployment, timeout=0)
        _wait(
            "the killed run's flow-run task running its flow",
            lambda: _state(client, flow_run.id)[0] == "Running" and _flow_run_task(runner, family, flow_run.id),
            timeout,
        )
        task = _flow_run_task(runner, family, flow_run.id)
        runner.kill(task, OOM_REASON)
        stopped = time.monotonic()
        _wait("the killed run Crashed", lambda: _state(client, flow_run.id)[0] == "Crashed", timeout)
        seconds = time.monotonic() - stopped
        notices = _wait(
            "the crash notice at the webhook",
            lambda: [str(b.get("text")) for b in receiver.received if flow_run.name in str(b.get("text"))],
            timeout,
        )
        runs.append(CrashRun("killed", flow_run.name, *_state(client, flow_run.id), round(seconds, 1), notices))
        # the image cannot be pulled
        runner.fail_to_start[family] = PULL_REASON
        flow_run = run_deployment(deployment, timeout=0)
        started = _wait("the pull-failed flow-run task", lambda: _flow_run_task(runner, family, flow_run.id), timeout)
        _wait("the pull-failed run Crashed", lambda: _state(client, flow_run.id)[0] == "Crashed", timeout)
        seconds = time.monotonic() - started.stopped_at
        logs = _wait(
            "the observer's diagnosis in the run's logs",
            lambda: [m for m in _observer_logs(client, flow_run.id) if "CannotPullContainerError" in m],
            60,
        )
        runs.append(CrashRun("pull-failed", flow_run.name, *_state(client, flow_run.id), round(seconds, 1), [], logs))
    return runs
