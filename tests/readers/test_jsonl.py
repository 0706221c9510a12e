"""JSONL (:mod:`dask_classify.readers.jsonl`): a bad line names the file and its line (or is
skipped and counted), every partition has the same columns, values keep their JSON types."""

from __future__ import annotations

import json

import pytest

from dask_classify.errors import InputError
from dask_classify.readers import read_input


def test_jsonl_bad_line_in_a_later_block_names_its_absolute_line(tmp_path, inputs, small_sample):
    lines = [json.dumps(r) for r in inputs.rows(200)]
    lines[137] = '{"id": 137, "text": "unterminated}'
    path = inputs.jsonl(tmp_path / "docs.jsonl", lines)

    source = read_input(path, blocksize="1KiB")  # the sample is fine: no error yet
    assert source.frame.npartitions == path.stat().st_size // 1024  # as dd.read_json cuts
    with pytest.raises(InputError) as err:
        source.frame.compute(scheduler="sync")
    assert str(err.value).startswith(f"{path}:138: not valid JSON: ")

    frame, report = inputs.compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(200) if i != 137]  # order kept, one dropped
    assert frame["text"].tolist() == [r["text"] for r in inputs.rows(200) if r["id"] != 137]
    assert (report.count, report.first_line) == (1, 138)
    assert str(report).startswith(f"skipped 1 bad line in {path} (first: line 138: not valid")


def test_jsonl_bad_line_among_the_first_rows_fails_before_computing(tmp_path, inputs):
    path = inputs.jsonl(tmp_path / "d.jsonl", ['{"text": "a"}', "not json at all", '{"text": "b"}'])
    with pytest.raises(InputError, match=r"d\.jsonl:2: not valid JSON: Expecting value"):
        read_input(path)


def test_a_json_array_file_says_json_lines_are_expected(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": "b"}], indent=2), encoding="utf-8")
    with pytest.raises(InputError, match=r"d\.json:1: not valid JSON: .*looks like one JSON "
                                         r"array, but JSON Lines"):
        read_input(path)


@pytest.mark.parametrize("line, kind", [("[1, 2]", "array"), ('"text"', "string"),
                                        ("42", "number"), ("null", "null"), ("true", "boolean")])
def test_jsonl_line_that_is_json_but_not_an_object(tmp_path, inputs, line, kind):
    path = inputs.jsonl(tmp_path / "d.jsonl",
                        ['{"text": "a"}', '{"text": "b"}', line, '{"text": "c"}'])
    with pytest.raises(InputError) as err:
        read_input(path)
    assert str(err.value) == f"{path}:3: not a JSON object (a JSON {kind})"
    frame, report = inputs.compute(read_input(path, on_bad_lines="skip"))
    assert frame["text"].tolist() == ["a", "b", "c"] and report.count == 1


def test_jsonl_invalid_utf8_names_line_and_byte_offset(tmp_path, inputs, small_sample):
    good = [json.dumps(r).encode() for r in inputs.rows(60)]
    good[45] = b'{"id": 45, "text": "caf\xe9 latin-1"}'
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join(good) + b"\n")
    offset = sum(len(line) + 1 for line in good[:45]) + good[45].index(b"\xe9")
    with pytest.raises(InputError) as err:
        read_input(path, blocksize="1KiB").frame.compute(scheduler="sync")
    assert str(err.value) == (f"{path}:46: invalid UTF-8 (byte 0xe9 at byte offset {offset}); "
                              "is the file in another encoding?")
    frame, report = inputs.compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(60) if i != 45] and report.count == 1


def test_jsonl_lone_surrogate_is_a_bad_line_but_escaped_pairs_are_fine(tmp_path, inputs):
    path = inputs.jsonl(tmp_path / "d.jsonl", [
        json.dumps({"text": "😀 ok"}),  # \ud83d\ude00 escapes
        '{"text": "half \\ud83d emoji"}',
        json.dumps({"text": "fine"}, ensure_ascii=False)])
    with pytest.raises(InputError, match=r"d\.jsonl:2: a string holds an unpaired surrogate"):
        read_input(path)
    frame, report = inputs.compute(read_input(path, on_bad_lines="skip"))
    assert frame["text"].tolist() == ["😀 ok", "fine"] and report.count == 1


def test_jsonl_columns_are_the_same_in_every_partition(tmp_path, inputs):
    rows = [{"id": i, "text": f"t{i}"} if i % 3 else {"text": f"t{i}", "extra": [i, {"k": i}]}
            for i in range(90)]
    lines = [json.dumps(r) for r in rows]
    lines[10:10] = ["", "   ", "\r"]  # empty lines are skipped silently, not counted
    path = inputs.jsonl(tmp_path / "d.jsonl", lines)
    source = read_input(path, blocksize=256, on_bad_lines="skip")
    assert source.frame.npartitions > 5
    parts = [p.compute(scheduler="sync") for p in source.frame.partitions]
    assert {tuple(p.columns) for p in parts} == {("text", "extra", "id")}  # first-seen order
    frame, report = inputs.compute(source)
    assert report.count == 0
    assert frame["text"].tolist() == [r["text"] for r in rows]
    assert frame["extra"].isna().tolist() == ["extra" not in r for r in rows]
    assert frame["extra"].iloc[0] == [0, {"k": 0}]  # nested values stay Python objects
    assert frame["id"].isna().tolist() == ["id" not in r for r in rows]


def test_jsonl_key_that_first_appears_after_the_sample_is_a_clear_error(tmp_path, inputs,
                                                                         small_sample):
    lines = [json.dumps(r) for r in inputs.rows(100)]
    lines[80] = json.dumps({"id": 80, "text": "t", "late": 1})
    path = inputs.jsonl(tmp_path / "d.jsonl", lines)
    with pytest.raises(InputError, match=r"d\.jsonl:81: key 'late' is not among the columns"):
        read_input(path, blocksize="1KiB").frame.compute(scheduler="sync")


def test_jsonl_bom_crlf_and_raw_control_characters(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "raw\x01tab\tinside"}\r\n')
    assert read_input(path).frame.compute(scheduler="sync")["text"].tolist() == [
        "a", "raw\x01tab\tinside"]


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\n \n", "no line holds a JSON object"),
])
def test_jsonl_without_rows(tmp_path, content, message):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_input(path)
