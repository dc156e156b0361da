"""The Dask cluster a flow runs on, chosen by ``PIPELINE_CLUSTER``; always closed, pass or fail.

* ``local`` (default): a ``LocalCluster`` on this machine. Thread-based by default: scoring is I/O
  and memory bound and threads avoid pickling between processes (``PIPELINE_PROCESSES=true`` to
  use worker processes, e.g. with ``PIPELINE_MEMORY_LIMIT`` to cap each one).
* ``existing``: a running scheduler (``PIPELINE_SCHEDULER_ADDRESS``); only the client is closed.
* ``fargate``: a temporary ``dask_cloudprovider.aws.FargateCluster`` built from the Pulumi stack
  outputs (:func:`.fargate.fargate_cluster_kwargs`); retired when the flow ends, pass or fail.

Before any work the client's, scheduler's and workers' versions are compared
(``Client.get_versions`` + Dask's own comparison); a mismatch raises :class:`ClusterVersionError`.
Then each worker imports what the pipeline's tasks import and reports its memory: a worker memory
limit (``PIPELINE_MEMORY_LIMIT``) that leaves no room above that baseline is refused with a value
that fits (:class:`WorkerMemoryError`), and :func:`as_completed_watched` fails a step whose workers
all stay paused (Dask pauses a worker at 80% of its limit) with nothing finishing, instead of waiting.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed
from distributed import versions as version_module

from .git_checkout import ship_to_workers
from .project import current
from .settings import ConfigError, Settings

log = logging.getLogger(__name__)

# Checked in addition to Dask's own list (python, dask, distributed, msgpack, cloudpickle, tornado,
# toolz, numpy, pandas, lz4): what the model and the parquet I/O need to agree on.
EXTRA_PACKAGES = ["sklearn", "pyarrow", "fsspec"]


class ClusterVersionError(RuntimeError):
    """Client, scheduler and workers run different package versions."""


def make_cluster(settings: Settings) -> Any | None:
    """A new cluster for ``local``/``fargate`` mode, ``None`` for ``existing`` mode."""
    if settings.cluster == "existing":
        return None
    if settings.cluster == "fargate":
        from .fargate import fargate_cluster_class, fargate_cluster_kwargs

        kwargs = fargate_cluster_kwargs(settings.load_aws_outputs(), image=settings.image, n_workers=settings.n_workers)
        return fargate_cluster_class()(**kwargs)
    return LocalCluster(
        n_workers=settings.n_workers,
        threads_per_worker=settings.threads_per_worker,
        processes=settings.processes,
        memory_limit=settings.memory_limit,
        dashboard_address=":0",  # a free port: other clusters may be running on this machine
        **({"host": "127.0.0.1"} if settings.processes else {}),  # threads talk in-process
    )


def check_versions(client: Client) -> dict[str, Any]:
    """Compare client, scheduler and worker versions; :class:`ClusterVersionError` on any difference.

    ``Client.get_versions(check=True)`` only *warns* about mismatched packages in current
    distributed releases, so the same comparison (``distributed.versions.error_message``) is made
    here and any mismatch is an error: a cluster on other versions can fail late or compute wrong.
    """
    versions = client.get_versions(packages=EXTRA_PACKAGES)
    report = version_module.error_message(versions["scheduler"], versions["workers"], versions["client"])
    problem = report["error"] or report["warning"]
    if problem:
        raise ClusterVersionError(
            f"the Dask cluster at {client.scheduler.address} runs other package versions than this client; "
            "run the flow, the scheduler and every worker from the same project image / environment "
            f"(see `make check-pins`). Dask reports:\n{problem}"
        )
    return versions


@contextmanager
def dask_client(settings: Settings) -> Iterator[Client]:
    """A connected, version-checked client; the cluster it created is closed however the block ends."""
    cluster = None
    client = None
    try:
        cluster = make_cluster(settings)
        address = settings.scheduler_address if cluster is None else cluster
        client = Client(address, timeout=min(settings.worker_timeout, 60))
        client.wait_for_workers(1, timeout=settings.worker_timeout)
        check_versions(client)
        if current().code_source == "git" and (shipped := ship_to_workers(client)):  # the checkout's code, everywhere
            log.info("project code from %s sent to the Dask workers", shipped)
        check_memory_room(client, settings)
        log.info("Dask cluster ready: %s (dashboard %s)", client.scheduler.address, client.dashboard_link)
        yield client
    finally:
        if client is not None:
            with suppress(Exception):
                client.close()
        if cluster is not None:
            cluster.close()


# --- worker memory: refuse a limit with no room at start, fail a step whose workers stay paused ---------------


def worker_modules() -> list[str]:
    """What the pipeline's tasks import on a worker (scoring, the project's sample data and model, dask.dataframe
    for training); the model's own fit-time libraries come on top and fit in MIN_ROOM."""
    package = current().package
    return ["ml_workflows.scoring", f"{package}.sample_data", f"{package}.model", "dask.dataframe"]


