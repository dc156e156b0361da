"""Experiment tracking (tracking = mlflow): a run's params, metrics, comparison and model, read back
through MLflow's own API from a real local tracking store."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ml_workflows import drift, storage, tracking
from ml_workflows.model_store import load_model
from ml_workflows.project import current
from ml_workflows.settings import ConfigError, Settings
from ml_workflows.validation import split_valid

from .outputs import OUTPUTS

if current().tracking != "mlflow":
    pytest.skip("tracking = none: no experiment tracking in this project", allow_module_level=True)
mlflow = pytest.importorskip("mlflow")

flows = current().module("flows")
make_partition = current().module("sample_data").make_partition
SCHEMA = current().module("schema").SCHEMA


def test_a_training_run_is_logged_and_read_back_through_mlflow(pipeline_env):
    result = flows.batch_pipeline()
    trained = result["model"]

    client = mlflow.MlflowClient(tracking_uri=os.environ[tracking.ENV_URI])
    # The experiment is named after the project; the sample's runs (this one) have one of their own.
    experiment = client.get_experiment_by_name(f"{current().name}-sample")
    assert experiment.artifact_location == storage.join(str(pipeline_env), "sample", "mlflow")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == result["run_id"] and run.info.status == "FINISHED"
    for name, value in trained["metrics"].items():
        assert run.data.metrics[name] == pytest.approx(value)
    assert run.data.metrics["train_rows"] == trained["rows"]["train_rows"]
    assert run.data.params["model_class"].endswith(type(load_model(trained["model_url"])).__qualname__)
    assert run.data.tags["decision"] == "promoted" and run.data.tags["model_url"] == trained["model_url"]
    comparison = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/comparison.json")
    assert comparison["promote"] is True and comparison["metric"] == trained["comparison"]["metric"]
    reference = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{drift.REFERENCE_FILE}")
    assert sorted(reference["features"]) == sorted(SCHEMA.feature_names)

    # The logged model scores like the committed one.
    served = mlflow.pyfunc.load_model(run.data.tags["mlflow_model_uri"])
    frame = make_partition(3, 500, 0, seed=8, malformed_fraction=0.0, labelled=False)
    frame = split_valid(frame, SCHEMA)[0][SCHEMA.feature_names]
    expected = np.asarray(load_model(trained["model_url"]).predict_proba(frame), dtype=np.float64)
    np.testing.assert_allclose(np.asarray(served.predict(frame), dtype=np.float64), expected, rtol=1e-6)


def test_data_on_s3_or_a_fargate_run_needs_a_tracking_server(monkeypatch):
    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    with pytest.raises(ConfigError, match=tracking.ENV_URI):
        tracking.TrackingSettings.from_env(Settings.from_env({}, data_url="s3://bucket/pipeline"))
    local = tracking.TrackingSettings.from_env(Settings.from_env({}, data_url="/srv/data"))
    assert local.tracking_uri == "sqlite:////srv/data/mlflow.db" and local.artifact_url == "/srv/data/mlflow"


def test_the_tracking_server_reaches_the_aws_flow_runs_without_credentials(monkeypatch):
    from ml_workflows.deploy.work_pool import work_pool_job_template

    monkeypatch.setenv(tracking.ENV_URI, "https://mlflow.internal.example")
    template = work_pool_job_template(OUTPUTS, "123.dkr.ecr.us-east-1.amazonaws.com/x:1")
    assert template["variables"]["properties"]["env"]["default"][tracking.ENV_URI] == "https://mlflow.internal.example"
    monkeypatch.setenv(tracking.ENV_URI, "https://user:secret@mlflow.internal.example")  # pragma: allowlist secret
    with pytest.raises(ConfigError, match="holds credentials"):
        tracking.TrackingSettings.from_env(Settings.from_env({}, data_url="s3://bucket/pipeline"))


def test_each_stack_records_to_its_own_experiment_with_artifacts_in_its_own_bucket(monkeypatch):
    """An MLflow experiment's artifact location is fixed when it is created: two stacks sharing one experiment would
    write into the first stack's bucket, which the second's role cannot. So the AWS flow runs get the stack's own
    experiment and the tracking prefix of the stack's bucket, beside the data prefix the Dask workers are limited to."""
    from ml_workflows.deploy.work_pool import work_pool_job_template

    monkeypatch.setenv(tracking.ENV_URI, "https://mlflow.internal.example")
    monkeypatch.delenv(tracking.ENV_EXPERIMENT, raising=False)
    prod = {**OUTPUTS, "ecs_cluster_arn": OUTPUTS["ecs_cluster_arn"].replace("-dev", "-prod"), "bucket_name": "b-prod"}
    envs = [work_pool_job_template(o, "img:1")["variables"]["properties"]["env"]["default"] for o in (OUTPUTS, prod)]
    assert [e[tracking.ENV_EXPERIMENT] for e in envs] == [f"{current().name}-dev", f"{current().name}-prod"]
    assert envs[0][tracking.ENV_ARTIFACTS] == f"s3://{OUTPUTS['bucket_name']}/mlflow"
    assert envs[1][tracking.ENV_ARTIFACTS] == "s3://b-prod/mlflow"
    assert not envs[0][tracking.ENV_ARTIFACTS].startswith(OUTPUTS["data_url"] + "/")


def test_make_deploy_refuses_a_missing_tracking_server_in_one_line(monkeypatch):
    from ml_workflows.deploy import commands

    monkeypatch.delenv(tracking.ENV_URI, raising=False)
    problem = commands.check_tracking()
    assert problem and tracking.ENV_URI in problem and "\n" not in problem
    assert "tracking" in commands.NEEDS["deploy"] and "tracking" in commands.NEEDS["work-pool"]
    monkeypatch.setenv(tracking.ENV_URI, "https://mlflow.internal.example")
    assert commands.check_tracking() is None
