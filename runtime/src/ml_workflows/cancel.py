"""Stopping Dask work for good before cleaning up after a failed or interrupted step.

Cancelling a future does not stop a task that is already running on a worker: it finishes its file
and writes it. A step that removes its staging area on failure must first wait for those tasks, or a
file written a moment later would leave a half-filled staging area behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from distributed import Client

BUSY = ("executing", "long-running", "cancelled", "resumed")


def _busy_keys(keys: list[str], dask_worker: Any = None) -> list[str]:
    wanted = set(keys)
    return [str(k) for k, ts in dask_worker.state.tasks.items() if str(k) in wanted and ts.state in BUSY]


def cancel_and_drain(client: Client, futures: Sequence[Any], timeout: float = 60.0) -> bool:
    """Cancel ``futures`` and wait until no worker still runs one of them; True if drained in time."""
    keys = [str(f.key) for f in futures]
    with suppress(Exception):
        client.cancel(list(futures))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_busy_keys, keys, on_error="ignore")
        except Exception:
            return False  # the cluster is gone: nothing runs any more
        if not any(running.values()):
            return True
        time.sleep(0.1)
    return False
