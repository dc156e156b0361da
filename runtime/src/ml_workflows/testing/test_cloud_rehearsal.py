"""The cloud rehearsal (`make rehearse-cloud`): the real FargateCluster and the real prefect-aws ECS worker against
moto on loopback with IAM enforcement on, every ECS task run as the image's user (cloud_rehearsal.py), against the
project in the working directory: its Pulumi program, Dockerfile, prefect.yaml and package.

Needs root (each task runs in a mount namespace of its own, as the image's uid) and the util-linux tools; it takes
a few minutes, so `make test` leaves it out (marker `cloud`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ml_workflows.project import current

pytestmark = [
    pytest.mark.cloud,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and util-linux (unshare)"),
]


@pytest.fixture(scope="module")
def rehearsal():
    from ml_workflows.testing.cloud_rehearsal import rehearse, report

    result = rehearse()
    summary = report(result)
    # make rehearse-cloud REHEARSAL_REPORT=<file>: the run as JSON (calls and roles, task commands and uids)
    if path := os.environ.get("REHEARSAL_REPORT"):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1)
    print(f"cloud rehearsal: {result.state} in {summary['seconds']} s")
    for task in summary["tasks"]:
        print(f"  task {task['family']} as uid {task['uid']}: {' '.join(task['argv'])} (exit {task['exit_code']})")
    yield result
    shutil.rmtree(result.workdir, ignore_errors=True)  # task logs, homes and the image's stand-in files


def task_logs(rehearsal, tail: int = 3000) -> str:
    """The end of each emulated task's output (what CloudWatch Logs would hold), for a failure message."""
    return "".join(
        f"\n--- {t.family}: {' '.join(t.argv[:3])} (exit {t.exit_code})\n"
        + (t.log.read_text(errors="replace")[-tail:] if t.log.exists() else "(no output)")
        for t in rehearsal.tasks
    )


def first_flow_run_task(rehearsal):
    """The Completed run's flow-run task (the crash runs' come after it)."""
    return next(t for t in rehearsal.tasks if t.family == rehearsal.outputs["flow_run_family"])


def test_flow_run_completes_through_fargate_cluster_and_the_ecs_worker(rehearsal):
    assert rehearsal.state == "Completed", "\n".join(rehearsal.log) + task_logs(rehearsal)
    assert not [c for c in rehearsal.calls if c.denied]
    by_role = {(c.principal, c.action) for c in rehearsal.calls}
    pool = rehearsal.outputs["work_pool_name"]
    base = pool.removesuffix("-ecs")
    roles = f"{base}-{rehearsal.region}"  # IAM names are global: the region is part of them
    assert (f"{roles}-prefect-worker", "ecs:RunTask") in by_role or (f"{base}-user-worker", "ecs:RunTask") in by_role
    assert (f"{roles}-flow-run", "ecs:ListAccountSettings") in by_role  # FargateCluster, before each RunTask
    assert (f"{roles}-dask-task", "s3:PutObject") in by_role  # the Dask workers wrote scores to the bucket


def test_every_task_ran_an_image_command_as_the_image_user_and_was_stopped(rehearsal):
    from infra import identity

    families = {t.family for t in rehearsal.tasks}
    assert rehearsal.outputs["flow_run_family"] in families  # the stack's own family, from the job template
    dask = identity.dask_family_prefix(rehearsal.outputs["ecs_cluster_name"])  # this stack's Dask families only
    assert any(f.startswith(dask) and f.endswith("-scheduler") for f in families), families
    assert any(f.startswith(dask) and f.endswith("-worker") for f in families), families
    for task in rehearsal.tasks:
        if task.process is None and task.exit_code is None:
            continue  # the crash run's flow-run task that never started (CannotPullContainerError)
        assert task.uid == 10001
        assert task.exit_code is not None and task.exit_code != 127, (task.family, task.argv)
        assert task.process is None or task.process.poll() is not None
    commands = {tuple(t.argv[:2]) for t in rehearsal.tasks}
    assert ("dask", "scheduler") in commands and ("dask", "worker") in commands


