"""The vocabulary of a declared schema (``schema.py`` uses it): an id, a label and typed feature columns.

Validation, quarantine, training, scoring, the sample generator and the tests all read the one
``SCHEMA``; nothing else spells a column name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

INTEGER_DTYPES = ("int8", "int16", "int32", "int64")
NUMERIC_DTYPES = ("float32", "float64", *INTEGER_DTYPES)
# Dtypes float32 holds exactly: validation compares these in float32 when no column needs float64.
EXACT_IN_FLOAT32 = ("float32", "int8", "int16")


def dtype_extremes(dtype: str) -> tuple[float, float]:
    """The least and greatest finite values ``dtype`` holds (numpy's iinfo / finfo)."""
    if dtype in INTEGER_DTYPES:
        return int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    return float(np.finfo(dtype).min), float(np.finfo(dtype).max)


@dataclass(frozen=True)
class Numeric:
    """A number. ``nullable``: a missing value is legitimate (the model imputes it), not a malformed row.

    Values outside ``[min, max]`` and infinities are malformed rows (quarantined with the reason).
    """

    name: str
    dtype: str = "float32"
    nullable: bool = False
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.dtype not in NUMERIC_DTYPES:
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(NUMERIC_DTYPES)}")
        if self.dtype in INTEGER_DTYPES and self.nullable:
            raise ValueError(f"column {self.name!r}: a nullable number must be a float dtype (NaN marks missing)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name!r}: min {self.min} is above max {self.max}")
        first, last = self.held_range()
        if first > last:
            lo, hi = self.bounds
            raise ValueError(f"column {self.name!r}: no {self.dtype} value lies in [{lo}, {hi}]; widen the range or "
                             "choose another dtype")  # fmt: skip

    @property
    def bounds(self) -> tuple[float, float]:
        return (-math.inf if self.min is None else self.min, math.inf if self.max is None else self.max)

    def held_range(self) -> tuple[float, float]:
        """The least and greatest values of ``dtype`` the declaration allows (finite: infinities are malformed)."""
        (lo, hi), (low, high) = self.bounds, dtype_extremes(self.dtype)
        if self.dtype in INTEGER_DTYPES:
            return (low if lo <= low else math.ceil(lo)), (high if hi >= high else math.floor(hi))
        kind = np.dtype(self.dtype).type
        # Rounding a bound to the dtype may cross it: step back inside (0.1 as float32 is above 0.1).
        first, last = kind(max(lo, low)), kind(min(hi, high))
        if float(first) < lo:
            first = np.nextafter(first, kind(math.inf))
        if float(last) > hi:
            last = np.nextafter(last, kind(-math.inf))
        return float(first), float(last)

    def forbidden_values(self) -> list[float]:
        """Values the dtype can hold that the declaration rejects, one of each kind: NaN (unless nullable) and +-inf
        for floats; a value below and one above the range (sentinel-like: a million and ten times the bound away,
        up to the dtype's extreme). An integer column spanning its whole dtype has no out-of-range value."""
        values: list[float] = [] if self.dtype in INTEGER_DTYPES else [math.inf, -math.inf]
        if self.dtype not in INTEGER_DTYPES and not self.nullable:
            values.append(math.nan)
        (lo, hi), (low, high) = self.bounds, dtype_extremes(self.dtype)
        if math.isfinite(hi) and hi < high:
            values += self._beyond(hi, min(hi + 9 * abs(hi) + 10**6, high), above=True)
        if math.isfinite(lo) and lo > low:
            values += self._beyond(lo, max(lo - 9 * abs(lo) - 10**6, low), above=False)
        return values

    def _beyond(self, bound: float, candidate: float, above: bool) -> list[float]:
        """``[candidate]`` as the dtype holds it, if that is strictly beyond ``bound`` however validation compares
        (in float64, and in float32 for the dtypes float32 holds exactly), else ``[]``."""
        value = int(candidate) if self.dtype in INTEGER_DTYPES else float(np.dtype(self.dtype).type(candidate))
        kinds = (np.float64, np.float32) if self.dtype in EXACT_IN_FLOAT32 else (np.float64,)
        beyond = all((kind(value) > kind(bound)) if above else (kind(value) < kind(bound)) for kind in kinds)
        return [value] if beyond else []


@dataclass(frozen=True)
class Categorical:
    """A string with a closed set of values; any other value is a malformed row."""

    name: str
    categories: tuple[str, ...]
    nullable: bool = False

    def __post_init__(self) -> None:
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ValueError(f"column {self.name!r}: categories must be a non-empty tuple of distinct strings")


Feature = Numeric | Categorical


@dataclass(frozen=True)
class Schema:
    """The columns of a table: ``id`` (unique per row, never missing), ``label`` (0/1, training data
    only) and the features, in the order the model receives them."""

    id: str
    label: str
    features: tuple[Feature, ...]
    id_dtype: str = "int64"  # int64 or string
    label_values: tuple[int, ...] = field(default=(0, 1))

    def __post_init__(self) -> None:
        names = [self.id, self.label, *self.feature_names]
        if len(set(names)) != len(names):
            raise ValueError(f"schema: column names must be distinct, got {names}")
        if self.id_dtype not in ("int64", "string"):
            raise ValueError(f"schema: id_dtype must be int64 or string, not {self.id_dtype!r}")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[Numeric]:
        return [f for f in self.features if isinstance(f, Numeric)]

    @property
    def categorical(self) -> list[Categorical]:
        return [f for f in self.features if isinstance(f, Categorical)]

    def columns(self, labelled: bool) -> list[str]:
        return [self.id, *([self.label] if labelled else []), *self.feature_names]

    def arrow_schema(self, labelled: bool) -> pa.Schema:
        """How the pipeline writes a table of this schema (the sample generator, quarantine files)."""
        fields = [pa.field(self.id, pa.int64() if self.id_dtype == "int64" else pa.string())]
        if labelled:
            fields.append(pa.field(self.label, pa.int8()))
        for f in self.features:
            fields.append(pa.field(f.name, pa.string() if isinstance(f, Categorical) else pa.from_numpy_dtype(f.dtype)))
        return pa.schema(fields)

    def describe(self) -> dict:
        """A JSON-able summary, stored with each model (what it was trained on)."""
        return {
            "id": self.id,
            "label": self.label,
            "features": [
                {"name": f.name, "kind": "categorical", "categories": list(f.categories), "nullable": f.nullable}
                if isinstance(f, Categorical)
                else {"name": f.name, "kind": "numeric", "dtype": f.dtype, "nullable": f.nullable}
                for f in self.features
            ],
        }
