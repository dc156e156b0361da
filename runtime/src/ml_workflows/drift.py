"""Drift: how far each scoring run's feature distributions moved from the training data (PSI).

At training, :func:`reference_profile` bins every declared feature of the valid training rows:
a numeric column into ``BINS`` bins cut at its training quantiles (plus a bin for missing values), a
categorical one into its declared categories (plus missing). The profile (edges and expected
shares) is stored with the model (``drift_reference.json``).

At scoring, each per-file task counts its valid rows into the same bins while it streams the file
(:class:`Counter`: a systematic sample of up to ``SAMPLE_ROWS_PER_BATCH`` rows of each record batch,
counted as one matrix: no second pass over the data). The step adds the per-file counts up and
:func:`report` computes, per feature, the population stability index::

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

(shares, each floored at ``EPSILON`` so that an empty bin counts but does not divide by zero).
Common reading: < 0.1 no real shift, 0.1-0.25 moderate, > 0.25 large. ``PIPELINE_DRIFT_THRESHOLD``
(0.2) marks a feature as drifted; ``PIPELINE_DRIFT_ACTION`` decides what a drifted run does:
``warn`` (default: predictions are committed, a warning is logged and notified) or ``fail`` (the
run fails, nothing is committed, the failure is notified).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .columns import Categorical, Schema

BINS = 10
# At scoring, rows counted per record batch: evenly spaced blocks of a larger batch's valid rows (a systematic
# sample, representative even of a sorted file). 8,192 of every 262,144-row batch is 0.5 M rows counted per 16 M
# scored, far more than PSI over 10 bins needs (its sampling noise is about bins / rows), at a few percent of the
# scoring time (BENCHMARKS.md, "Drift report").
SAMPLE_ROWS_PER_BATCH = 8_192
EPSILON = 1e-4
REFERENCE_FILE = "drift_reference.json"
REPORT_FILE = "drift.json"


class DriftError(RuntimeError):
    """Features drifted past the threshold with ``PIPELINE_DRIFT_ACTION=fail``: nothing is committed."""


# -- training: the reference profile ---------------------------------------------------------------
def numeric_edges(values: np.ndarray, bins: int = BINS) -> list[float]:
    """Interior cut points at the quantiles of ``values`` (non-missing), duplicates dropped."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    cuts = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(c) for c in np.unique(cuts)]


