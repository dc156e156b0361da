"""Data: a synthetic dataset with a known signal, validation/quarantine, parquet I/O (local or S3).

The functions named ``*_file`` / ``*_partition`` run on Dask workers, one per parquet file. They are
plain module-level functions, so workers import them from the project package (the same image or
virtualenv as the flow) and only file names and small dicts travel through the scheduler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .publish import filesystem, join, open_write

ID = "id"
LABEL = "label"
REASON = "quarantine_reason"
# Features outside +/- this are treated as corrupt (sensor glitches, unit errors, sentinel values).
MAX_ABS_FEATURE = 1e6
# Label noise of the synthetic data: y = 1[signal + N(0, NOISE^2) > 0] with Var(signal) = 1, so the
# best possible accuracy is 1 - atan(NOISE)/pi (about 0.907). The model must reach min_accuracy.
NOISE = 0.3
BAYES_ACCURACY = 1 - math.atan(NOISE) / math.pi


def parquet_options(*dictionary_columns: str) -> dict[str, Any]:
    """Write options for every parquet file the pipeline writes: dictionary-encode only ``dictionary_columns``.

    Dictionary encoding pays off for columns with few distinct values (labels, predictions, reasons).
    On float features, ids and scores pyarrow builds a dictionary, overflows its page limit, falls
    back to plain pages and still writes the dictionary: measured on 250k x 20 float32 rows, writes
    8.7x slower, files 1.5x bigger and reads 1.9x slower than plain encoding (BENCHMARKS.md).
    """
    return {"compression": "snappy", "use_dictionary": list(dictionary_columns)}


def feature_names(n: int) -> list[str]:
    return [f"x{i:03d}" for i in range(n)]


def true_weights(features: int, seed: int) -> np.ndarray:
    """The known signal: unit-variance linear combination of the (standard normal) features."""
    w = np.random.default_rng([seed, 2**31 - 1]).standard_normal(features)
    return (w / np.linalg.norm(w)).astype(np.float64)


def file_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def make_partition(
    index: int, rows: int, first_id: int, features: int, seed: int, malformed_fraction: float, labelled: bool
) -> pd.DataFrame:
    """One partition of synthetic data; deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, index])
    x = rng.standard_normal((rows, features), dtype=np.float32)
    columns: dict[str, Any] = {ID: np.arange(first_id, first_id + rows, dtype=np.int64)}
    if labelled:
        signal = x.astype(np.float64) @ true_weights(features, seed)
        columns[LABEL] = (signal + rng.normal(0.0, NOISE, rows) > 0).astype(np.int8)
    # Deliberately malformed rows, so quarantine is exercised on every run: NaN, inf, absurd values.
    n_bad = int(rng.binomial(rows, malformed_fraction)) if malformed_fraction > 0 else 0
    if n_bad:
        bad_rows = rng.choice(rows, size=n_bad, replace=False)
        bad_cols = rng.integers(0, features, size=n_bad)
        x[bad_rows, bad_cols] = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e9], dtype=np.float32), size=n_bad)
    frame = pd.DataFrame(columns)
    for j, name in enumerate(feature_names(features)):
        frame[name] = x[:, j]
    return frame


def partition_sizes(rows: int, partitions: int) -> list[int]:
    base, extra = divmod(rows, partitions)
    return [base + (1 if i < extra else 0) for i in range(partitions)]


def write_partition(
    url: str,
    index: int,
    rows: int,
    first_id: int,
    features: int,
    seed: int,
    malformed_fraction: float,
    labelled: bool,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate partition ``index`` and write it as ``<url>/part-NNNNN.parquet`` (runs on a worker)."""
    frame = make_partition(index, rows, first_id, features, seed, malformed_fraction, labelled)
    name = file_name(index)
    with open_write(join(url, name), storage_options) as f:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, f, **parquet_options(*([LABEL] if labelled else [])))
    return {"path": name, "rows": rows}


# -- validation -------------------------------------------------------------------------------------
def row_problems(x: np.ndarray, no_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bad, reasons)``: which rows are malformed, and why (``reasons`` holds the bad rows only).

    The rule, first match wins: ``missing id``, ``missing feature`` (NaN), ``infinite feature``,
    ``out of range`` (``|value| > MAX_ABS_FEATURE``). One pass finds the bad rows (NaN and inf fail
    the range check too); the reasons are worked out for those few rows only.
    """
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(x) <= MAX_ABS_FEATURE).all(axis=1)
    bad |= no_id
    if not bad.any():
        return bad, np.array([], dtype=object)
    rows = x[bad]
    checks = [no_id[bad], np.isnan(rows).any(axis=1), np.isinf(rows).any(axis=1)]
    return bad, np.select(checks, ["missing id", "missing feature", "infinite feature"], "out of range")


