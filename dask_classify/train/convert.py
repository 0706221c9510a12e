"""Convert public text-classification data sets to the training format of
:mod:`dask_classify.train.data`.

Each conversion writes, into the target folder, ``train.tsv``, ``dev.tsv`` and ``test.tsv``
(header ``sentence\\tlabel``, one example a line) and ``labels.txt`` (line ``i`` names label
``i``). The source layouts are those NVIDIA NeMo's converter reads
(``examples/nlp/text_classification/data/import_datasets.py``); where NeMo writes no dev split,
or no labelled test split exists, we carve one out as described below.

``sst-2``
    Source: GLUE's ``SST-2/{train,dev}.tsv`` with header ``sentence\\tlabel``. GLUE's
    ``test.tsv`` (``index\\tsentence``) has no labels and is ignored. Splits: GLUE hides the test
    labels, so GLUE dev becomes ``test.tsv`` (the split papers report) and ``dev.tsv`` is a
    seeded, per-class ``dev_fraction`` of GLUE train (the rest is ``train.tsv``). If the source
    has a *labelled* ``test.tsv`` (header ``...\\tlabel``), the three files are converted as
    they are. Labels: 0 negative, 1 positive.
``imdb``
    Source: ``aclImdb/{train,test}/{pos,neg}/*.txt``, one review a file (``source`` may be
    ``aclImdb`` or its parent). Splits: test is aclImdb test; dev is a seeded, per-class
    ``dev_fraction`` of aclImdb train, train the rest (aclImdb has no dev split). Labels: 0 neg,
    1 pos.
``chemprot``
    Source: NeMo's layout (the files of github.com/arwhirang/recursive_chemprot),
    ``trainingPosit_chem``, ``developPosit_chem``, ``testPosit_chem``: tab-separated, no header,
    fields pmid, sentence, ``True``/``False`` (interaction), CPR group, ...; or BLUE's layout,
    ``{train,dev,test}.tsv`` with header ``index\\tsentence\\tlabel``. Splits: the official
    train/dev/test. Labels: a fixed mapping, 0 ``false`` (no interaction), 1 ``CPR:3``,
    2 ``CPR:4``, 3 ``CPR:5``, 4 ``CPR:6``, 5 ``CPR:9`` (NeMo numbers the labels in the order it
    meets them, which differs between data files; a fixed mapping keeps models comparable).
``thucnews``
    Source: one folder per category, named as in :data:`THUCNEWS_CATEGORIES` (NeMo's list and
    order), holding ``*.txt`` news files (``source`` may be ``THUCNews`` or its parent).
    Splits: per category, a seeded ``test_fraction`` (NeMo's 20%) is test, a seeded
    ``dev_fraction`` of the rest is dev, the rest train. Labels: the index of the category.

Text handling, for every data set: ``\\r``, ``\\n``, tabs and other line breaks become spaces
(:func:`~dask_classify.train.data.clean_sentence`; for THUCNews, as in NeMo, line breaks are
dropped, since Chinese needs no space between lines), text is stripped, and lower-cased when
``uncased``. IMDB's ``<br />`` tags are replaced by a space (NeMo deletes them, which glues words
such as ``movie.<br /><br />The`` into ``movie.The``). Examples whose text is empty after that are
skipped (and logged), since :func:`~dask_classify.train.data.read_tsv` rejects empty sentences.

Seeded choices use a hash of ``(seed, example key)`` (a file name, or the sentence), not a random
stream, so they are the same on every platform and Python version, and adding files to a source
does not move the others between splits. Row order: SST-2 and ChemProt keep their source order in
every split; IMDB and THUCNews splits are in a seeded shuffled order (their sources are sorted by
class, and a file whose first half is one class misleads anyone who reads its head).

Every output is written to a hidden temporary file in the target folder and moved into place with
``os.replace`` only after every split was written, so a failed or interrupted run leaves the
previous files (or none), never a half-written one. All sources are read before anything is
replaced.

See :func:`convert` for an example.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from dask_classify.atomic import atomic_files
from dask_classify.errors import InputError, UsageError
from dask_classify.train.data import (
    HEADER,
    DataFormatError,
    _Problems,
    clean_sentence,
    read_tsv,
)

__all__ = [
    "CHEMPROT_LABELS",
    "DATASETS",
    "SENTIMENT_LABELS",
    "THUCNEWS_CATEGORIES",
    "SourceNotFoundError",
    "convert",
]

logger = logging.getLogger(__name__)


class SourceNotFoundError(InputError, FileNotFoundError):
    """A data set's source folder or files are missing (names what was looked for)."""


