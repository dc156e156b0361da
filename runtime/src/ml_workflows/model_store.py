"""Model artifacts: a directory committed atomically (see :mod:`.storage`)::

    model.json        schema, metrics and the library versions it was trained under
    model.pkl         the fitted model object (pickle)
    _MANIFEST.json    commit marker

:func:`load_model` reads ``model.json`` first and refuses to unpickle a model trained under other
library versions: a pickle from another scikit-learn/numpy/pandas may load and still predict wrong.
"""

from __future__ import annotations

import pickle  # noqa: S403 - artifacts are written by this pipeline into its own storage
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import storage

# Distributions whose versions must match between training and scoring (absent ones are skipped).
VERSIONED = ("dask", "distributed", "scikit-learn", "numpy", "pandas", "pyarrow", "scipy")


class ModelVersionError(RuntimeError):
    """The artifact was trained under library versions other than the ones installed here."""


class ModelUnreadableError(RuntimeError):
    """A committed model whose files cannot be read back (truncated or corrupted after its commit)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(
            f"model {url} cannot be read ({type(cause).__name__}: {cause}): `make rollback` makes the previous "
            "model current again; a training run replaces it (an unreadable current model counts as none)"
        )


# What unpickling or parsing a damaged file raises; an OSError (a storage hiccup) is not among them: it may heal.
_DAMAGED = (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError, TypeError)


def library_versions() -> dict[str, str]:
    versions = {}
    for dist in VERSIONED:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    versions["python"] = ".".join(platform.python_version_tuple()[:2])
    return versions


def save_model(model: Any, url: str, info: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    """Write ``model.json`` (``info`` + versions) and ``model.pkl`` into ``url`` (a staging directory)."""
    with storage.open_write(storage.join(url, "model.pkl"), storage_options) as f:
        pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    storage.write_json(storage.join(url, "model.json"), {**info, "versions": library_versions()}, storage_options)


def read_info(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    storage.read_manifest(url, storage_options)  # NotCommittedError for half-written models
    try:
        return storage.read_json(storage.join(url, "model.json"), storage_options)
    except ValueError as exc:  # json.JSONDecodeError: truncated or overwritten
        raise ModelUnreadableError(url, exc) from exc


def load_model(url: str, storage_options: dict[str, Any] | None = None, *, check_versions: bool = True) -> Any:
    """Load a committed model; :class:`ModelVersionError` if it was trained under other versions."""
    info = read_info(url, storage_options)
    if check_versions:
        here = library_versions()
        trained = info.get("versions", {})
        diff = {
            k: (trained.get(k), here.get(k)) for k in sorted(set(here) | set(trained)) if trained.get(k) != here.get(k)
        }
        if diff:
            lines = ", ".join(f"{k} trained {a} / here {b}" for k, (a, b) in diff.items())
            raise ModelVersionError(
                f"model {url} was trained under other library versions ({lines}); "
                "retrain it with this environment (or score with the environment it was trained in)"
            )
    fs, path = storage.filesystem(storage.join(url, "model.pkl"), storage_options)
    with fs.open(path, "rb") as f:
        try:
            return pickle.load(f)  # noqa: S301 - our own artifact, versions verified above
        except _DAMAGED as exc:
            raise ModelUnreadableError(url, exc) from exc
