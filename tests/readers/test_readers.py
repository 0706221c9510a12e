"""Reading inputs: bad lines name the file and line (or are skipped and counted), rows keep their
order, and every kind of Unicode passes through the classify command intact."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dask_classify.readers as readers
import dask_classify.readers.base as readers_base
import dask_classify.readers.units as readers_units
from dask_classify.cli import main
from dask_classify.errors import InputError
from dask_classify.readers import BadLines


def read_input(path, *args, **kwargs):
    return readers.read_input(str(path), *args, **kwargs)


def read_dataframe(path, *args, **kwargs):
    return read_input(path, *args, **kwargs).frame

# one in-process worker: clusters of worker processes are tested in test_cluster/test_reliability
FAST = ["--no-progress", "--dashboard-address", "none", "--n-workers", "1"]

UNICODE = [
    "😀🎉 great fun, really",
    "非常好的电影",
    "فيلم رائع جدا",
    "עברית: סרט מצוין",
    "cafe\u0301 e\u0301te\u0301 (combining acute)",
    "control \x01\x02\x1b\x1f chars",
    "line\u2028separator\u2029paragraph\x85next-line",
    "tab\there and a\rcarriage return",
    "zero\u200bwidth\u200djoiner and \ufeff inside",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters",
    "flag 🇫🇷, family 👨‍👩‍👧, skin 👍🏽",
    "\u202eright-to-left override\u202c",
    'quotes " and \\ backslash, commas',
    "   ",
    "",
]


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(n: int, width: int = 40) -> list[dict]:
    return [{"id": i, "text": f"row {i} " + "x" * width} for i in range(n)]


def _compute(source):
    if source.bad_lines is None:
        return source.frame.compute(scheduler="sync"), None
    frame, report = dask.compute(source.frame, source.bad_lines, scheduler="sync")
    return frame, BadLines.from_frame(report)


@pytest.fixture
def small_sample(monkeypatch):
    """Fix the columns from the first 512 bytes, so later blocks are only read at compute time."""
    monkeypatch.setattr(readers_base, "SAMPLE_BYTES", 512)


# --------------------------------------------------------------------------- JSONL
def test_jsonl_bad_line_in_a_later_block_names_its_absolute_line(tmp_path, small_sample):
    lines = [json.dumps(r) for r in _rows(200)]
    lines[137] = '{"id": 137, "text": "unterminated}'
    path = _jsonl(tmp_path / "docs.jsonl", lines)

    source = read_input(path, blocksize="1KiB")  # the sample is fine: no error yet
    assert source.frame.npartitions == path.stat().st_size // 1024  # as dd.read_json cuts
    with pytest.raises(InputError) as err:
        source.frame.compute(scheduler="sync")
    assert str(err.value).startswith(f"{path}:138: not valid JSON: ")

    frame, report = _compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(200) if i != 137]  # order kept, one dropped
    assert frame["text"].tolist() == [r["text"] for r in _rows(200) if r["id"] != 137]
    assert (report.count, report.first_line) == (1, 138)
    assert str(report).startswith(f"skipped 1 bad line in {path} (first: line 138: not valid")


def test_jsonl_bad_line_among_the_first_rows_fails_before_computing(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", ['{"text": "a"}', "not json at all", '{"text": "b"}'])
    with pytest.raises(InputError, match=r"d\.jsonl:2: not valid JSON: Expecting value"):
        read_dataframe(path)


def test_a_json_array_file_says_json_lines_are_expected(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": "b"}], indent=2), encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.json:1: not valid JSON: .*looks like one JSON "
                                         r"array, but JSON Lines"):
        read_dataframe(path)


@pytest.mark.parametrize("line, kind", [("[1, 2]", "array"), ('"text"', "string"),
                                        ("42", "number"), ("null", "null"), ("true", "boolean")])
def test_jsonl_line_that_is_json_but_not_an_object(tmp_path, line, kind):
    path = _jsonl(tmp_path / "d.jsonl", ['{"text": "a"}', '{"text": "b"}', line, '{"text": "c"}'])
    with pytest.raises(InputError) as err:
        read_dataframe(path)
    assert str(err.value) == f"{path}:3: not a JSON object (a JSON {kind})"
    frame, report = _compute(read_input(path, on_bad_lines="skip"))
    assert frame["text"].tolist() == ["a", "b", "c"] and report.count == 1


def test_jsonl_invalid_utf8_names_line_and_byte_offset(tmp_path, small_sample):
    good = [json.dumps(r).encode() for r in _rows(60)]
    good[45] = b'{"id": 45, "text": "caf\xe9 latin-1"}'
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join(good) + b"\n")
    offset = sum(len(line) + 1 for line in good[:45]) + good[45].index(b"\xe9")
    with pytest.raises(InputError) as err:
        read_dataframe(path, blocksize="1KiB").compute(scheduler="sync")
    assert str(err.value) == (f"{path}:46: invalid UTF-8 (byte 0xe9 at byte offset {offset}); "
                              "is the file in another encoding?")
    frame, report = _compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(60) if i != 45] and report.count == 1


def test_jsonl_lone_surrogate_is_a_bad_line_but_escaped_pairs_are_fine(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [json.dumps({"text": "😀 ok"}),  # \ud83d\ude00 escapes
                                         '{"text": "half \\ud83d emoji"}',
                                         json.dumps({"text": "fine"}, ensure_ascii=False)])
    with pytest.raises(InputError, match=r"d\.jsonl:2: a string holds an unpaired surrogate"):
        read_dataframe(path)
    frame, report = _compute(read_input(path, on_bad_lines="skip"))
    assert frame["text"].tolist() == ["😀 ok", "fine"] and report.count == 1


def test_jsonl_columns_are_the_same_in_every_partition(tmp_path):
    rows = [{"id": i, "text": f"t{i}"} if i % 3 else {"text": f"t{i}", "extra": [i, {"k": i}]}
            for i in range(90)]
    lines = [json.dumps(r) for r in rows]
    lines[10:10] = ["", "   ", "\r"]  # empty lines are skipped silently, not counted
    path = _jsonl(tmp_path / "d.jsonl", lines)
    source = read_input(path, blocksize=256, on_bad_lines="skip")
    assert source.frame.npartitions > 5
    parts = [p.compute(scheduler="sync") for p in source.frame.partitions]
    assert {tuple(p.columns) for p in parts} == {("text", "extra", "id")}  # first-seen order
    frame, report = _compute(source)
    assert report.count == 0
    assert frame["text"].tolist() == [r["text"] for r in rows]
    assert frame["extra"].isna().tolist() == ["extra" not in r for r in rows]
    assert frame["extra"].iloc[0] == [0, {"k": 0}]  # nested values stay Python objects
    assert frame["id"].isna().tolist() == ["id" not in r for r in rows]


def test_jsonl_key_that_first_appears_after_the_sample_is_a_clear_error(tmp_path, small_sample):
    lines = [json.dumps(r) for r in _rows(100)]
    lines[80] = json.dumps({"id": 80, "text": "t", "late": 1})
    path = _jsonl(tmp_path / "d.jsonl", lines)
    with pytest.raises(InputError, match=r"d\.jsonl:81: key 'late' is not among the columns"):
        read_dataframe(path, blocksize="1KiB").compute(scheduler="sync")


def test_jsonl_bom_crlf_and_raw_control_characters(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "raw\x01tab\tinside"}\r\n')
    assert read_dataframe(path).compute(scheduler="sync")["text"].tolist() == [
        "a", "raw\x01tab\tinside"]


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\n \n", "no line holds a JSON object"),
])
def test_jsonl_without_rows(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_dataframe(path)


def test_compressed_jsonl_is_one_partition_and_names_its_line(tmp_path):
    import gzip

    lines = [json.dumps(r) for r in _rows(50)]
    lines[30] = "{oops"
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(InputError, match=r"d\.jsonl\.gz:31: not valid JSON"):
        read_dataframe(path, blocksize=100)
    frame, report = _compute(read_input(path, blocksize=100, on_bad_lines="skip"))
    assert len(frame) == 49 and report.first_line == 31
    path.write_bytes(gzip.compress(b'{"text": "a"}\n' * 100)[:-20])  # truncated stream
    with pytest.raises(InputError, match=r"d\.jsonl\.gz: cannot read: "):
        read_dataframe(path).compute(scheduler="sync")


def test_each_block_is_read_once_when_the_report_is_computed_too(tmp_path, monkeypatch):
    calls = []
    reader = readers_units._UnitReader.__call__
    monkeypatch.setattr(readers_units._UnitReader, "__call__",
                        lambda self, unit: calls.append(unit.index) or reader(self, unit))
    path = _jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in _rows(100)])
    source = read_input(path, blocksize="1KiB", on_bad_lines="skip")
    n, report = dask.compute(source.frame.map_partitions(len).sum(), source.bad_lines,
                             scheduler="sync")
    assert n == 100 and BadLines.from_frame(report).count == 0
    assert sorted(calls) == sorted(set(calls)) and len(calls) == source.frame.npartitions


# --------------------------------------------------------------------------- CSV / TSV
def _csv_lines(n: int) -> list[str]:
    return [f'{i},"text {i}, with a comma",{i % 2}' for i in range(n)]


def _csv(path: Path, lines: list[str], header: str = "id,text,label") -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_csv_ragged_row_names_file_and_line_in_a_later_block(tmp_path, small_sample):
    lines = _csv_lines(120)
    lines[100] = '100,"text 100",extra field,1'
    path = _csv(tmp_path / "d.csv", lines)
    with pytest.raises(InputError) as err:
        read_dataframe(path, blocksize="1KiB").compute(scheduler="sync")
    assert str(err.value) == f"{path}:102: 4 fields where the header has 3"
    frame, report = _compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(120) if i != 100]
    assert (report.count, report.first_line) == (1, 102)


def test_csv_short_rows_are_bad_too(tmp_path, small_sample):
    # A text with an unquoted line break: pandas alone would pad both halves with nulls.
    lines = _csv_lines(120)
    lines[90] = "90,first half of a text"
    lines.insert(91, "second half,1")
    lines[3] = lines[85] = '3,"an empty last field is not a short row",'
    path = _csv(tmp_path / "d.csv", lines)
    with pytest.raises(InputError, match=rf"^{path}:92: 2 fields where the header has 3$"):
        read_dataframe(path, blocksize="1KiB").compute(scheduler="sync")
    frame, report = _compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [3 if i == 85 else i for i in range(120) if i != 90]
    assert frame["label"].isna().tolist() == [i in (3, 85) for i in range(120) if i != 90]
    assert (report.count, report.first_line) == (2, 92)


def test_csv_invalid_utf8_names_line_and_offset(tmp_path):
    lines = [f"{i}\ttext {i}, with a comma\t{i % 2}".encode() for i in range(30)]
    lines[7] = b"7\tna\xefve in latin-1? no: \xff\t1"
    path = tmp_path / "d.tsv"
    path.write_bytes(b"\n".join([b"id\ttext\tlabel", *lines]) + b"\n")
    offset = path.read_bytes().index(b"\xef")
    with pytest.raises(InputError) as err:
        read_dataframe(path)
    assert str(err.value).startswith(f"{path}:9: invalid UTF-8 (byte 0xef at byte offset {offset})")
    frame, report = _compute(read_input(path, on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(30) if i != 7] and report.count == 1


def test_csv_quoted_line_breaks_need_one_piece_and_say_so(tmp_path):
    lines = [f'{i},"first line\nsecond line {i}",{i % 2}' for i in range(60)]
    path = _csv(tmp_path / "d.csv", lines)
    frame = read_dataframe(path, blocksize=0).compute(scheduler="sync")
    assert frame["text"].tolist() == [f"first line\nsecond line {i}" for i in range(60)]
    with pytest.raises(InputError, match=r"blocksize=0, --blocksize 0"):
        read_dataframe(path, blocksize=300).compute(scheduler="sync")


def test_csv_quote_left_open_at_the_end(tmp_path):
    path = _csv(tmp_path / "d.csv", [*_csv_lines(10), '10,"never closed,1', "11,x,0"])
    with pytest.raises(InputError, match=r"d\.csv:12: a quoted field opened in this line is "
                                         r"never closed \(the file ends inside it\)"):
        read_dataframe(path, blocksize=0)
    frame, report = _compute(read_input(path, blocksize=0, on_bad_lines="skip"))
    assert frame["id"].tolist() == list(range(10)) and report.count == 1


def test_csv_carriage_return_in_an_unquoted_field(tmp_path):
    # A lone \r left unquoted (as some pandas versions' to_csv write it): pandas' reader splits
    # the row in two.
    (tmp_path / "d.csv").write_bytes(b"id,text\n0,a\n1,b\n2,c\rd\n3,e\n4,f\n5,g\n")
    with pytest.raises(InputError, match=r"d\.csv:4: a carriage return \(\\r\) inside an "):
        read_dataframe(tmp_path / "d.csv")
    frame, report = _compute(read_input(tmp_path / "d.csv", on_bad_lines="skip"))
    assert frame["id"].tolist() == [0, 1, 3, 4, 5] and report.count == 1


def test_csv_empty_and_header_only(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(InputError, match="the file is empty"):
        read_dataframe(tmp_path / "e.csv")
    frame = read_dataframe(_csv(tmp_path / "h.csv", [])).compute(scheduler="sync")
    assert list(frame.columns) == ["id", "text", "label"] and len(frame) == 0


def test_csv_partitions_follow_blocksize_and_keep_order(tmp_path):
    path = _csv(tmp_path / "d.csv", _csv_lines(500))
    ddf = read_dataframe(path, blocksize="2KiB")
    assert ddf.npartitions == path.stat().st_size // 2048  # as dd.read_csv cuts
    frame = ddf.compute(scheduler="sync")
    assert frame["id"].tolist() == list(range(500))
    assert frame["text"].iloc[3] == "text 3, with a comma"


# --------------------------------------------------------------------------- Parquet
def _parquet(path: Path, n: int = 1000, row_group_size: int = 250) -> Path:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(n)]},
                         index=pd.RangeIndex(n, name="doc_id"))
    frame.to_parquet(path, row_group_size=row_group_size)
    return path


def test_partition_rows_splits_parquet_at_row_groups_and_text_by_lines(tmp_path):
    frame = pd.DataFrame({"id": range(10_000), "text": [f"row {i} " * 4 for i in range(10_000)]})
    pq_path = tmp_path / "d.parquet"
    frame.to_parquet(pq_path, index=False, row_group_size=1_000)
    whole = read_dataframe(pq_path)  # 64 MiB of row groups: one partition
    assert whole.npartitions == 1
    split = read_dataframe(pq_path, partition_rows=2_500)  # 2 groups fit, 3 do not
    sizes = split.map_partitions(len).compute().tolist()
    assert sizes == [2_000] * 5
    assert split.compute()["id"].tolist() == list(range(10_000))
    assert read_dataframe(pq_path, partition_rows=10).npartitions == 10  # groups are not split
    jsonl = tmp_path / "d.jsonl"
    frame.to_json(jsonl, orient="records", lines=True)  # ~53 bytes a line
    lines = read_dataframe(jsonl, partition_rows=2_000)
    sizes = lines.map_partitions(len).compute().tolist()
    assert sum(sizes) == 10_000 and len(sizes) == 5 and max(sizes) < 2_200  # about 2,000 each
    assert read_dataframe(jsonl, partition_rows=100).npartitions == 8  # the 64 KiB floor
    assert lines.compute()["id"].tolist() == list(range(10_000))
    assert read_dataframe(jsonl, blocksize="128KiB", partition_rows=10**6).npartitions == (
        jsonl.stat().st_size // 2**17)  # the blocksize is smaller: it wins
    with pytest.raises(ValueError, match="partition_rows"):
        read_input(jsonl, partition_rows=0)


def test_truncated_parquet_names_the_file(tmp_path):
    path = _parquet(tmp_path / "d.parquet")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"^{path}: not a readable Parquet file \(truncated "):
        read_dataframe(path)


def test_corrupt_parquet_page_names_file_and_row_group(tmp_path):
    path = _parquet(tmp_path / "d.parquet")
    data = bytearray(path.read_bytes())
    offset = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset
    data[offset:offset + 32] = b"\xff" * 32
    path.write_bytes(bytes(data))
    ddf = read_dataframe(path, blocksize=None)  # the footer is fine: one partition per group
    assert ddf.npartitions == 4
    with pytest.raises(InputError, match=rf"^{path}: corrupt Parquet data in row group 2 "
                                         r"\(from row 500\): "):
        ddf.compute(scheduler="sync")
    assert ddf.partitions[3].compute(scheduler="sync")["doc_id"].tolist() == list(range(750, 1000))


def test_parquet_named_index_is_kept_as_a_column_in_every_partition(tmp_path):
    path = _parquet(tmp_path / "d.parquet")
    ddf = read_dataframe(path, blocksize=None)
    frame = ddf.compute(scheduler="sync")
    assert list(ddf.columns) == ["doc_id", "text"]
    assert frame["doc_id"].tolist() == list(range(1000))  # not restarted at 0 in each group
    assert read_dataframe(path, blocksize="1GiB").npartitions == 1


def test_parquet_without_row_groups(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    frame = read_dataframe(path).compute(scheduler="sync")
    assert list(frame.columns) == ["text"] and len(frame) == 0


def test_unknown_on_bad_lines_value(tmp_path):
    with pytest.raises(ValueError, match="on_bad_lines must be one of"):
        read_input(_jsonl(tmp_path / "d.jsonl", ['{"a": 1}']), on_bad_lines="warn")


# --------------------------------------------------------------------------- the command
def _read_output(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part.*"))
    assert parts, f"no output in {folder}"
    if parts[0].suffix == ".parquet":
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    # Split on "\n" only: the texts hold U+2028 and U+0085, which str.splitlines() splits on.
    rows = [json.loads(line) for p in parts
            for line in p.read_text(encoding="utf-8").split("\n") if line]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("in_fmt, out_fmt", [("jsonl", "jsonl"), ("csv", "parquet"),
                                             ("parquet", "jsonl")])
def test_unicode_of_every_kind_passes_through_the_command(tmp_path, bert_ckpt, in_fmt, out_fmt):
    texts = UNICODE * 3
    frame = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
    src = tmp_path / f"u.{in_fmt}"
    if in_fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=bool(i % 2)) for i, r in
                 enumerate(frame.to_dict("records"))]
        lines[0] = '{"id": 0, "text": "😀🎉 great fun, really", "raw": "\x01"}'  # raw control
        lines[1:1] = [""]
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        frame["raw"] = ["\x01"] + [None] * (len(texts) - 1)
    elif in_fmt == "csv":  # quoted, or the bare \r would be a line break (see test above)
        frame.to_csv(src, index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        frame.to_parquet(src, index=False)
    out = tmp_path / "out"
    rc = main(["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
               "--output-format", out_fmt, *FAST])
    assert rc == 0
    result = _read_output(out / f"u.{out_fmt}")
    assert result["id"].tolist() == frame["id"].tolist()
    want = frame["text"].tolist()
    if in_fmt == "csv":  # pandas reads an empty CSV field as a missing value
        want = [t if t != "" else None for t in want]
    got = [t if isinstance(t, str) else None for t in result["text"]]
    assert got == want
    if in_fmt == "jsonl":
        assert result["raw"].iloc[0] == "\x01"
    assert result["preds"].notna().sum() == sum(isinstance(t, str) for t in want)


def test_command_bad_line_in_a_later_block_exits_2_with_one_line(tmp_path, bert_ckpt,
                                                                  small_sample, capfd):
    lines = [json.dumps(r) for r in _rows(60)]
    lines[50] = '{"id": 50, "text": "cut'
    src = _jsonl(tmp_path / "docs.jsonl", lines)
    out = tmp_path / "out"
    args = ["classify", str(src), "--model", str(bert_ckpt), "--output", str(out),
            "--blocksize", "1KiB", *FAST]
    assert main(args) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines() == [
        f"dask-classify classify: error: {src}:51: not valid JSON: Unterminated string "
        "starting at (column 20)"]
    # parts finished before the error are kept for a rerun, but the output is not marked done
    manifest = json.loads((out / "_manifest.json").read_text())
    assert not manifest["inputs"][str(src)]["complete"]
    assert not (out / "docs.parquet" / "_SUCCESS").exists()
    assert not list(out.rglob(".*tmp-*")) and not (out / "_lock.json").exists()

    assert main([*args, "--on-bad-lines", "skip"]) == 0
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err
    assert (f"skipped 1 bad line in {src} (first: line 51: not valid JSON: Unterminated "
            "string starting at (column 20))") in printed.out
    assert "rows in: 59  rows out: 59  null text: 0  bad lines skipped: 1" in printed.out
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["bad_lines_skipped"] == 1 and summary["rows_in"] == 59
    assert _read_output(out / "docs.parquet")["id"].tolist() == [i for i in range(60) if i != 50]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["inputs"][str(src)]["bad_lines_skipped"] == 1
    assert (out / "docs.parquet" / "_SUCCESS").exists()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_command_broken_csv_and_parquet_exit_2_without_traceback(tmp_path, bert_ckpt, kind,
                                                                 capfd):
    if kind == "csv":
        src = _csv(tmp_path / "d.csv", [*_csv_lines(5), "5,a,b,c,d"])
        expected = f"{src}:7: 5 fields where the header has 3"
    else:
        src = _parquet(tmp_path / "d.parquet")
        src.write_bytes(src.read_bytes()[:100])
        expected = f"{src}: not a readable Parquet file (truncated or corrupt?): "
    rc = main(["classify", str(src), "--model", str(bert_ckpt), "--output",
               str(tmp_path / "out"), *FAST])
    err = capfd.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"dask-classify classify: error: {expected}")
