"""What every reader shares: units, bad-line records, byte ranges cut at line breaks, UTF-8.

A *unit* (:class:`Unit`) is the piece of a file one task reads: a byte range of an uncompressed
JSONL/CSV/TSV file cut at line breaks, a group of Parquet row groups, or a whole compressed file
read as a stream. Files open through fsspec (:class:`~dask_classify.readers.discovery.Source`),
so local files and object stores read alike. A broken input fails with an
:class:`~dask_classify.errors.InputError` naming the file and the 1-based line (and for invalid
UTF-8 the byte offset), or, with ``on_bad_lines="skip"``, loses only the bad lines and counts
them (:class:`BadLines`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dask_classify.errors import InputError, UsageError
from dask_classify.readers.discovery import Source

ON_BAD_LINES = ("error", "skip")
"""The values of ``on_bad_lines``: ``"error"`` raises on the first bad line, ``"skip"`` drops
bad lines and counts them."""

SAMPLE_BYTES = 1 << 20
"""Bytes at the start of a JSONL/CSV file whose rows fix the columns and dtypes (the meta)."""


MIN_ROWS_BLOCKSIZE = 1 << 16
"""The smallest unit ``partition_rows`` makes of a text file (64 KiB)."""


SAMPLE_ROWS = 1000
"""Rows of the first unit kept with the meta: they fix Arrow types that dtypes cannot tell."""


_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class BadLines:
    """The lines of one input file that ``on_bad_lines="skip"`` dropped.

    Attributes
    ----------
    path : str
        The file.
    count : int
        How many lines were skipped (a CSV record that spans several lines counts once).
    first_line : int or None
        1-based line number of the first skipped line in the file (``None`` when none was).
    first_problem : str or None
        What was wrong with that line.

    Examples
    --------
    >>> str(BadLines("a.jsonl", 2, 7, "not valid JSON: Expecting value (column 1)"))
    'skipped 2 bad lines in a.jsonl (first: line 7: not valid JSON: Expecting value (column 1))'
    """

    path: str
    count: int = 0
    first_line: int | None = None
    first_problem: str | None = None

    @classmethod
    def from_frame(cls, frame: Any) -> BadLines:
        """The report held by the computed :attr:`InputFrame.bad_lines`.

        Parameters
        ----------
        frame : pandas.DataFrame
            The one-row frame (``path``, ``count``, ``first_line``, ``first_problem``) that
            computing :attr:`InputFrame.bad_lines` gives.

        Returns
        -------
        BadLines

        Examples
        --------
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"path": ["a.csv"], "count": [0],
        ...                       "first_line": pd.array([None], dtype="Int64"),
        ...                       "first_problem": [None]})
        >>> BadLines.from_frame(frame)
        BadLines(path='a.csv', count=0, first_line=None, first_problem=None)
        """
        row = frame.iloc[0]
        first_line = None if row["first_line"] is None or frame["first_line"].isna().iloc[0] \
            else int(row["first_line"])
        return cls(str(row["path"]), int(row["count"]), first_line,
                   None if first_line is None else str(row["first_problem"]))

    def __str__(self) -> str:
        if not self.count:
            return f"no bad lines in {self.path}"
        plural = "" if self.count == 1 else "s"
        return (f"skipped {self.count} bad line{plural} in {self.path} "
                f"(first: line {self.first_line}: {self.first_problem})")


@dataclass(frozen=True)
class InputFrame:
    """What :func:`read_input` returns.

    Attributes
    ----------
    frame : dask.dataframe.DataFrame
        The lazy rows of the file, in file order.
    bad_lines : dask.dataframe.DataFrame or None
        With ``on_bad_lines="skip"`` on a JSONL/CSV/TSV file: a lazy one-row DataFrame
        (``path``, ``count``, ``first_line``, ``first_problem``) that
        :meth:`BadLines.from_frame` turns into a :class:`BadLines`. Compute it in the same
        ``compute`` call as (something built on) ``frame``, so that each unit of the file is
        read once. ``None`` when nothing can be skipped (error mode, Parquet).

    See Also
    --------
    read_input : builds it; its example computes both attributes.
    """

    frame: Any
    bad_lines: Any = None


@dataclass(frozen=True)
class Unit:
    """A piece of one file that one task reads: a byte range, row groups, or the whole stream.

    :func:`plan_units` makes them; exactly one of ``block``, ``row_groups`` and ``stream`` is
    set.

    Attributes
    ----------
    index : int
        Its number within the file (the output part it is written as).
    block : (int, int or None), optional
        Uncompressed text: the lines that start in ``[start, stop)`` (``stop=None``: to the
        end of the file).
    row_groups : tuple of int, optional
        Parquet: the row groups it reads.
    row_offset : int, default 0
        Parquet: the number of its first row in the file.
    stream : bool, default False
        A compressed text file, read whole as a stream of pieces.
    piece_bytes : int, optional
        For a stream: about how many decompressed bytes each piece holds (``None``: one
        piece).

    Examples
    --------
    >>> Unit(0, block=(0, None))
    Unit(index=0, block=(0, None), row_groups=None, row_offset=0, stream=False, piece_bytes=None)
    """

    index: int
    block: tuple[int, int | None] | None = None
    row_groups: tuple[int, ...] | None = None
    row_offset: int = 0
    stream: bool = False
    piece_bytes: int | None = None


@dataclass(frozen=True)
class SourceMeta:
    """What the start of a file tells: its columns and dtypes, and a sample of its rows.

    :func:`read_meta` makes it; :func:`read_unit` gives every unit its columns.

    Attributes
    ----------
    frame : pandas.DataFrame
        No rows; the file's columns (hive partition columns included) and their dtypes.
    sample : pandas.DataFrame
        Up to ``SAMPLE_ROWS`` of the first rows, with the same columns.
    header : bytes
        CSV/TSV: the header line (ending in a line break); empty otherwise.
    prefix : int
        Text: the bytes before the first row (a UTF-8 BOM, the CSV header).
    index_columns : tuple
        Parquet: the pandas index metadata (dicts as JSON text, so the meta hashes).
    """

    frame: Any
    sample: Any
    header: bytes = b""
    prefix: int = 0
    index_columns: tuple = ()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def parse_blocksize(blocksize: str | int | None) -> int | None:
    """Bytes per unit from an int, a size such as ``"64MiB"``, or 0/None/"none" (whole files).

    Parameters
    ----------
    blocksize : str or int or None
        A number of bytes, or a size that :func:`dask.utils.parse_bytes` reads; ``0``,
        ``None``, ``""`` and ``"none"`` mean one unit per file.

    Returns
    -------
    int or None
        The bytes per unit, or ``None`` for whole files.

    Raises
    ------
    UsageError
        A string that is not a size, or a negative size.

    Examples
    --------
    >>> from dask_classify.readers import parse_blocksize
    >>> parse_blocksize("1MiB"), parse_blocksize(0), parse_blocksize("none")
    (1048576, None, None)
    """
    if blocksize is None:
        return None
    if isinstance(blocksize, str):
        if blocksize.strip().lower() in ("", "0", "none"):
            return None
        from dask.utils import parse_bytes

        try:
            value = parse_bytes(blocksize)
        except ValueError:
            raise UsageError(f"blocksize must be a size like '64MiB' (or 0 for whole files), "
                             f"not {blocksize!r}") from None
    else:
        value = int(blocksize)
    if value < 0:
        raise UsageError(f"blocksize must not be negative, not {blocksize!r}")
    return value or None


# ----------------------------------------------------------------- bytes, blocks, line numbers
def _open(source: Source) -> Any:
    try:
        return source.open()
    except ImportError as exc:  # zstandard for .zst: a missing optional package
        raise InputError(f"{source.url}: cannot decompress it: {_one_line(exc)} "
                         "(pip install zstandard for .zst)") from None
    except Exception as exc:  # noqa: BLE001 - OSError, permission, missing: name the file
        raise InputError(f"{source.url}: cannot read: {_one_line(exc)}") from None


def _line_start(f: Any, pos: int, size: int) -> int:
    """Where the block that is nominally at ``pos`` starts: after the first b"\\n" at or after
    ``pos`` (as ``dask.bytes.read_bytes`` cuts blocks), or at 0 for ``pos=0``."""
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    f.seek(pos)
    offset = pos
    while True:
        chunk = f.read(1 << 16)
        if not chunk:
            return size
        found = chunk.find(b"\n")
        if found >= 0:
            return offset + found + 1
        offset += len(chunk)


def _read_block(source: Source, block: tuple[int, int | None],
                skip_prefix: int = 0) -> tuple[int, bytes]:
    """The whole lines that start in ``[start, stop)``, and the file offset where they begin.

    Two neighbouring blocks agree on their common boundary, so every line is read exactly once.
    ``stop=None`` reads to the end. The first ``skip_prefix`` bytes of the file (a BOM, a CSV
    header) are left out of block 0.
    """
    start, stop = block
    try:
        with _open(source) as f:
            if stop is None:
                begin = _line_start(f, start, source.size) if start else 0
                f.seek(begin)
                data = f.read()
            else:
                begin = _line_start(f, start, source.size)
                end = _line_start(f, stop, source.size)
                f.seek(begin)
                data = f.read(end - begin)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, EOFError, zlib/lzma errors: name the file
        raise InputError(f"{source.url}: cannot read: {_one_line(exc)}") from None
    if begin < skip_prefix:
        data = data[skip_prefix - begin:]
        begin = skip_prefix
    return begin, data


def _newlines_before(source: Source, offset: int) -> int:
    """Line breaks in the first ``offset`` (decompressed) bytes: only to name a bad line."""
    count = 0
    if offset <= 0:
        return count
    with _open(source) as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def _blocks(size: int, blocksize: int | None) -> list[tuple[int, int | None]]:
    """``size // blocksize`` blocks of equal nominal size (as ``dask.bytes.read_bytes`` makes
    them, so the partitions are those of ``dd.read_csv``/``dd.read_json``)."""
    if blocksize is None or size < 2 * blocksize:
        return [(0, None)]
    count = size // blocksize
    offsets = [size * i // count for i in range(count + 1)]
    return list(zip(offsets[:-1], offsets[1:], strict=True))


class _BadLines:
    """The bad lines of one block: raise on the first (error mode) or count them (skip mode)."""

    def __init__(self, source: Source, base: int, skip: bool):
        self.source, self.base, self.skip = source, base, skip
        self.count = 0
        self.first: tuple[int, int, str] | None = None

    def error(self, line: int, problem: str) -> InputError:
        """An error naming the file and the absolute line of the block's ``line`` (1-based)."""
        absolute = _newlines_before(self.source, self.base) + line
        return InputError(f"{self.source.url}:{absolute}: {problem}")

    def add(self, line: int, problem: str) -> None:
        if not self.skip:
            raise self.error(line, problem)
        self.count += 1
        if self.first is None or line < self.first[1]:
            self.first = (self.base, line, problem)

    def stats(self) -> tuple[int, tuple[int, int, str] | None]:
        return self.count, self.first


