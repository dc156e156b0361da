"""Validation and quarantine by the declared schema: which rows are malformed, and why.

Nothing is dropped silently: :func:`split_valid` returns the good rows and the bad ones with a
``quarantine_reason``; the pipeline writes the bad ones aside and counts them. A whole file that
cannot be read row by row (a column missing or of the wrong kind) is a :class:`MalformedFileError`
naming the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .columns import EXACT_IN_FLOAT32, Schema

# The whole-file rule lives apart (pyarrow only, for the fast up-front check); re-exported for its callers here.
from .file_schema import MalformedFileError, MissingColumnsError, check_file_schema, require_columns  # noqa: F401

REASON = "quarantine_reason"


def row_problems(frame: pd.DataFrame, schema: Schema, labelled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(bad, reasons)``: which rows break the schema, and why (``reasons`` holds the bad rows only).

    Checked in order, first match wins: ``missing <id>``, ``bad <label>`` (training only), then each
    feature in schema order: ``missing <col>`` (not nullable), ``infinite <col>``, ``<col> out of
    range``, ``<col> unknown category``. Numeric columns are checked together in one array pass (the
    common case: many float features); reasons are worked out for the few bad rows only.
    """
    n = len(frame)
    fails: list[np.ndarray] = []  # one boolean column per check, in rule order
    names: list[str] = []
    fails.append(frame[schema.id].isna().to_numpy())
    names.append(f"missing {schema.id}")
    if labelled:
        label = pd.to_numeric(frame[schema.label], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        fails.append(~np.isin(label, np.asarray(schema.label_values, dtype=np.float64)))
        names.append(f"bad {schema.label}")
    bad = np.logical_or.reduce(fails) if fails else np.zeros(n, bool)

    numeric = schema.numeric
    if numeric:
        x = frame[[c.name for c in numeric]].to_numpy(dtype=np.float64 if _wide(numeric) else np.float32,
                                                      na_value=np.nan)  # fmt: skip
        lo = np.array([c.bounds[0] for c in numeric], dtype=x.dtype)
        hi = np.array([c.bounds[1] for c in numeric], dtype=x.dtype)
        with np.errstate(invalid="ignore"):
            ok = (x >= lo) & (x <= hi)  # NaN fails; so does inf unless a bound is infinite
        if np.isinf(lo).any() or np.isinf(hi).any():
            ok &= ~np.isinf(x)
        nullable = np.array([c.nullable for c in numeric])
        if nullable.any():
            ok |= np.isnan(x) & nullable
        num_bad = ~ok.all(axis=1)
    else:
        x, num_bad = None, np.zeros(n, bool)

    cat_fails = []
    for c in schema.categorical:
        values = frame[c.name]
        missing = values.isna().to_numpy()
        unknown = ~values.isin(c.categories).to_numpy() & ~missing
        cat_fails.append((c, missing & (not c.nullable), unknown))
    cat_bad = np.logical_or.reduce([m | u for _, m, u in cat_fails]) if cat_fails else np.zeros(n, bool)

    bad = bad | num_bad | cat_bad
    if not bad.any():
        return bad, np.array([], dtype=object)

    # Reasons, for the bad rows only: every check as a column, the first failing one names the row.
    checks = [f[bad] for f in fails]
    labels = list(names)
    order = [f.name for f in schema.features]
    per_feature: dict[str, list[tuple[np.ndarray, str]]] = {name: [] for name in order}
    if x is not None:
        xb = x[bad]
        for j, c in enumerate(numeric):
            col = xb[:, j]
            lo_j, hi_j = c.bounds
            with np.errstate(invalid="ignore"):
                per_feature[c.name] = [
                    (np.isnan(col) & (not c.nullable), f"missing {c.name}"),
                    (np.isinf(col), f"infinite {c.name}"),
                    (~np.isnan(col) & ~np.isinf(col) & ((col < lo_j) | (col > hi_j)), f"{c.name} out of range"),
                ]
    for c, missing, unknown in cat_fails:
        per_feature[c.name] = [(missing[bad], f"missing {c.name}"), (unknown[bad], f"{c.name} unknown category")]
    for name in order:
        for check, label in per_feature[name]:
            checks.append(check)
            labels.append(label)
    return bad, np.select(checks, labels, "malformed")


def _wide(numeric: list) -> bool:
    """float64 where float32 would change a value or a bound (float64, int32 and int64 columns)."""
    return any(c.dtype not in EXACT_IN_FLOAT32 for c in numeric)


def split_valid(frame: pd.DataFrame, schema: Schema, labelled: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(good, bad)``: bad rows carry a ``quarantine_reason``; nothing is dropped silently."""
    require_columns(list(frame.columns), schema, labelled, "input")
    bad, reasons = row_problems(frame, schema, labelled)
    if not bad.any():
        return frame, frame.iloc[:0].assign(**{REASON: pd.Series(dtype="string")})
    return frame[~bad], frame[bad].assign(**{REASON: pd.array(reasons, dtype="string")})
