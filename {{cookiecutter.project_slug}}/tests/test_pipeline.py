"""The whole pipeline on real Dask clusters with small data: local disk, S3 (moto server), failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import s3fs
from distributed import LocalCluster
from distributed.core import Status
from ml_workflows import cli, cluster, steps, storage
from ml_workflows.model_store import load_model
from ml_workflows.settings import Settings
from ml_workflows.validation import REASON

from {{ cookiecutter.package_name }} import flows
from {{ cookiecutter.package_name }}.model import QUALITY_GATE
from {{ cookiecutter.package_name }}.schema import SCHEMA

ID = SCHEMA.id


def _reasons_name_schema_columns(reasons) -> bool:
    return all(any(c in r for c in SCHEMA.columns(labelled=True)) for r in set(reasons))


def _closed_clusters(monkeypatch) -> list:
    """Record every cluster the pipeline creates, to check it is closed afterwards."""
    created = []
    real = cluster.make_cluster

    def recording(settings):
        c = real(settings)
        created.append(c)
        return c

    monkeypatch.setattr(cluster, "make_cluster", recording)
    return created


def test_local_pipeline_trains_scores_and_quarantines(pipeline_env, monkeypatch):
    created = _closed_clusters(monkeypatch)
    result = flows.batch_pipeline()

    metrics, rows = result["model"]["metrics"], result["model"]["rows"]
    QUALITY_GATE.check(metrics)
    assert rows["train_quarantined_rows"] > 0
    train_quarantine = pd.read_parquet(storage.join(result["model"]["model_url"], "quarantine"))
    assert len(train_quarantine) == rows["train_quarantined_rows"]
    assert _reasons_name_schema_columns(train_quarantine[REASON])

    scoring = result["scoring"]
    manifest = storage.read_manifest(scoring["predictions_url"])
    assert manifest["rows"] + manifest["quarantined_rows"] == 20_000
    assert 0 < manifest["quarantined_rows"] < 1_000
    predictions = pd.concat(pd.read_parquet(f) for f in storage.committed_files(scoring["predictions_url"]))
    assert len(predictions) == manifest["rows"] and predictions[ID].is_unique
    assert predictions["score"].between(0, 1).all()
    quarantine = pd.concat(
        pd.read_parquet(storage.join(scoring["predictions_url"], f["path"])) for f in manifest["quarantine_files"]
    )
    assert len(quarantine) == manifest["quarantined_rows"]
    assert _reasons_name_schema_columns(quarantine[REASON])
    assert set(quarantine[ID]).isdisjoint(predictions[ID])  # every input row is in exactly one place
    assert f"{manifest['quarantined_rows']:,} malformed rows" in result["summary"]
    assert all(f"{k} {v:.4f}" in result["summary"] for k, v in metrics.items())  # whatever evaluate returns
    sample = pipeline_env / "sample"  # the sample run's own data URL: your models and results are not touched
    assert Path(scoring["predictions_url"]).parent == sample / "predictions" and not (pipeline_env / "models").exists()
    assert not list((sample / "predictions" / "_staging").iterdir())
    assert [c.status for c in created] == [Status.closed]

    # The score flow alone picks up the current model (of the data URL it is given) and commits a new result.
    again = flows.score_flow(data_url=str(sample))["scoring"]
    assert again["predictions_url"] != scoring["predictions_url"]
    assert again["rows"] == manifest["rows"]
    assert hasattr(load_model(result["model"]["model_url"]), "predict_proba")


def test_injected_failure_commits_nothing_and_closes_the_cluster(pipeline_env, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_RETRIES", "1")  # the failure is permanent: retried, then fails the run
    created = _closed_clusters(monkeypatch)
    attempts = pipeline_env.parent / "attempts.log"  # a file: Dask pickles the task, closures are copies
    real_score_file = steps.score_file

    def flaky(in_url, *args, **kwargs):
        if in_url.endswith("part-00002.parquet"):
            with attempts.open("a") as f:
                f.write(in_url + "\n")
            raise OSError("injected: storage went away mid-run")
        return real_score_file(in_url, *args, **kwargs)

    monkeypatch.setattr(steps, "score_file", flaky)

    assert cli.main(["run"]) == cli.EXIT_FAILED
    assert "injected: storage went away" in capsys.readouterr().err
    assert len(attempts.read_text().splitlines()) == 4  # 2 Dask attempts in each of 2 Prefect attempts
    predictions = pipeline_env / "sample" / "predictions"
    assert not (predictions / storage.LATEST).exists()
    assert list(predictions.glob("*/" + storage.MANIFEST)) == []
    assert [p.name for p in predictions.iterdir()] == ["_staging"]
    assert list((predictions / "_staging").iterdir()) == []
    assert created and all(c.status == Status.closed for c in created)


def test_s3_pipeline_on_an_external_process_cluster(pipeline_env, monkeypatch, s3_bucket, moto_s3):
    """s3:// data through a moto server, on an existing scheduler whose workers are separate processes.

    This is the ``PIPELINE_CLUSTER=existing`` path (``dask scheduler`` + ``dask worker``): the workers
    import this package from the same environment and reach S3 themselves.
    """
    data_url = f"s3://{s3_bucket}/pipeline"
    monkeypatch.setenv("PIPELINE_DATA_URL", data_url)
    monkeypatch.setenv("PIPELINE_S3_ENDPOINT_URL", moto_s3)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0", host="127.0.0.1"
    ) as external:
        monkeypatch.setenv("PIPELINE_CLUSTER", "existing")
        monkeypatch.setenv("PIPELINE_SCHEDULER_ADDRESS", external.scheduler_address)
        monkeypatch.setenv("PIPELINE_SAMPLE_TRAIN_ROWS", "4000")
        monkeypatch.setenv("PIPELINE_SAMPLE_SCORE_ROWS", "8000")
        monkeypatch.setenv("PIPELINE_SAMPLE_SCORE_FILES", "2")
        result = flows.batch_pipeline()
        assert external.status == Status.running  # an external cluster is not ours to close

    QUALITY_GATE.check(result["model"]["metrics"])
    url = result["scoring"]["predictions_url"]
    data_url += "/sample"  # the sample run's own data URL
    assert url.startswith(data_url + "/predictions/")
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_s3})
    manifest = storage.read_manifest(url, {"client_kwargs": {"endpoint_url": moto_s3}})
    assert manifest["rows"] + manifest["quarantined_rows"] == 8000
    rows = sum(pq.ParquetFile(fs.open(f)).metadata.num_rows for f in fs.glob(url + "/part-*.parquet"))
    assert rows == manifest["rows"]
    assert storage.current(f"{data_url}/predictions", {"client_kwargs": {"endpoint_url": moto_s3}}) == url
    assert fs.glob(f"{data_url}/predictions/_staging/**") == []


def test_version_mismatch_is_refused_before_any_work():
    """A worker reporting another dask version fails Client.get_versions(check=True) with a clear error."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as other:
        [worker] = other.workers.values()
        real = worker.handlers["versions"]

        def other_versions(packages=None):
            versions = real(packages=packages)
            versions["packages"] = {**versions["packages"], "dask": "2000.1.0"}
            return versions

        worker.handlers["versions"] = other_versions
        settings = Settings.from_env({}, cluster="existing", scheduler_address=other.scheduler_address)
        started = []
        mismatch = r"other package versions(.|\n)*2000\.1\.0"
        with pytest.raises(cluster.ClusterVersionError, match=mismatch), cluster.dask_client(settings):
            started.append(True)
        assert started == []