def summarize_bad_lines(source: Source, stats: list[tuple]) -> BadLines:
    """The bad lines of one file, from the statistics of its units.

    Parameters
    ----------
    source : Source
        The file.
    stats : list of tuple
        The second item of each pair that :func:`read_unit` yields, for every unit of the file:
        ``(count, first)``, ``first`` being ``(block offset, line in block, problem)`` or
        ``None``.

    Returns
    -------
    BadLines
        The total count, and the first bad line numbered within the whole file (which reads
        the file up to that line to count its line breaks).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.readers.discovery import discover
    >>> path = Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = path.write_text('{"a": 1}\\n' * 10)
    >>> source = discover([str(path)])[0]
    >>> report = summarize_bad_lines(source, [(1, (9, 2, "not valid JSON")), (0, None)])
    >>> report.count, report.first_line, report.first_problem
    (1, 3, 'not valid JSON')
    """
    count = sum(n for n, _ in stats)
    firsts = [first for _, first in stats if first is not None]
    if not firsts:
        return BadLines(source.url, count)
    base, line, problem = min(firsts)
    return BadLines(source.url, count, _newlines_before(source, base) + line, problem)


def _summary_frame(source: Source | None, stats: list[tuple]) -> Any:
    import pandas as pd

    report = summarize_bad_lines(source, stats) if source is not None else BadLines("")
    return pd.DataFrame({"path": pd.Series([report.path], dtype=object),
                         "count": pd.Series([report.count], dtype="int64"),
                         "first_line": pd.Series([report.first_line], dtype="Int64"),
                         "first_problem": pd.Series([report.first_problem], dtype=object)})