DATASETS = ("sst-2", "imdb", "chemprot", "thucnews")
_ALIASES = {"sst2": "sst-2", "sst_2": "sst-2", "glue-sst2": "sst-2", "aclimdb": "imdb"}
SENTIMENT_LABELS = ("negative", "positive")
CHEMPROT_LABELS = ("false", "CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")
# The category order NeMo's process_thucnews uses: label = index in this tuple.
THUCNEWS_CATEGORIES = ("体育", "娱乐", "家居", "彩票", "房产", "教育", "时尚", "时政", "星座",
                       "游戏", "社会", "科技", "股票", "财经")
SPLITS = ("train", "dev", "test")
LABELS_FILE = "labels.txt"
_CHEMPROT_NEMO_FILES = {"train": "trainingPosit_chem", "dev": "developPosit_chem",
                        "test": "testPosit_chem"}
_BR_RE = re.compile(r"(?:\s*<br\s*/?>)+\s*", re.IGNORECASE)
_DIGITS_RE = re.compile(r"(\d+)")

# One example: (sentence, label). A split is a list of them, or, for the file-per-example
# layouts, a list of (path, label) read while writing so a large corpus never sits in memory.
Example = tuple[str, int]


def convert(dataset: str, source: str | os.PathLike, target: str | os.PathLike, *,
            uncased: bool = False, seed: int = 0, dev_fraction: float = 0.1,
            test_fraction: float = 0.2) -> dict[str, int]:
    """Convert a public data set to ``train/dev/test.tsv`` + ``labels.txt`` in ``target``.

    Parameters
    ----------
    dataset : {"sst-2", "imdb", "chemprot", "thucnews"}
        The data set (case-insensitive; ``"sst2"`` is accepted too). Layouts and splits are in
        the module docstring.
    source : str or os.PathLike
        The folder holding the data set as downloaded (or the folder above it: ``SST-2/``,
        ``aclImdb/``, ``THUCNews/``, ``chemprot/`` are looked for inside).
    target : str or os.PathLike
        The output folder (created if needed; existing outputs are replaced). It must not be
        the folder the source files are in.
    uncased : bool, default False
        Lower-case the text (for uncased models), as NeMo's ``--do_lower_case``.
    seed : int, default 0
        Seed of the held-out splits and of the row order of IMDB and THUCNews.
    dev_fraction : float, default 0.1
        Fraction of each class of the training data held out as ``dev.tsv`` where the source has
        no dev split of its own (SST-2 without a labelled test, IMDB, THUCNews); ``0 < x < 1``.
    test_fraction : float, default 0.2
        Fraction of each THUCNews category held out as ``test.tsv`` (NeMo's 20%); ``0 < x < 1``.
        Ignored by the other data sets, which have a test split.

    Returns
    -------
    dict of str to int
        Rows written per split: ``{"train": ..., "dev": ..., "test": ...}``.

    Raises
    ------
    ValueError
        If ``dataset`` is unknown, a fraction is out of range, or ``target`` is the source folder.
    FileNotFoundError
        If ``source`` or a file or folder the layout needs is missing; the message names them.
    DataFormatError
        If a source file is malformed (not UTF-8, a bad line or label); the message names the
        files and lines. Nothing in ``target`` is replaced then.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> for split in ("train", "dev"):
    ...     rows = "".join(f"{w} film\\t{i % 2}\\n" for i, w in enumerate("abcdefghij"))
    ...     _ = (src / f"{split}.tsv").write_text("sentence\\tlabel\\n" + rows, encoding="utf-8")
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> convert("sst-2", src, out)
    {'train': 8, 'dev': 2, 'test': 10}
    >>> sorted(p.name for p in out.iterdir())
    ['dev.tsv', 'labels.txt', 'test.tsv', 'train.tsv']
    """
    name = str(dataset).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    for label, value in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < float(value) < 1.0:
            raise UsageError(f"{label} must be between 0 and 1 (exclusive), not {value!r}")
    source = Path(source)
    if not source.exists():
        raise SourceNotFoundError(f"{name}: the source folder {source} does not exist")
    if not source.is_dir():
        raise NotADirectoryError(f"{name}: the source {source} is not a folder")
    target = Path(target)
    options = dict(uncased=bool(uncased), seed=int(seed), dev_fraction=float(dev_fraction),
                   test_fraction=float(test_fraction))
    converter: Callable[..., dict[str, int]] = {
        "sst-2": _convert_sst2, "imdb": _convert_imdb, "chemprot": _convert_chemprot,
        "thucnews": _convert_thucnews}[name]
    counts = converter(source, target, **options)
    logger.info("%s: wrote %s to %s", name, counts, target)
    return counts


