"""SAMPLE DATA: a synthetic dataset for any ``SCHEMA``, with a known signal and some malformed rows.

It lets ``make run`` and the tests work offline before you have data; with your own data you
keep it for the tests or remove the ``generate`` step from ``flows.py`` (README, "Bring your own data
and model"). Rows are deterministic in ``(seed, partition)``:

* the label is ``1[signal + N(0, NOISE^2) > 0]`` where ``signal`` is a fixed unit-variance linear
  combination of standard normal draws behind the numeric columns and of per-category effects, so
  a linear model can reach about ``expected_accuracy()`` (0.907 for NOISE = 0.3);
* numeric columns are those draws placed in their declared range (narrow ranges: centred and
  scaled; ranges that start above -10 or end below 10: moved inside; integer dtypes rounded);
  nullable columns get ~5% missing values, categorical columns uniformly drawn categories;
* ``malformed_fraction`` of the rows get one value the schema forbids that the column's dtype can
  hold (missing, infinite, out of range, an unknown category: ``Numeric.forbidden_values``), so
  quarantine is exercised on every run.

``write_partition`` runs on Dask workers, one call per parquet file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ml_workflows.columns import Categorical, Numeric, Schema
from ml_workflows.storage import join, open_write, parquet_options

from .schema import SCHEMA

NOISE = 0.3
MISSING_SHARE = 0.05  # of a nullable column's values
UNKNOWN_CATEGORY = "?unknown?"


def expected_accuracy(noise: float = NOISE) -> float:
    """Accuracy of the true signal on fresh rows: the reference a trained model approaches from below."""
    return 1 - math.atan(noise) / math.pi


def signal_weights(schema: Schema, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Unit-norm weights of the numeric draws, and per-category effects (together unit variance)."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    w = rng.standard_normal(len(schema.numeric) + len(schema.categorical))
    w /= np.linalg.norm(w)
    effects = {}
    for c, wc in zip(schema.categorical, w[len(schema.numeric) :], strict=True):
        e = rng.standard_normal(len(c.categories))
        e = (e - e.mean()) / (e.std() or 1.0)
        effects[c.name] = wc * e
    return w[: len(schema.numeric)], effects


def _place(z: np.ndarray, column: Numeric) -> np.ndarray:
    """Standard normal draws -> values of ``column`` (its range and dtype)."""
    lo, hi = column.bounds
    if math.isfinite(lo) and math.isfinite(hi) and hi - lo <= 1e3:
        centre, scale = (lo + hi) / 2, (hi - lo) / 6
    elif lo > -10:  # a range starting above the draws (a positive minimum): moved inside, so the column varies
        centre, scale = lo + 5, 1.0
    elif hi < 10:
        centre, scale = hi - 5, 1.0
    else:
        centre, scale = 0.0, 1.0
    values = centre + z.astype(np.float64) * scale  # float64: the bounds may lie beyond float32
    # Clipped to the values of the dtype inside the range: a rounded value must not cross a bound.
    first, last = column.held_range()
    if column.dtype.startswith("int"):
        whole = np.rint(np.clip(values, -(2.0**62), 2.0**62)).astype(np.int64)  # exact in int64 from here on
        return np.clip(whole, int(first), int(last)).astype(column.dtype)
    return np.clip(values, first, last).astype(column.dtype)


def make_partition(
    index: int,
    rows: int,
    first_id: int,
    seed: int,
    malformed_fraction: float,
    labelled: bool,
    schema: Schema = SCHEMA,
) -> pd.DataFrame:
    """One partition of synthetic data; deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, index])
    numeric, categorical = schema.numeric, schema.categorical
    z = rng.standard_normal((rows, len(numeric)), dtype=np.float32)
    codes = {c.name: rng.integers(0, len(c.categories), rows) for c in categorical}
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    columns: dict[str, Any] = {schema.id: ids if schema.id_dtype == "int64" else ids.astype(str).astype(object)}
    if labelled:
        w, effects = signal_weights(schema, seed)
        signal = z.astype(np.float64) @ w if len(numeric) else np.zeros(rows)
        for c in categorical:
            signal += effects[c.name][codes[c.name]]
        columns[schema.label] = (signal + rng.normal(0.0, NOISE, rows) > 0).astype(np.int8)
    values: dict[str, Any] = {}
    for j, c in enumerate(numeric):
        values[c.name] = _place(z[:, j], c)
        if c.nullable:
            values[c.name][rng.random(rows) < MISSING_SHARE] = np.nan
    for c in categorical:
        col = np.asarray(c.categories, dtype=object)[codes[c.name]]
        if c.nullable:
            col[rng.random(rows) < MISSING_SHARE] = None
        values[c.name] = col
    _corrupt(rng, values, schema, rows, malformed_fraction)
    frame = pd.DataFrame(columns)
    for f in schema.features:  # schema order
        frame[f.name] = values[f.name]
    return frame


def _corrupt(rng: np.random.Generator, values: dict[str, Any], schema: Schema, rows: int, fraction: float) -> None:
    """Give ``fraction`` of the rows one forbidden value each (in place)."""
    n_bad = int(rng.binomial(rows, fraction)) if fraction > 0 and schema.features else 0
    if not n_bad:
        return
    bad_rows = rng.choice(rows, size=n_bad, replace=False)
    bad_cols = rng.integers(0, len(schema.features), size=n_bad)
    # The values each numeric column's dtype can hold (none: an int column spanning its whole dtype).
    forbidden = {c.name: c.forbidden_values() for c in schema.numeric}
    for row, j in zip(bad_rows, bad_cols, strict=True):
        f = schema.features[j]
        if isinstance(f, Categorical):
            values[f.name][row] = UNKNOWN_CATEGORY if f.nullable or rng.random() < 0.5 else None
            continue
        choices = forbidden[f.name]
        if choices:
            values[f.name][row] = choices[rng.integers(0, len(choices))]


def partition_sizes(rows: int, partitions: int) -> list[int]:
    base, extra = divmod(rows, partitions)
    return [base + (1 if i < extra else 0) for i in range(partitions)]


def file_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_partition(
    url: str,
    index: int,
    rows: int,
    first_id: int,
    seed: int,
    malformed_fraction: float,
    labelled: bool,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate partition ``index`` and write it as ``<url>/part-NNNNN.parquet`` (runs on a worker)."""
    frame = make_partition(index, rows, first_id, seed, malformed_fraction, labelled)
    name = file_name(index)
    dictionary = [c.name for c in SCHEMA.categorical] + ([SCHEMA.label] if labelled else [])
    table = pa.Table.from_pandas(frame, schema=SCHEMA.arrow_schema(labelled), preserve_index=False)
    with open_write(join(url, name), storage_options) as f:
        pq.write_table(table, f, **parquet_options(*dictionary))
    return {"path": name, "rows": rows}