def _utf8_problem(data: bytes, at: int, base: int) -> str:
    return (f"invalid UTF-8 (byte 0x{data[at]:02x} at byte offset {base + at}); "
            "is the file in another encoding?")


def _conform(df: Any, meta: Any) -> Any:
    """Give a block the meta's dtypes where the conversion changes no value.

    The meta comes from the first rows; a later block can differ (a null in an integer column
    makes it float). Conversions that cannot lose anything are made (to object; int/bool to
    float; an all-null column to float/str/object); others are left as they are.
    """
    import pandas as pd

    for column, want in meta.dtypes.items():
        have = df[column].dtype
        if have == want:
            continue
        series = df[column]
        lossless = (
            pd.api.types.is_object_dtype(want)
            or (pd.api.types.is_float_dtype(want) and pd.api.types.is_integer_dtype(have))
            or (series.isna().all() and (pd.api.types.is_float_dtype(want)
                                         or pd.api.types.is_string_dtype(want)))
        )
        if lossless:
            try:
                df[column] = series.astype(want)
            except (TypeError, ValueError):
                pass
    return df


def _drop_lines(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` without the 1-based, inclusive line ranges ``spans``."""
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    starts = np.concatenate([[0], ends])

    def start(line: int) -> int:
        return int(starts[line - 1]) if line - 1 < len(starts) else len(data)

    pieces, pos = [], 0
    for first, last in sorted(spans):
        pieces.append(data[pos:start(first)])
        pos = max(pos, start(last + 1))
    pieces.append(data[pos:])
    return b"".join(pieces)


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked by pyarrow without building a str."""
    import numpy as np
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64).tobytes())
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _valid_utf8(data: bytes, bad: _BadLines) -> bytes:
    """``data`` without its lines that are not UTF-8 (error mode: raise on the first)."""
    if _is_utf8(data):
        return data
    view = memoryview(data)
    pieces, pos, line, counted = [], 0, 1, 0
    while True:
        try:
            str(view[pos:], "utf-8")
        except UnicodeDecodeError as exc:
            at = pos + exc.start
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end + 1
            line += data.count(b"\n", counted, start)
            counted = start
            bad.add(line, _utf8_problem(data, at, bad.base))
            pieces.append(data[pos:start])
            pos = end
            continue
        pieces.append(data[pos:])
        return b"".join(pieces)


def _freeze(entry: Any) -> Any:
    return json.dumps(entry, sort_keys=True) if isinstance(entry, dict) else entry


def _thaw(entry: Any) -> Any:
    return json.loads(entry) if isinstance(entry, str) and entry.startswith("{") else entry


def add_partition_columns(frame: Any, source: Source) -> Any:
    """``frame`` with the hive partition values of ``source``'s path as string columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows of ``source``.
    source : Source
        The file; its :attr:`~dask_classify.readers.discovery.Source.partition_values` come
        from ``key=value`` folders below the input folder.

    Returns
    -------
    pandas.DataFrame
        A copy with one string column per partition key (``frame`` itself when there is none).

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.readers.discovery import Source
    >>> source = Source("/in/lang=en/a.jsonl", "file", "/in/lang=en/a.jsonl", "jsonl", None, 0,
    ...                 "{}", "lang=en/a.jsonl", partition_values=(("lang", "en"),))
    >>> add_partition_columns(pd.DataFrame({"text": ["a", "b"]}), source)["lang"].tolist()
    ['en', 'en']
    """
    if not source.partition_values:
        return frame
    import pandas as pd

    from dask_classify.backend import string_dtype

    frame = frame.copy()
    for key, value in source.partition_values:
        frame[key] = pd.Series([value] * len(frame), index=frame.index, dtype=string_dtype())
    return frame


# --------------------------------------------------------------------------- a Dask DataFrame
def _keep_dtypes() -> Any:
    """Build a collection without dask's ``dataframe.convert-string`` step.

    That step casts every object column to ``string[pyarrow]``, which turns nested JSON values
    and Parquet lists/structs (lists and dicts in object columns) into their Python repr.
    Strings are already pyarrow-backed ``str`` columns in pandas 3, so nothing is lost.
    """
    import dask

    return dask.config.set({"dataframe.convert-string": False})
