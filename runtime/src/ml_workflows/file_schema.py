"""Whether a table's columns are the ones ``schema.py`` declares: the rule for a whole file, from its column
names and Arrow types alone.

One implementation for every place that asks: the up-front check of a dataset (:mod:`.inputs`, from each
file's parquet footer, before Prefect and Dask start), the step that reads a file on a worker
(:mod:`.scoring`) and the row validation (:mod:`.validation`, which re-exports these names). pyarrow
only: no pandas, so the up-front check stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .columns import Categorical, Schema


class MalformedFileError(ValueError):
    """A whole input file is unusable (corrupt, or a column missing or of the wrong kind): the run fails
    naming the file, since no row of it can be scored or quarantined one by one."""


class MissingColumnsError(ValueError):
    """A table lacks columns the schema declares."""


def open_parquet(source: Any, url: str) -> pq.ParquetFile:
    """``source`` (an open file) as parquet: its footer is read, no data. :class:`MalformedFileError` for a file
    that is not parquet or was cut short (I/O errors stay ``OSError``: they may heal, and are retried)."""
    try:
        return pq.ParquetFile(source)
    except ValueError as exc:  # ArrowInvalid: no parquet magic bytes, a truncated footer
        raise MalformedFileError(f"{url}: not a readable parquet file ({exc})") from exc


def require_columns(columns: Sequence[str], schema: Schema, labelled: bool, where: str) -> None:
    missing = [c for c in schema.columns(labelled) if c not in columns]
    if missing:
        raise MissingColumnsError(
            f"{where}: lacks columns {missing}; schema.py declares {schema.columns(labelled)} "
            "(fix the data, or the schema if the data is right)"
        )


def check_file_schema(arrow_schema: pa.Schema, schema: Schema, url: str, labelled: bool = False) -> None:
    """Refuse a file whose declared columns are missing or of the wrong kind (extra columns are ignored)."""
    try:
        require_columns(arrow_schema.names, schema, labelled, url)
    except MissingColumnsError as exc:
        raise MalformedFileError(str(exc)) from None
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_null)
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_dictionary, pa.types.is_null)
    wrong = {}
    for name in schema.columns(labelled):
        is_text = _is_categorical(schema, name) or (name == schema.id and schema.id_dtype == "string")
        kinds = text if is_text else numeric
        if not any(k(arrow_schema.field(name).type) for k in kinds):
            wrong[name] = str(arrow_schema.field(name).type)
    if wrong:
        raise MalformedFileError(f"{url}: columns {wrong} are not of the kind schema.py declares")


def _is_categorical(schema: Schema, name: str) -> bool:
    return any(isinstance(f, Categorical) and f.name == name for f in schema.features)
