"""One writer per output root: ``<root>/_LOCK``, held by a step from its first write under the root to its commit.

Two runs writing the same output (two ``score`` runs into ``<data>/predictions``, two ``generate`` runs into
``<data>/datasets``) would both commit, and ``_LATEST`` could end on the one that started first. The second run is
refused as soon as its step asks for the lock, with one line naming the holder; the error is permanent (a
``FileExistsError``: not retried). It does not wait: waiting would keep its cluster (paid for) idle behind a run
of unknown length, and a scheduler's retry is the better wait.

The lock is created atomically — a hard link of a complete file (``link(2)`` fails if the name exists) on a local
disk, a conditional ``PUT`` (``If-None-Match: *``) on S3 — and says who holds it: run id, host, pid, since when and
until when (the holder's step timeout). It is stale once its holder is gone (same host and pid namespace, and that
process is gone or the pid now belongs to another one) or past that time; a stale lock is taken over, saying so,
with the same atomicity (a rename checked afterwards locally, ``If-Match`` on the ETag on S3). While the lock is
held, whatever lies under ``<root>/_staging`` belongs to runs that died (kill -9, a lost machine): the new holder
removes it (:func:`.storage.clean_staging`) and says so. Just before committing, a holder checks that the lock is
still its own (:func:`verify`), so a run that outlived its timeout and lost its lock commits nothing.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import storage

LOCK = "_LOCK"
ATTEMPTS = 4  # create / take over rounds before giving up (only concurrent takers of one stale lock need more than 1)

_held: dict[str, str] = {}  # lock URL -> token of the locks this process holds


class LockHeldError(FileExistsError):
    """Another run holds the output root's lock (permanent for this run: it fails at once, nothing written)."""


class LockLostError(LockHeldError):
    """This run's lock was taken over (it outlived its timeout): it must not commit."""


def root_of(final: str) -> str:
    """The output root a result destined for ``final`` belongs to (where its ``_staging`` and ``_LOCK`` are)."""
    return posixpath.dirname(final.rstrip("/"))


@contextmanager
def hold(
    root: str, run_id: str, storage_options: dict[str, Any] | None, *, timeout: float, log: Any
) -> Iterator[dict[str, Any]]:
    """Hold ``<root>/_LOCK`` for the block (see the module doc); ``log`` gets the takeover and clean-up lines."""
    lock = acquire(root, run_id, storage_options, timeout=timeout, log=log)
    try:
        yield lock
    finally:
        try:
            release(root, lock, storage_options)
        except Exception as exc:  # noqa: BLE001 - never hides the block's own error; a lock left behind goes stale
            log.warning(
                "could not remove the lock of %s (%s): it counts as stale once this process ends or after %s",
                root,
                exc,
                lock["expires"],
            )


def acquire(
    root: str, run_id: str, storage_options: dict[str, Any] | None, *, timeout: float, log: Any
) -> dict[str, Any]:
    """Take the lock of ``root`` (taking over a stale one) and remove the staging left by dead runs; returns it."""
    url = storage.join(root, LOCK)
    fs, path = storage.filesystem(url, storage_options)
    now = datetime.now(UTC)
    mine = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": _process_start(os.getpid()),
        "pid_namespace": _pid_namespace(),
        "since": now.isoformat(),
        "expires": (now + timedelta(seconds=timeout)).isoformat(),
        "token": secrets.token_hex(8),
    }
    payload = json.dumps(mine, indent=2).encode()
    holder: dict[str, Any] | None = None
    for _ in range(ATTEMPTS):
        if _create(fs, path, payload):
            break
        holder, tag = _read(fs, path)
        if holder is None:  # released in the meantime
            continue
        if holder.get("token") == mine["token"]:  # our own PUT, answered 412 on a retry of a lost response
            break
        why = stale(holder)
        if why is None:
            raise LockHeldError(f"{root} is being written by {describe(holder)}; {_advice(url, holder)}")
        if _replace(fs, path, tag, payload):
            log.warning("took over the lock of %s from %s: %s", root, describe(holder), why)
            break
    else:
        raise LockHeldError(f"{root}: could not take its lock (last holder {describe(holder or {})}); retry the run")
    _held[url] = mine["token"]
    try:
        removed = storage.clean_staging(root, storage_options)
    except BaseException:
        release(root, mine, storage_options)
        raise
    if removed:
        files = sum(n for _, n in removed)
        names = ", ".join(name for name, _ in removed)
        log.warning(
            "removed %d staging folder(s) (%d files) that runs which died before committing left under %s: %s",
            len(removed),
            files,
            storage.join(root, storage.STAGING),
            names,
        )
    return mine


def check_free(root: str, storage_options: dict[str, Any] | None) -> None:
    """:class:`LockHeldError` if a live run holds ``root``'s lock now (read only: the CLI asks before Prefect and Dask
    start, so a second run is refused in a second instead of once its step starts; the step still takes the lock)."""
    url = storage.join(root, LOCK)
    fs, path = storage.filesystem(url, storage_options)
    holder, _ = _read(fs, path)
    if holder is not None and stale(holder) is None:
        raise LockHeldError(f"{root} is being written by {describe(holder)}; {_advice(url, holder)}")


def release(root: str, lock: dict[str, Any], storage_options: dict[str, Any] | None) -> None:
    """Remove ``root``'s lock if it is still ``lock`` (a lock taken over from us is left to its new holder)."""
    url = storage.join(root, LOCK)
    _held.pop(url, None)
    fs, path = storage.filesystem(url, storage_options)
    holder, tag = _read(fs, path)
    if holder is not None and holder.get("token") == lock["token"]:
        _remove_if(fs, path, tag)


