"""Fast checks of the runtime plumbing (no cluster, no Prefect server): settings, validation, scoring,
storage, the model store, the CLI. Written against SCHEMA and the model contract, not the sample."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml_workflows import cli, cluster, storage
from ml_workflows.columns import Categorical, Numeric, Schema
from ml_workflows.model_store import ModelVersionError, load_model, save_model
from ml_workflows.project import current
from ml_workflows.scoring import PREDICTION, SCORE, score_file
from ml_workflows.settings import ConfigError, Settings
from ml_workflows.validation import REASON, row_problems, split_valid

sample_data = current().module("sample_data")
make_partition, write_partition = sample_data.make_partition, sample_data.write_partition
SCHEMA = current().module("schema").SCHEMA


def test_settings_from_env_and_overrides(tmp_path):
    env = {"PIPELINE_DATA_URL": "s3://bucket/prefix/", "PIPELINE_N_WORKERS": "4", "PIPELINE_PROCESSES": "yes",
           "PIPELINE_S3_ENDPOINT_URL": "http://127.0.0.1:9000", "PIPELINE_QUALITY_GATE_MIN": "0.7"}  # fmt: skip
    s = Settings.from_env(env, seed=7)
    assert (s.data_url, s.n_workers, s.processes, s.seed, s.quality_gate_min) == ("s3://bucket/prefix", 4, True, 7, 0.7)
    assert s.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    local = Settings.from_env({"PIPELINE_DATA_URL": str(tmp_path / "x" / ".." / "d")})
    assert local.data_url == str(tmp_path / "d") and local.storage_options == {} and local.quality_gate_min is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PIPELINE_CLUSTER": "k8s"}, "must be one of"),
        ({"PIPELINE_CLUSTER": "existing"}, "PIPELINE_SCHEDULER_ADDRESS"),
        ({"PIPELINE_CLUSTER": "fargate"}, "PIPELINE_IMAGE"),
        ({"PIPELINE_SAMPLE_TRAIN_ROWS": "many"}, "expected int"),
        ({"PIPELINE_QUALITY_GATE_MIN": "high"}, "expected float"),
        ({"PIPELINE_DATA_URL": "gs://bucket"}, "s3:// URL"),
    ],
)
def test_invalid_settings_are_config_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_cli_help_and_usage_errors(capsys, monkeypatch):
    assert cli.main(["--help"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("run", "generate", "train", "score")) and "exit status" in out
    assert cli.main(["explode"]) == cli.EXIT_USAGE
    monkeypatch.delenv("PIPELINE_SCHEDULER_ADDRESS", raising=False)
    assert cli.main(["run", "--cluster", "existing"]) == cli.EXIT_USAGE
    assert "PIPELINE_SCHEDULER_ADDRESS" in capsys.readouterr().err


# -- validation: the rule written out cell by cell is the reference the vectorised check must match --
MIXED = Schema(
    id="key",
    label="target",
    features=(
        Numeric("a", dtype="float32", min=-5, max=5),
        Numeric("b", dtype="float64", nullable=True, min=0),
        Categorical("c", categories=("red", "green")),
        Categorical("d", categories=("x", "y"), nullable=True),
        Numeric("e", dtype="int64", min=0, max=100),
        Numeric("f"),
    ),
)


def _reason(row: pd.Series, schema: Schema, labelled: bool) -> str:
    if pd.isna(row[schema.id]):
        return f"missing {schema.id}"
    if labelled and row[schema.label] not in schema.label_values:
        return f"bad {schema.label}"
    for col in schema.features:
        value = row[col.name]
        if isinstance(col, Categorical):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                if not col.nullable:
                    return f"missing {col.name}"
            elif value not in col.categories:
                return f"{col.name} unknown category"
            continue
        value = float(value)
        lo, hi = col.bounds
        if math.isnan(value):
            if not col.nullable:
                return f"missing {col.name}"
        elif math.isinf(value):
            return f"infinite {col.name}"
        elif not lo <= value <= hi:
            return f"{col.name} out of range"
    return ""


def test_row_problems_match_the_rule_row_by_row():
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame({
        "key": pd.array(np.arange(n), dtype="Int64"),
        "target": rng.choice([0, 1, 1, 0, 2], n),
        "a": rng.choice(np.array([0.5, -4.0, 5.0, 6.0, np.nan, np.inf], dtype=np.float32), n),
        "b": rng.choice([0.0, 3.0, -1.0, np.nan, -np.inf], n),
        "c": rng.choice(np.array(["red", "green", "blue", None], dtype=object), n),
        "d": rng.choice(np.array(["x", "y", "z", None], dtype=object), n),
        "e": rng.choice([0, 50, 100, 101, -1], n),
        "f": rng.choice([1e300, -2.0, np.nan, np.inf], n),
    })  # fmt: skip
    frame.loc[rng.random(n) < 0.01, "key"] = pd.NA
    for labelled in (True, False):
        bad, reasons = row_problems(frame, MIXED, labelled)
        expected = [_reason(row, MIXED, labelled) for _, row in frame.iterrows()]
        assert list(bad) == [r != "" for r in expected]
        assert list(reasons) == [r for r in expected if r]
    assert len(set(reasons)) >= 8  # every kind of problem occurred


def test_split_valid_keeps_every_row_in_exactly_one_place():
    frame = make_partition(1, 3000, 5000, seed=1, malformed_fraction=0.05, labelled=False)
    good, bad = split_valid(frame, SCHEMA)
    assert len(good) + len(bad) == 3000 and len(bad) > 0
    assert set(good[SCHEMA.id]).isdisjoint(bad[SCHEMA.id]) and bad[REASON].notna().all()
    with pytest.raises(ValueError, match="lacks columns"):
        split_valid(frame.drop(columns=SCHEMA.feature_names[-1]), SCHEMA)


class ReferenceModel:
    """A tiny model of the scoring contract: a fixed function of the schema's numeric columns."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.nan_to_num(frame[[c.name for c in SCHEMA.numeric]].to_numpy(dtype=np.float64))
        return 1 / (1 + np.exp(-np.tanh(x).sum(axis=1)))


