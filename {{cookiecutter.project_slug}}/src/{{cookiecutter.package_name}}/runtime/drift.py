"""Drift: how far each scoring run's feature distributions moved from the training data (PSI).

At training, :func:`reference_profile` bins every declared feature of the valid training rows:
a numeric column into ``BINS`` bins cut at its training quantiles (plus a bin for missing values), a
categorical one into its declared categories (plus missing). The profile (edges and expected
shares) is stored with the model (``drift_reference.json``).

At scoring, each per-file task counts its valid rows into the same bins while it streams the file
(:class:`Counter`, one ``searchsorted`` + ``bincount`` per column and record batch: no second pass
over the data). The step adds the per-file counts up and :func:`report` computes, per feature, the
population stability index::

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
            profile["features"][f.name] = {"kind": "numeric", "edges": numeric_edges(values)}
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
class Counter:
    """Per-bin counts of the rows it is given, for the features of a profile (runs on the workers).

    Bins of a numeric feature: ``len(edges) + 1`` value bins, then one for missing values; of a
    categorical one: its categories in declared order, then missing (other values never get here:
    validation quarantines them first).
    """

    def __init__(self, profile: dict[str, Any]) -> None:
        self.features = profile["features"]
        self.rows = 0
        self.counts: dict[str, np.ndarray] = {}
        self._edges: dict[str, np.ndarray] = {}
        for name, spec in self.features.items():
            if spec["kind"] == "numeric":
                self._edges[name] = np.asarray(spec["edges"], dtype=np.float64)
                self.counts[name] = np.zeros(len(spec["edges"]) + 2, dtype=np.int64)
            else:
                self.counts[name] = np.zeros(len(spec["categories"]) + 1, dtype=np.int64)

    def add(self, frame: pd.DataFrame) -> None:
        n = len(frame)
        if not n:
            return
        self.rows += n
        for name, spec in self.features.items():
            column = frame[name]
            if spec["kind"] == "numeric":
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
                edges = self._edges[name]
                bins = np.searchsorted(edges, values, side="right")
                bins[np.isnan(values)] = len(edges) + 1
                self.counts[name] += np.bincount(bins, minlength=len(edges) + 2)
            else:
                codes = pd.Categorical(column, categories=spec["categories"]).codes.astype(np.int64)
                codes[codes < 0] = len(spec["categories"])  # missing
                self.counts[name] += np.bincount(codes, minlength=len(spec["categories"]) + 1)

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
        "scoring_rows": observed["rows"],
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