def test_the_run_leaves_no_active_dask_task_definition(rehearsal):
    """FargateCluster's scheduler and worker definitions are deregistered when the cluster closes; what stays ACTIVE
    is the stack's one flow-run definition, which the work pool reuses (match_latest_revision_in_family)."""
    family = rehearsal.outputs["flow_run_family"]
    assert [arn for arn in rehearsal.active_task_definitions if f"/{family}:" not in arn] == []
    assert len(rehearsal.active_task_definitions) <= 1, rehearsal.active_task_definitions


def test_a_killed_flow_run_task_is_noticed_crashed_and_notified(rehearsal):
    """The flow-run task of a running run dies as under the OOM killer: ECS's task event reaches the stack's queue
    through its EventBridge rule, prefect-aws's observer (in the ECS worker) marks the run Crashed, and the stack's
    flow-run-crashed automation posts the crash notice to the webhook."""
    [killed] = [run for run in rehearsal.crashes if run.kind == "killed"]
    assert killed.state == "Crashed" and "non-zero exit code" in killed.message, killed
    assert killed.notices and "crashed" in killed.notices[0], killed.notices
    print(
        f"killed flow-run task: Crashed {killed.seconds_to_crashed} s after it stopped; notice: {killed.notices[0]!r}"
    )


def test_a_flow_run_task_whose_image_cannot_be_pulled_ends_crashed_with_that_reason(rehearsal):
    from ml_workflows.testing.crashes import PULL_REASON

    [failed] = [run for run in rehearsal.crashes if run.kind == "pull-failed"]
    assert failed.state == "Crashed", failed
    assert any(PULL_REASON in line for line in failed.logs), failed.logs
    print(f"pull-failed flow-run task: Crashed {failed.seconds_to_crashed} s after it stopped; log: {failed.logs[0]!r}")


def test_no_connection_left_loopback_and_no_secret_in_a_task_definition(rehearsal):
    assert rehearsal.violations == []
    assert rehearsal.secrets_seen == []


def test_task_definitions_hold_no_prefect_api_key_variable(rehearsal):
    for call in rehearsal.calls:
        if call.action == "ecs:RegisterTaskDefinition":
            containers = call.params().get("containerDefinitions", [])
            names = {e["name"] for c in containers for e in c.get("environment", [])}
            assert "PREFECT_API_KEY" not in names, json.dumps(containers)[:500]


def test_every_call_is_allowed_by_the_real_policies_with_its_resource_and_condition_keys(rehearsal):
    """moto checked actions only; here each call's resource ARN and condition keys meet the generated documents."""
    allowed, problems = rehearsal.scope()
    assert problems == []
    flow_run = next(name for name in rehearsal.policies if name.endswith("-flow-run"))
    seen = {(r.principal, r.action) for r, _ in allowed}
    # The scoped statements were exercised, not only the "*" ones: a RunTask in this cluster, a role passed to ECS.
    assert {(flow_run, "ecs:RunTask"), (flow_run, "iam:PassRole")} <= seen, sorted(seen)
    assert any(r.context.get("ecs:cluster") == rehearsal.outputs["ecs_cluster_arn"] for r, _ in allowed)


def test_narrowing_a_statement_below_a_recorded_call_fails_the_scoping_check_naming_the_call(rehearsal):
    """The Dask workers write scores under the bucket's pipeline prefix: a ProjectBucketObjects statement that only
    covers models/ no longer allows those writes, and the check names the call, the role and the object."""
    from ml_workflows.testing import iam_scope

    role = next(name for name in rehearsal.policies if name.endswith("-dask-task"))
    bucket = f"arn:aws:s3:::{rehearsal.outputs['bucket_name']}"
    narrowed = {
        **rehearsal.policies,
        role: [iam_scope.narrow(d, "ProjectBucketObjects", f"{bucket}/models/*") for d in rehearsal.policies[role]],
    }
    _, problems = rehearsal.scope(narrowed)
    writes = [p for p in problems if f"{role} s3:PutObject on {bucket}/" in p]
    assert writes and all("no statement of" in p for p in writes), problems[:5]
    print(f"scoping check with ProjectBucketObjects narrowed to models/: {len(problems)} problem(s), e.g. {writes[0]}")


