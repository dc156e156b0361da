"""Model lifecycle: champion / challenger promotion, promote and rollback by hand, drift at scoring.

Like the seam tests, these read ``SCHEMA`` and ``QUALITY_GATE`` and call the model only through its
contract, so they hold for your own schema and model too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_workflows import cli, drift, names, notifications, promotion, storage
from ml_workflows.columns import Categorical
from ml_workflows.model_store import load_model
from ml_workflows.project import current
from ml_workflows.quality import QualityGate
from ml_workflows.validation import split_valid

from .test_reports_notifications import Receiver, _artifacts

flows = current().module("flows")
user_model = current().module("model")
QUALITY_GATE = user_model.QUALITY_GATE
make_partition = current().module("sample_data").make_partition
SCHEMA = current().module("schema").SCHEMA


class WorseModel(type(user_model.build())):
    """The user's own model, trained exactly as it is, whose scores are then turned upside down: worse
    on any sensible metric, through the model's own ``evaluate``."""

    def fit(self, train):
        own = WorseModel.__bases__[0]
        self.__class__ = own  # fit (and any self-check in it) runs as the user's own model
        fitted = own.fit(self, train)
        fitted.__class__ = WorseModel
        return fitted

    def predict_proba(self, frame):
        return 1.0 - np.asarray(super().predict_proba(frame), dtype=np.float64)


def _worse(build):
    def build_worse() -> WorseModel:
        model = build()
        model.__class__ = WorseModel
        return model

    return build_worse


def _any_gate_passes(monkeypatch) -> None:
    """The quality gate out of the way: this is about the comparison, not the absolute bar."""
    monkeypatch.setenv("PIPELINE_QUALITY_GATE_MIN", "-1e9" if QUALITY_GATE.higher_is_better else "1e9")


# -- the rule --------------------------------------------------------------------------------------
@pytest.mark.parametrize("higher", [True, False])
def test_compare_promotes_unless_worse_by_more_than_the_tolerance(higher):
    gate = QualityGate(metric="m", minimum=0.5, higher_is_better=higher)
    sign = 1 if higher else -1
    champion = {"m": 0.80}
    better, slightly, much = (0.80 + sign * d for d in (0.01, -0.004, -0.02))
    assert promotion.compare(gate, {"m": better}, champion, 0.005)["promote"]
    assert promotion.compare(gate, {"m": 0.80}, champion, 0.0)["promote"]
    assert promotion.compare(gate, {"m": slightly}, champion, 0.005)["promote"]
    decision = promotion.compare(gate, {"m": much}, champion, 0.005, current_model_url="c")
    assert (
        not decision["promote"] and "over the tolerance" in decision["reason"] and decision["current_model_url"] == "c"
    )
    assert promotion.compare(gate, {"m": much}, None, 0.005)["promote"]  # nothing to beat
    unusable = promotion.compare(gate, {"m": much}, None, 0.005, champion_problem="trained on another schema")
    assert unusable["promote"] and "another schema" in unusable["reason"]
    with pytest.raises(promotion.PromotionError, match="returned no 'm'"):
        promotion.compare(gate, {"other": 1.0}, champion, 0.005)
    # Not compared at all: a better figure on other data means nothing.
    kept = promotion.compare(gate, {"m": better}, None, 0.005, not_comparable="trained on the sample data")
    assert not kept["promote"] and kept["reason"].startswith("not compared: trained on the sample data")


def test_sample_data_and_yours_are_never_compared():
    assert promotion.data_conflict(True, True) is None and promotion.data_conflict(False, False) is None
    assert promotion.data_conflict(True, None) is None  # a model of an earlier release: compared as before
    why, replaces = promotion.data_conflict(True, False)  # the new model on the sample, the current one on yours
    assert not replaces and "new model was trained on the sample data" in why
    why, replaces = promotion.data_conflict(False, True)
    assert replaces and "current model was trained on the sample data" in why


# -- promote / rollback: atomic, refused cleanly, recorded -------------------------------------------
def _committed_model(root: Path, name: str) -> str:
    staging = root / "_staging" / name
    staging.mkdir(parents=True)
    (staging / "model.pkl").write_bytes(b"x")
    final = str(root / name)
    storage.commit(str(staging), final, {"kind": "model", "files": []}, update_latest=False)
    return final