def test_score_file_streams_batches_and_matches_the_model(tmp_path):
    written = write_partition(str(tmp_path / "in"), 0, 5000, 0, seed=9, malformed_fraction=0.01, labelled=False)
    source_path = tmp_path / "in" / written["path"]
    counts = score_file(
        str(source_path), str(tmp_path / "out.parquet"), str(tmp_path / "q.parquet"), ReferenceModel(), SCHEMA, 512
    )
    assert counts["scored"] + counts["quarantined"] == 5000 and counts["quarantined"] > 0
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert list(out.columns) == [SCHEMA.id, SCORE, PREDICTION]
    source = pd.read_parquet(source_path).set_index(SCHEMA.id).loc[out[SCHEMA.id]]
    np.testing.assert_allclose(out[SCORE], ReferenceModel().predict_proba(source), rtol=1e-5)
    assert (out[PREDICTION] == (out[SCORE] >= 0.5)).all()
    quarantine = pd.read_parquet(tmp_path / "q.parquet")
    assert len(quarantine) == counts["quarantined"] and set(quarantine[SCHEMA.id]).isdisjoint(out[SCHEMA.id])


def test_written_parquet_keeps_dictionaries_to_low_cardinality_columns(tmp_path):
    """Dictionaries on float/id columns overflow and fall back, costing time and space (BENCHMARKS.md)."""
    written = write_partition(str(tmp_path / "in"), 0, 3000, 0, seed=2, malformed_fraction=0.01, labelled=True)
    score_file(
        str(tmp_path / "in" / written["path"]), str(tmp_path / "out.parquet"), str(tmp_path / "q.parquet"),
        ReferenceModel(), SCHEMA, 1000,
    )  # fmt: skip

    def dictionary_columns(path):
        meta = pq.ParquetFile(path).metadata
        group = meta.row_group(0)
        return {
            group.column(i).path_in_schema
            for i in range(meta.num_columns)
            if any("DICTIONARY" in e for e in group.column(i).encodings)
        }

    categories = {c.name for c in SCHEMA.categorical}
    assert dictionary_columns(tmp_path / "in" / written["path"]) == {SCHEMA.label, *categories}
    assert dictionary_columns(tmp_path / "out.parquet") == {PREDICTION}
    assert REASON in dictionary_columns(tmp_path / "q.parquet")


