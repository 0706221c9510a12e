"""The TSV training format: reading, validation and its error messages (real files, no mocks)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest

from dask_classify.train.data import (
    DataFileNotFoundError,
    DataFormatError,
    clean_sentence,
    infer_num_classes,
    read_labels_file,
    read_tsv,
    validate_label_range,
    write_labels_file,
    write_tsv,
)


def _write(tmp_path: Path, content: str | bytes, name: str = "data.tsv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# --------------------------------------------------------------------------------------------
# good files


@pytest.mark.parametrize("header", ["sentence\tlabel\n", "text\tlabel\n", ""])
def test_read_good_file_with_and_without_header(tmp_path, header):
    path = _write(tmp_path, header + "a fine film \t1\nthe worst\t0\nso-so\t2\n")
    frame = read_tsv(path, num_classes=3)
    assert frame["sentence"].tolist() == ["a fine film", "the worst", "so-so"]
    assert frame["label"].tolist() == [1, 0, 2]
    assert frame["label"].dtype == "int64"
    assert pd.api.types.is_string_dtype(frame["sentence"].dtype)
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame.attrs == {"path": str(path), "first_line": 2 if header else 1}


def test_label_after_last_tab_crlf_bom_spaces_and_trailing_blank_lines(tmp_path):
    content = "\ufeffsentence\tlabel\r\ntab\tinside\t 1 \r\nplain\t0\r\n\n  \n\n"
    frame = read_tsv(_write(tmp_path, content))
    assert frame["sentence"].tolist() == ["tab\tinside", "plain"]
    assert frame["label"].tolist() == [1, 0]


def test_no_header_first_line_is_data(tmp_path):
    # Unlike NeMo, which always drops line 1, a file without header loses no example.
    frame = read_tsv(_write(tmp_path, "label me\t1\n"))
    assert frame["sentence"].tolist() == ["label me"]


def test_allow_empty_sentences(tmp_path):
    path = _write(tmp_path, "\t1\n   \t0\nx\t1\n")
    with pytest.raises(DataFormatError) as info:
        read_tsv(path)
    assert [line for line, _ in info.value.problems] == [1, 2]
    assert read_tsv(path, allow_empty=True)["sentence"].tolist() == ["", "", "x"]


def test_sst2_dev_real_file(data_dir):
    frame = read_tsv(data_dir / "sst2" / "dev.tsv", num_classes=2)
    assert len(frame) == 872
    assert frame["label"].value_counts().to_dict() == {0: 428, 1: 444}
    assert frame["sentence"].iloc[0] == "it 's a charming and often affecting journey ."


def test_sst2_train_sample_real_file(data_dir):
    frame = read_tsv(data_dir / "sst2" / "train.tsv", num_classes=2)
    assert len(frame) == 4000  # the first 4,000 rows of GLUE train (tests/data/SOURCES.md)
    assert frame["label"].value_counts().to_dict() == {0: 1807, 1: 2193}
    assert frame["sentence"].iloc[0] == "hide new secretions from the parental units"


# --------------------------------------------------------------------------------------------
# bad lines: each kind is reported with the file and its line number


BAD_LINES = [
    ("no tab at all", "missing tab between sentence and label"),
    ("a sentence\t", "empty label"),
    ("a sentence\t  ", "empty label"),
    ("a sentence\tpositive", "label 'positive' is not an integer"),
    ("a sentence\t1.0", "label '1.0' is not an integer"),
    ("a sentence\t+1", "label '+1' is not an integer"),
    ("a sentence\t١", "is not an integer"),  # a non-ASCII digit
    ("a sentence\t-1", "negative label -1"),
    ("\t1", "empty sentence"),
    ("   \t0", "empty sentence"),
    ("", "blank line"),
    ("one\r0\ttwo\t1", "carriage return"),
    ("sentence\tlabel", "a header line in the middle"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_LINES)
def test_bad_line_reported_with_file_and_line(tmp_path, bad, message):
    path = _write(tmp_path, f"sentence\tlabel\ngood one\t0\n{bad}\nanother good one\t1\n")
    with pytest.raises(DataFormatError) as info:
        read_tsv(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert err.total == 1
    assert err.problems[0][0] == 3
    assert message in err.problems[0][1]
    assert str(err).startswith(f"{path}:3: ")
    assert message in str(err)


def test_out_of_range_labels_with_num_classes(tmp_path):
    path = _write(tmp_path, "a\t0\nb\t1\nc\t2\nd\t7\n")
    assert read_tsv(path)["label"].tolist() == [0, 1, 2, 7]  # fine without num_classes
    with pytest.raises(DataFormatError) as info:
        read_tsv(path, num_classes=2)
    assert [line for line, _ in info.value.problems] == [3, 4]
    assert "label 2 out of range for num_classes=2 (expected 0..1)" in str(info.value)
    assert f"{path}:4: label 7 out of range" in str(info.value)


def test_whole_file_is_validated_and_all_problems_listed(tmp_path):
    lines = ["good\t1"] * 5000
    lines[1] = "missing tab"
    lines[2999] = "bad\tx"
    lines[4999] = "\t0"
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as info:
        read_tsv(path)
    err = info.value
    assert [line for line, _ in err.problems] == [2, 3000, 5000]
    text = str(err)
    assert text.splitlines()[0] == f"{path}: 3 problems:"
    assert f"{path}:2: missing tab" in text
    assert f"{path}:3000: label 'x'" in text
    assert f"{path}:5000: empty sentence" in text


def test_max_errors_limits_the_listing_but_counts_all(tmp_path):
    path = _write(tmp_path, "".join(f"line {i} without tab\n" for i in range(50)))
    with pytest.raises(DataFormatError) as info:
        read_tsv(path, max_errors=5)
    err = info.value
    assert err.total == 50
    assert len(err.problems) == 5
    assert "50 problems (the first 5 listed)" in str(err)
    assert str(err).endswith("... and 45 more")
    with pytest.raises(ValueError, match="max_errors"):
        read_tsv(path, max_errors=0)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b"\n\n  \n", "the file is empty"),
    (b"sentence\tlabel\n", "header but no examples"),
    (b"sentence\tlabel\n\n\n", "header but no examples"),
])
def test_empty_file_or_header_only(tmp_path, content, message):
    with pytest.raises(DataFormatError, match=message):
        read_tsv(_write(tmp_path, content))


def test_utf16_file_is_rejected(tmp_path):
    path = _write(tmp_path, "sentence\tlabel\na\t1\n".encode("utf-16-le"))
    with pytest.raises(DataFormatError, match="NUL bytes: is it UTF-16"):
        read_tsv(path)


def test_invalid_utf8_reports_line_and_byte_offset(tmp_path):
    content = b"good\t0\nalso good\t1\nbad \xff byte\t1\nno tab\ncaf\xc3\t0\n"
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError) as info:
        read_tsv(path)
    problems = dict(info.value.problems)
    assert sorted(problems) == [3, 4, 5]
    offset = content.index(b"\xff")
    assert f"invalid UTF-8 at byte offset {offset}" in problems[3]
    assert "0xff" in problems[3]
    assert problems[4] == "missing tab between sentence and label"
    assert "invalid UTF-8" in problems[5]
    assert f"{path}:3: invalid UTF-8" in str(info.value)


def test_latin1_file_is_rejected_with_a_line(data_dir):
    # TREC's train_5500.label has a raw 0xF0 byte on line 66 (tests/data/SOURCES.md).
    with pytest.raises(DataFormatError) as info:
        read_tsv(data_dir / "trec6" / "train_5500_head100.label")
    assert any(line == 66 and "invalid UTF-8" in msg for line, msg in info.value.problems)


def test_missing_or_unreadable_file(tmp_path):
    missing = tmp_path / "nope.tsv"
    with pytest.raises(DataFileNotFoundError) as info:
        read_tsv(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, DataFormatError)
    assert str(info.value) == f"{missing}: file not found"
    assert info.value.filename == str(missing)
    with pytest.raises(DataFormatError, match="is a directory"):
        read_tsv(tmp_path)


def test_bad_num_classes(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        read_tsv(_write(tmp_path, "a\t0\n"), num_classes=0)


def test_error_pickles_with_its_fields():
    err = pickle.loads(pickle.dumps(DataFormatError("x.tsv", [(3, "missing tab")], total=4)))
    assert (err.path, err.problems, err.total) == ("x.tsv", [(3, "missing tab")], 4)
    assert "x.tsv:3: missing tab" in str(err)
    missing = pickle.loads(pickle.dumps(DataFileNotFoundError("y.tsv")))
    assert isinstance(missing, FileNotFoundError)
    assert str(missing) == "y.tsv: file not found"


# --------------------------------------------------------------------------------------------
# label range, number of classes


def test_validate_label_range_names_lines_of_a_read_frame(tmp_path):
    path = _write(tmp_path, "sentence\tlabel\na\t0\nb\t3\nc\t1\nd\t5\n")
    frame = read_tsv(path)
    validate_label_range(frame, 6)
    with pytest.raises(DataFormatError) as info:
        validate_label_range(frame, 3)
    assert [line for line, _ in info.value.problems] == [3, 5]
    assert f"{path}:3: label 3 out of range for num_classes=3" in str(info.value)
    # filtering keeps the index, so line numbers stay right
    with pytest.raises(DataFormatError) as info:
        validate_label_range(frame[frame["label"] > 1], 4)
    assert [line for line, _ in info.value.problems] == [5]


def test_validate_label_range_plain_frame():
    frame = pd.DataFrame({"sentence": ["a", "b", "c"], "label": [0, -1, 2]})
    with pytest.raises(DataFormatError) as info:
        validate_label_range(frame, 2, path="dev.tsv")
    text = str(info.value)
    assert "dev.tsv: 2 problems" in text
    assert "row 1: label -1 out of range" in text
    assert "row 2: label 2 out of range" in text
    with pytest.raises(DataFormatError, match="must be integers"):
        validate_label_range(frame.assign(label=["0", "1", "2"]), 3)
    with pytest.raises(ValueError, match="num_classes"):
        validate_label_range(frame, 0)
    with pytest.raises(ValueError, match="no 'label' column"):
        validate_label_range(frame.drop(columns="label"), 2)


def test_infer_num_classes(tmp_path):
    train = read_tsv(_write(tmp_path, "a\t0\nb\t2\n", "train.tsv"))
    dev = read_tsv(_write(tmp_path, "c\t4\n", "dev.tsv"))
    assert infer_num_classes(train) == 3
    assert infer_num_classes(train, dev) == 5
    assert infer_num_classes(train, train.iloc[:0]) == 3
    with pytest.raises(ValueError, match="every frame is empty"):
        infer_num_classes(train.iloc[:0])
    with pytest.raises(ValueError, match="at least one frame"):
        infer_num_classes()
    with pytest.raises(ValueError, match=">= 0"):
        infer_num_classes(pd.DataFrame({"label": [-1, 1]}))


# --------------------------------------------------------------------------------------------
# labels file


def test_read_labels_file(tmp_path):
    path = _write(tmp_path, "negative\r\n positive \n\n", "labels.txt")
    assert read_labels_file(path) == {0: "negative", 1: "positive"}
    chinese = _write(tmp_path, "体育\n娱乐\n", "zh.txt")
    assert read_labels_file(chinese) == {0: "体育", 1: "娱乐"}


def test_read_labels_file_nemo_mapping_form(tmp_path):
    # NeMo's label_mapping.tsv: "name<TAB>id", ids in any order
    path = _write(tmp_path, "CPR:4\t1\nfalse\t0\nCPR:3\t2\n", "label_mapping.tsv")
    assert read_labels_file(path) == {0: "false", 1: "CPR:4", 2: "CPR:3"}
    with pytest.raises(DataFormatError, match="missing \\[1\\]"):
        read_labels_file(_write(tmp_path, "a\t0\nb\t2\n", "gap.tsv"))
    with pytest.raises(DataFormatError, match="duplicate label id 0"):
        read_labels_file(_write(tmp_path, "a\t0\nb\t0\n", "dup.tsv"))
    with pytest.raises(DataFormatError, match="'x' is not a non-negative integer"):
        read_labels_file(_write(tmp_path, "a\t0\nb\tx\n", "bad.tsv"))


@pytest.mark.parametrize(("content", "line", "message"), [
    (b"a\n\nb\n", 2, "empty label name"),
    (b"a\n  \nb\n", 2, "empty label name"),
    (b"a\nb\na\n", 3, "duplicate label name 'a' (also on line 1)"),
    (b"a\n\xff\n", 2, "invalid UTF-8"),
])
def test_read_labels_file_errors(tmp_path, content, line, message):
    path = _write(tmp_path, content, "labels.txt")
    with pytest.raises(DataFormatError) as info:
        read_labels_file(path)
    assert info.value.problems[0][0] == line
    assert message in info.value.problems[0][1]
    assert str(path) in str(info.value)


def test_read_labels_file_empty_or_missing(tmp_path):
    with pytest.raises(DataFormatError, match="labels file is empty"):
        read_labels_file(_write(tmp_path, b"\n\n", "labels.txt"))
    with pytest.raises(FileNotFoundError, match="file not found"):
        read_labels_file(tmp_path / "missing.txt")


def test_write_labels_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "sub" / "labels.txt"
    write_labels_file(path, ["false", "CPR:3"])
    assert read_labels_file(path) == {0: "false", 1: "CPR:3"}
    for bad in (["a", "a"], ["a", ""], ["a\nb"], ["a\tb"]):
        with pytest.raises(ValueError):
            write_labels_file(tmp_path / "bad.txt", bad)
    assert not (tmp_path / "bad.txt").exists()


# --------------------------------------------------------------------------------------------
# writing


def test_clean_sentence():
    assert clean_sentence(" a\tb\r\nc\u2028d\x85e\x0bf ") == "a b c d e f"
    assert clean_sentence("\t\n") == ""
    assert clean_sentence("no change") == "no change"


def test_write_tsv_round_trip(tmp_path):
    path = tmp_path / "out" / "train.tsv"
    sentences = ["tab\there", "line\nbreak", " spaced ", "体育新闻"]
    assert write_tsv(path, sentences, [0, 1, 2, 1]) == 4
    frame = read_tsv(path, num_classes=3)
    assert frame["sentence"].tolist() == ["tab here", "line break", "spaced", "体育新闻"]
    assert frame["label"].tolist() == [0, 1, 2, 1]
    assert path.read_text(encoding="utf-8").startswith("sentence\tlabel\n")
    assert [p.name for p in path.parent.iterdir()] == ["train.tsv"]  # no temporary left


def test_write_tsv_failure_leaves_previous_file(tmp_path):
    path = tmp_path / "train.tsv"
    write_tsv(path, ["old"], [0])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="example 1: the sentence is empty"):
        write_tsv(path, ["new", "\t"], [0, 1])
    with pytest.raises(ValueError, match="not a non-negative integer"):
        write_tsv(path, ["new"], [-1])
    with pytest.raises(ValueError):
        write_tsv(path, ["a", "b"], [0])  # lengths differ
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["train.tsv"]