def test_promote_and_rollback_move_latest_in_one_write_and_are_recorded(tmp_path):
    root = tmp_path / "models"
    a, b, c = (_committed_model(root, n) for n in ("a", "b", "c"))
    latest = root / storage.LATEST
    promotion.promote(str(root), a, "first")
    promotion.promote(str(root), b, "second")
    assert storage.current(str(root)) == b

    # Refusals change nothing: not committed, not under this root, not a model.
    before = latest.read_bytes()
    half = root / "half"
    half.mkdir()
    (half / "model.pkl").write_bytes(b"x")  # a model directory without its manifest: half-written
    for bad, match in ((str(half), "not a committed model"), (str(tmp_path / "elsewhere"), "is not a model of")):
        with pytest.raises(promotion.PromotionError, match=match):
            promotion.promote(str(root), bad, "nope")
        assert latest.read_bytes() == before
    assert not list(root.glob("_LATEST.tmp-*"))  # the pointer is written to a temporary name, then renamed

    assert promotion.rollback(str(root), "bad model")["latest"] == a
    with pytest.raises(promotion.PromotionError, match="no previous model"):
        promotion.rollback(str(root), "again")
    assert storage.current(str(root)) == a
    promotion.promote(str(root), c, "third")
    assert promotion.state(str(root))["history"] == [a]
    events = promotion.events(str(root))
    assert [(e["action"], e["model"]) for e in events] == [
        ("promote", a), ("promote", b), ("rollback", a), ("promote", c)
    ]  # fmt: skip
    assert events[2]["reason"] == "bad model" and events[2]["rolled_back"] == b


# -- drift -----------------------------------------------------------------------------------------
def _valid(index: int, rows: int, labelled: bool = True) -> pd.DataFrame:
    frame = make_partition(index, rows, index * rows, seed=5, malformed_fraction=0.0, labelled=labelled)
    return split_valid(frame, SCHEMA, labelled=labelled)[0]


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    """Every feature moved to one legal value: a numeric column to its 95th percentile, a categorical
    one to its first category (valid rows stay valid, so nothing is quarantined for it)."""
    out = frame.copy()
    for f in SCHEMA.features:
        if isinstance(f, Categorical):
            out[f.name] = f.categories[0]
        else:
            value = np.nanquantile(out[f.name].to_numpy(dtype=np.float64, na_value=np.nan), 0.95)
            out[f.name] = np.full(len(out), np.rint(value) if f.dtype.startswith("int") else value, dtype=f.dtype)
    return out


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one():
    train = _valid(0, 20_000)
    profile = drift.reference_profile(train, SCHEMA)
    profile = drift.with_expected(profile, drift.count(train, profile))
    same = drift.report(profile, drift.merge([drift.count(_valid(i, 5_000, False), profile) for i in (1, 2)]), 0.2)
    assert same["drifted"] == [] and same["max_psi"] < 0.05, same["features"][:3]
    moved = drift.report(profile, drift.count(shifted(_valid(3, 5_000, False)), profile), 0.2)
    assert sorted(moved["drifted"]) == sorted(SCHEMA.feature_names)
    assert moved["counted_rows"] == 5_000
    # Scoring counts a systematic sample of large record batches: the same shares, give or take sampling noise.
    sampled = drift.Counter(profile, max_rows_per_batch=4096)
    sampled.add(train)
    assert sampled.rows == 4096
    for name, spec in profile["features"].items():
        assert sum(sampled.counts[name]) == 4096
        assert drift.psi(spec["expected"], sampled.counts[name]) < 0.02, name


