"""CSV and TSV (:mod:`dask_classify.readers.delimited`): every row must have the header's field
count, invalid UTF-8 names its line and offset, quoted line breaks need a file read whole."""

from __future__ import annotations

import pytest

from dask_classify.errors import InputError
from dask_classify.readers import read_input


def test_csv_ragged_row_names_file_and_line_in_a_later_block(tmp_path, inputs, small_sample):
    lines = inputs.csv_lines(120)
    lines[100] = '100,"text 100",extra field,1'
    path = inputs.csv(tmp_path / "d.csv", lines)
    with pytest.raises(InputError) as err:
        read_input(path, blocksize="1KiB").frame.compute(scheduler="sync")
    assert str(err.value) == f"{path}:102: 4 fields where the header has 3"
    frame, report = inputs.compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(120) if i != 100]
    assert (report.count, report.first_line) == (1, 102)


def test_csv_short_rows_are_bad_too(tmp_path, inputs, small_sample):
    # A text with an unquoted line break: pandas alone would pad both halves with nulls.
    lines = inputs.csv_lines(120)
    lines[90] = "90,first half of a text"
    lines.insert(91, "second half,1")
    lines[3] = lines[85] = '3,"an empty last field is not a short row",'
    path = inputs.csv(tmp_path / "d.csv", lines)
    with pytest.raises(InputError, match=rf"^{path}:92: 2 fields where the header has 3$"):
        read_input(path, blocksize="1KiB").frame.compute(scheduler="sync")
    frame, report = inputs.compute(read_input(path, blocksize="1KiB", on_bad_lines="skip"))
    assert frame["id"].tolist() == [3 if i == 85 else i for i in range(120) if i != 90]
    assert frame["label"].isna().tolist() == [i in (3, 85) for i in range(120) if i != 90]
    assert (report.count, report.first_line) == (2, 92)


def test_csv_invalid_utf8_names_line_and_offset(tmp_path, inputs):
    lines = [f"{i}\ttext {i}, with a comma\t{i % 2}".encode() for i in range(30)]
    lines[7] = b"7\tna\xefve in latin-1? no: \xff\t1"
    path = tmp_path / "d.tsv"
    path.write_bytes(b"\n".join([b"id\ttext\tlabel", *lines]) + b"\n")
    offset = path.read_bytes().index(b"\xef")
    with pytest.raises(InputError) as err:
        read_input(path)
    assert str(err.value).startswith(f"{path}:9: invalid UTF-8 (byte 0xef at byte offset {offset})")
    frame, report = inputs.compute(read_input(path, on_bad_lines="skip"))
    assert frame["id"].tolist() == [i for i in range(30) if i != 7] and report.count == 1


def test_csv_quoted_line_breaks_need_one_piece_and_say_so(tmp_path, inputs):
    lines = [f'{i},"first line\nsecond line {i}",{i % 2}' for i in range(60)]
    path = inputs.csv(tmp_path / "d.csv", lines)
    frame = read_input(path, blocksize=0).frame.compute(scheduler="sync")
    assert frame["text"].tolist() == [f"first line\nsecond line {i}" for i in range(60)]
    with pytest.raises(InputError, match=r"blocksize=0, --blocksize 0"):
        read_input(path, blocksize=300).frame.compute(scheduler="sync")


def test_csv_quote_left_open_at_the_end(tmp_path, inputs):
    path = inputs.csv(tmp_path / "d.csv", [*inputs.csv_lines(10), '10,"never closed,1', "11,x,0"])
    with pytest.raises(InputError, match=r"d\.csv:12: a quoted field opened in this line is "
                                         r"never closed \(the file ends inside it\)"):
        read_input(path, blocksize=0)
    frame, report = inputs.compute(read_input(path, blocksize=0, on_bad_lines="skip"))
    assert frame["id"].tolist() == list(range(10)) and report.count == 1


def test_csv_carriage_return_in_an_unquoted_field(tmp_path, inputs):
    # A lone \r left unquoted (as some pandas versions' to_csv write it): pandas' reader splits
    # the row in two.
    (tmp_path / "d.csv").write_bytes(b"id,text\n0,a\n1,b\n2,c\rd\n3,e\n4,f\n5,g\n")
    with pytest.raises(InputError, match=r"d\.csv:4: a carriage return \(\\r\) inside an "):
        read_input(tmp_path / "d.csv")
    frame, report = inputs.compute(read_input(tmp_path / "d.csv", on_bad_lines="skip"))
    assert frame["id"].tolist() == [0, 1, 3, 4, 5] and report.count == 1


def test_csv_empty_and_header_only(tmp_path, inputs):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(InputError, match="the file is empty"):
        read_input(tmp_path / "e.csv")
    frame = read_input(inputs.csv(tmp_path / "h.csv", [])).frame.compute(scheduler="sync")
    assert list(frame.columns) == ["id", "text", "label"] and len(frame) == 0


def test_csv_partitions_follow_blocksize_and_keep_order(tmp_path, inputs):
    path = inputs.csv(tmp_path / "d.csv", inputs.csv_lines(500))
    ddf = read_input(path, blocksize="2KiB").frame
    assert ddf.npartitions == path.stat().st_size // 2048  # as dd.read_csv cuts
    frame = ddf.compute(scheduler="sync")
    assert frame["id"].tolist() == list(range(500))
    assert frame["text"].iloc[3] == "text 3, with a comma"
