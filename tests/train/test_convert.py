"""Converters of public data sets to the TSV training format (real files, no mocks)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from dask_classify.train.convert import (
    CHEMPROT_LABELS,
    DATASETS,
    THUCNEWS_CATEGORIES,
    convert,
)
from dask_classify.train.data import DataFormatError, read_labels_file, read_tsv

SPLITS = ("train", "dev", "test")


def _read_all(target: Path) -> tuple[dict[str, object], dict[int, str]]:
    """Every output through read_tsv with the number of classes labels.txt gives."""
    labels = read_labels_file(target / "labels.txt")
    frames = {s: read_tsv(target / f"{s}.tsv", num_classes=len(labels)) for s in SPLITS}
    for split in SPLITS:
        assert (target / f"{split}.tsv").read_text(encoding="utf-8").startswith(
            "sentence\tlabel\n")
    return frames, labels


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# SST-2 (real GLUE files)


@pytest.fixture(scope="module")
def sst2_out(tmp_path_factory, data_dir) -> tuple[Path, dict[str, int]]:
    target = tmp_path_factory.mktemp("sst2")
    return target, convert("sst-2", data_dir / "sst2", target)


def test_sst2_real_files(sst2_out, data_dir):
    target, counts = sst2_out
    frames, labels = _read_all(target)
    assert labels == {0: "negative", 1: "positive"}
    assert counts == {s: len(frames[s]) for s in SPLITS}
    # GLUE hides test labels: GLUE dev is our test, dev is held out from GLUE train.
    assert counts["test"] == 872
    assert frames["test"]["label"].value_counts().to_dict() == {0: 428, 1: 444}
    # tests/data/sst2/train.tsv: the first 4,000 rows of GLUE train (1,807 neg / 2,193 pos)
    assert counts["train"] + counts["dev"] == 4000
    dev_counts = frames["dev"]["label"].value_counts().to_dict()
    assert dev_counts == {0: round(1807 * 0.1), 1: round(2193 * 0.1)}  # stratified
    # train + dev are exactly GLUE train (stripped), nothing lost or duplicated
    source = read_tsv(data_dir / "sst2" / "train.tsv")
    together = Counter(zip(frames["train"]["sentence"], frames["train"]["label"], strict=True))
    together.update(zip(frames["dev"]["sentence"], frames["dev"]["label"], strict=True))
    assert together == Counter(zip(source["sentence"], source["label"], strict=True))
    # source order kept: test is GLUE dev line by line
    glue_dev = read_tsv(data_dir / "sst2" / "dev.tsv")
    assert frames["test"]["sentence"].tolist() == glue_dev["sentence"].tolist()
    raw = (target / "test.tsv").read_text(encoding="utf-8").splitlines()[1]
    assert raw == "it 's a charming and often affecting journey .\t1"  # stripped
    _no_leftovers(target)


def test_sst2_seed_is_deterministic_and_matters(sst2_out, data_dir, tmp_path):
    target, _ = sst2_out
    again = convert("SST2", data_dir / "sst2", tmp_path / "again", seed=0)
    assert (tmp_path / "again" / "dev.tsv").read_bytes() == (target / "dev.tsv").read_bytes()
    assert (tmp_path / "again" / "train.tsv").read_bytes() == (target / "train.tsv").read_bytes()
    other = convert("sst-2", data_dir / "sst2", tmp_path / "other", seed=1, dev_fraction=0.2)
    assert other["dev"] == round(1807 * 0.2) + round(2193 * 0.2)
    assert other["dev"] + other["train"] == again["dev"] + again["train"]
    dev0 = set((target / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:])
    dev1 = set((tmp_path / "other" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:])
    assert dev0 != dev1 and dev0 & dev1


def _sst2_source(folder: Path, test: str | None = None) -> Path:
    folder.mkdir(parents=True)
    rows = "".join(f"Sentence {i} \t{i % 2}\n" for i in range(20))
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    if test is not None:
        (folder / "test.tsv").write_text(test, encoding="utf-8")
    return folder


def test_sst2_glue_layout_parent_folder_and_unlabelled_test(tmp_path):
    _sst2_source(tmp_path / "glue" / "SST-2", test="index\tsentence\n0\tno label here\n")
    counts = convert("sst-2", tmp_path / "glue", tmp_path / "out", uncased=True)
    assert counts == {"train": 18, "dev": 2, "test": 20}
    frames, _ = _read_all(tmp_path / "out")
    assert frames["test"]["sentence"].tolist()[:2] == ["sentence 0", "sentence 1"]  # uncased
    assert "no label here" not in (tmp_path / "out" / "test.tsv").read_text(encoding="utf-8")


def test_sst2_labelled_test_is_used_as_is(tmp_path):
    src = _sst2_source(tmp_path / "src", test="sentence\tlabel\ntest one\t1\ntest two\t0\n")
    counts = convert("sst-2", src, tmp_path / "out")
    assert counts == {"train": 20, "dev": 20, "test": 2}
    frames, _ = _read_all(tmp_path / "out")
    assert frames["test"]["sentence"].tolist() == ["test one", "test two"]
    assert frames["train"]["sentence"].tolist()[:2] == ["Sentence 0", "Sentence 1"]  # cased


def test_sst2_bad_source_names_file_and_line(tmp_path):
    src = _sst2_source(tmp_path / "src")
    with open(src / "dev.tsv", "a", encoding="utf-8") as handle:
        handle.write("broken line\n")
    with pytest.raises(DataFormatError, match=r"dev\.tsv:22: missing tab"):
        convert("sst-2", src, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_sst2_target_must_not_be_the_source(tmp_path):
    src = _sst2_source(tmp_path / "src")
    before = (src / "train.tsv").read_bytes()
    with pytest.raises(ValueError, match="holds the source files"):
        convert("sst-2", src, src)
    assert (src / "train.tsv").read_bytes() == before


# --------------------------------------------------------------------------------------------
# IMDB (real aclImdb subset)


def _normalise(text: str) -> str:
    return re.sub(r"\s+|<br\s*/?>", "", text)


@pytest.mark.parametrize("sub", ["", "aclImdb"])
def test_imdb_real_files(data_dir, tmp_path, sub):
    source = data_dir / "imdb" / sub if sub else data_dir / "imdb"
    counts = convert("imdb", source, tmp_path)
    frames, labels = _read_all(tmp_path)
    assert labels == {0: "negative", 1: "positive"}
    # tests/data/imdb: 15 reviews in each of train/neg, train/pos, test/neg, test/pos
    assert counts == {"train": 26, "dev": 4, "test": 30}
    assert frames["dev"]["label"].value_counts().to_dict() == {0: 2, 1: 2}  # stratified
    assert frames["test"]["label"].value_counts().to_dict() == {0: 15, 1: 15}
    # every review once, with the label of its folder, and no <br /> left
    root = data_dir / "imdb" / "aclImdb"
    expected = {}
    for mode in ("train", "test"):
        for label, folder in enumerate(("neg", "pos")):
            for path in (root / mode / folder).glob("*.txt"):
                expected[_normalise(path.read_text(encoding="utf-8"))] = (mode, label)
    seen = {}
    for split, frame in frames.items():
        for sentence, label in zip(frame["sentence"], frame["label"], strict=True):
            assert "<br" not in sentence.lower()
            assert "\t" not in sentence and "\n" not in sentence
            mode, folder_label = expected[_normalise(sentence)]
            assert label == folder_label
            assert mode == ("test" if split == "test" else "train")
            seen[_normalise(sentence)] = split
    assert len(seen) == len(expected) == 60
    # classes are interleaved (seeded order), not 13 negatives then 13 positives
    assert frames["train"]["label"].head(10).nunique() == 2
    _no_leftovers(tmp_path)


def test_imdb_deterministic_uncased_and_br_replaced_by_space(data_dir, tmp_path):
    convert("imdb", data_dir / "imdb", tmp_path / "a", seed=3)
    convert("imdb", data_dir / "imdb", tmp_path / "b", seed=3, uncased=True)
    a = (tmp_path / "a" / "train.tsv").read_text(encoding="utf-8")
    b = (tmp_path / "b" / "train.tsv").read_text(encoding="utf-8")
    assert b == a.lower()
    convert("imdb", data_dir / "imdb", tmp_path / "c", seed=3)
    assert (tmp_path / "c" / "train.tsv").read_text(encoding="utf-8") == a

    src = tmp_path / "mini" / "aclImdb"
    for mode in ("train", "test"):
        for folder in ("neg", "pos"):
            (src / mode / folder).mkdir(parents=True)
            for i in range(3):
                (src / mode / folder / f"{i}_5.txt").write_text(
                    f" End of {folder}.<br /><br />Next\tpart<BR/>done \n", encoding="utf-8")
    convert("imdb", tmp_path / "mini", tmp_path / "mini_out")
    frames, _ = _read_all(tmp_path / "mini_out")
    assert set(frames["test"]["sentence"]) == {"End of neg. Next part done",
                                               "End of pos. Next part done"}


def test_imdb_missing_folders(tmp_path):
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as info:
        convert("imdb", tmp_path, tmp_path / "out")
    message = str(info.value)
    for missing in ("train/neg", "test/neg", "test/pos"):
        assert str(tmp_path / "aclImdb" / missing) in message
    for folder in ("train/neg", "test/neg", "test/pos"):
        (tmp_path / "aclImdb" / folder).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no \*\.txt reviews in .*train/neg"):
        convert("imdb", tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# atomic writes


def test_failed_conversion_leaves_no_partial_file(data_dir, tmp_path):
    source = tmp_path / "imdb"
    shutil.copytree(data_dir / "imdb" / "aclImdb", source / "aclImdb")
    bad = source / "aclImdb" / "test" / "pos" / "99999_10.txt"
    bad.write_bytes(b"A review in latin-1: caf\xe9\n")
    target = tmp_path / "out"
    with pytest.raises(DataFormatError) as info:
        convert("imdb", source, target)
    assert str(bad) in str(info.value) and "invalid UTF-8" in str(info.value)
    assert list(target.iterdir()) == []  # train.tsv was written in full, yet never moved in

    # A previous conversion is kept as it was, whole.
    bad.unlink()
    counts = convert("imdb", source, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    bad.write_bytes(b"\xff")
    with pytest.raises(DataFormatError):
        convert("imdb", source, target, seed=5)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert counts == {"train": 26, "dev": 4, "test": 30}


# --------------------------------------------------------------------------------------------
# ChemProt (NeMo's and BLUE's layouts)


def _chemprot_nemo_line(pmid: int, sentence: str, group: str | None) -> str:
    interaction, cpr = ("True", group) if group else ("False", "")
    return "\t".join([str(pmid), sentence, interaction, cpr, "T1", "aspirin", "T2", "COX",
                      "(tree)", sentence.replace(" ", ", ")]) + "\n"


def test_chemprot_nemo_layout(tmp_path):
    src = tmp_path / "chemprot"
    src.mkdir()
    groups = [None, "CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"]
    for name, n in (("trainingPosit_chem", 12), ("developPosit_chem", 6), ("testPosit_chem", 6)):
        lines = [_chemprot_nemo_line(1000 + i, f"@CHEMICAL$ Acts On @GENE$ {name} {i}",
                                     groups[i % 6]) for i in range(n)]
        (src / name).write_text("".join(lines), encoding="utf-8")
    counts = convert("chemprot", tmp_path, tmp_path / "out", uncased=True)
    assert counts == {"train": 12, "dev": 6, "test": 6}
    frames, labels = _read_all(tmp_path / "out")
    assert list(labels.values()) == list(CHEMPROT_LABELS)
    assert frames["train"]["label"].tolist() == [0, 1, 2, 3, 4, 5] * 2
    assert frames["dev"]["sentence"].iloc[1] == "@chemical$ acts on @gene$ developposit_chem 1"


def test_chemprot_blue_layout(tmp_path):
    src = tmp_path / "ChemProt"
    src.mkdir()
    for split in SPLITS:
        rows = "".join(f"{split}.{i}\tsentence {i} of {split}\t{label}\n"
                       for i, label in enumerate(CHEMPROT_LABELS))
        (src / f"{split}.tsv").write_text("index\tsentence\tlabel\n" + rows, encoding="utf-8")
    counts = convert("chemprot", src, tmp_path / "out")
    assert counts == {"train": 6, "dev": 6, "test": 6}
    frames, _ = _read_all(tmp_path / "out")
    assert frames["test"]["label"].tolist() == [0, 1, 2, 3, 4, 5]
    assert frames["test"]["sentence"].iloc[2] == "sentence 2 of test"


def test_chemprot_bad_labels_name_file_and_line(tmp_path):
    src = tmp_path / "chemprot"
    src.mkdir()
    (src / "trainingPosit_chem").write_text(
        _chemprot_nemo_line(1, "ok", "CPR:3") + _chemprot_nemo_line(2, "bad", "CPR:10"),
        encoding="utf-8")
    (src / "developPosit_chem").write_text("1\tno\tMaybe\n", encoding="utf-8")
    (src / "testPosit_chem").write_text(_chemprot_nemo_line(3, "ok", None), encoding="utf-8")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(DataFormatError) as info:
        convert("chemprot", src, target)
    message = str(info.value)
    assert f"{src / 'trainingPosit_chem'}:2: interaction True with CPR group 'CPR:10'" in message
    assert f"{src / 'developPosit_chem'}:1: third field must be True or False" in message
    assert list(target.iterdir()) == []


def test_chemprot_missing_files(tmp_path):
    (tmp_path / "train.tsv").write_text("index\tsentence\tlabel\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="trainingPosit_chem.*dev.tsv, test.tsv"):
        convert("chemprot", tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# THUCNews


def test_thucnews_layout(tmp_path):
    src = tmp_path / "THUCNews"
    used = THUCNEWS_CATEGORIES[:3] + (THUCNEWS_CATEGORIES[-1],)
    for category in used:
        (src / category).mkdir(parents=True)
        for i in range(10):
            (src / category / f"{i}.txt").write_text(
                f"{category}标题{i}\r\n\u3000\u3000第一段\t内容。\n第二段。\n", encoding="utf-8")
    (src / "not-a-category").mkdir()
    counts = convert("thucnews", tmp_path, tmp_path / "out")
    # per category: test 20% = 2, dev 10% of 8 = 1, train 7
    assert counts == {"train": 28, "dev": 4, "test": 8}
    frames, labels = _read_all(tmp_path / "out")
    assert list(labels.values()) == list(THUCNEWS_CATEGORIES)
    assert len(labels) == 14
    for frame in frames.values():
        for sentence, label in zip(frame["sentence"], frame["label"], strict=True):
            category = THUCNEWS_CATEGORIES[label]
            assert category in used
            # NeMo joins lines without a separator; a tab becomes a space
            assert re.fullmatch(f"{category}标题\\d\u3000\u3000第一段 内容。第二段。", sentence)
    assert Counter(frames["test"]["label"]) == {0: 2, 1: 2, 2: 2, 13: 2}
    # the three splits partition the files
    keys = [s for f in frames.values() for s in f["sentence"]]
    assert len(keys) == len(set(keys)) == 40
    # seeded: same seed, same files; another seed, another test split
    convert("thucnews", src, tmp_path / "again")
    assert (tmp_path / "again" / "test.tsv").read_bytes() == (
        tmp_path / "out" / "test.tsv").read_bytes()
    convert("thucnews", src, tmp_path / "seed9", seed=9, test_fraction=0.5)
    frame9 = read_tsv(tmp_path / "seed9" / "test.tsv")
    assert len(frame9) == 20


def test_thucnews_missing_categories(tmp_path):
    (tmp_path / "sports").mkdir()
    with pytest.raises(FileNotFoundError, match="体育"):
        convert("thucnews", tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------------------------
# arguments


def test_bad_arguments(tmp_path, data_dir):
    assert DATASETS == ("sst-2", "imdb", "chemprot", "thucnews")
    with pytest.raises(ValueError, match="unknown dataset 'mnli'.*sst-2, imdb, chemprot"):
        convert("mnli", tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert("imdb", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"sst-2: expected .*train\.tsv, .*dev\.tsv"):
        convert("sst-2", tmp_path, tmp_path / "out")
    for fraction in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="dev_fraction"):
            convert("sst-2", data_dir / "sst2", tmp_path / "out", dev_fraction=fraction)
    with pytest.raises(ValueError, match="test_fraction"):
        convert("thucnews", tmp_path, tmp_path / "out", test_fraction=0)
    assert not (tmp_path / "out").exists()