# Room between a worker's baseline and its pause threshold. Less than MIN_ROOM cannot hold a record batch of
# PIPELINE_BATCH_ROWS rows in pandas and Arrow plus the model's fit-time imports (dask-ml, scikit-learn: ~70
# MiB): refused. A suggested limit leaves SUGGESTED_ROOM (measured: the sample pipeline with 500k-row files
# peaked 324 MiB above the baseline).
MIN_ROOM = 256 * 2**20
SUGGESTED_ROOM = 512 * 2**20
LIMIT_STEP = 256 * 2**20


class WorkerMemoryError(ConfigError):
    """A worker memory limit too small for the work: refused at start, or every worker paused with no progress."""


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def limit_text(n: int) -> str:
    """A memory limit as Dask and PIPELINE_MEMORY_LIMIT read it: ``768MiB``, ``2GiB``."""
    return f"{n // 2**30}GiB" if n % 2**30 == 0 else f"{n // 2**20}MiB"


def limit_that_fits(used: float, pause: float) -> int:
    """The smallest limit (a multiple of 256 MiB) whose pause threshold leaves SUGGESTED_ROOM above ``used`` bytes."""
    return math.ceil((used + SUGGESTED_ROOM) / pause / LIMIT_STEP) * LIMIT_STEP


def pause_fraction() -> float | None:
    """Dask's ``distributed.worker.memory.pause`` (0.8 by default); None when pausing is off."""
    value = dask.config.get("distributed.worker.memory.pause")
    return float(value) if value else None


def memory_setting(settings: Settings) -> str:
    """What sets a worker's memory limit in this cluster mode, and its value where this process knows it."""
    if settings.cluster == "local":
        return f"PIPELINE_MEMORY_LIMIT={settings.memory_limit}"
    if settings.cluster == "fargate":
        return "the Fargate worker size (worker_vcpus, 4 GiB per vCPU)"
    return "the workers' memory limit (dask worker --memory-limit)"


def memory_fix(settings: Settings, limit: int) -> str:
    """How to give each worker ``limit`` bytes in this cluster mode."""
    if settings.cluster == "local":
        return f"set PIPELINE_MEMORY_LIMIT={limit_text(limit)} or more"
    if settings.cluster == "fargate":
        return f"give the Fargate workers {limit_text(limit)} or more (a larger worker_vcpus)"
    return f"start the workers with --memory-limit {limit_text(limit)} or more"


def _warm_up(dask_worker: Any, modules: list[str]) -> dict[str, Any]:
    """On a worker: import what the pipeline's tasks import, then report its memory as Dask measures it."""
    for module in modules:
        importlib.import_module(module)
    return {"memory": dask_worker.monitor.get_process_memory(), "limit": dask_worker.memory_manager.memory_limit}