# --------------------------------------------------------------------------------------------
# helpers


def _text(raw: str, uncased: bool) -> str:
    text = clean_sentence(raw)
    return text.lower() if uncased else text


def _hash_key(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()


def _holdout_count(n: int, fraction: float) -> int:
    """Examples of a class of ``n`` to hold out: at least 1, and leave at least 1 (if n >= 2)."""
    if n < 2:
        return 0
    return min(n - 1, max(1, int(n * fraction + 0.5)))


def _split_by_class(keys: Sequence[str], labels: Sequence[int], fraction: float,
                    seed: int) -> set[int]:
    """Positions held out: per label, the ``fraction`` with the smallest seeded key hashes."""
    by_label: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_label.setdefault(label, []).append(position)
    held: set[int] = set()
    for positions in by_label.values():
        ranked = sorted(positions, key=lambda p: (_hash_key(seed, keys[p]), p))
        held.update(ranked[:_holdout_count(len(positions), fraction)])
    return held


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in _DIGITS_RE.split(path.name)]


def _check_not_source(target: Path, folder: Path, names: Iterable[str]) -> None:
    if target.resolve() == folder.resolve() and any((folder / n).exists() for n in names):
        raise UsageError(f"the target folder {target} holds the source files: choose another "
                         "target, or the source would be overwritten")


def _write(target: Path, splits: dict[str, list[Example]], labels: Sequence[str]) -> dict[str,
                                                                                          int]:
    """Write in-memory splits and the labels file atomically."""
    for split in SPLITS:
        if not splits[split]:
            raise DataFormatError(f"{target.name or target}", [(None, f"no example for the "
                                                               f"{split} split")])
    names = [f"{s}.tsv" for s in SPLITS]
    with atomic_files(target, [*names, LABELS_FILE]) as files:
        for split in SPLITS:
            out = files[f"{split}.tsv"]
            out.write(HEADER + "\n")
            out.writelines(f"{text}\t{label}\n" for text, label in splits[split])
        files[LABELS_FILE].write("".join(f"{name}\n" for name in labels))
    return {split: len(splits[split]) for split in SPLITS}