def reference_profile(sample: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """The bins of every declared feature: numeric edges at the quantiles of ``sample`` (valid training
    rows, or a random sample of them), categorical bins from the schema. Shares come from
    :func:`with_expected`."""
    profile: dict[str, Any] = {"bins": BINS, "features": {}}
    for f in schema.features:
        if isinstance(f, Categorical):
            profile["features"][f.name] = {"kind": "categorical", "categories": list(f.categories)}
        else:
            values = sample[f.name].to_numpy(dtype=np.float64, na_value=np.nan)
            profile["features"][f.name] = {"kind": "numeric", "dtype": f.dtype, "edges": numeric_edges(values)}
    return profile


def count(frame: pd.DataFrame, profile: dict[str, Any]) -> dict[str, Any]:
    """Counts of one partition into the profile's bins (a Dask task at training)."""
    counter = Counter(profile)
    counter.add(frame)
    return counter.result()


def with_expected(profile: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    """The profile with the training rows' counts per bin (``expected``)."""
    features = {k: {**v, "expected": counts["counts"][k]} for k, v in profile["features"].items()}
    return {**profile, "features": features, "rows": counts["rows"]}


# -- scoring: counting into the reference bins -------------------------------------------------------
SAMPLE_BLOCK = 256  # rows: the sample is evenly spaced blocks of consecutive rows (cache-friendly to gather)


def sample_index(rows: int, max_rows: int | None) -> np.ndarray | None:
    """Row positions of a systematic sample of at most ``max_rows`` of ``rows``: evenly spaced blocks of
    ``SAMPLE_BLOCK`` consecutive rows across the whole batch (``None``: take every row)."""
    if not max_rows or rows <= max_rows:
        return None
    blocks = max(1, max_rows // SAMPLE_BLOCK)
    starts = np.linspace(0, rows - SAMPLE_BLOCK, blocks).astype(np.int64)
    return (starts[:, None] + np.arange(SAMPLE_BLOCK)).ravel()


def _row_sums(flags: np.ndarray) -> np.ndarray:
    """True values per row of a boolean matrix (summing bytes: several times faster than count_nonzero(axis=1))."""
    return np.add.reduce(flags.view(np.uint8), axis=1, dtype=np.int64)


class Counter:
    """Per-bin counts of the rows it is given, for the features of a profile (runs on the workers).

    Bins of a numeric feature: ``len(edges) + 1`` value bins, then one for missing values; of a
    categorical one: its categories in declared order, then missing (other values never get here:
    validation quarantines them first). The numeric columns are counted together, as one matrix with a
    row per feature: for each edge, how many values reach it (edges padded with +inf); a bin's count is
    the difference of two such counts. ``max_rows_per_batch`` counts a systematic sample of larger batches
    (:func:`sample_index`).
    """

    def __init__(self, profile: dict[str, Any], max_rows_per_batch: int | None = None) -> None:
        self.features = profile["features"]
        self.max_rows_per_batch = max_rows_per_batch
        self.rows = 0
        self.numeric = [name for name, spec in self.features.items() if spec["kind"] == "numeric"]
        self.categorical = [name for name, spec in self.features.items() if spec["kind"] == "categorical"]
        self._widths = [len(self.features[name]["edges"]) for name in self.numeric]
        edges = np.full((len(self.numeric), max(self._widths, default=0)), np.inf)
        for row, name in enumerate(self.numeric):
            edges[row, : self._widths[row]] = self.features[name]["edges"]
        # float32 (half the memory traffic) unless a column needs float64 (as validation decides).
        wide = any(self.features[name].get("dtype") in ("float64", "int64") for name in self.numeric)
        self._dtype = np.float64 if wide else np.float32
        self._edges = [np.ascontiguousarray(edges[:, k : k + 1], dtype=self._dtype) for k in range(edges.shape[1])]
        self._categories = {name: pd.Index(self.features[name]["categories"]) for name in self.categorical}
        self.counts: dict[str, np.ndarray] = {
            name: np.zeros(len(spec["edges"]) + 2 if spec["kind"] == "numeric" else len(spec["categories"]) + 1,
                           dtype=np.int64)
            for name, spec in self.features.items()
        }  # fmt: skip

    def add(self, frame: pd.DataFrame) -> None:
        index = sample_index(len(frame), self.max_rows_per_batch)
        n = len(frame) if index is None else len(index)
        if not n:
            return
        self.rows += n
        if self.numeric:
            columns = [frame[name].to_numpy(dtype=self._dtype, na_value=np.nan) for name in self.numeric]
            x = np.stack(columns if index is None else [c[index] for c in columns])  # one row per feature
            reached = np.empty((len(self.numeric), len(self._edges) + 2), dtype=np.int64)
            reached[:, 0] = n - _row_sums(np.isnan(x))  # every present value reaches "edge 0"
            for k, edge in enumerate(self._edges):
                reached[:, k + 1] = _row_sums(x >= edge)  # NaN reaches no edge
            for row, name in enumerate(self.numeric):
                w = self._widths[row]
                self.counts[name][: w + 1] += reached[row, : w + 1] - np.append(reached[row, 1 : w + 1], 0)
                self.counts[name][-1] += n - reached[row, 0]
        for name in self.categorical:
            categories = self._categories[name]
            column = frame[name] if index is None else frame[name].iloc[index]
            codes = categories.get_indexer(column)  # a hash lookup; -1 for a missing value
            codes[codes < 0] = len(categories)
            self.counts[name] += np.bincount(codes, minlength=len(categories) + 1)

    def result(self) -> dict[str, Any]:
        return {"rows": self.rows, "counts": {k: v.tolist() for k, v in self.counts.items()}}


def merge(results: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Add up the per-file counts (``None`` entries: files scored without a profile)."""
    results = [r for r in results if r]
    if not results:
        return None
    counts = {k: np.asarray(v, dtype=np.int64) for k, v in results[0]["counts"].items()}
    for r in results[1:]:
        for k, v in r["counts"].items():
            counts[k] += np.asarray(v, dtype=np.int64)
    return {"rows": sum(r["rows"] for r in results), "counts": {k: v.tolist() for k, v in counts.items()}}


# -- the report ------------------------------------------------------------------------------------
def psi(expected: list[int] | np.ndarray, actual: list[int] | np.ndarray) -> float:
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def report(profile: dict[str, Any], observed: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Per-feature PSI of the scoring rows against the training rows, largest first."""
    features = []
    for name, spec in profile["features"].items():
        value = psi(spec["expected"], observed["counts"][name])
        features.append(
            {
                "feature": name,
                "kind": spec["kind"],
                "psi": round(value, 4),
                "drifted": value > threshold,
                "expected": spec["expected"],
                "actual": observed["counts"][name],
            }
        )
    features.sort(key=lambda r: (-r["psi"], r["feature"]))
    drifted = [r["feature"] for r in features if r["drifted"]]
    return {
        "metric": "psi",
        "threshold": threshold,
        "training_rows": profile.get("rows"),
        "counted_rows": observed["rows"],  # at scoring: a systematic sample of the scored rows
        "drifted": drifted,
        "max_psi": features[0]["psi"] if features else 0.0,
        "features": features,
    }


def describe(rep: dict[str, Any], top: int = 3) -> str:
    """One line for the summary and notifications."""
    if not rep["features"]:
        return "no features"
    worst = ", ".join(f"{r['feature']} {r['psi']:.3f}" for r in rep["features"][:top])
    if rep["drifted"]:
        return f"{len(rep['drifted'])} feature(s) over PSI {rep['threshold']:g}: {worst}"
    return f"no feature over PSI {rep['threshold']:g} (largest: {worst})"