def check_memory_room(client: Client, settings: Settings) -> dict[str, dict[str, Any]]:
    """Each worker's memory at start (after the pipeline's imports) and limit; :class:`WorkerMemoryError` if the
    room between that baseline and the pause threshold is under MIN_ROOM. Returns the workers' reports."""
    pause = pause_fraction()
    modules = worker_modules() + (["s3fs"] if settings.data_url.startswith("s3://") else [])
    if settings.cluster == "local" and not settings.processes:
        # Thread workers share this process, which imports what each step needs when it needs it (a scoring
        # run never needs dask.dataframe, with sparse, numba and scipy behind it): measured as they are.
        modules = []
    try:
        reports = client.run(_warm_up, modules=modules)
    except OSError as exc:  # the nanny restarts a worker that goes over 95% of its limit: it dropped the comm
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info(n_workers=-1)["workers"].values()]
        limit = max(limits, default=0)
        raise WorkerMemoryError(
            f"{memory_setting(settings)} is too small: a Dask worker went over it while importing the pipeline's "
            f"libraries and was restarted ({type(exc).__name__}); {memory_fix(settings, max(2 * limit, 2**30))}"
        ) from None
    for address, report in sorted(reports.items()):
        limit, used = report["limit"], report["memory"]
        if not limit or pause is None:
            continue  # no limit, or Dask never pauses: nothing can hang on it
        threshold = pause * limit
        if threshold - used < MIN_ROOM:
            raise WorkerMemoryError(
                f"{memory_setting(settings)} leaves no room to work: a worker ({address}) uses {_mib(used)} at "
                f"start (Python, Dask and the pipeline's libraries) of its {_mib(limit)} limit, and Dask pauses it "
                f"at {pause:.0%} ({_mib(threshold)}); {memory_fix(settings, limit_that_fits(used, pause))}"
            )
    log.info("worker memory at start: %s", ", ".join(f"{_mib(r['memory'])}" for r in reports.values()))
    return reports


def paused_error(settings: Settings, workers: dict[str, Any], seconds: float) -> WorkerMemoryError:
    pause = pause_fraction() or 1.0
    used = max((w.get("metrics", {}).get("memory") or 0 for w in workers.values()), default=0)
    limit = max((w.get("memory_limit") or 0 for w in workers.values()), default=0)
    return WorkerMemoryError(
        f"every Dask worker has stayed paused for {seconds:.0f}s with no task finishing: a worker holds "
        f"{_mib(used)} of its {_mib(limit)} limit and Dask pauses it at {pause:.0%}; {memory_setting(settings)} is "
        f"too small for this work: {memory_fix(settings, max(2 * limit, limit_that_fits(used, pause)))} "
        "(or lower PIPELINE_BATCH_ROWS); PIPELINE_PAUSED_TIMEOUT sets this wait"
    )


def as_completed_watched(futures: list[Any], settings: Settings) -> Iterator[Any]:
    """Like ``distributed.as_completed``, but raises :class:`WorkerMemoryError` once every worker has stayed paused
    for ``settings.paused_timeout`` seconds with no future finishing (a memory limit too small for the work
    would otherwise hold the run forever)."""
    if not futures:
        return
    client = futures[0].client
    pending = as_completed(futures)
    paused_since: float | None = None
    next_look = time.monotonic() + 1.0
    while not pending.is_empty():
        ready = pending.next_batch(block=False)
        if ready:
            paused_since = None
            yield from ready
            continue
        now = time.monotonic()
        if now >= next_look:
            next_look = now + 1.0
            workers = client.scheduler_info(n_workers=-1).get("workers", {})
            if workers and all(w.get("status") == "paused" for w in workers.values()):
                if paused_since is None:
                    paused_since = now
                if now - paused_since >= settings.paused_timeout:
                    raise paused_error(settings, workers, now - paused_since)
            else:
                paused_since = None
        time.sleep(0.02)
