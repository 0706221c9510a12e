"""Parquet (:mod:`dask_classify.readers.parquet`): corrupt files name the file and row group,
a named index stays a column with the right values in every partition."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dask_classify.errors import InputError
from dask_classify.readers import read_input


def test_truncated_parquet_names_the_file(tmp_path, inputs):
    path = inputs.parquet(tmp_path / "d.parquet")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"^{path}: not a readable Parquet file \(truncated "):
        read_input(path)


def test_corrupt_parquet_page_names_file_and_row_group(tmp_path, inputs):
    path = inputs.parquet(tmp_path / "d.parquet")
    data = bytearray(path.read_bytes())
    offset = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset
    data[offset:offset + 32] = b"\xff" * 32
    path.write_bytes(bytes(data))
    ddf = read_input(path, blocksize=None).frame  # the footer is fine: one partition per group
    assert ddf.npartitions == 4
    with pytest.raises(InputError, match=rf"^{path}: corrupt Parquet data in row group 2 "
                                         r"\(from row 500\): "):
        ddf.compute(scheduler="sync")
    assert ddf.partitions[3].compute(scheduler="sync")["doc_id"].tolist() == list(range(750, 1000))


def test_parquet_named_index_is_kept_as_a_column_in_every_partition(tmp_path, inputs):
    path = inputs.parquet(tmp_path / "d.parquet")
    ddf = read_input(path, blocksize=None).frame
    frame = ddf.compute(scheduler="sync")
    assert list(ddf.columns) == ["doc_id", "text"]
    assert frame["doc_id"].tolist() == list(range(1000))  # not restarted at 0 in each group
    assert read_input(path, blocksize="1GiB").frame.npartitions == 1


def test_parquet_without_row_groups(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    frame = read_input(path).frame.compute(scheduler="sync")
    assert list(frame.columns) == ["text"] and len(frame) == 0
