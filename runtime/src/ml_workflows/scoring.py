"""Scoring one parquet file on a Dask worker: stream record batches through validation and the model.

The model is anything with ``predict_proba(frame) -> scores``: ``frame`` is a pandas DataFrame of
the schema's feature columns (valid rows only), the result one probability of the positive class
per row (see ``model.py``). The pipeline sends the fitted model to each worker once per run
(``client.scatter``), not once per file.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .columns import Schema
from .drift import SAMPLE_ROWS_PER_BATCH, Counter
from .file_schema import check_file_schema, open_parquet
from .storage import filesystem, open_write, parquet_options
from .validation import REASON, split_valid

SCORE, PREDICTION = "score", "prediction"
THRESHOLD = 0.5  # prediction = score >= THRESHOLD


class Scorer(Protocol):
    def predict_proba(self, frame: pd.DataFrame) -> Any: ...


def output_schema(schema: Schema) -> pa.Schema:
    id_type = pa.int64() if schema.id_dtype == "int64" else pa.string()
    return pa.schema([(schema.id, id_type), (SCORE, pa.float32()), (PREDICTION, pa.int8())])


def predictions(model: Scorer, good: pd.DataFrame, schema: Schema, out: pa.Schema) -> pa.Table:
    proba = np.asarray(model.predict_proba(good[schema.feature_names]), dtype=np.float32).reshape(-1)
    if len(proba) != len(good):
        raise ValueError(f"model.predict_proba returned {len(proba)} scores for {len(good)} rows")
    ids = good[schema.id].to_numpy(dtype=np.int64 if schema.id_dtype == "int64" else object)
    return pa.Table.from_arrays(
        [pa.array(ids, type=out.field(0).type), pa.array(proba), pa.array((proba >= THRESHOLD).astype(np.int8))],
        schema=out,
    )


def score_file(
    in_url: str,
    out_url: str,
    quarantine_url: str,
    model: Scorer,
    schema: Schema,
    batch_rows: int,
    storage_options: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stream one parquet file through validation and the model (runs on a worker).

    Memory stays bounded by ``batch_rows``: the file is read, scored and written record batch by
    record batch; nothing holds a whole file, let alone the dataset. Malformed rows go to
    ``quarantine_url`` with their reason. Returns row counts for the manifest and, given the model's
    drift ``profile``, the valid rows' counts per feature bin (:mod:`.drift`), taken from the same
    record batches.
    """
    in_fs, in_path = filesystem(in_url, storage_options)
    scored = quarantined = 0
    qwriter = qfile = None
    out = output_schema(schema)
    columns = schema.columns(labelled=False)
    counter = Counter(profile, SAMPLE_ROWS_PER_BATCH) if profile else None
    try:
        with in_fs.open(in_path, "rb") as src, open_write(out_url, storage_options) as dst:
            reader = open_parquet(src, in_url)
            check_file_schema(reader.schema_arrow, schema, in_url)
            with pq.ParquetWriter(dst, out, **parquet_options(PREDICTION)) as writer:
                for batch in reader.iter_batches(batch_size=batch_rows, columns=columns):
                    good, bad = split_valid(batch.to_pandas(), schema)
                    if len(bad):
                        table = pa.Table.from_pandas(bad, preserve_index=False)
                        if qwriter is None:
                            qfile = open_write(quarantine_url, storage_options)
                            qwriter = pq.ParquetWriter(qfile, table.schema, **parquet_options(REASON))
                        qwriter.write_table(table.cast(qwriter.schema))
                        quarantined += len(bad)
                    if len(good):
                        writer.write_table(predictions(model, good, schema, out))
                        if counter is not None:
                            counter.add(good)
                    scored += len(good)
    finally:
        if qwriter is not None:
            qwriter.close()
            qfile.close()
    drift = counter.result() if counter is not None else None
    return {"scored": scored, "quarantined": quarantined, "has_quarantine": qwriter is not None, "drift": drift}