def split_valid(frame: pd.DataFrame, features: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(good, bad)``: bad rows carry a ``quarantine_reason``; nothing is dropped silently."""
    missing = [c for c in (ID, *features) if c not in frame.columns]
    if missing:
        raise ValueError(f"input lacks columns {missing}; expected {ID!r} and {len(features)} feature columns")
    x = frame[list(features)].to_numpy(dtype=np.float32, na_value=np.nan)
    bad, reasons = row_problems(x, frame[ID].isna().to_numpy())
    if not bad.any():
        return frame, frame.iloc[:0].assign(**{REASON: pd.Series(dtype="string")})
    return frame[~bad], frame[bad].assign(**{REASON: pd.array(reasons, dtype="string")})


def list_parquet(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Data files of a dataset: the manifest's list if the dataset was committed, else ``*.parquet``."""
    from .publish import NotCommittedError, committed_files

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


# -- scoring, one file at a time ------------------------------------------------------------------
class MalformedFileError(ValueError):
    """A whole input file is unusable (corrupt, or a column missing / not numeric): the run fails
    naming the file, since no row of it can be scored or quarantined one by one."""


def check_schema(schema: pa.Schema, features: Sequence[str], url: str) -> None:
    """Refuse a file whose id or feature columns are missing or not numeric (extra columns are ignored)."""
    missing = [c for c in (ID, *features) if c not in schema.names]
    if missing:
        raise MalformedFileError(f"{url}: lacks columns {missing}; expected {ID!r} and {len(features)} features")
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_null)
    wrong = {c: str(schema.field(c).type) for c in (ID, *features) if not any(f(schema.field(c).type) for f in numeric)}
    if wrong:
        raise MalformedFileError(f"{url}: columns {wrong} are not numeric")


@dataclass(frozen=True)
class LinearScorer:
    """What a worker needs to score: feature names, folded weights and bias (numpy only).

    Shipped inside each scoring task (a few hundred bytes), so workers import no ML library
    for scoring, keep their memory for data, and a restarted worker loses nothing.
    """

    features: tuple[str, ...]
    weights: np.ndarray
    bias: float

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float32) @ self.weights.astype(np.float32) + np.float32(self.bias)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def score_file(
    in_url: str,
    out_url: str,
    quarantine_url: str,
    model: LinearScorer,
    batch_rows: int,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stream one parquet file through validation and the model (runs on a worker).

    Memory stays bounded by ``batch_rows``: the file is read, scored and written record batch by
    record batch; nothing holds a whole file, let alone the dataset. Malformed rows go to
    ``quarantine_url`` with their reason. Returns row counts for the manifest.
    """
    features = list(model.features)
    in_fs, in_path = filesystem(in_url, storage_options)
    scored = quarantined = 0
    qwriter = qfile = None
    schema = pa.schema([(ID, pa.int64()), ("score", pa.float32()), ("prediction", pa.int8())])
    try:
        with in_fs.open(in_path, "rb") as src, open_write(out_url, storage_options) as dst:
            try:
                reader = pq.ParquetFile(src)
            except ValueError as exc:  # ArrowInvalid: truncated or not parquet (I/O errors stay OSError: retried)
                raise MalformedFileError(f"{in_url}: not a readable parquet file ({exc})") from exc
            check_schema(reader.schema_arrow, features, in_url)
            columns = [c for c in reader.schema_arrow.names if c != LABEL]
            with pq.ParquetWriter(dst, schema, **parquet_options("prediction")) as writer:
                for batch in reader.iter_batches(batch_size=batch_rows, columns=columns):
                    good, bad = split_valid(batch.to_pandas(), features)
                    if len(bad):
                        table = pa.Table.from_pandas(bad, preserve_index=False)
                        if qwriter is None:
                            qfile = open_write(quarantine_url, storage_options)
                            qwriter = pq.ParquetWriter(qfile, table.schema, **parquet_options(REASON))
                        qwriter.write_table(table.cast(qwriter.schema))
                        quarantined += len(bad)
                    proba = model.predict_proba(good[features].to_numpy(dtype=np.float32))
                    writer.write_table(
                        pa.Table.from_arrays(
                            [
                                pa.array(good[ID].to_numpy(dtype=np.int64)),
                                pa.array(proba.astype(np.float32)),
                                pa.array((proba >= 0.5).astype(np.int8)),
                            ],
                            schema=schema,
                        )
                    )
                    scored += len(good)
    finally:
        if qwriter is not None:
            qwriter.close()
            qfile.close()
    return {"scored": scored, "quarantined": quarantined, "has_quarantine": qwriter is not None}
