"""Reading input files in bounded pieces, with errors that name the file and the line.

Every file is cut into *units* (:func:`plan_units`): byte ranges of an uncompressed JSONL/CSV/TSV
file cut at line breaks, groups of Parquet row groups, or, for a compressed text file (which
cannot be split), the whole file read as a stream of pieces of about ``partition_rows`` lines
(:func:`read_unit` yields them one by one, so a multi-GB ``.jsonl.gz`` never sits whole in a
worker's memory). Files are opened through fsspec (:class:`~dask_classify.discovery.Source`), so
local files and object stores read alike.

Our own parsers check every line: a broken input fails with an :class:`InputError` naming the
file and the 1-based line (and for invalid UTF-8 the byte offset; for Parquet the row group)
instead of an error from deep inside a parser, or, with ``on_bad_lines="skip"``, loses only the
bad lines and counts them.

JSONL: each non-empty line must be one JSON object; empty lines are skipped. The columns are the
keys of the rows in the file's first ``SAMPLE_BYTES`` (1 MiB); a key missing from a row gives a
null there; a key that first appears later is an error (the column list would be too short).
Values keep their JSON types; raw control characters inside strings are accepted. CSV/TSV: the
first line is the header; a row whose field count differs from the header's is bad, in both
directions (pandas would silently pad a short row). Quoted fields may span lines, but a unit
boundary that falls inside one fails with an error that says to read the file in one piece
(``blocksize=0``). Parquet: read per row group; named pandas index levels become columns.

:func:`read_input` builds a lazy Dask DataFrame over one file from the same units, for library
use; the job layer (:mod:`dask_classify.jobs`) runs the units as tasks itself.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dask_classify.discovery import Source
from dask_classify.errors import InputError, UsageError

__all__ = ["BadLines", "InputFrame", "SourceMeta", "Unit", "plan_units", "read_input",
           "read_meta", "read_unit"]

ON_BAD_LINES = ("error", "skip")
SAMPLE_BYTES = 1 << 20
"""Bytes at the start of a JSONL/CSV file whose rows fix the columns and dtypes (the meta)."""
MIN_ROWS_BLOCKSIZE = 1 << 16
"""The smallest unit ``partition_rows`` makes of a text file (64 KiB)."""
SAMPLE_ROWS = 1000
"""Rows of the first unit kept with the meta: they fix Arrow types that dtypes cannot tell."""

_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = " \t\r"
# strict=False: raw control characters inside strings (JSON wants them escaped) are kept as they
# are instead of failing the line; writers that emit raw tabs are common.
_JSON_DECODER = json.JSONDecoder(strict=False)


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
        """The report from the computed :attr:`InputFrame.bad_lines` (a one-row DataFrame)."""
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
    """

    frame: Any
    bad_lines: Any = None


@dataclass(frozen=True)
class Unit:
    """A piece of one file that one task reads: a byte range, row groups, or the whole stream.

    Attributes
    ----------
    index : int
        Its number within the file (the output part it is written as).
    block : (int, int or None), optional
        Text: the lines that start in ``[start, stop)`` (``stop=None``: to the end).
    row_groups : tuple of int, optional
        Parquet: the row groups, and ``row_offset`` the number of the first row.
    stream : bool
        A compressed text file read as a stream of pieces of ``piece_rows`` lines.
    """

    index: int
    block: tuple[int, int | None] | None = None
    row_groups: tuple[int, ...] | None = None
    row_offset: int = 0
    stream: bool = False
    piece_bytes: int | None = None