def test_removing_a_needed_action_fails_the_rehearsal_naming_it():
    """The enforcement is real: without ecs:ListAccountSettings (which FargateCluster calls before each RunTask) the
    flow-run role cannot start the Dask cluster, and the rehearsal stops there, naming the action and the role."""
    from ml_workflows.testing.cloud_rehearsal import RehearsalError, drop_action, rehearse

    workdir = Path(tempfile.mkdtemp(prefix="cloud-rehearsal-", dir="/tmp"))  # traversable by the image's user
    try:
        with pytest.raises(RehearsalError, match="ecs:ListAccountSettings") as failure:
            rehearse(edit_policy=drop_action("-flow-run", "ecs:ListAccountSettings"), timeout=600, workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert "-flow-run" in str(failure.value)
    print(f"cloud rehearsal without ecs:ListAccountSettings: {failure.value}")


@pytest.mark.skipif(not current().tracks, reason="the project has no experiment tracking (Project.tracking)")
def test_the_training_run_is_in_mlflow_and_its_artifacts_in_the_bucket_written_by_the_flow_run_role(rehearsal):
    """tracking = mlflow: the tracking server named at deploy time reached the flow-run task through the job
    template's environment; the run it recorded, read back through MLflow's client, is the pipeline's first training
    run (promoted, with its holdout metrics), and its artifacts and logged model are objects under the bucket's
    tracking prefix, put there by the flow-run role (the server serves no artifacts) and by no Dask task."""
    tracking = rehearsal.tracking
    assert tracking, "\n".join(rehearsal.log) + task_logs(rehearsal)
    flow_run = first_flow_run_task(rehearsal)
    assert {"PIPELINE_MLFLOW_TRACKING_URI", "PIPELINE_MLFLOW_EXPERIMENT"} <= set(flow_run.env_names)
    assert tracking["status"] == "FINISHED"
    assert tracking["tags"]["decision"] == "promoted"  # the first model of a new stack becomes the champion
    assert tracking["tags"]["pipeline_run_id"] == tracking["run_name"]
    assert 0.85 <= tracking["metrics"]["roc_auc"] <= 1, tracking["metrics"]  # the quality gate it passed
    # <name_prefix>-<stack>: the stack's own; the deployment's run is the sample pipeline, which has its own beside it
    assert tracking["experiment"] == f"{rehearsal.outputs['ecs_cluster_name']}-sample"
    prefix = f"s3://{rehearsal.outputs['bucket_name']}/mlflow/"
    assert tracking["artifact_uri"].startswith(prefix) and tracking["model_artifact_location"].startswith(prefix)
    assert {"comparison.json", "drift_reference.json"} <= set(tracking["artifacts"]), tracking["artifacts"]
    assert {"MLmodel", "python_model.pkl", "artifacts/model.pkl"} <= set(tracking["model_artifacts"]), tracking
    bucket = f"arn:aws:s3:::{rehearsal.outputs['bucket_name']}/mlflow/"
    allowed, _ = rehearsal.scope()
    writers = {r.principal for r, _ in allowed if r.action == "s3:PutObject" and r.resource.startswith(bucket)}
    assert writers == {next(name for name in rehearsal.policies if name.endswith("-flow-run"))}, writers


@pytest.mark.skipif(current().code_source != "git", reason="the project's code is in its image (Project.code_source)")
def test_the_flow_run_task_cloned_the_project_and_sent_its_code_to_the_dask_workers(rehearsal):
    """code_source = git: the flow-run task (the image's user, a root-owned working directory) ran the pull steps,
    cloned the deployment's repository and shipped the clone's package to the Fargate Dask workers."""
    flow_run = first_flow_run_task(rehearsal)
    text = flow_run.log.read_text()
    assert "project code from" in text and "sent to" in text, text[-3000:]
