"""CSV and TSV: the first line is the header, every row must have its field count.

A row whose field count differs from the header's is bad, in both directions (pandas would
silently pad a short row). Quoted fields may span lines, but a unit boundary that falls inside
one fails with an error that says to read the file in one piece (``blocksize=0``).
"""

from __future__ import annotations

import io
from typing import Any

import dask_classify.readers.base as _base
from dask_classify.errors import InputError
from dask_classify.readers.base import (
    _BOM,
    SAMPLE_ROWS,
    SourceMeta,
    _BadLines,
    _blocks,
    _drop_lines,
    _one_line,
    _open,
    _read_block,
    _utf8_problem,
    _valid_utf8,
)
from dask_classify.readers.discovery import Source


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
    every record with the csv module, which is much slower.
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


def _csv_meta(source: Source, sep: str, skip: bool, blocksize: int | None) -> SourceMeta:
    """The meta from the rows in the first ``SAMPLE_BYTES``; the header; its length in bytes."""
    try:
        with _open(source) as f:
            head = f.read(_base.SAMPLE_BYTES)
            while b"\n" not in head:
                more = f.read(_base.SAMPLE_BYTES)
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