@dataclass(frozen=True)
class SourceMeta:
    """What the first rows of a file tell: columns and dtypes (``frame``, empty), a sample of
    rows (``sample``), and, for text formats, the header line and the bytes before the body."""

    frame: Any
    sample: Any
    header: bytes = b""
    prefix: int = 0
    index_columns: tuple = ()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def parse_blocksize(blocksize: str | int | None) -> int | None:
    """Bytes per unit: an int, a size such as ``"64MiB"``, or 0/None/"none" (whole files).

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
    """Add up the units' bad-line counts; number the file's first bad line."""
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


# --------------------------------------------------------------------------- JSONL
def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", type(None): "null"}.get(type(value), "value")


# A lone surrogate can only come from a \\udXXX escape (strict UTF-8 decoding rejects the raw
# bytes). Escaped pairs (emoji as \\ud83d\\ude00, what json.dumps writes by default) are fine.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _has_surrogate_escape(text: str) -> bool:
    """Whether ``text`` may hold an unpaired surrogate escape (every escape not in a pair)."""
    if "\\ud" not in text and "\\uD" not in text:
        return False
    # Two regexes with a literal prefix: ~50x faster than one with lookarounds.
    return len(_SURROGATE.findall(text)) != 2 * len(_SURROGATE_PAIR.findall(text))


def _unicode_ok(record: dict) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_lines(data: bytes, columns: tuple | None, bad: _BadLines) -> list[dict]:
    """Parse whole lines of JSON objects; bad lines go to ``bad`` (which raises in error mode)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _has_surrogate_escape(text):
        # Fast path: no bookkeeping; anything unusual reparses the block line by line.
        decode = _JSON_DECODER.decode
        try:
            records = [decode(line) for line in text.split("\n") if line.strip(_JSON_WHITESPACE)]
        except (ValueError, RecursionError):
            records = None
        if records is not None and all(type(r) is dict for r in records) and (
                columns is None or set().union(*records) <= set(columns)):
            return records
    return _json_lines_checked(data, columns, bad)


def _json_lines_checked(data: bytes, columns: tuple | None, bad: _BadLines) -> list[dict]:
    known = None if columns is None else set(columns)
    decode = _JSON_DECODER.decode
    records = []
    offset = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        at, offset = offset, offset + len(raw) + 1
        if not raw.strip(b" \t\r"):
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.add(number, _utf8_problem(data, at + exc.start, bad.base))
            continue
        try:
            record = decode(line)
        except ValueError as exc:
            detail = (f"{exc.msg} (column {exc.colno})" if isinstance(exc, json.JSONDecodeError)
                      else _one_line(exc))
            if number == 1 and bad.base <= len(_BOM) and line.lstrip().startswith("["):
                detail += ("; the file looks like one JSON array, but JSON Lines (one object "
                           "per line) is expected")
            bad.add(number, f"not valid JSON: {detail}")
            continue
        except RecursionError:
            bad.add(number, "not valid JSON: nested too deeply")
            continue
        if type(record) is not dict:
            bad.add(number, f"not a JSON object (a JSON {_json_kind(record)})")
            continue
        if _has_surrogate_escape(line) and not _unicode_ok(record):
            bad.add(number, "a string holds an unpaired surrogate escape (\\ud800-\\udfff), "
                            "which is not valid Unicode")
            continue
        if known is not None and not record.keys() <= known:
            extra = [key for key in record if key not in known]
            raise bad.error(number, (
                f"key {extra[0]!r} is not among the columns, which come from the first rows of "
                f"the file {list(columns)}; a key that first appears later cannot become a "
                "column: add it to the first line (a null value is enough)"))
        records.append(record)
    return records


def _records_frame(records: list[dict], meta: Any) -> Any:
    import pandas as pd

    if not records:
        return meta.iloc[:0].copy()
    return _conform(pd.DataFrame(records, columns=list(meta.columns)), meta)


def _jsonl_frame(data: bytes, meta: Any, bad: _BadLines) -> Any:
    records = _json_lines(data, tuple(meta.columns), bad)
    try:
        return _records_frame(records, meta)
    except UnicodeEncodeError:  # a lone surrogate the quick check missed: find its line
        return _records_frame(_json_lines_checked(data, tuple(meta.columns), bad), meta)


# --------------------------------------------------------------------------- CSV / TSV
def _csv_records(text: str, sep: str) -> list[tuple[int, int, int]]:
    """``(first line, last line, field count)`` of each non-blank record of ``text``.

    The field count is -1 for a record that the csv module cannot parse: a carriage return
    inside an unquoted field, which pandas would take for a line break.
    """
    import csv

    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    # Lines are split on "\n" only, like the blocks and the line numbers (not on U+2028 etc.).
    reader = csv.reader((line + "\n" for line in text.split("\n")), delimiter=sep)
    records = []
    previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            row = None
        if row is None:
            records.append((previous + 1, reader.line_num, -1))
        elif row and not (len(row) == 1 and not row[0].strip()):  # pandas skips blank lines
            records.append((previous + 1, reader.line_num, len(row)))
        previous = reader.line_num
    return records


