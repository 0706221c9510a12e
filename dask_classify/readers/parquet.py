"""Parquet: read per row group; named pandas index levels become columns."""

from __future__ import annotations

from typing import Any

from dask_classify.errors import InputError
from dask_classify.readers.base import SAMPLE_ROWS, SourceMeta, Unit, _freeze, _one_line
from dask_classify.readers.discovery import Source


def _parquet_meta(source: Source) -> tuple[SourceMeta, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with source.open(decompress=False) as f, pq.ParquetFile(f) as pf:
            metadata = pf.metadata
            schema = pf.schema_arrow
            index_columns = (schema.pandas_metadata or {}).get("index_columns", [])
            meta = _parquet_frame(schema.empty_table(), index_columns, 0)
            first = (_parquet_frame(pf.read_row_group(0), index_columns, 0).iloc[:SAMPLE_ROWS]
                     if metadata.num_row_groups else meta)
    except (OSError, ValueError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{source.url}: not a readable Parquet file (truncated or corrupt?): "
                         f"{_one_line(exc)}") from None
    return SourceMeta(meta, first, index_columns=tuple(map(_freeze, index_columns))), metadata


def _parquet_units(source: Source, blocksize: int | None,
                   partition_rows: int | None) -> list[Unit]:
    metadata = _parquet_meta(source)[1]
    groups: list[list[int]] = []
    offsets: list[int] = []
    rows = gathered = gathered_rows = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        if (not groups or blocksize is None or gathered + group.total_byte_size > blocksize
                or (partition_rows is not None
                    and gathered_rows + group.num_rows > partition_rows)):
            groups.append([])
            offsets.append(rows)
            gathered = gathered_rows = 0
        groups[-1].append(i)
        gathered += group.total_byte_size
        gathered_rows += group.num_rows
        rows += group.num_rows
    if not groups:
        groups, offsets = [[]], [0]
    return [Unit(i, row_groups=tuple(g), row_offset=o)
            for i, (g, o) in enumerate(zip(groups, offsets, strict=True))]


# --------------------------------------------------------------------------- Parquet
def _parquet_frame(table: Any, index_columns: list, row_offset: int) -> Any:
    """A pandas frame for row groups of a Parquet file; named index levels become columns.

    pandas' own index metadata is honoured: an index stored as columns comes back as columns
    (when named), a named ``RangeIndex`` stored as metadata only is rebuilt with the right
    values for these rows (pyarrow restarts it at 0 for a subset of row groups), and an
    unnamed default index is dropped, so every partition has the same columns.
    """
    import numpy as np
    import pandas as pd

    df = table.to_pandas()
    named = [n for n in df.index.names if n is not None]
    if named and not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index(level=named)
    df = df.reset_index(drop=True)
    for entry in reversed(index_columns):
        if (isinstance(entry, dict) and entry.get("kind") == "range"
                and entry.get("name") is not None and entry["name"] not in df.columns):
            start, step = int(entry.get("start", 0)), int(entry.get("step", 1))
            df.insert(0, entry["name"], start + step * (row_offset + np.arange(len(df))))
    return df


def _read_row_groups(source: Source, groups: tuple[int, ...], row_offset: int,
                     index_columns: list) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with source.open(decompress=False) as f, pq.ParquetFile(f) as pf:
            table = pf.read_row_groups(list(groups)) if groups else pf.schema_arrow.empty_table()
            return _parquet_frame(table, index_columns, row_offset)
    except (OSError, ValueError, EOFError, pa.ArrowException) as exc:
        where = (f"row group {groups[0]}" if len(groups) == 1
                 else f"row groups {groups[0]}-{groups[-1]}")
        raise InputError(f"{source.url}: corrupt Parquet data in {where} (from row "
                         f"{row_offset}): {_one_line(exc)}") from None
