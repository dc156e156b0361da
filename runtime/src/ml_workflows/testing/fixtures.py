"""The fixtures of the ml_workflows pytest plugin: one Prefect test server per session, small pipeline settings, a
moto S3 server on loopback and a fresh bucket on it."""

from __future__ import annotations

import os
import socket

import pytest

from ml_workflows.project import current

# Small, fast sizes; every test overrides PIPELINE_DATA_URL with its own directory or bucket.
SMALL = {
    "PIPELINE_SAMPLE_TRAIN_ROWS": "6000",
    "PIPELINE_SAMPLE_TRAIN_FILES": "3",
    "PIPELINE_SAMPLE_SCORE_ROWS": "20000",
    "PIPELINE_SAMPLE_SCORE_FILES": "4",
    "PIPELINE_SAMPLE_MALFORMED_FRACTION": "0.005",
    "PIPELINE_BATCH_ROWS": "2000",
    "PIPELINE_N_WORKERS": "2",
    "PIPELINE_RETRIES": "0",
    "PIPELINE_RETRY_DELAY": "0",
    "PIPELINE_TASK_TIMEOUT": "300",
    "PIPELINE_WORKER_TIMEOUT": "60",
}


def small_settings(mp: pytest.MonkeyPatch, data_url: str | os.PathLike[str], **more: str) -> None:
    """Through ``mp``: no PIPELINE_* variable of the caller's, the :data:`SMALL` sizes, data at ``data_url``, then
    ``more`` (e.g. ``PIPELINE_RETRIES="2"``). For fixtures wider than a test, with ``pytest.MonkeyPatch.context()``."""
    for key in [k for k in os.environ if k.startswith("PIPELINE_")]:
        mp.delenv(key)
    for key, value in {**SMALL, "PIPELINE_DATA_URL": str(data_url), **more}.items():
        mp.setenv(key, value)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A temporary Prefect API + database for the whole session (flows run against it)."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def pipeline_env(monkeypatch, tmp_path, prefect_server):
    """PIPELINE_* variables for a small local run with data under ``tmp_path``; returns the data dir."""
    data = tmp_path / "data"
    small_settings(monkeypatch, data)
    if current().tracks:
        monkeypatch.setenv("PIPELINE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # also for s3:// data
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3():
    """moto in server mode on 127.0.0.1 (a real HTTP endpoint, as s3fs needs); yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_s3, monkeypatch):
    """A fresh bucket on the moto server, with fake credentials in the environment."""
    import uuid

    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - fake credentials for moto  # pragma: allowlist secret
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    name = f"pipeline-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1").create_bucket(Bucket=name)
    return name