def _no_short_rows(data: bytes, df: Any, sep: str, ncols: int) -> bool:
    """True when none of the rows whose last field is null is a short record.

    The quick way: record boundaries from the quote parity of each line break (numpy), then
    only the candidate records are parsed again. False when that cannot tell (the records do
    not pair with the rows, many candidates, a short record found): the caller then checks
    every record with the csv module (about 5x slower than pandas' parse).
    """
    import numpy as np

    candidates = np.flatnonzero(df.iloc[:, -1].isna().to_numpy())
    if len(candidates) > max(100, len(df) // 20):
        return False
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    quotes = np.flatnonzero(arr == 34)
    ends = newlines[(np.searchsorted(quotes, newlines) & 1) == 0] + 1
    if len(data) and (not len(ends) or ends[-1] != len(data)):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    lengths = ends - starts
    blank = (lengths <= 1) | ((lengths == 2) & (arr[np.minimum(starts, len(arr) - 1)] == 13))
    starts, ends = starts[~blank], ends[~blank]
    if len(starts) != len(df):
        return False
    for i in candidates:
        records = _csv_records(data[starts[i]:ends[i]].decode("utf-8"), sep)
        if len(records) != 1 or records[0][2] != ncols:
            return False
    return True


def _fields_problem(nfields: int, ncols: int) -> str:
    if nfields < 0:
        return ("a carriage return (\\r) inside an unquoted field (quote the field, or remove "
                "the \\r)")
    return f"{nfields} fields where the header has {ncols}"


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
    """Whether ``data`` is valid UTF-8, checked by pyarrow without building a str.

    About 15x faster than ``bytes.decode`` on text with emoji or CJK (which decodes to a
    4-byte-per-character str).
    """
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


def _pandas_csv(buffer: bytes, sep: str) -> Any:
    import pandas as pd

    return pd.read_csv(io.BytesIO(buffer), sep=sep, encoding="utf-8", low_memory=False)


_SPLIT_HINT = "read the file in one piece: blocksize=0, --blocksize 0"


def _csv_frame(data: bytes, header: bytes, sep: str, bad: _BadLines, at_eof: bool,
               at_start: bool = True) -> Any:
    """Parse a block of whole CSV lines (without the header) with pandas, checking every row.

    ``at_eof``: the block ends the file (a quote still open there is a bad last record, not a
    block boundary inside a quoted field). ``at_start``: the block starts the file.
    """
    import csv

    import pandas as pd

    data = _valid_utf8(data, bad)
    ncols = len(next(csv.reader([header.decode("utf-8")], delimiter=sep)))
    try:
        df = _pandas_csv(header + data, sep)
    except pd.errors.ParserError as exc:
        failure = _one_line(exc)
    else:
        # pandas pads a short row with nulls; only then can its last column hold a null.
        if ncols < 2 or not len(df) or not df.iloc[:, -1].isna().any():
            return df
        if _no_short_rows(data, df, sep, ncols):
            return df
        failure = None
    records = _csv_records(data.decode("utf-8"), sep)
    problems = [(first, last, _fields_problem(nfields, ncols))
                for first, last, nfields in records if nfields != ncols]
    if failure is None and not problems:
        return df
    first_line = data[:data.find(b"\n") + 1 or len(data)]
    if (problems and problems[0][0] == records[0][0] and not at_start
            and first_line.count(b'"') % 2):
        # A block whose first line has an odd number of quotes probably starts inside a quoted
        # field whose start the previous block holds.
        first, last, problem = problems[0]
        problems[0] = (first, last, f"{problem}; this line starts a block of the file and may "
                                    f"be the end of a quoted field that spans lines "
                                    f"({_SPLIT_HINT})")
    if failure is not None and "EOF inside string" in failure and records:
        first, last, _ = records[-1]
        problems = [p for p in problems if p[0] != first]
        if at_eof:
            problems.append((first, last, "a quoted field opened in this line is never "
                                          "closed (the file ends inside it)"))
        else:
            problems.append((first, -1, (
                f"a quoted field opened in this line is still open {last - first} lines later, "
                "where this block of the file ends: its closing quote is missing, or quoted "
                f"fields span lines and the block boundary fell inside one ({_SPLIT_HINT})")))
    if not problems:
        raise bad.error(1, f"cannot parse the lines from here on as CSV: {failure}")
    problems.sort()
    for first, last, problem in problems:
        if last < 0:  # cannot be skipped: the rest of the block is unreadable
            raise bad.error(first, problem)
        bad.add(first, problem)
    try:
        return _pandas_csv(header + _drop_lines(data, [(p[0], p[1]) for p in problems]), sep)
    except pd.errors.ParserError as exc:
        raise bad.error(1, f"cannot parse the lines from here on as CSV: {_one_line(exc)}") \
            from None


# --------------------------------------------------------------------------- the meta
def _jsonl_meta(source: Source, skip: bool) -> SourceMeta:
    """The meta from the rows in the first ``SAMPLE_BYTES``; also the BOM length (0 or 3)."""
    import pandas as pd

    records: list[dict] = []
    prefix = 0
    with _open(source) as f:
        base, pending, at_eof = 0, b"", False
        while not records and not at_eof:
            try:
                chunk = f.read(SAMPLE_BYTES)
            except Exception as exc:  # noqa: BLE001 - decompression errors: name the file
                raise InputError(f"{source.url}: cannot read: {_one_line(exc)}") from None
            at_eof = len(chunk) < SAMPLE_BYTES
            data = pending + chunk
            if base == 0 and data.startswith(_BOM):
                data, base, prefix = data[3:], 3, 3
            cut = len(data) if at_eof else data.rfind(b"\n") + 1
            data, pending = data[:cut], data[cut:]
            records = _json_lines(data, None, _BadLines(source, base, skip))
            base += len(data)
    if not records:
        if base == prefix and not pending:
            raise InputError(f"{source.url}: the file is empty")
        raise InputError(f"{source.url}: no line holds a JSON object (every line is bad or "
                         "empty)")
    columns = list(dict.fromkeys(key for record in records for key in record))
    sample = pd.DataFrame(records[:SAMPLE_ROWS], columns=columns)
    return SourceMeta(sample.iloc[:0], sample, b"", prefix)


def _csv_meta(source: Source, sep: str, skip: bool, blocksize: int | None) -> SourceMeta:
    """The meta from the rows in the first ``SAMPLE_BYTES``; the header; its length in bytes."""
    try:
        with _open(source) as f:
            head = f.read(SAMPLE_BYTES)
            while b"\n" not in head:
                more = f.read(SAMPLE_BYTES)
                if not more:
                    break
                head += more
            at_eof = not f.read(1)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the file
        raise InputError(f"{source.url}: cannot read: {_one_line(exc)}") from None
    newline = head.find(b"\n")
    raw_header = head if newline < 0 else head[:newline + 1]
    header = raw_header[3:] if raw_header.startswith(_BOM) else raw_header
    if not header.strip():
        raise InputError(f"{source.url}: the file is empty (no header line)")
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source.url}:1: {_utf8_problem(raw_header, exc.start, 0)}") from None
    if not header.endswith(b"\n"):
        header += b"\n"
    body = head[len(raw_header):]
    if not at_eof:
        body = body[:body.rfind(b"\n") + 1]
    bad = _BadLines(source, len(raw_header), skip)
    try:
        sample = _csv_frame(body, header, sep, bad, at_eof)
    except InputError:
        if at_eof or source.compression is not None:
            raise
        # The sample's last record may be cut inside a quoted field: read the first block whole.
        block = _blocks(source.size, blocksize)[0]
        base, data = _read_block(source, block, skip_prefix=len(raw_header))
        sample = _csv_frame(data, header, sep, _BadLines(source, base, skip),
                            at_eof=block[1] is None or block[1] >= source.size)
    return SourceMeta(sample.iloc[:0], sample.iloc[:SAMPLE_ROWS], header, len(raw_header))