def test_model_artifact_is_refused_under_other_versions(tmp_path):
    final, staging = str(tmp_path / "models" / "r1"), str(tmp_path / "stage")
    save_model(ReferenceModel(), staging, {"schema": SCHEMA.describe()})
    with pytest.raises(storage.NotCommittedError):
        load_model(staging)  # not committed: no manifest
    storage.commit(staging, final, {"files": [{"path": "model.pkl", "rows": 0}]})
    assert isinstance(load_model(final), ReferenceModel)
    info_path = tmp_path / "models" / "r1" / "model.json"
    info = json.loads(info_path.read_text())
    info["versions"]["numpy"] = "0.1.0"
    info_path.write_text(json.dumps(info))
    with pytest.raises(ModelVersionError, match=r"numpy trained 0\.1\.0"):
        load_model(final)


def test_commit_is_all_or_nothing(tmp_path):
    staging, final = str(tmp_path / "_staging" / "x"), str(tmp_path / "x")
    with storage.open_write(storage.join(staging, "a.parquet")) as f:
        f.write(b"data")
    with pytest.raises(storage.NotCommittedError):
        storage.read_manifest(final)
    storage.commit(staging, final, {"files": [{"path": "a.parquet", "rows": 1}]})
    assert storage.committed_files(final) == [storage.join(final, "a.parquet")]
    assert storage.current(str(tmp_path)) == final
    with pytest.warns(DeprecationWarning, match=r"storage.current\(\)"):  # the name before 2026.12.6, one release on
        assert storage.latest(str(tmp_path)) == final
    with pytest.raises(FileExistsError):
        storage.commit(staging, final, {"files": []})


def test_fargate_cluster_is_built_from_the_pulumi_outputs(monkeypatch):
    from ml_workflows import fargate

    seen = {}

    def fake_kwargs(outputs, image, n_workers, **kwargs):
        seen.update(outputs=outputs, image=image, n_workers=n_workers)
        return {"image": image, "n_workers": n_workers}

    monkeypatch.setattr(fargate, "fargate_cluster_kwargs", fake_kwargs)
    # The project's subclass (dask CLI commands rewritten, tests/deploy/test_fargate_wiring.py) is what is built.
    monkeypatch.setattr(fargate, "fargate_cluster_class", lambda: lambda **kw: ("fargate", kw))
    settings = Settings.from_env(
        {}, cluster="fargate", image="123.dkr.ecr.us-east-1.amazonaws.com/x:1", aws_outputs='{"vpc_id": "vpc-1"}',
        n_workers=3,
    )  # fmt: skip
    assert cluster.make_cluster(settings) == ("fargate", {"image": settings.image, "n_workers": 3})
    assert seen == {"outputs": {"vpc_id": "vpc-1"}, "image": settings.image, "n_workers": 3}


def test_deployment_entrypoint_loads_the_flows_from_the_installed_package():
    """prefect.yaml names flows by module; what Dask ships to workers must still be package functions."""
    from prefect.flows import load_flow_from_entrypoint

    package, name = current().package, current().name
    flow = load_flow_from_entrypoint(f"{package}.flows:batch_pipeline")
    assert flow.name == f"{name}-batch-pipeline"  # the project's flow (ml_workflows/names.py)
    steps = flow.fn.__globals__["score_dataset"].fn.__globals__
    assert steps["score_file"].__module__ == "ml_workflows.scoring"
    for function in ("generate_flow", "train_flow", "score_flow"):
        loaded = load_flow_from_entrypoint(f"{package}.flows:{function}")
        assert loaded.name.startswith(f"{name}-"), function
