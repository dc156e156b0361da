"""Atomic commit of outputs on a local disk or S3: stage, move, then write the manifest last.

A result directory counts as committed only once its ``_MANIFEST.json`` exists; the manifest is the
last object written and lists every file with its row count. Readers go through
:func:`read_manifest` / :func:`committed_files` and never list a directory that has no manifest, so
they never see a half-written result. A failed run removes its staging area and writes no manifest.
On S3 every ``PUT`` is atomic, so "manifest last" is the commit point; locally the manifest is
written to a temporary name and renamed.

Layout under a root URL (e.g. ``<data>/predictions``)::

    _staging/<run_id>/...       work in progress (removed on failure)
    <run_id>/part-*.parquet     committed result
    <run_id>/_MANIFEST.json     commit marker, written last
    _LATEST                     the current result: the newest committed one (for models: the current model,
                                moved by promotion only); the file keeps its name, so data of earlier runs reads
"""

from __future__ import annotations

import json
import posixpath
import secrets
import warnings
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

MANIFEST = "_MANIFEST.json"
LATEST = "_LATEST"
STAGING = "_staging"


class NotCommittedError(FileNotFoundError):
    """The location holds no committed result (no manifest)."""


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the path inside it (local paths, ``s3://`` URLs)."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path.rstrip("/")


def open_write(url: str, storage_options: dict[str, Any] | None = None) -> Any:
    """Open ``url`` for binary writing, creating parent directories on a local disk."""
    fs, path = filesystem(url, storage_options)
    if _is_local(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    return fs.open(path, "wb")


def join(url: str, *parts: str) -> str:
    return posixpath.join(url.rstrip("/"), *parts) if "://" in url else posixpath.join(url, *parts)


def staging_url(final_url: str, run_id: str) -> str:
    """Where a result destined for ``final_url`` is written first (a sibling ``_staging`` dir)."""
    parent, name = posixpath.split(final_url.rstrip("/"))
    return join(parent, STAGING, f"{name}-{run_id}")


def write_json(url: str, data: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    """Write a small JSON object so that a reader sees all of it or nothing."""
    fs, path = filesystem(url, storage_options)
    payload = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    if _is_local(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{secrets.token_hex(4)}"
        fs.pipe_file(tmp, payload)
        fs.mv(tmp, path)  # rename(2): atomic on one filesystem
    else:
        fs.pipe_file(path, payload)  # one PUT: atomic on S3


def read_json(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    fs, path = filesystem(url, storage_options)
    with fs.open(path, "rb") as f:
        return json.loads(f.read())


def remove(url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Remove a directory tree if it exists (staging areas of failed attempts)."""
    fs, path = filesystem(url, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    _invalidate(fs)


def commit(
    staging: str,
    final: str,
    manifest: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
    *,
    replace: bool = False,
    update_latest: bool = True,
) -> dict[str, Any]:
    """Move ``staging`` to ``final`` and write the manifest there last; returns the manifest.

    ``replace=True`` allows overwriting an earlier committed result at ``final`` (regenerated
    datasets); its manifest is removed first, so a reader sees the old result, then nothing, then
    the new one — never a mixture.
    """
    fs, src = filesystem(staging, storage_options)
    _, dst = filesystem(final, storage_options)
    manifest_url = join(final, MANIFEST)
    if fs.exists(dst):
        if not replace:
            raise FileExistsError(f"{final} already exists; results are never overwritten")
        if fs.exists(join(dst, MANIFEST)):
            fs.rm(join(dst, MANIFEST))
        fs.rm(dst, recursive=True)
    _invalidate(fs)
    fs.makedirs(posixpath.dirname(dst), exist_ok=True)
    if fs.exists(src):
        if _is_local(fs):
            fs.mv(src, dst, recursive=True)
        else:  # object stores have no rename: copy every object, then drop the staging copies
            for name in fs.find(src):
                fs.copy(name, dst + name[len(src) :])
            fs.rm(src, recursive=True)
    else:
        fs.makedirs(dst, exist_ok=True)
    _invalidate(fs)
    manifest = {"committed_at": datetime.now(UTC).isoformat(), **manifest}
    write_json(manifest_url, manifest, storage_options)
    if update_latest:
        write_json(join(posixpath.dirname(final.rstrip("/")), LATEST), {"latest": final}, storage_options)
    return manifest


def read_manifest(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a committed result; :class:`NotCommittedError` if there is none."""
    try:
        return read_json(join(url, MANIFEST), storage_options)
    except FileNotFoundError as exc:
        raise NotCommittedError(f"{url} holds no committed result (no {MANIFEST})") from exc


def current(root: str, storage_options: dict[str, Any] | None = None) -> str:
    """URL of the current result under ``root``: the newest committed result (``<data>/predictions``), the current
    model (``<data>/models``: the one promotion made current)."""
    try:
        return read_json(join(root, LATEST), storage_options)["latest"]
    except FileNotFoundError as exc:
        raise NotCommittedError(f"nothing committed under {root} yet") from exc


def latest(root: str, storage_options: dict[str, Any] | None = None) -> str:
    """Deprecated since ml-workflows 2026.12.6: :func:`current` (one name for the current model everywhere)."""
    warnings.warn("storage.latest() is now storage.current()", DeprecationWarning, stacklevel=2)
    return current(root, storage_options)


def committed_files(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Data files of a committed result, as full URLs, in manifest order."""
    manifest = read_manifest(url, storage_options)
    return [join(url, f["path"]) for f in manifest["files"]]


def _is_local(fs: AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _invalidate(fs: AbstractFileSystem) -> None:
    fs.invalidate_cache()


def parquet_options(*dictionary_columns: str) -> dict[str, Any]:
    """Write options for every parquet file the pipeline writes: dictionary-encode only ``dictionary_columns``.

    Dictionary encoding pays off for columns with few distinct values (labels, predictions, reasons,
    categories). On float features, ids and scores pyarrow builds a dictionary, overflows its page
    limit, falls back to plain pages and still writes the dictionary: measured on 250k x 20 float32
    rows, writes 8.7x slower, files 1.5x bigger and reads 1.9x slower than plain encoding.
    """
    return {"compression": "snappy", "use_dictionary": list(dictionary_columns)}


def list_parquet(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Data files of a dataset: the manifest's list if the dataset was committed, else ``*.parquet``."""
    try:
        return committed_files(url, storage_options)
    except NotCommittedError:
        fs, path = filesystem(url, storage_options)
        fs.invalidate_cache()
        files = sorted(p for p in fs.find(path) if p.endswith(".parquet") and "/_" not in p[len(path) :])
        if not files:
            raise FileNotFoundError(f"no parquet files under {url}") from None
        protocol = url.split("://", 1)[0] + "://" if "://" in url else ""
        return [protocol + p for p in files]
