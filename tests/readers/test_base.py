"""The shared base (:mod:`dask_classify.readers.base`): block sizes, byte ranges cut at line
breaks, UTF-8 checks, dropped lines, dtypes made to agree, and the bad-line report."""

from __future__ import annotations

import pandas as pd
import pytest

import dask_classify.readers.base as base
from dask_classify.errors import InputError, UsageError
from dask_classify.readers import BadLines, parse_blocksize, summarize_bad_lines
from dask_classify.readers.discovery import discover


@pytest.mark.parametrize("value, expected", [
    ("64MiB", 64 << 20), ("1kB", 1000), (4096, 4096), ("0", None), (0, None), (None, None),
    ("", None), (" None ", None),
])
def test_parse_blocksize(value, expected):
    assert parse_blocksize(value) == expected


@pytest.mark.parametrize("value, message", [("lots", "must be a size like"),
                                            (-1, "must not be negative")])
def test_parse_blocksize_refuses(value, message):
    with pytest.raises(UsageError, match=message):
        parse_blocksize(value)


def test_blocks_cover_the_file_without_gaps():
    assert base._blocks(1000, None) == [(0, None)]
    assert base._blocks(1000, 600) == [(0, None)]  # under two blocks: one
    blocks = base._blocks(1000, 300)
    assert blocks == [(0, 333), (333, 666), (666, 1000)]


@pytest.mark.parametrize("blocksize", [7, 50, 97, 400])
def test_read_block_reads_every_line_once(tmp_path, blocksize):
    lines = [f"line {i} " + "x" * (i % 13) for i in range(60)]
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"HEADER\n" + "".join(line + "\n" for line in lines).encode())
    (source,) = discover([str(path)])
    pieces = [base._read_block(source, block, skip_prefix=7)
              for block in base._blocks(source.size, blocksize)]
    assert b"".join(data for _, data in pieces) == path.read_bytes()[7:]
    for begin, data in pieces:  # each piece starts where its bytes are in the file
        assert path.read_bytes()[begin:begin + len(data)] == data


def test_drop_lines():
    data = b"a\nb\nc\nd\ne"
    assert base._drop_lines(data, [(2, 3)]) == b"a\nd\ne"
    assert base._drop_lines(data, [(5, 5), (1, 1)]) == b"b\nc\nd\n"
    assert base._drop_lines(data, []) == data


def _bad_lines(tmp_path, skip, base_offset=0):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n" * 10)
    return base._BadLines(discover([str(path)])[0], base_offset, skip)


def test_valid_utf8_drops_and_counts_bad_lines(tmp_path):
    assert base._is_utf8("ok 😀 非常".encode()) and not base._is_utf8(b"caf\xe9")
    bad = _bad_lines(tmp_path, skip=True)
    data = b"good\ncaf\xe9\nfine \xf0\x9f\x98\x80\n\xff\xfe\nlast"
    assert base._valid_utf8(data, bad) == "good\nfine 😀\nlast".encode()
    count, (_, line, problem) = bad.stats()
    assert count == 2 and line == 2
    assert problem == ("invalid UTF-8 (byte 0xe9 at byte offset 8); is the file in another "
                       "encoding?")


def test_valid_utf8_raises_with_the_absolute_line_in_error_mode(tmp_path):
    bad = _bad_lines(tmp_path, skip=False, base_offset=4)  # 4 line breaks before the block
    with pytest.raises(InputError, match=r"d\.jsonl:6: invalid UTF-8 \(byte 0xe9 at byte "
                                         r"offset 10\)"):
        base._valid_utf8(b"ok\ncaf\xe9\n", bad)


def test_conform_makes_only_lossless_conversions():
    meta = pd.DataFrame({"f": pd.Series([], dtype="float64"), "o": pd.Series([], dtype=object),
                         "i": pd.Series([], dtype="int64"), "n": pd.Series([], dtype="float64")})
    block = pd.DataFrame({"f": [1, 2], "o": [1, 2], "i": [1.5, 2.0], "n": [None, None]})
    out = base._conform(block, meta)
    assert out.dtypes.to_dict() == {"f": "float64", "o": object, "i": "float64",
                                    "n": "float64"}
    assert out["i"].tolist() == [1.5, 2.0]  # float to int would lose the .5: left alone


def test_bad_lines_report(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"h\n1\n2\n3\n4\n5\n")
    (source,) = discover([str(path)])
    assert summarize_bad_lines(source, [(0, None), (0, None)]) == BadLines(str(path), 0)
    # the unit at byte 6 (after 3 line breaks) has the earliest first bad line, its line 2
    report = summarize_bad_lines(source, [(1, (8, 1, "late")), (2, (6, 2, "early"))])
    assert (report.count, report.first_line, report.first_problem) == (3, 5, "early")
    assert str(BadLines("a.csv")) == "no bad lines in a.csv"
    assert str(BadLines("a.csv", 1, 5, "x")) == "skipped 1 bad line in a.csv (first: line 5: x)"
    frame = base._summary_frame(source, [(2, (6, 2, "early"))])
    assert BadLines.from_frame(frame) == BadLines(str(path), 2, 5, "early")
    assert BadLines.from_frame(base._summary_frame(None, [])) == BadLines("")