def _parquet_meta(source: Source) -> tuple[SourceMeta, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with source.open(decompress=False) as f, pq.ParquetFile(f) as pf:
            metadata = pf.metadata
            schema = pf.schema_arrow
            index_columns = (schema.pandas_metadata or {}).get("index_columns", [])
            meta = _parquet_frame(schema.empty_table(), index_columns, 0)
            first = (_parquet_frame(pf.read_row_group(0), index_columns, 0).iloc[:SAMPLE_ROWS]
                     if metadata.num_row_groups else meta)
    except (OSError, ValueError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{source.url}: not a readable Parquet file (truncated or corrupt?): "
                         f"{_one_line(exc)}") from None
    return SourceMeta(meta, first, index_columns=tuple(map(_freeze, index_columns))), metadata


def _freeze(entry: Any) -> Any:
    return json.dumps(entry, sort_keys=True) if isinstance(entry, dict) else entry


def _thaw(entry: Any) -> Any:
    return json.loads(entry) if isinstance(entry, str) and entry.startswith("{") else entry


def read_meta(source: Source, on_bad_lines: str = "error",
              blocksize: int | None = None) -> SourceMeta:
    """The columns and dtypes of ``source`` (an empty frame) and a sample of its first rows.

    Partition columns of a hive path (``key=value`` folders) are added as string columns.

    Raises
    ------
    InputError
        A file that cannot be opened, an empty file, a Parquet file without a valid footer, a
        bad line among the first rows (error mode), or a partition key that is also a column.
    """
    skip = on_bad_lines == "skip"
    if source.fmt == "parquet":
        meta = _parquet_meta(source)[0]
    elif source.fmt == "jsonl":
        if source.size == 0:
            raise InputError(f"{source.url}: the file is empty")
        meta = _jsonl_meta(source, skip)
    else:
        if source.size == 0:
            raise InputError(f"{source.url}: the file is empty")
        meta = _csv_meta(source, "\t" if source.fmt == "tsv" else ",", skip, blocksize)
    clashes = [key for key, _ in source.partition_values if key in meta.frame.columns]
    if clashes:
        raise InputError(f"{source.url}: the folder name's partition key(s) {clashes} are also "
                         "columns of the file")
    return SourceMeta(add_partition_columns(meta.frame, source),
                      add_partition_columns(meta.sample, source), meta.header, meta.prefix,
                      meta.index_columns)


def add_partition_columns(frame: Any, source: Source) -> Any:
    """``frame`` with the hive partition values of ``source``'s path as string columns."""
    if not source.partition_values:
        return frame
    import pandas as pd

    from dask_classify.backend import string_dtype

    frame = frame.copy()
    for key, value in source.partition_values:
        frame[key] = pd.Series([value] * len(frame), index=frame.index, dtype=string_dtype())
    return frame


# --------------------------------------------------------------------------- units
def _rows_blocksize(source: Source, blocksize: int | None, rows: int) -> int | None:
    """``blocksize`` lowered to about ``rows`` lines of ``source`` (from its first bytes)."""
    with _open(source) as fh:
        sample = fh.read(SAMPLE_BYTES)
    per_line = len(sample) / max(1, sample.count(b"\n"))
    target = max(MIN_ROWS_BLOCKSIZE, int(per_line * rows))
    return target if blocksize is None else min(blocksize, target)


def plan_units(source: Source, blocksize: str | int | None = "64MiB",
               partition_rows: int | None = None) -> list[Unit]:
    """Cut ``source`` into the units tasks read (see the module docstring).

    Parameters
    ----------
    blocksize : str or int or None, default "64MiB"
        Bytes per unit: text is cut at the first line break after each multiple of it; Parquet
        units gather consecutive row groups up to this many uncompressed bytes.
        ``None``/``0``/``"none"``: one unit per text file, one per Parquet row group; for a
        compressed file, one piece.
    partition_rows : int, optional
        Also aim for at most this many rows per unit (or per piece of a compressed stream):
        Parquet row groups are gathered only up to it (a row group is never split); text units
        shrink to about this many lines, estimated from the file's first ``SAMPLE_BYTES``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.discovery import discover
    >>> from dask_classify.readers import plan_units
    >>> path = Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = path.write_text("".join(f'{{"text": "row {i}"}}\\n' for i in range(20000)))
    >>> units = plan_units(discover([str(path)])[0], blocksize="100KiB")
    >>> len(units), units[0].block, units[-1].block[1] == path.stat().st_size
    (4, (0, 107222), True)
    """
    size = parse_blocksize(blocksize)
    if partition_rows is not None and int(partition_rows) < 1:
        raise UsageError(f"partition_rows must be >= 1 or None, not {partition_rows!r}")
    if source.fmt == "parquet":
        return _parquet_units(source, size, partition_rows)
    if source.compression is not None:
        piece = size
        if partition_rows is not None:
            piece = _rows_blocksize(source, size, int(partition_rows))
        return [Unit(0, stream=True, piece_bytes=piece)]
    if partition_rows is not None and source.size:
        size = _rows_blocksize(source, size, int(partition_rows))
    return [Unit(i, block=block) for i, block in enumerate(_blocks(source.size, size))]


def _parquet_units(source: Source, blocksize: int | None,
                   partition_rows: int | None) -> list[Unit]:
    metadata = _parquet_meta(source)[1]
    groups: list[list[int]] = []
    offsets: list[int] = []
    rows = gathered = gathered_rows = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        if (not groups or blocksize is None or gathered + group.total_byte_size > blocksize
                or (partition_rows is not None
                    and gathered_rows + group.num_rows > partition_rows)):
            groups.append([])
            offsets.append(rows)
            gathered = gathered_rows = 0
        groups[-1].append(i)
        gathered += group.total_byte_size
        gathered_rows += group.num_rows
        rows += group.num_rows
    if not groups:
        groups, offsets = [[]], [0]
    return [Unit(i, row_groups=tuple(g), row_offset=o)
            for i, (g, o) in enumerate(zip(groups, offsets, strict=True))]


def read_unit(source: Source, unit: Unit, meta: SourceMeta,
              on_bad_lines: str = "error") -> Iterator[tuple[Any, tuple]]:
    """The rows of one unit as pandas frames with the meta's columns: ``(frame, bad stats)``.

    One frame for a byte range or row groups; for a stream unit, one frame per piece, read as
    the file is decompressed. ``bad stats`` feed :func:`summarize_bad_lines`.
    """
    skip = on_bad_lines == "skip"
    if source.fmt == "parquet":
        frame = _read_row_groups(source, unit.row_groups or (), unit.row_offset,
                                 [_thaw(e) for e in meta.index_columns])
        yield add_partition_columns(frame, source), (0, None)
        return
    if unit.stream:
        yield from _read_stream(source, unit, meta, skip)
        return
    base, data = _read_block(source, unit.block, skip_prefix=meta.prefix)
    at_eof = unit.block[1] is None or unit.block[1] >= source.size
    frame, stats = _parse_text(source, data, base, meta, skip, at_eof, unit.block[0] == 0)
    yield add_partition_columns(frame, source), stats


def _parse_text(source: Source, data: bytes, base: int, meta: SourceMeta, skip: bool,
                at_eof: bool, at_start: bool) -> tuple[Any, tuple]:
    bad = _BadLines(source, base, skip)
    columns = meta.frame.iloc[:0]
    columns = columns.drop(columns=[k for k, _ in source.partition_values])
    if source.fmt == "jsonl":
        frame = _jsonl_frame(data, columns, bad)
    else:
        sep = "\t" if source.fmt == "tsv" else ","
        frame = _csv_frame(data, meta.header, sep, bad, at_eof, at_start=at_start)
        frame = columns.copy() if not len(frame) else _conform(frame, columns)
    return frame, bad.stats()


def _read_stream(source: Source, unit: Unit, meta: SourceMeta,
                 skip: bool) -> Iterator[tuple[Any, tuple]]:
    """Pieces of whole lines of about ``unit.piece_bytes`` (decompressed), parsed one by one."""
    piece = unit.piece_bytes or (1 << 62)
    with _open(source) as f:
        offset = 0
        pending = b""
        first = True
        while True:
            try:
                chunk = f.read(min(piece, 1 << 26))
            except Exception as exc:  # noqa: BLE001 - a truncated or corrupt stream
                raise InputError(f"{source.url}: cannot decompress: {_one_line(exc)}") from None
            at_eof = not chunk
            data = pending + chunk
            if not at_eof and len(data) < piece:
                pending = data
                continue
            cut = len(data) if at_eof else data.rfind(b"\n") + 1
            if cut == 0 and not at_eof:  # one line longer than a piece: keep reading
                pending = data
                continue
            data, pending = data[:cut], data[cut:]
            base = offset
            if first and meta.prefix:
                data, base = data[meta.prefix:], meta.prefix
            offset += cut
            if data or first:
                frame, stats = _parse_text(source, data, base, meta, skip, at_eof, first)
                yield add_partition_columns(frame, source), stats
            first = False
            if at_eof:
                return


# --------------------------------------------------------------------------- Parquet
def _parquet_frame(table: Any, index_columns: list, row_offset: int) -> Any:
    """A pandas frame for row groups of a Parquet file; named index levels become columns.

    pandas' own index metadata is honoured: an index stored as columns comes back as columns
    (when named), a named ``RangeIndex`` stored as metadata only is rebuilt with the right
    values for these rows (pyarrow restarts it at 0 for a subset of row groups), and an
    unnamed default index is dropped, so every partition has the same columns.
    """
    import numpy as np
    import pandas as pd

    df = table.to_pandas()
    named = [n for n in df.index.names if n is not None]
    if named and not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index(level=named)
    df = df.reset_index(drop=True)
    for entry in reversed(index_columns):
        if (isinstance(entry, dict) and entry.get("kind") == "range"
                and entry.get("name") is not None and entry["name"] not in df.columns):
            start, step = int(entry.get("start", 0)), int(entry.get("step", 1))
            df.insert(0, entry["name"], start + step * (row_offset + np.arange(len(df))))
    return df


def _read_row_groups(source: Source, groups: tuple[int, ...], row_offset: int,
                     index_columns: list) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with source.open(decompress=False) as f, pq.ParquetFile(f) as pf:
            table = pf.read_row_groups(list(groups)) if groups else pf.schema_arrow.empty_table()
            return _parquet_frame(table, index_columns, row_offset)
    except (OSError, ValueError, EOFError, pa.ArrowException) as exc:
        where = (f"row group {groups[0]}" if len(groups) == 1
                 else f"row groups {groups[0]}-{groups[-1]}")
        raise InputError(f"{source.url}: corrupt Parquet data in {where} (from row "
                         f"{row_offset}): {_one_line(exc)}") from None


# --------------------------------------------------------------------------- a Dask DataFrame
def _keep_dtypes() -> Any:
    """Build a collection without dask's ``dataframe.convert-string`` step.

    That step casts every object column to ``string[pyarrow]``, which turns nested JSON values
    and Parquet lists/structs (lists and dicts in object columns) into their Python repr.
    Strings are already pyarrow-backed ``str`` columns in pandas 3, so nothing is lost.
    """
    import dask

    return dask.config.set({"dataframe.convert-string": False})


class _UnitReader:
    """``unit -> (pandas frame, bad-line stats)`` for one file (a stream unit read whole)."""

    def __init__(self, source: Source, meta: SourceMeta, on_bad_lines: str):
        self.source, self.meta, self.on_bad_lines = source, meta, on_bad_lines

    def __dask_tokenize__(self) -> tuple:
        return ("dask-classify-read", self.source, self.on_bad_lines,
                list(map(str, self.meta.frame.columns)), list(map(str, self.meta.frame.dtypes)))

    def __call__(self, unit: Unit) -> tuple[Any, tuple]:
        import pandas as pd

        pieces = list(read_unit(self.source, unit, self.meta, self.on_bad_lines))
        frames = [frame for frame, _ in pieces]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        count = sum(stats[0] for _, stats in pieces)
        firsts = [stats[1] for _, stats in pieces if stats[1] is not None]
        return frame, (count, min(firsts) if firsts else None)


class _FrameOnly:
    """``unit -> DataFrame`` for error mode, where there are no stats to carry."""

    def __init__(self, reader: _UnitReader):
        self.reader = reader

    def __dask_tokenize__(self) -> tuple:
        return ("frame-only", *self.reader.__dask_tokenize__())

    def __call__(self, unit: Unit) -> Any:
        return self.reader(unit)[0]


def read_input(path: str, fmt: str | None = None, *,
               blocksize: str | int | None = "64MiB", backend: str = "cpu",
               on_bad_lines: str = "error", partition_rows: int | None = None,
               storage_options: dict[str, Any] | None = None) -> InputFrame:
    """Open one file as a lazy Dask DataFrame, with a report of the bad lines skipped.

    Every partition (one per :class:`Unit`; a compressed text file is one partition) has the
    same columns, rows keep their file order, and a broken file fails with an
    :class:`InputError` that names the file and, for text formats, the 1-based line.

    Parameters
    ----------
    path : str or path-like
        A local path or an fsspec URL of one file.
    fmt : {"jsonl", "parquet", "csv", "tsv"}, optional
        Default: from the extension.
    blocksize, partition_rows
        See :func:`plan_units`.
    backend : {"cpu", "gpu"}, default "cpu"
        ``"gpu"`` converts each partition to cudf after parsing it on the host.
    on_bad_lines : {"error", "skip"}, default "error"
        ``"error"``: the first bad line raises :class:`InputError`. ``"skip"``: bad lines are
        dropped and counted in :attr:`InputFrame.bad_lines`.
    storage_options : dict, optional
        fsspec options of a remote filesystem.

    Returns
    -------
    InputFrame

    Raises
    ------
    InputError
        At graph construction for a file that cannot be opened, an empty file, a Parquet file
        without a valid footer, or a bad line among the first rows (error mode); at compute time
        for a bad line in a later unit (error mode), a JSONL key outside the columns, a CSV
        quote left open at a unit boundary, or corrupt Parquet pages. Messages read
        ``"<file>:<line>: <problem>"`` (text) or ``"<file>: <problem>"`` (Parquet).
    UsageError
        An unknown ``on_bad_lines`` or a malformed ``blocksize``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.readers import BadLines, read_input
    >>> path = Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = path.write_text('{"text": "a"}\\nnot json\\n{"text": "b"}\\n')
    >>> found = read_input(str(path), on_bad_lines="skip")
    >>> found.frame.compute()["text"].tolist()
    ['a', 'b']
    >>> print(BadLines.from_frame(found.bad_lines.compute()))  # doctest: +ELLIPSIS
    skipped 1 bad line in ...d.jsonl (first: line 2: not valid JSON: Expecting value (column 1))
    """
    from operator import getitem

    import dask
    import dask.dataframe as dd

    from dask_classify.discovery import discover

    if on_bad_lines not in ON_BAD_LINES:
        raise UsageError(f"on_bad_lines must be one of {ON_BAD_LINES}, not {on_bad_lines!r}")
    sources = discover([str(path)], storage_options, fmt)
    if len(sources) != 1:
        raise UsageError(f"read_input reads one file; {path!r} is {len(sources)} files")
    source = sources[0]
    meta = read_meta(source, on_bad_lines, parse_blocksize(blocksize))
    units = plan_units(source, blocksize, partition_rows)
    reader = _UnitReader(source, meta, on_bad_lines)
    if on_bad_lines == "error" or source.fmt == "parquet":
        with _keep_dtypes():
            frame = dd.from_map(_FrameOnly(reader), units, meta=meta.frame,
                                label=f"read-{source.fmt}", enforce_metadata=False)
        result = InputFrame(frame, None)
    else:
        # Skip mode: each unit yields (frame, stats); the frames make the DataFrame and the
        # stats one small summary task. Picking the stats out in their own task lets a unit's
        # frame be released as soon as it is consumed.
        token = dask.base.tokenize(reader, units)
        parts = [dask.delayed(reader, pure=True)(unit, dask_key_name=f"read-{token}-{i}")
                 for i, unit in enumerate(units)]
        frames = [dask.delayed(getitem, pure=True)(part, 0) for part in parts]
        stats = [dask.delayed(getitem, pure=True)(part, 1) for part in parts]
        # The report is a (one-row) DataFrame too: computing Delayed objects together with
        # DataFrame expressions would make dask optimize each expression on its own.
        summary = dask.delayed(_summary_frame, pure=True)(source, stats)
        with _keep_dtypes():
            frame = dd.from_delayed(frames, meta=meta.frame, verify_meta=False)
            report = dd.from_delayed([summary], meta=_summary_frame(None, []).iloc[:0],
                                     verify_meta=False)
        result = InputFrame(frame, report)
    if backend == "gpu":
        # Parsing stays on the host (the checks above need Python); partitions move to the GPU.
        from dask_classify.backend import import_gpu_module

        import_gpu_module("dask_cudf")  # registers the "cudf" dataframe backend
        result = InputFrame(result.frame.to_backend("cudf"), result.bad_lines)
    return result
