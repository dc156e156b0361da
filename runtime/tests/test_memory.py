"""A worker memory limit too small for the work fails the run, naming a limit that fits, instead of hanging it.

Real process-based LocalClusters with low limits. At start each worker imports what the pipeline's
tasks import and reports its memory: a limit that leaves no room above that baseline is refused, and
the limit the message names then runs the pipeline. During a step, a worker whose memory stays above
Dask's pause threshold with nothing finishing fails the wait after ``PIPELINE_PAUSED_TIMEOUT``; the
limit that message names runs the same work.
"""

from __future__ import annotations

import re

import pytest

from ml_workflows import cluster
from ml_workflows.project import current
from ml_workflows.settings import ConfigError, Settings

flows = current().module("flows")

SUGGESTED = re.compile(r"set PIPELINE_MEMORY_LIMIT=(\d+(?:MiB|GiB)) or more")


def _run_small_tasks(settings: Settings, ballast: dict[str, int]) -> list[int]:
    """Start the cluster the settings describe, make its worker hold memory, then wait for four small tasks.

    ``ballast``: ``{"fill": fraction}`` fills the worker up to that fraction of its limit and records the
    bytes it added as ``ballast["bytes"]``; ``{"bytes": n}`` adds n bytes.
    """

    def hold(dask_worker, nbytes):  # memory outside Dask's accounting, like imports: Dask can pause, not spill
        import numpy as np

        dask_worker.test_ballast = np.ones(nbytes, dtype=np.uint8)  # written, so resident

    def inc(x):
        return x + 1

    with cluster.dask_client(settings) as client:
        if "fill" in ballast:
            (worker,) = client.scheduler_info(n_workers=-1)["workers"].values()
            used = max(client.run(lambda dask_worker: dask_worker.monitor.get_process_memory()).values())
            ballast["bytes"] = int(worker["memory_limit"] * ballast["fill"]) - used
        client.run(hold, nbytes=ballast["bytes"])
        futures = client.map(inc, range(4), pure=False)
        return [f.result() for f in cluster.as_completed_watched(futures, settings)]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_limit_with_no_room_above_the_baseline_is_refused_and_the_named_limit_runs(pipeline_env, monkeypatch):
    # ~240 MiB after the pipeline's imports (Python 3.12, Linux): over 80% of 400 MiB leaves less than
    # 256 MiB of room, and under 95% (where Dask would restart the worker instead).
    monkeypatch.setenv("PIPELINE_PROCESSES", "true")
    monkeypatch.setenv("PIPELINE_N_WORKERS", "1")
    monkeypatch.setenv("PIPELINE_MEMORY_LIMIT", "400MiB")
    with pytest.raises(cluster.WorkerMemoryError) as refused:
        flows.batch_pipeline()
    message = str(refused.value)
    assert message.startswith("PIPELINE_MEMORY_LIMIT=400MiB leaves no room to work: a worker"), message
    assert "at start" in message and "Dask pauses it at 80%" in message
    fits = SUGGESTED.search(message)[1]

    monkeypatch.setenv("PIPELINE_MEMORY_LIMIT", fits)
    result = flows.batch_pipeline()
    assert result["scoring"]["rows"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_workers_paused_with_nothing_finishing_fail_the_wait_and_the_named_limit_runs(tmp_path):
    settings = Settings(data_url=str(tmp_path), processes=True, n_workers=1, memory_limit="1GiB", paused_timeout=2.0)
    ballast = {"fill": 0.88}  # above the 80% pause, below the 95% restart
    with pytest.raises(cluster.WorkerMemoryError) as stalled:
        _run_small_tasks(settings, ballast)
    message = str(stalled.value)
    assert message.startswith("every Dask worker has stayed paused for "), message
    assert "PIPELINE_MEMORY_LIMIT=1GiB is too small for this work" in message
    assert "PIPELINE_PAUSED_TIMEOUT" in message
    fits = SUGGESTED.search(message)[1]

    # The same ballast, in bytes, under the limit the message names: the tasks run.
    assert _run_small_tasks(settings.replace(memory_limit=fits), {"bytes": ballast["bytes"]}) == [1, 2, 3, 4]


def test_paused_timeout_must_be_positive():
    with pytest.raises(ConfigError, match="PIPELINE_PAUSED_TIMEOUT=0.0"):
        Settings.from_env({"PIPELINE_PAUSED_TIMEOUT": "0"})


@pytest.mark.parametrize(
    ("used_mib", "pause", "expected"), [(240, 0.8, "1GiB"), (434, 0.8, "1280MiB"), (901, 0.8, "1792MiB")]
)
def test_limit_that_fits_leaves_room_above_the_pause_threshold(used_mib, pause, expected):
    limit = cluster.limit_that_fits(used_mib * 2**20, pause)
    assert cluster.limit_text(limit) == expected
    assert limit * pause - used_mib * 2**20 >= cluster.SUGGESTED_ROOM > cluster.MIN_ROOM
