"""The training data format: NeMo text-classification TSV files, read and validated.

One example per line, ``sentence<TAB>label``, UTF-8, with integer labels ``0 .. num_classes - 1``
(the format NVIDIA NeMo's text-classification model trains on, and the one
:func:`dask_classify.train.convert.convert` writes)::

    sentence	label
    it 's a charming and often affecting journey . 	1
    unflinchingly bleak and desperate 	0

Rules, checked for the whole file before anything is returned, so that one run lists every
problem instead of failing on the first one:

* **Header.** An optional first line whose last field is ``label`` (``sentence\\tlabel``, or
  ``text\\tlabel``) is a header and is skipped. NeMo skips line 1 unconditionally; we do not, so a
  file without a header loses no example.
* **The label is after the last tab.** The sentence is everything before it: a sentence may hold
  tabs of its own and keeps them (NeMo also takes the last field as the label). Spaces around the
  label are ignored; it must be a plain ASCII integer (``1``, not ``1.0`` or ``+1``).
* **Sentences** are returned stripped of leading and trailing whitespace. An empty (or
  whitespace-only) sentence is an error unless ``allow_empty=True``: in a TSV file it almost
  always means a broken line (``"\\t1"``), and an empty example teaches a classifier nothing but
  the label prior.
* **Blank lines** are allowed at the end of the file only. ``\\r\\n`` line endings and a UTF-8
  byte-order mark are accepted; a carriage return inside a line is an error (a file with old
  Mac ``\\r`` line endings would otherwise read as one long line).

Examples
--------
>>> import tempfile, pathlib
>>> from dask_classify.train.data import read_tsv
>>> path = pathlib.Path(tempfile.mkdtemp()) / "train.tsv"
>>> _ = path.write_text("sentence\\tlabel\\na fine film\\t1\\na dull film\\t0\\n", encoding="utf-8")
>>> read_tsv(path, num_classes=2)
      sentence  label
0  a fine film      1
1  a dull film      0
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dask_classify.atomic import atomic_files
from dask_classify.errors import UsageError
from dask_classify.train.data_errors import DataFileNotFoundError, DataFormatError, _Problems

__all__ = [
    "DataFormatError",
    "DataFileNotFoundError",
    "clean_sentence",
    "infer_num_classes",
    "read_labels_file",
    "read_tsv",
    "validate_label_range",
    "write_labels_file",
    "write_tsv",
]

logger = logging.getLogger(__name__)

HEADER = "sentence\tlabel"
_INT_RE = re.compile(r"-?[0-9]+")
# Every character some reader treats as a line break (str.splitlines, pandas' C parser), and the
# tab: none of them may appear inside a sentence we write, or the TSV breaks for someone.
_BREAKS_RE = re.compile("[\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFileNotFoundError(path) from None
    except IsADirectoryError:
        raise DataFormatError(path, [(None, "is a directory, not a file")]) from None
    except OSError as exc:
        raise DataFormatError(path, [(None, f"cannot read the file: {exc.strerror or exc}")]
                              ) from exc


def _decode_lines(data: bytes, problems: _Problems) -> list[str | None]:
    """Split ``data`` on ``\\n`` and decode it; lines that are not valid UTF-8 become ``None``.

    Whole-file decoding is the fast path; only a file with a bad byte is decoded line by line,
    so that every bad line is reported with its line number and byte offset.
    """
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows editors)
        data = data[3:]
        base = 3
    else:
        base = 0
    try:
        return list(data.decode("utf-8").split("\n"))
    except UnicodeDecodeError:
        pass
    lines: list[str | None] = []
    offset = base
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(None)
            problems.add(number, f"invalid UTF-8 at byte offset {offset + exc.start} "
                                 f"(byte 0x{raw[exc.start]:02x}: {exc.reason})")
        offset += len(raw) + 1
    return lines


def _is_header(line: str) -> bool:
    _, tab, last = line.rpartition("\t")
    return bool(tab) and last.strip().lower() == "label"


def read_tsv(path: str | os.PathLike, num_classes: int | None = None, max_errors: int = 20,
             *, allow_empty: bool = False) -> pd.DataFrame:
    """Read and validate a ``sentence<TAB>label`` training file (the format of this module).

    Parameters
    ----------
    path : str or os.PathLike
        The TSV file (UTF-8, optional ``sentence\\tlabel`` header).
    num_classes : int, optional
        When given, every label must be in ``0 .. num_classes - 1``. Without it, labels must only
        be non-negative integers (see :func:`infer_num_classes`).
    max_errors : int, default 20
        How many problems the error message lists (all are counted).
    allow_empty : bool, default False
        Accept empty or whitespace-only sentences (returned as ``""``) instead of reporting them.

    Returns
    -------
    pandas.DataFrame
        Columns ``sentence`` (str, stripped) and ``label`` (int64), one row per example in file
        order, with a ``RangeIndex``. ``frame.attrs`` holds ``path`` and ``first_line`` (the line
        number of row 0), which :func:`validate_label_range` uses to name lines.

    Raises
    ------
    DataFileNotFoundError
        If ``path`` does not exist (also a :class:`FileNotFoundError`).
    DataFormatError
        If the file cannot be read or any line is malformed: invalid UTF-8 (with the byte
        offset), a missing tab, an empty or non-integer label, a negative label, a label
        ``>= num_classes``, an empty sentence, a blank line before the end, a stray ``\\r``; or
        the file holds no example (empty, or a header only). The message lists up to
        ``max_errors`` problems as ``path:LINE: problem``.
    ValueError
        If ``num_classes < 1`` or ``max_errors < 1``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bad.tsv"
    >>> _ = path.write_text("good\\t1\\nno tab here\\nbad label\\tpos\\n", encoding="utf-8")
    >>> try:
    ...     read_tsv(path)
    ... except DataFormatError as err:
    ...     print(str(err).replace(str(path), "bad.tsv"))
    bad.tsv: 2 problems:
    bad.tsv:2: missing tab between sentence and label
    bad.tsv:3: label 'pos' is not an integer
    """
    if num_classes is not None and int(num_classes) < 1:
        raise UsageError(f"num_classes must be >= 1, not {num_classes!r}")
    path = Path(path)
    problems = _Problems(path, max_errors)
    data = _read_bytes(path)
    if b"\x00" in data[:65536]:
        raise DataFormatError(path, [(None, "the file holds NUL bytes: is it UTF-16 or binary? "
                                            "Save it as UTF-8 text")])
    lines = _decode_lines(data, problems)

    # Blank lines at the end are fine (a final newline, an editor's extra lines).
    end = len(lines)
    while end and (lines[end - 1] is not None and not lines[end - 1].strip()):
        end -= 1
    if end == 0:
        raise DataFormatError(path, [(None, "the file is empty: expected 'sentence<TAB>label' "
                                            "lines")])

    start = 0
    first = lines[0]
    if first is not None and _is_header(first.rstrip("\r")):
        start = 1
        if end == 1:
            raise DataFormatError(path, [(1, "the file has a header but no examples")])

    sentences: list[str] = []
    labels: list[int] = []
    append_sentence, append_label = sentences.append, labels.append
    limit = None if num_classes is None else int(num_classes)
    for index in range(start, end):
        line = lines[index]
        if line is None:  # invalid UTF-8, already reported
            continue
        number = index + 1
        if line.endswith("\r"):
            line = line[:-1]
        sentence, tab, label = line.rpartition("\t")
        if not tab:
            if not line.strip():
                problems.add(number, "blank line (blank lines are allowed only at the end)")
            else:
                problems.add(number, "missing tab between sentence and label")
            continue
        if "\r" in line:
            problems.add(number, "carriage return (\\r) inside the line: use \\n or \\r\\n "
                                 "line endings")
            continue
        label = label.strip()
        if label.isdigit() and label.isascii():
            value = int(label)
        elif not label:
            problems.add(number, "empty label")
            continue
        elif _INT_RE.fullmatch(label):
            problems.add(number, f"negative label {label} (labels are 0 .. num_classes - 1)")
            continue
        elif label.lower() == "label":
            problems.add(number, "a header line in the middle of the file (concatenated files?)")
            continue
        else:
            problems.add(number, f"label {label!r} is not an integer")
            continue
        if limit is not None and value >= limit:
            problems.add(number, f"label {value} out of range for num_classes={limit} "
                                 f"(expected 0..{limit - 1})")
            continue
        sentence = sentence.strip()
        if not sentence and not allow_empty:
            problems.add(number, "empty sentence")
            continue
        append_sentence(sentence)
        append_label(value)
    problems.raise_if_any()

    frame = pd.DataFrame({"sentence": pd.Series(sentences, dtype=str),
                          "label": np.asarray(labels, dtype=np.int64)})
    frame.attrs.update(path=str(path), first_line=start + 1)
    return frame


def validate_label_range(frame: pd.DataFrame, num_classes: int,
                         path: str | os.PathLike | None = None, max_errors: int = 20) -> None:
    """Check that every label of ``frame`` is in ``0 .. num_classes - 1``.

    For a frame from :func:`read_tsv` (also after filtering rows, as long as the index was not
    reset) problems are reported by file line number; otherwise by row index label.

    Parameters
    ----------
    frame : pandas.DataFrame
        A frame with an integer ``label`` column.
    num_classes : int
        The number of classes of the model.
    path : str or os.PathLike, optional
        The file to name in the error; defaults to ``frame.attrs["path"]`` or ``"<data>"``.
    max_errors : int, default 20
        How many problems the error message lists.

    Raises
    ------
    DataFormatError
        If any label is negative or ``>= num_classes``, or not an integer.
    ValueError
        If ``num_classes < 1`` or the frame has no ``label`` column.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"sentence": ["a", "b", "c"], "label": [0, 3, 1]})
    >>> try:
    ...     validate_label_range(frame, num_classes=3, path="dev.tsv")
    ... except DataFormatError as err:
    ...     print(err)
    dev.tsv: row 1: label 3 out of range for num_classes=3 (expected 0..2)
    """
    if int(num_classes) < 1:
        raise UsageError(f"num_classes must be >= 1, not {num_classes!r}")
    if "label" not in frame.columns:
        raise UsageError(f"the frame has no 'label' column (columns: {list(frame.columns)})")
    num_classes = int(num_classes)
    where = str(path if path is not None else frame.attrs.get("path", "<data>"))
    first_line = frame.attrs.get("first_line") if path is None or str(path) == frame.attrs.get(
        "path") else None
    labels = frame["label"]
    if not pd.api.types.is_integer_dtype(labels.dtype):
        raise DataFormatError(where, [(None, f"labels must be integers, not {labels.dtype}")])
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.empty:
        return
    problems = _Problems(where, max_errors)
    by_line = first_line is not None and pd.api.types.is_integer_dtype(bad.index.dtype)
    for key, value in bad.items():
        msg = (f"label {value} out of range for num_classes={num_classes} "
               f"(expected 0..{num_classes - 1})")
        if by_line:
            problems.add(int(first_line) + int(key), msg)
        else:
            problems.add(None, f"row {key}: {msg}")
    problems.raise_if_any()


def infer_num_classes(*frames: pd.DataFrame) -> int:
    """The number of classes the labels of ``frames`` imply: ``max(label) + 1``.

    Parameters
    ----------
    *frames : pandas.DataFrame
        Frames with an integer ``label`` column (e.g. train and dev from :func:`read_tsv`).

    Returns
    -------
    int
        ``1 + `` the largest label over all frames.

    Raises
    ------
    ValueError
        If no frame is given, all are empty, or a label is negative.

    Examples
    --------
    >>> import pandas as pd
    >>> train = pd.DataFrame({"sentence": ["a", "b"], "label": [0, 2]})
    >>> dev = pd.DataFrame({"sentence": ["c"], "label": [3]})
    >>> infer_num_classes(train, dev)
    4
    """
    if not frames:
        raise UsageError("infer_num_classes() needs at least one frame")
    maxima = [int(f["label"].max()) for f in frames if len(f)]
    if not maxima:
        raise UsageError("cannot infer the number of classes: every frame is empty")
    minimum = min(int(f["label"].min()) for f in frames if len(f))
    if minimum < 0:
        raise UsageError(f"labels must be >= 0; found {minimum}")
    return max(maxima) + 1


def read_labels_file(path: str | os.PathLike) -> dict[int, str]:
    """Read a label-names file: line ``i`` is the name of label ``i``.

    NeMo's ``name<TAB>id`` mapping files (``label_mapping.tsv``) are read too: when every line
    holds a tab, the id after the tab is used; ids must then be exactly ``0 .. n - 1``.

    Parameters
    ----------
    path : str or os.PathLike
        UTF-8 text file, one name a line; blank lines at the end are ignored, names are stripped.

    Returns
    -------
    dict of int to str
        ``{0: name0, 1: name1, ...}``.

    Raises
    ------
    DataFileNotFoundError
        If the file does not exist.
    DataFormatError
        If it is empty, not UTF-8, has an empty name (a blank line before the end), a
        duplicate name, or (``name<TAB>id`` form) a bad, duplicate or missing id.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.txt"
    >>> _ = path.write_text("negative\\npositive\\n", encoding="utf-8")
    >>> read_labels_file(path)
    {0: 'negative', 1: 'positive'}
    """
    path = Path(path)
    problems = _Problems(path, 20)
    lines = _decode_lines(_read_bytes(path), problems)
    end = len(lines)
    while end and lines[end - 1] is not None and not lines[end - 1].strip():
        end -= 1
    if end == 0:
        raise DataFormatError(path, [(None, "the labels file is empty: expected one label "
                                            "name a line")])
    body = [(i + 1, None if line is None else line.rstrip("\r"))
            for i, line in enumerate(lines[:end])]
    with_ids = all(line is None or "\t" in line for _, line in body)
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for position, (number, line) in enumerate(body):
        if line is None:
            continue
        if with_ids:
            name, _, raw_id = line.rpartition("\t")
            raw_id = raw_id.strip()
            if not _INT_RE.fullmatch(raw_id) or int(raw_id) < 0:
                problems.add(number, f"label id {raw_id!r} is not a non-negative integer")
                continue
            label_id = int(raw_id)
            if label_id in names:
                problems.add(number, f"duplicate label id {label_id}")
                continue
        else:
            name, label_id = line, position
        name = name.strip()
        if not name:
            problems.add(number, "empty label name")
            continue
        if name in seen:
            problems.add(number, f"duplicate label name {name!r} (also on line {seen[name]})")
            continue
        seen[name] = number
        names[label_id] = name
    if with_ids and not problems:
        missing = sorted(set(range(len(body))) - set(names))
        if missing:
            problems.add(None, f"label ids must be 0..{len(body) - 1}; missing {missing}")
    problems.raise_if_any()
    return dict(sorted(names.items()))


def clean_sentence(text: str) -> str:
    """Make ``text`` safe for one TSV field: tabs and line breaks become one space; strip.

    Every character that some reader treats as a line break (``\\n``, ``\\r``, ``\\v``, ``\\f``,
    ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``) is replaced, so the file reads the
    same with :func:`read_tsv`, pandas or ``str.splitlines``.

    Parameters
    ----------
    text : str
        A sentence.

    Returns
    -------
    str
        ``text`` with every run of tabs and line breaks replaced by one space, stripped.

    Examples
    --------
    >>> clean_sentence("  two\\tcolumns\\r\\nand lines \\u2028 ")
    'two columns and lines'
    """
    return _BREAKS_RE.sub(" ", text).strip()


def write_tsv(path: str | os.PathLike, sentences: Iterable[str], labels: Iterable[int],
              header: bool = True) -> int:
    """Write ``sentence<TAB>label`` lines atomically (a temporary file, then ``os.replace``).

    Sentences go through :func:`clean_sentence`, so the file always reads back with
    :func:`read_tsv`; empty sentences are an error rather than a line that would not.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (its folder is created).
    sentences : iterable of str
    labels : iterable of int
        Non-negative integer labels, as many as sentences.
    header : bool, default True
        Write the ``sentence\\tlabel`` header first.

    Returns
    -------
    int
        The number of examples written.

    Raises
    ------
    ValueError
        If the lengths differ, a label is not a non-negative integer or a sentence is empty
        after cleaning; nothing is written then.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.tsv"
    >>> write_tsv(path, ["a good\\tfilm", "bad"], [1, 0])
    2
    >>> read_tsv(path)["sentence"].tolist()
    ['a good film', 'bad']
    """
    path = Path(path)
    count = 0
    with atomic_files(path.parent, [path.name]) as files:
        out = files[path.name]
        if header:
            out.write(HEADER + "\n")
        for count, (sentence, label) in enumerate(zip(sentences, labels, strict=True), start=1):
            text = clean_sentence(str(sentence))
            if not text:
                raise UsageError(f"example {count - 1}: the sentence is empty")
            if isinstance(label, (bool, np.bool_)) or int(label) != label or int(label) < 0:
                raise UsageError(f"example {count - 1}: label {label!r} is not a non-negative "
                                 "integer")
            out.write(f"{text}\t{int(label)}\n")
    return count


def write_labels_file(path: str | os.PathLike, names: Sequence[str]) -> None:
    """Write label names one a line (line ``i`` names label ``i``), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (its folder is created).
    names : sequence of str
        The label names in id order; they are written stripped.

    Raises
    ------
    ValueError
        If a name is empty or holds a line break, or two names are equal.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.txt"
    >>> write_labels_file(path, ["negative", "positive"])
    >>> read_labels_file(path)
    {0: 'negative', 1: 'positive'}
    """
    names = [str(n) for n in names]
    for i, name in enumerate(names):
        if not name.strip() or clean_sentence(name) != name.strip() or "\t" in name:
            raise UsageError(f"label name {i} ({name!r}) is empty or holds a tab or line break")
    if len(set(names)) != len(names):
        raise UsageError(f"label names must be unique: {names}")
    path = Path(path)
    with atomic_files(path.parent, [path.name]) as files:
        files[path.name].write("".join(name.strip() + "\n" for name in names))