def _write_from_files(target: Path, splits: dict[str, list[tuple[Path, int]]],
                      labels: Sequence[str], read: Callable[[Path], str],
                      dataset: str) -> dict[str, int]:
    """Read one example per file while writing; every unreadable file is reported at the end."""
    problems = _Problems(f"{dataset} source", 20)
    counts = dict.fromkeys(SPLITS, 0)
    skipped = 0
    with atomic_files(target, [*(f"{s}.tsv" for s in SPLITS), LABELS_FILE]) as files:
        for split in SPLITS:
            out = files[f"{split}.tsv"]
            out.write(HEADER + "\n")
            for path, label in splits[split]:
                try:
                    text = read(path)
                except UnicodeDecodeError as exc:
                    problems.add(None, f"{path}: invalid UTF-8 at byte offset {exc.start} "
                                       f"({exc.reason})")
                    continue
                except OSError as exc:
                    problems.add(None, f"{path}: cannot read ({exc.strerror or exc})")
                    continue
                if not text:
                    skipped += 1
                    continue
                out.write(f"{text}\t{label}\n")
                counts[split] += 1
        # Raising inside the block removes the temporaries: nothing in target changes.
        problems.raise_if_any()
        for split in SPLITS:
            if not counts[split]:
                raise DataFormatError(f"{dataset} source", [(None, f"no example for the "
                                                                   f"{split} split")])
        files[LABELS_FILE].write("".join(f"{name}\n" for name in labels))
    if skipped:
        logger.warning("%s: skipped %d empty example(s)", dataset, skipped)
    return counts


def _find_folder(source: Path, subfolders: Sequence[str],
                 accept: Callable[[Path], bool]) -> Path | None:
    for folder in (source, *(source / s for s in subfolders)):
        if folder.is_dir() and accept(folder):
            return folder
    return None


def _missing(folder: Path, names: Iterable[str]) -> list[str]:
    return [n for n in names if not (folder / n).exists()]


# --------------------------------------------------------------------------------------------
# SST-2


def _sst2_rows(path: Path, uncased: bool) -> list[Example]:
    frame = read_tsv(path, num_classes=2, allow_empty=True)
    rows = [(_text(s, uncased), int(lab)) for s, lab in zip(frame["sentence"], frame["label"],
                                                             strict=True)]
    kept = [row for row in rows if row[0]]
    if len(kept) < len(rows):
        logger.warning("sst-2: %s: skipped %d empty sentence(s)", path, len(rows) - len(kept))
    return kept


