"""The Dask cluster a flow runs on, chosen by ``PIPELINE_CLUSTER``; always closed, pass or fail.

* ``local`` (default): a ``LocalCluster`` on this machine. Thread-based by default: scoring is I/O
  and memory bound and threads avoid pickling between processes (``PIPELINE_PROCESSES=true`` to
  use worker processes, e.g. with ``PIPELINE_MEMORY_LIMIT`` to cap each one).
* ``existing``: a running scheduler (``PIPELINE_SCHEDULER_ADDRESS``); only the client is closed.
* ``fargate``: a temporary ``dask_cloudprovider.aws.FargateCluster`` built from the Pulumi stack
  outputs (:func:`.fargate.fargate_cluster_kwargs`); retired when the flow ends, pass or fail.

Before any work the client's, scheduler's and workers' versions are compared
(``Client.get_versions`` + Dask's own comparison); a mismatch raises :class:`ClusterVersionError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from distributed import Client, LocalCluster
from distributed import versions as version_module

{% if cookiecutter.code_source == "git" -%}
from .git_checkout import ship_to_workers
{% endif -%}
from .settings import Settings

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
        from dask_cloudprovider.aws import FargateCluster

        from .fargate import fargate_cluster_kwargs

        kwargs = fargate_cluster_kwargs(settings.load_aws_outputs(), image=settings.image, n_workers=settings.n_workers)
        return FargateCluster(**kwargs)
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
{%- if cookiecutter.code_source == "git" %}
        if shipped := ship_to_workers(client):  # code from git: the checkout's code on every worker
            log.info("project code from %s sent to the Dask workers", shipped)
{%- endif %}
        log.info("Dask cluster ready: %s (dashboard %s)", client.scheduler.address, client.dashboard_link)
        yield client
    finally:
        if client is not None:
            with suppress(Exception):
                client.close()
        if cluster is not None:
            cluster.close()