def verify(root: str, storage_options: dict[str, Any] | None) -> None:
    """Before a commit under ``root``: :class:`LockLostError` if this process held its lock and no longer does."""
    url = storage.join(root, LOCK)
    token = _held.get(url)
    if token is None:
        return  # not a locking caller (a direct call of storage.commit)
    fs, path = storage.filesystem(url, storage_options)
    holder, _ = _read(fs, path)
    if holder is None or holder.get("token") != token:
        now = describe(holder) if holder else "nobody"
        raise LockLostError(
            f"the lock of {root} was taken over while this run held it (it ran past its timeout); now held by "
            f"{now}: nothing committed"
        )


def describe(holder: dict[str, Any]) -> str:
    return (
        f"run {holder.get('run_id', '?')} (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"since {holder.get('since', '?')})"
    )


def stale(holder: dict[str, Any], now: datetime | None = None) -> str | None:
    """Why the lock ``holder`` describes is stale, or ``None`` while its holder may still be writing."""
    now = now or datetime.now(UTC)
    try:
        expires = datetime.fromisoformat(holder["expires"])
    except (KeyError, TypeError, ValueError):
        return "the lock file is unreadable"
    if now > expires:
        return f"it is past its timeout (expired {holder['expires']})"
    same_machine = holder.get("host") == socket.gethostname() and holder.get("pid_namespace") == _pid_namespace()
    if same_machine and not _alive(holder.get("pid"), holder.get("pid_started")):
        return f"its process {holder.get('pid')} is gone"
    return None


def _advice(url: str, holder: dict[str, Any]) -> str:
    expires = holder["expires"]
    return f"retry after it finishes, or delete {url} if that run is gone (it counts as stale after {expires})"


# -- the process that holds a lock ------------------------------------------------------------------------------------
def _process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc; ``None`` where there is no /proc or no such process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])  # a zombie has finished: only its exit status is left


def _pid_namespace() -> str | None:
    """This kernel boot and pid namespace: pids compare only within it (containers sharing a host name do not)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


def _alive(pid: Any, started: Any) -> bool:
    if not isinstance(pid, int):
        return True  # unknown: not provably gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if started is None or not Path("/proc").is_dir():
        return True
    return _process_start(pid) == started  # None: a zombie; another value: the pid was reused


# -- atomic create / read / replace / remove, on a local disk or S3 ----------------------------------------------------
def _create(fs: Any, path: str, payload: bytes) -> bool:
    """Create the lock file with ``payload`` unless it exists; whether this call created it."""
    if storage.is_local(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{secrets.token_hex(4)}"
        try:
            Path(tmp).write_bytes(payload)
            os.link(tmp, path)  # fails if the name exists; readers never see a partial file
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True
    try:
        fs.pipe_file(path, payload, mode="create")  # If-None-Match: * (FileExistsError when the key exists)
    except FileExistsError:
        return False
    finally:
        fs.invalidate_cache()
    return True


def _read(fs: Any, path: str) -> tuple[dict[str, Any] | None, Any]:
    """``(holder, tag)``: the lock's content and what identifies this version of it (bytes locally, ETag on S3)."""
    fs.invalidate_cache()
    try:
        with fs.open(path, "rb") as f:
            data = f.read()  # on S3 read with If-Match on the ETag just looked up: content and tag agree
            tag = data if storage.is_local(fs) else f.details.get("ETag")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if not storage.is_local(fs) and "expired" in type(exc).__name__.lower():
            return _read(fs, path)  # replaced between the lookup and the read
        raise
    try:
        holder = json.loads(data)
    except ValueError:
        holder = {}
    return (holder if isinstance(holder, dict) else {}), tag


def _replace(fs: Any, path: str, tag: Any, payload: bytes) -> bool:
    """Replace the lock version ``tag`` by ``payload``; ``False`` if another run changed it first."""
    if storage.is_local(fs):
        return _remove_if(fs, path, tag) and _create(fs, path, payload)
    return _if_match(fs, path, "put_object", tag, Body=payload)


def _remove_if(fs: Any, path: str, tag: Any) -> bool:
    """Remove the lock if it is still version ``tag``; whether it was."""
    if storage.is_local(fs):
        # No compare-and-delete in POSIX: move it aside, then check what was moved (and put back a newer lock).
        aside = f"{path}.gone-{secrets.token_hex(4)}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if Path(aside).read_bytes() == tag:
            Path(aside).unlink()
            return True
        with suppress(FileExistsError):  # a third run took the name meanwhile: verify() tells the moved one's holder
            os.link(aside, path)
        Path(aside).unlink()
        return False
    return _if_match(fs, path, "delete_object", tag)


def _if_match(fs: Any, path: str, call: str, tag: Any, **kwargs: Any) -> bool:
    """One S3 call on the lock object conditioned on its version ``tag`` (``If-Match``); ``False`` if that version is
    no longer there (412, or for a delete the object gone)."""
    bucket, key, _ = fs.split_path(path)
    try:
        fs.call_s3(call, Bucket=bucket, Key=key, IfMatch=tag, **kwargs)
    except OSError as exc:
        if _precondition_failed(exc) or (call == "delete_object" and isinstance(exc, FileNotFoundError)):
            return False
        raise
    finally:
        fs.invalidate_cache()
    return True


def _precondition_failed(exc: OSError) -> bool:
    """S3 answered 412 (an ``If-Match`` that no longer holds)."""
    cause = getattr(exc, "__cause__", None)
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "412") or exc.errno == errno.EINVAL and "precondition" in str(exc).lower()
