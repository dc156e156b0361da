"""Errors no retry can fix, and keeping Dask from retrying them.

Prefect retries a failed step and Dask a failed task (``client.map(..., retries=n)``) whatever the error: meant for
flaky I/O (a dropped connection, S3's 503 SlowDown, a lost worker). A missing file, a denied permission, a
malformed value or a bug in the seam fails the same way every time: a retry only repeats the traceback and the
wait (Dask's retries run inside each of Prefect's). Standard library only: :class:`Once` runs on Dask workers.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

# Errors of the standard library no retry heals (the steps add the pipeline's own: steps.PERMANENT_ERRORS).
ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # also pyarrow's ArrowInvalid (a corrupt file) and the pipeline's malformed-input errors
    KeyError,
    TypeError,
    AttributeError,
    ImportError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,  # S3's AccessDenied: a policy, not a blip
)


class Failed:
    """A permanent error a worker returned instead of raising it (so that Dask does not retry the task)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.traceback = traceback.format_exc()


class Once:
    """``fn`` for ``client.map(..., retries=n)``: an error of ``ERRORS`` comes back as a :class:`Failed` value, so
    Dask runs the task once; :func:`result` raises it where the results are collected. Other errors (OSError and
    the like) still raise on the worker and are retried."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "task")  # Dask names the tasks after it (score_file-<id>)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except ERRORS as exc:
            return Failed(exc)


def result(value: Any) -> Any:
    """``value``, or the permanent error a :class:`Once` task returned, raised here with the worker's traceback."""
    if isinstance(value, Failed):
        value.error.add_note(f"raised on a Dask worker:\n{value.traceback}")
        raise value.error
    return value