# -- end to end --------------------------------------------------------------------------------------
def test_a_worse_model_is_not_promoted_and_latest_is_unchanged(pipeline_env, monkeypatch, capsys):
    flows.generate_flow()
    datasets = {k: storage.join(str(pipeline_env), "sample", "datasets", k) for k in ("train", "score")}
    first = flows.batch_pipeline(train_dataset_url=datasets["train"], score_dataset_url=datasets["score"])
    champion = first["model"]["model_url"]
    assert first["model"]["promoted"] and first["model"]["comparison"]["champion"] is None
    latest = pipeline_env / "models" / storage.LATEST
    before = latest.read_bytes()

    _any_gate_passes(monkeypatch)
    monkeypatch.setattr(user_model, "build", _worse(user_model.build))
    state = flows.batch_pipeline(
        train_dataset_url=datasets["train"], score_dataset_url=datasets["score"], return_state=True
    )
    second = state.result()
    comparison = second["model"]["comparison"]
    assert not second["model"]["promoted"] and not comparison["promote"]
    assert latest.read_bytes() == before  # _LATEST did not move
    assert storage.current(str(pipeline_env / "models")) == champion
    # Both models were evaluated on the same holdout rows with the gate's metric and direction.
    assert comparison["evaluated_on"] == "holdout" and comparison["metric"] == QUALITY_GATE.metric
    assert comparison["champion"] == first["model"]["metrics"]
    assert "over the tolerance" in comparison["reason"]
    # The candidate is committed, with the reason; scoring used the current model.
    candidate = second["model"]["model_url"]
    assert storage.read_manifest(candidate)["comparison"]["promote"] is False
    assert storage.read_manifest(second["scoring"]["predictions_url"])["model"] == champion
    assert "kept as a candidate" in second["summary"] and comparison["reason"] in second["summary"]
    [event] = [e for e in promotion.events(str(pipeline_env / "models")) if e["action"] == "candidate"]
    assert event["model"] == candidate and event["champion"] == champion
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert "kept as a candidate" in artifacts[names.artifact("model-comparison")].data
    rows = {r["metric"]: r for r in json.loads(artifacts[names.artifact("model-comparison-metrics")].data)}
    assert rows[QUALITY_GATE.metric]["current model"] == first["model"]["metrics"][QUALITY_GATE.metric]

    # Compared on a fixed labelled reference set instead of the run's holdout: the same rule, the same outcome.
    monkeypatch.setenv("PIPELINE_REFERENCE_DATASET_URL", datasets["train"])
    third = flows.train_flow(dataset_url=datasets["train"])["model"]
    assert third["comparison"]["evaluated_on"] == f"reference dataset {datasets['train']}"
    assert not third["promoted"] and latest.read_bytes() == before
    assert third["comparison"]["champion"] != first["model"]["metrics"]  # other rows than the holdout
    monkeypatch.delenv("PIPELINE_REFERENCE_DATASET_URL")

    # By hand: promote the candidate anyway, then roll back; each is one write, recorded.
    capsys.readouterr()
    assert cli.main(["promote", "--model", candidate.rsplit("/", 1)[-1], "--reason", "checked by hand"]) == 0
    assert storage.current(str(pipeline_env / "models")) == candidate
    assert cli.main(["rollback", "--reason", "it was worse after all"]) == 0
    assert storage.current(str(pipeline_env / "models")) == champion
    assert cli.main(["rollback"]) == cli.EXIT_FAILED  # nothing before the first model
    assert "no previous model" in capsys.readouterr().err
    assert cli.main(["promote", "--model", "no-such-run"]) == cli.EXIT_FAILED
    assert storage.current(str(pipeline_env / "models")) == champion
    actions = [e["action"] for e in promotion.events(str(pipeline_env / "models"))]
    assert actions == ["promote", "candidate", "candidate", "promote", "rollback"]


def _write_shifted(source: str, dest: Path) -> str:
    dest.mkdir(parents=True)
    for i, f in enumerate(storage.list_parquet(source)):
        table = pq.read_table(f)
        frame = shifted(table.to_pandas())
        pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), dest / f"s{i}.parquet")
    return str(dest)


def test_shifted_scoring_data_is_reported_as_drift_and_notified(pipeline_env, monkeypatch):
    for key in (notifications.ENV_SECRET_BLOCK, notifications.ENV_ON_SUCCESS, notifications.ENV_SLOW):
        monkeypatch.delenv(key, raising=False)
    first = flows.batch_pipeline()
    report = first["scoring"]["drift"]
    assert report["drifted"] == [], report["features"][:3]  # the sample's scoring data is like its training data
    assert Path(first["scoring"]["drift_url"]).is_file()

    sample = pipeline_env / "sample"  # the sample run's own data URL: its model is current there
    moved = _write_shifted(storage.join(str(sample), "datasets", "score"), pipeline_env.parent / "shifted")
    with Receiver() as receiver:
        monkeypatch.setenv(notifications.ENV_WEBHOOK, receiver.url)
        state = flows.score_flow(data_url=str(sample), dataset_url=moved, return_state=True)
        assert state.is_completed()  # PIPELINE_DRIFT_ACTION=warn: committed, warned
        scored = state.result()["scoring"]
        [body] = receiver.received
    assert body["state"] == "Warning" and body["note"].startswith("drift: ")
    assert all(name in body["text"] for name in scored["drift"]["drifted"][:3])
    on_disk = json.loads(Path(scored["drift_url"]).read_text())
    assert Path(scored["drift_url"]).parent == Path(scored["predictions_url"])  # beside the predictions
    assert sorted(on_disk["drifted"]) == sorted(SCHEMA.feature_names)
    artifact = {
        r["feature"]: r
        for r in json.loads(_artifacts(state.state_details.flow_run_id)[names.artifact("drift-report")].data)
    }
    assert set(artifact) == set(SCHEMA.feature_names) and all(r["drifted"] for r in artifact.values())
    assert "drift:" in state.result()["summary"]

    # PIPELINE_DRIFT_ACTION=fail: the run fails, nothing is committed, the failure is notified.
    predictions = sample / "predictions"
    committed = sorted(predictions.glob("*/" + storage.MANIFEST))
    monkeypatch.setenv("PIPELINE_DRIFT_ACTION", "fail")
    with Receiver() as receiver:
        monkeypatch.setenv(notifications.ENV_WEBHOOK, receiver.url)
        failed = flows.score_flow(data_url=str(sample), dataset_url=moved, return_state=True)
        [body] = receiver.received
    assert failed.is_failed() and body["state"] == "Failed" and "DriftError" in body["error"]
    assert sorted(predictions.glob("*/" + storage.MANIFEST)) == committed
    assert not list((predictions / "_staging").iterdir())


