"""The sample generator on every numeric dtype and range a schema may declare (issue: an int16 column with a
positive minimum raised OverflowError): each corrupted row holds a value its column's dtype can hold, no error or
warning is raised, and validation quarantines exactly the corrupted rows, read back from a real parquet file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_workflows.columns import INTEGER_DTYPES, NUMERIC_DTYPES, Categorical, Numeric, Schema
from ml_workflows.project import current
from ml_workflows.validation import REASON, split_valid

make_partition = current().module("sample_data").make_partition
ROWS = 2000


def _extremes(dtype: str) -> tuple[float, float]:
    if dtype in INTEGER_DTYPES:
        return int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    return float(np.finfo(dtype).min), float(np.finfo(dtype).max)


def _bounds(dtype: str) -> dict[str, tuple[float | None, float | None]]:
    """The declared ranges each dtype is tried with."""
    low, high = _extremes(dtype)
    integer = dtype in INTEGER_DTYPES
    return {
        "none": (None, None),
        "positive-min": (5, None),
        "negative-max": (None, -7),
        "dtype-limits": (low, high),
        "narrow": (10, 12),
        "narrow-fractional": (-0.3, 0.6),  # an integer column holds 0 only
        "upper-half": (high // 2 if integer else high / 2, high),
        # near-top: float32 cannot tell these int32 values apart; 0.1 and 0.9: bounds a float32 cannot hold exactly
        **({"near-top": (high - 100, high - 50)} if integer else {"unit-interval": (0.1, 0.9)}),
    }


CASES = [
    pytest.param(dtype, lo, hi, nullable, beside, id=f"{dtype}-{name}{'-nullable' * nullable}{'-beside' * beside}")
    for dtype in NUMERIC_DTYPES
    for name, (lo, hi) in _bounds(dtype).items()
    for nullable in ((False, True) if dtype not in INTEGER_DTYPES else (False,))
    # beside a float64 column, validation compares in float64; alone (most dtypes), in float32
    for beside in (False, True)
]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("dtype", "lo", "hi", "nullable", "beside"), CASES)
def test_sample_data_corrupts_every_dtype_and_range_with_values_validation_quarantines(
    tmp_path, dtype, lo, hi, nullable, beside
):
    column = Numeric("v", dtype=dtype, nullable=nullable, min=lo, max=hi)
    others = (Numeric("w", dtype="float64"), Categorical("c", ("a", "b"))) if beside else ()
    schema = Schema(id="id", label="label", features=(column, *others))
    clean = make_partition(0, ROWS, 0, seed=3, malformed_fraction=0.0, labelled=True, schema=schema)
    dirty = make_partition(0, ROWS, 0, seed=3, malformed_fraction=0.6, labelled=True, schema=schema)

    path = tmp_path / "part.parquet"  # as write_partition writes it, and the pipeline reads it
    pq.write_table(pa.Table.from_pandas(dirty, schema=schema.arrow_schema(True), preserve_index=False), path)
    read = pq.read_table(path).to_pandas()
    assert read[column.name].dtype == np.dtype(dtype)

    assert split_valid(clean, schema, labelled=True)[1].empty, "a value placed in range was quarantined"
    changed = ~((clean == dirty) | (clean.isna() & dirty.isna())).all(axis=1)
    good, bad = split_valid(read, schema, labelled=True)
    assert sorted(bad[schema.id]) == sorted(dirty.loc[changed, schema.id]), bad[REASON].value_counts()
    assert len(good) + len(bad) == ROWS
    if column.forbidden_values() or others:
        assert changed.sum() > ROWS * 0.3
    else:  # an integer column spanning its whole dtype: no value it can hold is out of range
        assert dtype in INTEGER_DTYPES and column.held_range() == _extremes(dtype) and not changed.any()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_forbidden_values_fit_the_dtype_and_break_the_declaration(dtype):
    """One value of each kind the dtype can hold (NaN, +-inf for floats; below and above the range)."""
    low, high = _extremes(dtype)
    for lo, hi in _bounds(dtype).values():
        column = Numeric("v", dtype=dtype, min=lo, max=hi)
        values = column.forbidden_values()
        frame = pd.DataFrame({"id": range(len(values)), "v": np.array(values, dtype=dtype)})
        schema = Schema(id="id", label="label", features=(column,))
        assert split_valid(frame, schema)[0].empty, (lo, hi, values)
        below, above = lo is not None and lo > low, hi is not None and hi < high
        # float64, which validation compares int64 in, tells values at the top of int64 apart only 2048 apart
        above = above and np.float64(hi) < np.float64(high)
        assert len(values) == (0 if dtype in INTEGER_DTYPES else 3) + below + above, (lo, hi, values)


@pytest.mark.parametrize(("dtype", "lo", "hi"), [("int16", 0.2, 0.8), ("int8", 200, None), ("float32", 0.1, 0.1)])
def test_a_range_the_dtype_cannot_hold_is_refused_naming_the_column(dtype, lo, hi):
    with pytest.raises(ValueError, match=f"column 'v': no {dtype} value lies in"):
        Numeric("v", dtype=dtype, min=lo, max=hi)
