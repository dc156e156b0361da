"""Fast checks of the pipeline's parts (no cluster, no Prefect): config, data, model artifact, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from {{ cookiecutter.package_name }} import cli, cluster, publish
from {{ cookiecutter.package_name }}.config import ConfigError, Settings
from {{ cookiecutter.package_name }}.data import (
    BAYES_ACCURACY,
    ID,
    LABEL,
    MAX_ABS_FEATURE,
    REASON,
    feature_names,
    make_partition,
    row_problems,
    score_file,
    split_valid,
    true_weights,
    write_partition,
)
from {{ cookiecutter.package_name }}.model import Model, ModelVersionError, load_model, save_model


def test_settings_from_env_and_overrides(tmp_path):
    env = {"PIPELINE_DATA_URL": "s3://bucket/prefix/", "PIPELINE_N_WORKERS": "4", "PIPELINE_PROCESSES": "yes",
           "PIPELINE_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}  # fmt: skip
    s = Settings.from_env(env, seed=7)
    assert (s.data_url, s.n_workers, s.processes, s.seed) == ("s3://bucket/prefix", 4, True, 7)
    assert s.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    local = Settings.from_env({"PIPELINE_DATA_URL": str(tmp_path / "x" / ".." / "d")})
    assert local.data_url == str(tmp_path / "d") and local.storage_options == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PIPELINE_CLUSTER": "k8s"}, "must be one of"),
        ({"PIPELINE_CLUSTER": "address"}, "PIPELINE_SCHEDULER_ADDRESS"),
        ({"PIPELINE_CLUSTER": "fargate"}, "PIPELINE_IMAGE"),
        ({"PIPELINE_TRAIN_ROWS": "many"}, "expected int"),
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
    assert cli.main(["run", "--cluster", "address"]) == cli.EXIT_USAGE
    assert "PIPELINE_SCHEDULER_ADDRESS" in capsys.readouterr().err


def test_synthetic_data_has_the_known_signal():
    frame = make_partition(0, 20_000, 0, 8, seed=3, malformed_fraction=0.0, labelled=True)
    x = frame[feature_names(8)].to_numpy(np.float64)
    accuracy = ((x @ true_weights(8, 3) > 0) == frame[LABEL].to_numpy().astype(bool)).mean()
    assert abs(accuracy - BAYES_ACCURACY) < 0.01  # the true weights reach the stated optimum
    again = make_partition(0, 20_000, 0, 8, seed=3, malformed_fraction=0.0, labelled=True)
    pd.testing.assert_frame_equal(frame, again)  # deterministic


def test_split_valid_quarantines_every_kind_of_malformed_row():
    frame = make_partition(1, 1000, 5000, 4, seed=1, malformed_fraction=0.0, labelled=False)
    frame.loc[[1, 2, 3], "x002"] = [np.nan, np.inf, 1e9]
    good, bad = split_valid(frame, feature_names(4))
    assert len(good) == 997 and len(bad) == 3
    assert list(bad[REASON]) == ["missing feature", "infinite feature", "out of range"]
    with pytest.raises(ValueError, match="lacks columns"):
        split_valid(frame.drop(columns="x001"), feature_names(4))


def _reason(no_id: bool, row: np.ndarray) -> str:
    """The quarantine rule written out row by row: the reference the vectorised check must match."""
    if no_id:
        return "missing id"
    if any(np.isnan(v) for v in row):
        return "missing feature"
    if any(np.isinf(v) for v in row):
        return "infinite feature"
    if any(abs(v) > MAX_ABS_FEATURE for v in row):
        return "out of range"
    return ""


def test_row_problems_matches_the_rule_row_by_row():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4000, 5)).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, 1e9, -1e9, MAX_ABS_FEATURE, -MAX_ABS_FEATURE], dtype=np.float32)
    cells = rng.integers(0, x.size, 900)  # some rows get several kinds at once: the first match must win
    x.flat[cells] = rng.choice(specials, cells.size)
    no_id = rng.random(4000) < 0.01
    bad, reasons = row_problems(x, no_id)
    expected = [_reason(n, row) for n, row in zip(no_id, x, strict=True)]
    assert list(bad) == [r != "" for r in expected]
    assert list(reasons) == [r for r in expected if r]
    assert {"missing id", "missing feature", "infinite feature", "out of range"} == set(reasons)
    assert not row_problems(np.full((3, 2), MAX_ABS_FEATURE, np.float32), np.zeros(3, bool))[0].any()


def test_split_valid_quarantines_a_row_without_an_id():
    frame = make_partition(2, 10, 0, 3, seed=1, malformed_fraction=0.0, labelled=False)
    frame[ID] = frame[ID].astype("Int64")
    frame.loc[4, ID] = pd.NA
    good, bad = split_valid(frame, feature_names(3))
    assert len(good) == 9 and list(bad[REASON]) == ["missing id"]


def test_written_parquet_keeps_dictionaries_to_low_cardinality_columns(tmp_path):
    """Dictionaries on float/id columns overflow and fall back, costing time and space (BENCHMARKS.md)."""
    written = write_partition(str(tmp_path / "in"), 0, 3000, 0, 4, seed=2, malformed_fraction=0.01, labelled=True)
    score_file(
        str(tmp_path / "in" / written["path"]), str(tmp_path / "out.parquet"), str(tmp_path / "q.parquet"),
        _tiny_model(feature_names(4)).scorer(), batch_rows=1000,
    )  # fmt: skip

    def dictionary_columns(path):
        meta = pq.ParquetFile(path).metadata
        group = meta.row_group(0)
        return {
            group.column(i).path_in_schema
            for i in range(meta.num_columns)
            if any("DICTIONARY" in e for e in group.column(i).encodings)
        }

    assert dictionary_columns(tmp_path / "in" / written["path"]) == {LABEL}
    assert dictionary_columns(tmp_path / "out.parquet") == {"prediction"}
    assert dictionary_columns(tmp_path / "q.parquet") == {REASON}


def _tiny_model(features):
    frame = make_partition(0, 2000, 0, len(features), seed=5, malformed_fraction=0.0, labelled=True)
    x, y = frame[features].to_numpy(np.float64), frame[LABEL].to_numpy()
    scaler = StandardScaler().fit(x)
    return Model(scaler=scaler, estimator=LogisticRegression().fit(scaler.transform(x), y), features=features)


def test_score_file_streams_batches_and_matches_the_estimator(tmp_path):
    features = feature_names(6)
    model = _tiny_model(features)
    written = write_partition(str(tmp_path / "in"), 0, 5000, 0, 6, seed=9, malformed_fraction=0.01, labelled=False)
    counts = score_file(
        str(tmp_path / "in" / written["path"]), str(tmp_path / "out.parquet"), str(tmp_path / "q.parquet"),
        model, batch_rows=512,
    )  # fmt: skip
    assert counts["scored"] + counts["quarantined"] == 5000 and counts["quarantined"] > 0
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    source = pd.read_parquet(tmp_path / "in" / written["path"]).set_index("id").loc[out["id"]]
    expected = model.estimator.predict_proba(model.scaler.transform(source[features].to_numpy(np.float64)))[:, 1]
    np.testing.assert_allclose(out["score"], expected, atol=1e-5)
    assert len(pd.read_parquet(tmp_path / "q.parquet")) == counts["quarantined"]


def test_model_artifact_is_refused_under_other_versions(tmp_path):
    model = _tiny_model(feature_names(3))
    final, staging = str(tmp_path / "models" / "r1"), str(tmp_path / "stage")
    save_model(model, staging)
    with pytest.raises(publish.NotCommittedError):
        load_model(staging)  # not committed: no manifest
    publish.commit(staging, final, {"files": [{"path": "model.pkl", "rows": 0}]})
    assert load_model(final).features == model.features
    info_path = tmp_path / "models" / "r1" / "model.json"
    info = json.loads(info_path.read_text())
    info["versions"]["scikit-learn"] = "0.1.0"
    info_path.write_text(json.dumps(info))
    with pytest.raises(ModelVersionError, match=r"scikit-learn trained 0\.1\.0"):
        load_model(final)


def test_commit_is_all_or_nothing(tmp_path):
    staging, final = str(tmp_path / "_staging" / "x"), str(tmp_path / "x")
    with publish.open_write(publish.join(staging, "a.parquet")) as f:
        f.write(b"data")
    with pytest.raises(publish.NotCommittedError):
        publish.read_manifest(final)
    publish.commit(staging, final, {"files": [{"path": "a.parquet", "rows": 1}]})
    assert publish.committed_files(final) == [publish.join(final, "a.parquet")]
    assert publish.latest(str(tmp_path)) == final
    with pytest.raises(FileExistsError):
        publish.commit(staging, final, {"files": []})


def test_fargate_cluster_is_built_from_the_pulumi_outputs(monkeypatch):
    import dask_cloudprovider.aws

    from {{ cookiecutter.package_name }} import aws_wiring

    seen = {}

    def fake_kwargs(outputs, image, n_workers, **kwargs):
        seen.update(outputs=outputs, image=image, n_workers=n_workers)
        return {"image": image, "n_workers": n_workers}

    monkeypatch.setattr(aws_wiring, "fargate_cluster_kwargs", fake_kwargs)
    monkeypatch.setattr(dask_cloudprovider.aws, "FargateCluster", lambda **kw: ("fargate", kw))
    settings = Settings.from_env(
        {}, cluster="fargate", image="123.dkr.ecr.us-east-1.amazonaws.com/x:1", aws_outputs='{"vpc_id": "vpc-1"}',
        n_workers=3,
    )  # fmt: skip
    assert cluster.make_cluster(settings) == ("fargate", {"image": settings.image, "n_workers": 3})
    assert seen == {"outputs": {"vpc_id": "vpc-1"}, "image": settings.image, "n_workers": 3}


def test_deployment_entrypoint_loads_the_flows_from_the_installed_package():
    """prefect.yaml loads flows.py by path; what Dask ships to workers must still be package functions."""
    from pathlib import Path

    from prefect.flows import load_flow_from_entrypoint

    import {{ cookiecutter.package_name }}

    path = Path({{ cookiecutter.package_name }}.__file__).parent / "flows.py"
    flow = load_flow_from_entrypoint(f"{path}:batch_pipeline")
    assert flow.name == "batch-pipeline"
    assert flow.fn.__globals__["score_file"].__module__ == "{{ cookiecutter.package_name }}.data"
    assert all(load_flow_from_entrypoint(f"{path}:{name}").name for name in ("train_flow", "score_flow"))