# -- your lineage and the sample's; damaged and half-recorded models --------------------------------
def _your_data(root: Path, rows: int = 6_000, files: int = 3) -> dict[str, str]:
    """Datasets as you bring them: plain parquet files with no manifest (not the sample generator's), and another
    relationship between features and label than the sample's (another seed)."""
    urls = {}
    for kind, labelled in (("train", True), ("score", False)):
        folder = root / kind
        folder.mkdir(parents=True)
        for i in range(files):
            frame = make_partition(i, rows // files, i * rows, seed=7, malformed_fraction=0.0, labelled=labelled)
            table = pa.Table.from_pandas(frame, schema=SCHEMA.arrow_schema(labelled), preserve_index=False)
            pq.write_table(table, folder / f"{kind}-{i}.parquet")
        urls[kind] = str(folder)
    return urls


def test_the_sample_never_replaces_a_model_of_your_data(pipeline_env):
    mine = _your_data(pipeline_env.parent / "mine")
    models = pipeline_env / "models"
    yours = flows.train_flow(dataset_url=mine["train"])["model"]
    assert yours["promoted"]
    before = (models / storage.LATEST).read_bytes()

    sample = flows.batch_pipeline()  # make run: the sample pipeline, under its own data URL
    assert sample["model"]["promoted"]  # the first model of the sample's lineage
    assert Path(sample["model"]["model_url"]).parent == pipeline_env / "sample" / "models"
    assert Path(sample["scoring"]["predictions_url"]).parent == pipeline_env / "sample" / "predictions"
    assert (models / storage.LATEST).read_bytes() == before
    assert [p.name for p in models.iterdir() if not p.name.startswith("_")] == [Path(yours["model_url"]).name]

    # Trained on the sample data in your lineage by hand: a candidate, never compared (nor evaluated) with yours.
    sample_train = storage.join(str(pipeline_env), "sample", "datasets", "train")
    by_hand = flows.train_flow(dataset_url=sample_train)["model"]
    reason = by_hand["comparison"]["reason"]
    assert not by_hand["promoted"] and by_hand["comparison"]["champion"] is None
    assert reason.startswith("not compared: the new model was trained on the sample data"), reason
    assert (models / storage.LATEST).read_bytes() == before
    [event] = [e for e in promotion.events(str(models)) if e["action"] == "candidate"]
    assert event["model"] == by_hand["model_url"] and event["champion"] == yours["model_url"]

    # The other way round: a model of your data replaces one of the sample's, without a comparison.
    replaced = flows.train_flow(data_url=str(pipeline_env / "sample"), dataset_url=mine["train"])["model"]
    reason = replaced["comparison"]["reason"]
    assert replaced["promoted"] and "the current model was trained on the sample data" in reason, reason


def test_an_unreadable_current_model_is_named_and_training_replaces_it(pipeline_env, monkeypatch, capsys):
    mine = _your_data(pipeline_env.parent / "mine")
    first = flows.train_flow(dataset_url=mine["train"])["model"]
    pickled = Path(first["model_url"]) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[: pickled.stat().st_size // 2])  # truncated after its commit
    monkeypatch.setenv("PIPELINE_RETRIES", "2")  # retries are on, and a retry cannot heal this: none may run
    steps = sys.modules["ml_workflows.steps"]
    loads = []
    monkeypatch.setattr(steps, "load_model", lambda *a, **k: loads.append(a) or load_model(*a, **k))

    capsys.readouterr()
    assert cli.main(["score", "--dataset", mine["score"]]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"model {first['model_url']} cannot be read (UnpicklingError" in err and "make rollback" in err, err
    assert len(loads) == 1  # one attempt

    second = flows.train_flow(dataset_url=mine["train"])["model"]
    reason = second["comparison"]["reason"]
    assert second["promoted"] and reason.startswith("not compared: the current model cannot be used: model "), reason
    assert storage.current(str(pipeline_env / "models")) == second["model_url"]
    assert cli.main(["score", "--dataset", mine["score"]]) == cli.EXIT_OK


def test_the_decision_is_stored_before_bookkeeping_that_needs_the_prefect_api(pipeline_env, monkeypatch):
    mine = _your_data(pipeline_env.parent / "mine")

    def api_gone(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(sys.modules["ml_workflows.steps"], "publish_comparison", api_gone)
    state = flows.train_flow(dataset_url=mine["train"], return_state=True)
    assert state.is_failed()
    models = pipeline_env / "models"
    [model] = [str(p) for p in models.iterdir() if not p.name.startswith("_")]
    assert storage.current(str(models)) == model  # made current, and recorded, before the API was needed
    assert [(e["action"], e["model"]) for e in promotion.events(str(models))] == [("promote", model)]
