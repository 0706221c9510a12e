"""Units (:mod:`dask_classify.readers.units`): compressed files as one streamed partition,
``partition_rows``, each unit read once, and the checks of :func:`read_input`'s arguments."""

from __future__ import annotations

import json

import dask
import pandas as pd
import pytest

import dask_classify.readers.units as readers_units
from dask_classify.errors import InputError
from dask_classify.readers import BadLines, read_input


def test_compressed_jsonl_is_one_partition_and_names_its_line(tmp_path, inputs):
    import gzip

    lines = [json.dumps(r) for r in inputs.rows(50)]
    lines[30] = "{oops"
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(InputError, match=r"d\.jsonl\.gz:31: not valid JSON"):
        read_input(path, blocksize=100)
    frame, report = inputs.compute(read_input(path, blocksize=100, on_bad_lines="skip"))
    assert len(frame) == 49 and report.first_line == 31
    path.write_bytes(gzip.compress(b'{"text": "a"}\n' * 100)[:-20])  # truncated stream
    with pytest.raises(InputError, match=r"d\.jsonl\.gz: cannot read: "):
        read_input(path).frame.compute(scheduler="sync")


def test_each_block_is_read_once_when_the_report_is_computed_too(tmp_path, inputs, monkeypatch):
    calls = []
    reader = readers_units._UnitReader.__call__
    monkeypatch.setattr(readers_units._UnitReader, "__call__",
                        lambda self, unit: calls.append(unit.index) or reader(self, unit))
    path = inputs.jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in inputs.rows(100)])
    source = read_input(path, blocksize="1KiB", on_bad_lines="skip")
    n, report = dask.compute(source.frame.map_partitions(len).sum(), source.bad_lines,
                             scheduler="sync")
    assert n == 100 and BadLines.from_frame(report).count == 0
    assert sorted(calls) == sorted(set(calls)) and len(calls) == source.frame.npartitions


def test_partition_rows_splits_parquet_at_row_groups_and_text_by_lines(tmp_path):
    frame = pd.DataFrame({"id": range(10_000), "text": [f"row {i} " * 4 for i in range(10_000)]})
    pq_path = tmp_path / "d.parquet"
    frame.to_parquet(pq_path, index=False, row_group_size=1_000)
    whole = read_input(pq_path).frame  # 64 MiB of row groups: one partition
    assert whole.npartitions == 1
    split = read_input(pq_path, partition_rows=2_500).frame  # 2 groups fit, 3 do not
    sizes = split.map_partitions(len).compute().tolist()
    assert sizes == [2_000] * 5
    assert split.compute()["id"].tolist() == list(range(10_000))
    assert read_input(pq_path, partition_rows=10).frame.npartitions == 10  # groups are not split
    jsonl = tmp_path / "d.jsonl"
    frame.to_json(jsonl, orient="records", lines=True)  # ~53 bytes a line
    lines = read_input(jsonl, partition_rows=2_000).frame
    sizes = lines.map_partitions(len).compute().tolist()
    assert sum(sizes) == 10_000 and len(sizes) == 5 and max(sizes) < 2_200  # about 2,000 each
    assert read_input(jsonl, partition_rows=100).frame.npartitions == 8  # the 64 KiB floor
    assert lines.compute()["id"].tolist() == list(range(10_000))
    assert read_input(jsonl, blocksize="128KiB", partition_rows=10**6).frame.npartitions == (
        jsonl.stat().st_size // 2**17)  # the blocksize is smaller: it wins
    with pytest.raises(ValueError, match="partition_rows"):
        read_input(jsonl, partition_rows=0)


def test_unknown_on_bad_lines_value(tmp_path, inputs):
    with pytest.raises(ValueError, match="on_bad_lines must be one of"):
        read_input(inputs.jsonl(tmp_path / "d.jsonl", ['{"a": 1}']), on_bad_lines="warn")
