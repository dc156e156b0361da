"""YOUR DATA: the columns of the tables this pipeline trains on and scores.

Replace ``SCHEMA`` with your own columns (see README, "Bring your own data and model"). Validation
and quarantine, training, scoring, the sample data generator and the tests all read it:

* ``id``: one value per row, never missing; predictions carry it so you can join them back.
* ``label``: the 0/1 target, present in training data only.
* ``features``: ``Numeric(name, dtype, nullable, min, max)`` or ``Categorical(name, categories,
  nullable)``. ``dtype`` is one of float32, float64, int8, int16, int32, int64 (nullable: floats
  only, NaN marks missing). A row with a value the declaration does not allow (out of range,
  infinite, an unknown category, missing where not nullable) is quarantined with its reason, never
  silently dropped. Extra columns in the files are ignored.

The sample: 20 standard normal float features ``x000``..``x019``; values beyond +/- 1e6 are
treated as corrupt (sensor glitches, unit errors, sentinel values).
"""

from __future__ import annotations

from ml_workflows.columns import Categorical, Numeric, Schema

__all__ = ["SCHEMA", "Categorical", "Numeric", "Schema"]

SCHEMA = Schema(
    id="id",
    label="label",
    features=tuple(Numeric(f"x{i:03d}", dtype="float32", min=-1e6, max=1e6) for i in range(20)),
)