def _convert_sst2(source: Path, target: Path, *, uncased: bool, seed: int, dev_fraction: float,
                  test_fraction: float) -> dict[str, int]:
    needed = ("train.tsv", "dev.tsv")
    folder = _find_folder(source, ("SST-2", "sst-2", "SST2", "sst2"),
                          lambda f: not _missing(f, needed))
    if folder is None:
        raise SourceNotFoundError(
            f"sst-2: expected the GLUE layout, {' and '.join(needed)} with a 'sentence\\tlabel' "
            f"header, in {source} or {source / 'SST-2'}; missing: "
            f"{', '.join(str(source / n) for n in _missing(source, needed))}")
    _check_not_source(target, folder, (*needed, "test.tsv"))
    train = _sst2_rows(folder / "train.tsv", uncased)
    dev = _sst2_rows(folder / "dev.tsv", uncased)
    test_path = folder / "test.tsv"
    labelled_test = False
    if test_path.is_file():
        with open(test_path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline().rstrip("\r\n")
        labelled_test = first.rpartition("\t")[2].strip().lower() == "label"
        if not labelled_test:
            logger.info("sst-2: %s has no labels (GLUE's test split); not used", test_path)
    if labelled_test:
        splits = {"train": train, "dev": dev, "test": _sst2_rows(test_path, uncased)}
    else:
        # GLUE hides SST-2's test labels: GLUE dev becomes our test (the split papers report),
        # and dev is held out from train. Identical sentences hash alike, so the phrase
        # duplicates of SST-2's train mostly land in the same split.
        held = _split_by_class([t for t, _ in train], [lab for _, lab in train], dev_fraction,
                               seed)
        splits = {"train": [r for i, r in enumerate(train) if i not in held],
                  "dev": [r for i, r in enumerate(train) if i in held], "test": dev}
    return _write(target, splits, SENTIMENT_LABELS)


# --------------------------------------------------------------------------------------------
# IMDB


def _read_imdb(uncased: bool) -> Callable[[Path], str]:
    def read(path: Path) -> str:
        review = path.read_bytes().decode("utf-8")
        return _text(_BR_RE.sub(" ", review), uncased)

    return read


def _convert_imdb(source: Path, target: Path, *, uncased: bool, seed: int, dev_fraction: float,
                  test_fraction: float) -> dict[str, int]:
    needed = ("train/neg", "train/pos", "test/neg", "test/pos")
    folder = _find_folder(source, ("aclImdb",), lambda f: not _missing(f, needed))
    if folder is None:
        best = source / "aclImdb" if (source / "aclImdb").is_dir() else source
        raise SourceNotFoundError(
            f"imdb: expected the aclImdb layout {{train,test}}/{{pos,neg}}/*.txt in {source} or "
            f"{source / 'aclImdb'}; missing: "
            f"{', '.join(str(best / n) for n in _missing(best, needed))}")
    files: dict[str, list[tuple[Path, int]]] = {}
    for mode in ("train", "test"):
        files[mode] = []
        for label, sentiment in enumerate(("neg", "pos")):
            found = sorted((folder / mode / sentiment).glob("*.txt"), key=_natural_key)
            if not found:
                raise SourceNotFoundError(f"imdb: no *.txt reviews in {folder / mode / sentiment}")
            files[mode] += [(p, label) for p in found]

    def key(item: tuple[Path, int]) -> str:
        return f"{item[0].parent.parent.name}/{item[0].parent.name}/{item[0].name}"

    train = files["train"]
    held = _split_by_class([key(i) for i in train], [lab for _, lab in train], dev_fraction,
                           seed)
    splits = {"train": [r for i, r in enumerate(train) if i not in held],
              "dev": [r for i, r in enumerate(train) if i in held], "test": files["test"]}
    for split, items in splits.items():  # interleave the classes, reproducibly
        splits[split] = sorted(items, key=lambda item: (_hash_key(seed, "order/" + key(item)),
                                                        key(item)))
    return _write_from_files(target, splits, SENTIMENT_LABELS, _read_imdb(uncased), "imdb")


# --------------------------------------------------------------------------------------------
# ChemProt

_CHEMPROT_IDS = {name.lower(): i for i, name in enumerate(CHEMPROT_LABELS)}


def _chemprot_label(raw: str) -> int | None:
    return _CHEMPROT_IDS.get(raw.strip().lower())


def _read_chemprot(path: Path, layout: str, uncased: bool, problems: _Problems) -> list[Example]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.add(None, f"{path}: cannot read ({exc.strerror or exc})")
        return []
    rows: list[Example] = []
    expected = ", ".join(CHEMPROT_LABELS)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            problems.add(None, f"{where}: invalid UTF-8 ({exc.reason})")
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        if layout == "blue":
            if number == 1 and fields[-1].strip().lower() == "label":
                continue  # header: index, sentence, label
            if len(fields) < 3:
                problems.add(None, f"{where}: expected 3 tab-separated fields (index, "
                                   f"sentence, label), found {len(fields)}")
                continue
            sentence, label = "\t".join(fields[1:-1]), _chemprot_label(fields[-1])
            if label is None:
                problems.add(None, f"{where}: unknown label {fields[-1].strip()!r} "
                                   f"(expected one of {expected})")
                continue
        else:  # NeMo's layout: pmid, sentence, True/False, CPR group, ...
            if len(fields) < 3:
                problems.add(None, f"{where}: expected at least 3 tab-separated fields (pmid, "
                                   f"sentence, True/False, CPR group, ...), found {len(fields)}")
                continue
            sentence, interaction = fields[1], fields[2].strip()
            if interaction.lower() == "true":
                group = fields[3].strip() if len(fields) > 3 else ""
                label = _chemprot_label(group)
                if label is None or label == 0:
                    problems.add(None, f"{where}: interaction True with CPR group {group!r} "
                                       f"(expected one of {', '.join(CHEMPROT_LABELS[1:])})")
                    continue
            elif interaction.lower() == "false":
                label = 0
            else:
                problems.add(None, f"{where}: third field must be True or False, not "
                                   f"{interaction!r}")
                continue
        text = _text(sentence, uncased)
        if not text:
            logger.warning("chemprot: %s: empty sentence skipped", where)
            continue
        rows.append((text, label))
    return rows


def _convert_chemprot(source: Path, target: Path, *, uncased: bool, seed: int,
                      dev_fraction: float, test_fraction: float) -> dict[str, int]:
    subfolders = ("chemprot", "ChemProt", "chemprot-data")
    nemo_names = tuple(_CHEMPROT_NEMO_FILES.values())
    blue_names = tuple(f"{s}.tsv" for s in SPLITS)
    folder = _find_folder(source, subfolders, lambda f: not _missing(f, nemo_names))
    layout = "nemo"
    if folder is None:
        folder = _find_folder(source, subfolders, lambda f: not _missing(f, blue_names))
        layout = "blue"
    if folder is None:
        raise SourceNotFoundError(
            f"chemprot: expected NeMo's layout ({', '.join(nemo_names)}) or BLUE's "
            f"({', '.join(blue_names)}) in {source} or {source / 'chemprot'}; missing: "
            f"{', '.join(_missing(source, nemo_names))} / "
            f"{', '.join(_missing(source, blue_names))}")
    _check_not_source(target, folder, blue_names)
    problems = _Problems("chemprot source", 20)
    splits = {}
    for split in SPLITS:
        name = _CHEMPROT_NEMO_FILES[split] if layout == "nemo" else f"{split}.tsv"
        splits[split] = _read_chemprot(folder / name, layout, uncased, problems)
    problems.raise_if_any()
    return _write(target, splits, CHEMPROT_LABELS)


# --------------------------------------------------------------------------------------------
# THUCNews


def _read_thucnews(uncased: bool) -> Callable[[Path], str]:
    def read(path: Path) -> str:
        news = path.read_bytes().decode("utf-8").strip()
        # As NeMo: join lines without a separator (Chinese), tabs become spaces (clean_sentence).
        news = news.replace("\r", "").replace("\n", "")
        return _text(news, uncased)

    return read


def _convert_thucnews(source: Path, target: Path, *, uncased: bool, seed: int,
                      dev_fraction: float, test_fraction: float) -> dict[str, int]:
    folder = _find_folder(source, ("THUCNews", "thucnews"),
                          lambda f: any((f / c).is_dir() for c in THUCNEWS_CATEGORIES))
    if folder is None:
        raise SourceNotFoundError(
            f"thucnews: expected one folder per category ({', '.join(THUCNEWS_CATEGORIES)}) "
            f"holding *.txt news files, in {source} or {source / 'THUCNews'}; found none")
    absent = [c for c in THUCNEWS_CATEGORIES if not (folder / c).is_dir()]
    if absent:
        logger.warning("thucnews: no folder for categories %s in %s (their labels stay unused)",
                       ", ".join(absent), folder)
    extra = sorted(p.name for p in folder.iterdir()
                   if p.is_dir() and p.name not in THUCNEWS_CATEGORIES)
    if extra:
        logger.warning("thucnews: ignored folders that are no THUCNews category: %s",
                       ", ".join(extra))
    splits: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    for label, category in enumerate(THUCNEWS_CATEGORIES):
        if category in absent:
            continue
        found = sorted((folder / category).glob("*.txt"), key=_natural_key)
        ranked = sorted(found, key=lambda p: (_hash_key(seed, f"{category}/{p.name}"),
                                              _natural_key(p)))
        n_test = _holdout_count(len(ranked), test_fraction)
        n_dev = _holdout_count(len(ranked) - n_test, dev_fraction)
        splits["test"] += [(p, label) for p in ranked[:n_test]]
        splits["dev"] += [(p, label) for p in ranked[n_test:n_test + n_dev]]
        splits["train"] += [(p, label) for p in ranked[n_test + n_dev:]]
    if not any(splits.values()):
        raise SourceNotFoundError(f"thucnews: no *.txt news files in the category folders of "
                                f"{folder}")
    for split, items in splits.items():  # interleave the categories, reproducibly
        splits[split] = sorted(items, key=lambda item: (
            _hash_key(seed, f"order/{item[0].parent.name}/{item[0].name}"), str(item[0])))
    return _write_from_files(target, splits, THUCNEWS_CATEGORIES, _read_thucnews(uncased),
                             "thucnews")
