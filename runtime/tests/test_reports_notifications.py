"""Notifications to a real HTTP receiver, the data-quality gates, and the artifacts every run publishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from ml_workflows import names, notifications, storage
from ml_workflows.project import current
from ml_workflows.testing.webhook import Receiver

flows = current().module("flows")
QUALITY_GATE = current().module("model").QUALITY_GATE


@flow(name="notify-probe", **notifications.HOOKS)
def probe(fail: bool = True) -> str:
    if fail:
        raise RuntimeError("injected: the warehouse is on fire")
    return "ok"


@pytest.fixture
def notify_env(monkeypatch, prefect_server):
    for key in (
        notifications.ENV_WEBHOOK,
        notifications.ENV_SECRET_BLOCK,
        notifications.ENV_ON_SUCCESS,
        notifications.ENV_SLOW,
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv(notifications.ENV_TIMEOUT, "2")
    return monkeypatch


def test_a_failing_run_delivers_exactly_one_message(notify_env, tmp_path):
    with Receiver() as receiver:
        notify_env.setenv(notifications.ENV_WEBHOOK, receiver.url)
        state = probe(return_state=True)
    assert state.is_failed()
    [body] = receiver.received
    (tmp_path.parent / "notification-payload.json").write_text(json.dumps(body, indent=2))
    assert body["flow"] == "notify-probe" and body["state"] == "Failed"
    assert body["error"] == "RuntimeError: injected: the warehouse is on fire"
    assert body["url"].endswith(f"/runs/flow-run/{state.state_details.flow_run_id}")
    assert body["url"].startswith("http")
    assert "notify-probe" in body["text"] and body["url"] in body["text"] and "warehouse is on fire" in body["text"]


@pytest.mark.parametrize("receiver_state", ["down", "500"])
def test_an_undeliverable_notification_changes_nothing(notify_env, receiver_state):
    with Receiver(status=500) as receiver:
        url = receiver.url
        if receiver_state == "500":
            notify_env.setenv(notifications.ENV_WEBHOOK, url)
            failed, completed = probe(return_state=True), probe(fail=False, return_state=True)
            assert len(receiver.received) == 1  # the failure was sent (and refused); success is not notified
    if receiver_state == "down":
        notify_env.setenv(notifications.ENV_WEBHOOK, url)  # nothing listens there any more
        notify_env.setenv(notifications.ENV_ON_SUCCESS, "true")
        failed, completed = probe(return_state=True), probe(fail=False, return_state=True)
    assert failed.is_failed() and "warehouse is on fire" in failed.message
    assert completed.is_completed() and completed.result() == "ok"


def test_disabled_by_default_sends_nothing(notify_env):
    with Receiver() as receiver:
        assert not notifications.NotifySettings.from_env().enabled
        assert probe(return_state=True).is_failed()
    assert receiver.received == []


def test_secret_block_and_slow_run_notice(notify_env):
    from prefect.blocks.system import Secret

    with Receiver() as receiver:
        Secret(value=receiver.url).save("notify-test-webhook", overwrite=True)
        notify_env.setenv(notifications.ENV_SECRET_BLOCK, "notify-test-webhook")
        notify_env.setenv(notifications.ENV_SLOW, "0")
        assert probe(fail=False, return_state=True).is_completed()
    [body] = receiver.received
    assert body["state"] == "Completed" and body["note"].startswith("took ")


# -- data-quality gates ---------------------------------------------------------------------------
def _published(data: Path) -> dict[str, str | None]:
    out = {}
    for kind in ("models", "predictions"):
        try:
            out[kind] = storage.current(str(data / kind))
        except storage.NotCommittedError:
            out[kind] = None
    return out


def test_quality_gates_fail_the_run_and_keep_the_previous_results(pipeline_env, monkeypatch):
    flows.batch_pipeline()
    sample = pipeline_env / "sample"  # the sample pipeline's own data URL
    before = _published(sample)
    assert all(before.values())

    # 1. the model's gate metric misses a threshold no model reaches: training fails, nothing is scored.
    impossible = 1.01 if QUALITY_GATE.higher_is_better else -1.0
    state = flows.batch_pipeline(quality_gate_min=impossible, return_state=True)
    assert state.is_failed()
    assert f"holdout {QUALITY_GATE.metric}" in state.message and f"quality gate {impossible}" in state.message
    assert _published(sample) == before
    # 2. too many quarantined rows (the sample has 0.5% malformed rows): scoring alone fails too.
    monkeypatch.setenv("PIPELINE_MAX_QUARANTINE_FRACTION", "0.001")
    state = flows.score_flow(data_url=str(sample), return_state=True)
    assert state.is_failed() and "PIPELINE_MAX_QUARANTINE_FRACTION=0.001" in state.message
    assert _published(sample) == before
    assert not list((sample / "predictions" / "_staging").iterdir())
    assert len(list((sample / "predictions").glob("*/" + storage.MANIFEST))) == 1


# -- observability --------------------------------------------------------------------------------
def _artifacts(flow_run_id):
    # The sync client: asyncio.run would unset the event loop Pulumi's mocks (infrastructure tests) use.
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_a_run_publishes_rows_stages_cluster_cost_and_a_performance_report(pipeline_env, tmp_path):
    state = flows.batch_pipeline(return_state=True)
    result = state.result()
    artifacts = _artifacts(state.state_details.flow_run_id)
    summary = {k: (a.type, a.data if isinstance(a.data, str) else json.dumps(a.data)) for k, a in artifacts.items()}
    (tmp_path.parent / "run-artifacts.json").write_text(json.dumps(summary, indent=2))
    # Keys carry the project: two projects' histories in one workspace stay apart (names.artifact).
    assert set(artifacts) >= {
        names.artifact(kind)
        for kind in (
            "pipeline-metrics",
            "pipeline-summary",
            "pipeline-rows",
            "pipeline-stages",
            "pipeline-cluster",
            "dask-performance-report",
        )
    }
    rows = {r["stage"]: r for r in json.loads(artifacts[names.artifact("pipeline-rows")].data)}
    assert rows["score"]["rows_in"] == 20_000
    assert rows["score"]["rows_out"] + rows["score"]["quarantined"] == 20_000 and rows["score"]["quarantined"] > 0
    assert rows["train"]["rows_in"] == 6_000
    stages = {r["stage"] for r in json.loads(artifacts[names.artifact("pipeline-stages")].data)}
    assert stages == {"cluster start", "generate", "train", "score", "total"}
    cluster = artifacts[names.artifact("pipeline-cluster")].data
    assert "| local cluster (no cloud compute) | 2 | 2 |" in cluster and "| 0.0000 |" in cluster
    assert result["observed"]["cost"]["fargate_equivalent_usd"] > 0
    link = artifacts[names.artifact("dask-performance-report")].data
    report = pipeline_env / "sample" / "reports" / result["run_id"] / "dask-performance-report.html"
    assert f"({report.as_uri()})" in link
    assert report.stat().st_size > 10_000 and "Dask Performance Report" in report.read_text()


# -- automations (created on the session's real Prefect server) -------------------------------------
def test_deploy_creates_and_updates_the_automations_idempotently(notify_env, capsys):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from ml_workflows import names
    from ml_workflows.deploy import automations

    assert automations.upsert_automations(stack="dev") == []  # off by default
    expected = names.automations("dev")  # the stack's: <project>-dev-<kind>
    assert expected == [f"{current().name}-dev-flow-run-crashed", f"{current().name}-dev-flow-run-too-long"]
    with Receiver() as receiver:
        notify_env.setenv(notifications.ENV_WEBHOOK, receiver.url)
        assert automations.upsert_automations(stack="dev") == expected
        assert automations.upsert_automations(stack="dev") == expected  # second deploy: updated in place
        block = CustomWebhookNotificationBlock.load(names.notify_block("dev"))
        block.notify("body text", "subject text")  # the block the automations use reaches the receiver
    assert receiver.received == [{"text": "subject text\nbody text"}]
    out = capsys.readouterr().out
    assert out.count("created") == len(expected) and out.count("updated") == len(expected)
    for name in expected:
        with get_client(sync_client=True) as client:
            [found] = client.read_automations_by_name(name=name)
        assert found.enabled
        [action] = found.actions
        assert action.type == "send-notification" and action.block_document_id == block._block_document_id
        # Only this project's flows run by the stack's deployments: never another project's or stack's runs.
        scope = [{k: v if isinstance(v, list) else [v] for k, v in s.items()} for s in names.automation_scope("dev")]
        assert [dict(spec.items()) for spec in found.trigger.match_related] == scope
        if name.endswith("too-long"):
            assert found.trigger.posture == "Proactive" and found.trigger.within.total_seconds() == 7200
