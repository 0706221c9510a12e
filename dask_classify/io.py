"""Reading and writing JSONL / Parquet / CSV / TSV files as Dask DataFrames, for either backend.

Inputs are read by block readers of our own (byte blocks cut at line breaks, Parquet row groups)
so that a broken input fails with an :class:`InputError` naming the file and the line (or byte
offset, or row group) instead of an error from deep inside a parser, or, with
``on_bad_lines="skip"``, loses only the bad lines and counts them (:func:`read_input`).

Outputs are written atomically: into a hidden temporary folder beside the destination, renamed
into place only when every partition is written, so an interrupted run never leaves an output
that looks complete.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dask_classify.atomic import atomic_folder  # noqa: F401 - the CLI writes outputs with it
from dask_classify.errors import InputError

INPUT_FORMATS = ("jsonl", "parquet", "csv", "tsv")
OUTPUT_FORMATS = ("parquet", "jsonl")
_EXTENSIONS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand files, folders (their files, sorted) and globs; every pattern must match.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.io import expand_inputs
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("b.jsonl", "a.jsonl", ".hidden"):
    ...     _ = (d / name).write_text("{}")
    >>> [p.name for p in expand_inputs([str(d / "*.jsonl")])]
    ['a.jsonl', 'b.jsonl']
    >>> [p.name for p in expand_inputs([str(d)])]
    ['a.jsonl', 'b.jsonl']
    """
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif glob.has_magic(str(path)):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                           if Path(p).is_file())
        elif path.is_file():
            found = [path]
        else:
            raise InputError(f"input {pattern!r} does not exist")
        if not found:
            raise InputError(f"input {pattern!r} matches no file")
        files.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def detect_format(path: Path, forced: str | None = None) -> str:
    """The input format of ``path``: ``forced`` if given, else from its extension.

    Examples
    --------
    >>> from pathlib import Path
    >>> from dask_classify.io import detect_format
    >>> detect_format(Path("docs.jsonl.gz")), detect_format(Path("t.tab"))
    ('jsonl', 'tsv')
    >>> detect_format(Path("x"), "csv")
    'csv'
    """
    if forced is not None:
        if forced not in INPUT_FORMATS:
            raise InputError(f"input format must be one of {INPUT_FORMATS}, not {forced!r}")
        return forced
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    fmt = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {path.name!r} from its extension; pass --input-format "
            f"(one of {', '.join(INPUT_FORMATS)})"
        )
    return fmt


# --------------------------------------------------------------------------- reading
ON_BAD_LINES = ("error", "skip")
SAMPLE_BYTES = 1 << 20
"""Bytes at the start of a JSONL/CSV file whose rows fix the columns and dtypes (the meta)."""
MIN_ROWS_BLOCKSIZE = 1 << 16
"""The smallest block ``partition_rows`` makes of a text file (64 KiB)."""

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
        ``compute`` call as (something built on) ``frame``, so that each block of the file is
        read once. ``None`` when nothing can be skipped (error mode, Parquet).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.io import read_input
    >>> path = Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = path.write_text('{"text": "a"}\\nnot json\\n{"text": "b"}\\n')
    >>> found = read_input(path, on_bad_lines="skip")
    >>> found.frame.compute()["text"].tolist()
    ['a', 'b']
    """

    frame: Any
    bad_lines: Any = None


def read_input(path: str | os.PathLike, fmt: str | None = None, *,
               blocksize: str | int | None = "64MiB", backend: str = "cpu",
               on_bad_lines: str = "error", partition_rows: int | None = None) -> InputFrame:
    """Open one file as a lazy Dask DataFrame, with a report of the bad lines skipped.

    Every partition has the same columns, rows keep their file order, and a broken file fails
    with an :class:`InputError` that names the file and, for text formats, the 1-based line
    (and for invalid UTF-8 the byte offset), never with an error from deep inside a parser.

    JSONL (also ``.json``/``.ndjson``): each non-empty line must be one JSON object. Empty or
    whitespace-only lines are skipped silently (they are not counted as bad). The columns are
    the keys of the rows in the file's first ``SAMPLE_BYTES`` (1 MiB); a key missing from a row
    gives a null there. A key that first appears *after* those rows fails with an
    :class:`InputError` (in both modes: the line is not bad, the column list is too short).
    Values keep their JSON types (no date or number guessing on strings); raw control
    characters inside strings are accepted.

    CSV/TSV: the first line is the header; dtypes are inferred by pandas on the first rows. A
    row whose field count differs from the header's is bad, in both directions (pandas would
    silently pad a short row with nulls, which hides a line broken in two). Quoted fields may
    span lines, but a block boundary that falls inside one cannot be detected in advance: the
    block that ends inside the quote fails with an error that says to read the file in one
    piece (``blocksize=0``).

    Invalid UTF-8 makes the line bad (JSONL and CSV). Parquet is read per row group; a
    truncated or corrupt file fails naming the file (and the row groups, when the damage is
    only found while reading them). Named pandas index levels stored in the file become
    ordinary columns (so they reach the output); an unnamed default index is dropped.

    Columns keep the dtypes pandas gives them (pyarrow-backed ``str`` for strings in pandas 3):
    dask's ``dataframe.convert-string`` step is not applied, because it turns nested JSON
    values and Parquet lists/structs into their Python repr. Where a later block's column
    differs from the first rows' dtype (a null in an integer column), it is converted only
    when no value changes.

    Parameters
    ----------
    path : path-like
        The file. ``.gz``/``.bz2``/``.xz``/``.zst`` text files are decompressed (one partition
        per file, since a compressed stream cannot be split).
    fmt : {"jsonl", "parquet", "csv", "tsv"}, optional
        Default: from the extension.
    blocksize : str or int or None, default "64MiB"
        Bytes per partition: text formats are cut at the first line break after each multiple
        of it; Parquet partitions gather consecutive row groups up to this many uncompressed
        bytes. ``None``/``0``/``"0"``/``"none"``: one partition per text file, one per Parquet
        row group.
    backend : {"cpu", "gpu"}, default "cpu"
        ``"gpu"`` converts each partition to cudf after parsing it on the host (needs the
        ``[gpu]`` extra).
    on_bad_lines : {"error", "skip"}, default "error"
        ``"error"``: the first bad line raises :class:`InputError`. ``"skip"``: bad lines are
        dropped and counted in :attr:`InputFrame.bad_lines`.
    partition_rows : int, optional
        Also aim for at most this many rows per partition (partitions are the unit of work a
        worker takes: 64 MiB of short texts is 200,000 rows, minutes of model time on one
        core). Parquet: consecutive row groups are gathered only up to this many rows (a row
        group is never split). Uncompressed text: the blocksize shrinks to about this many
        lines, estimated from the bytes per line of the file's first ``SAMPLE_BYTES`` (at
        least 64 KiB per block).

    Returns
    -------
    InputFrame

    Raises
    ------
    InputError
        At graph construction for a file that cannot be opened, an empty file, a Parquet file
        without a valid footer, or a bad line among the first rows (error mode); at compute time
        for a bad line in a later block (error mode), a JSONL key outside the columns, a CSV
        quote left open at a block boundary, or corrupt Parquet pages. Messages read
        ``"<file>:<line>: <problem>"`` (text) or ``"<file>: <problem>"`` (Parquet).
    ValueError
        For an unknown ``on_bad_lines`` or a malformed ``blocksize``.

    Examples
    --------
    >>> import dask
    >>> from dask_classify.io import BadLines, read_input
    >>> source = read_input("docs.jsonl", on_bad_lines="skip")            # doctest: +SKIP
    >>> rows, bad = dask.compute(source.frame, source.bad_lines)         # doctest: +SKIP
    >>> print(BadLines.from_frame(bad))                                  # doctest: +SKIP
    skipped 1 bad line in docs.jsonl (first: line 3: not valid JSON: Expecting value (column 1))
    """
    if on_bad_lines not in ON_BAD_LINES:
        raise ValueError(f"on_bad_lines must be one of {ON_BAD_LINES}, not {on_bad_lines!r}")
    path = Path(path)
    fmt = detect_format(path, fmt)
    size = _parse_blocksize(blocksize)
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if partition_rows is not None and int(partition_rows) < 1:
        raise ValueError(f"partition_rows must be >= 1 or None, not {partition_rows!r}")
    if fmt == "parquet":
        result = InputFrame(_read_parquet(path, size, partition_rows), None)
    else:
        if partition_rows is not None and _compression(path) is None:
            size = _rows_blocksize(path, size, int(partition_rows))
        result = _read_text(path, fmt, stat, size, on_bad_lines == "skip")
    if backend == "gpu":
        # Parsing stays on the host (the checks above need Python); partitions move to the GPU.
        from dask_classify.backend import import_gpu_module

        import_gpu_module("dask_cudf")  # registers the "cudf" dataframe backend
        result = InputFrame(result.frame.to_backend("cudf"), result.bad_lines)
    return result


def read_dataframe(path: str | os.PathLike, fmt: str | None = None, *,
                   blocksize: str | int | None = "64MiB", backend: str = "cpu",
                   on_bad_lines: str = "error", partition_rows: int | None = None) -> Any:
    """A lazy Dask DataFrame over one file (pandas partitions, or cudf for ``backend="gpu"``).

    The same as ``read_input(...).frame``; see :func:`read_input` for the parameters and the
    checks. With ``on_bad_lines="skip"`` the number of skipped lines is only available through
    :func:`read_input`.

    Raises
    ------
    InputError
        A file that cannot be read, or (``on_bad_lines="error"``) a bad line, naming the file
        and the line.

    Examples
    --------
    >>> from dask_classify.io import read_dataframe
    >>> ddf = read_dataframe("docs.jsonl", blocksize="16MiB")    # doctest: +SKIP
    >>> ddf.npartitions                                          # doctest: +SKIP
    4
    """
    return read_input(path, fmt, blocksize=blocksize, backend=backend,
                      on_bad_lines=on_bad_lines, partition_rows=partition_rows).frame


def _keep_dtypes() -> Any:
    """Build a collection without dask's ``dataframe.convert-string`` step.

    That step casts every object column to ``string[pyarrow]``, which turns nested JSON values
    and Parquet lists/structs (lists and dicts in object columns) into their Python repr.
    Strings are already pyarrow-backed ``str`` columns in pandas 3, so nothing is lost.
    """
    import dask

    return dask.config.set({"dataframe.convert-string": False})


def _rows_blocksize(path: Path, blocksize: int | None, rows: int) -> int | None:
    """``blocksize`` lowered to about ``rows`` lines of ``path`` (from its first bytes)."""
    try:
        with open(path, "rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    per_line = len(sample) / max(1, sample.count(b"\n"))
    target = max(MIN_ROWS_BLOCKSIZE, int(per_line * rows))
    return target if blocksize is None else min(blocksize, target)


def _parse_blocksize(blocksize: str | int | None) -> int | None:
    if blocksize is None:
        return None
    if isinstance(blocksize, str):
        if blocksize.strip().lower() in ("", "0", "none"):
            return None
        from dask.utils import parse_bytes

        try:
            value = parse_bytes(blocksize)
        except ValueError:
            raise ValueError(f"blocksize must be a size like '64MiB' (or 0 for whole files), "
                             f"not {blocksize!r}") from None
    else:
        value = int(blocksize)
    if value < 0:
        raise ValueError(f"blocksize must not be negative, not {blocksize!r}")
    return value or None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# ----------------------------------------------------------------- bytes, blocks, line numbers
def _compression(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return suffix[1:] if suffix in _COMPRESSIONS else None


def _open_binary(path: str, compression: str | None) -> Any:
    if compression is None:
        return open(path, "rb")
    if compression == "gz":
        import gzip

        return gzip.open(path, "rb")
    if compression == "bz2":
        import bz2

        return bz2.open(path, "rb")
    if compression == "xz":
        import lzma

        return lzma.open(path, "rb")
    try:
        import zstandard
    except ImportError:
        raise InputError(f"{path}: reading .zst files needs the zstandard package "
                         "(pip install zstandard)") from None
    return zstandard.open(path, "rb")


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


def _read_block(path: str, block: tuple[int, int | None], compression: str | None,
                skip_prefix: int = 0) -> tuple[int, bytes]:
    """The whole lines that start in ``[start, stop)``, and the file offset where they begin.

    Two neighbouring blocks agree on their common boundary, so every line is read exactly once.
    ``stop=None`` reads to the end (compressed files are always read whole). The first
    ``skip_prefix`` bytes of the file (a BOM, a CSV header) are left out of block 0.
    """
    start, stop = block
    try:
        with _open_binary(path, compression) as f:
            if stop is None:
                begin = 0
                data = f.read()
            else:
                size = os.fstat(f.fileno()).st_size
                begin = _line_start(f, start, size)
                end = _line_start(f, stop, size)
                f.seek(begin)
                data = f.read(end - begin)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, EOFError, zlib/lzma errors: name the file
        raise InputError(f"{path}: cannot read: {_one_line(exc)}") from None
    if begin < skip_prefix:
        data = data[skip_prefix - begin:]
        begin = skip_prefix
    return begin, data


def _newlines_before(path: str, offset: int, compression: str | None) -> int:
    """Line breaks in the first ``offset`` bytes (only computed to name a bad line)."""
    count = 0
    if offset <= 0:
        return count
    with _open_binary(path, compression) as f:
        remaining = offset
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def _blocks(size: int, blocksize: int | None, compression: str | None) -> list[tuple]:
    """``size // blocksize`` blocks of equal nominal size (as ``dask.bytes.read_bytes`` makes
    them, so the partitions are those of ``dd.read_csv``/``dd.read_json``)."""
    if compression is not None or blocksize is None or size < 2 * blocksize:
        return [(0, None)]
    count = size // blocksize
    offsets = [size * i // count for i in range(count + 1)]
    return list(zip(offsets[:-1], offsets[1:], strict=True))


class _BadLines:
    """The bad lines of one block: raise on the first (error mode) or count them (skip mode)."""

    def __init__(self, path: str, compression: str | None, base: int, skip: bool):
        self.path, self.compression, self.base, self.skip = path, compression, base, skip
        self.count = 0
        self.first: tuple[int, int, str] | None = None

    def error(self, line: int, problem: str) -> InputError:
        """An error naming the file and the absolute line of the block's ``line`` (1-based)."""
        absolute = _newlines_before(self.path, self.base, self.compression) + line
        return InputError(f"{self.path}:{absolute}: {problem}")

    def add(self, line: int, problem: str) -> None:
        if not self.skip:
            raise self.error(line, problem)
        self.count += 1
        if self.first is None or line < self.first[1]:
            self.first = (self.base, line, problem)

    def stats(self) -> tuple[int, tuple[int, int, str] | None]:
        return self.count, self.first


def _summarize(path: str, compression: str | None, stats: list[tuple]) -> BadLines:
    """Add up the blocks' bad-line counts; number the file's first bad line."""
    count = sum(n for n, _ in stats)
    firsts = [first for _, first in stats if first is not None]
    if not firsts:
        return BadLines(path, count)
    base, line, problem = min(firsts)
    return BadLines(path, count, _newlines_before(path, base, compression) + line, problem)


def _summary_frame(path: str, compression: str | None, stats: list[tuple]) -> Any:
    import pandas as pd

    report = _summarize(path, compression, stats)
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


def _jsonl_meta(path: str, compression: str | None, skip: bool) -> tuple[Any, int]:
    """The meta from the rows in the first ``SAMPLE_BYTES``; also the BOM length (0 or 3)."""
    import pandas as pd

    records: list[dict] = []
    prefix = 0
    try:
        f = _open_binary(path, compression)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {_one_line(exc)}") from None
    with f:
        base, pending, at_eof = 0, b"", False
        while not records and not at_eof:
            try:
                chunk = f.read(SAMPLE_BYTES)
            except Exception as exc:  # noqa: BLE001 - decompression errors: name the file
                raise InputError(f"{path}: cannot read: {_one_line(exc)}") from None
            at_eof = len(chunk) < SAMPLE_BYTES
            data = pending + chunk
            if base == 0 and data.startswith(_BOM):
                data, base, prefix = data[3:], 3, 3
            cut = len(data) if at_eof else data.rfind(b"\n") + 1
            data, pending = data[:cut], data[cut:]
            records = _json_lines(data, None, _BadLines(path, compression, base, skip))
            base += len(data)
    if not records:
        if base == prefix and not pending:
            raise InputError(f"{path}: the file is empty")
        raise InputError(f"{path}: no line holds a JSON object (every line is bad or empty)")
    columns = list(dict.fromkeys(key for record in records for key in record))
    return pd.DataFrame(records, columns=columns).iloc[:0], prefix


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


def _csv_meta(path: str, compression: str | None, sep: str, skip: bool,
              blocksize: int | None, size: int) -> tuple[Any, bytes, int]:
    """The meta from the rows in the first ``SAMPLE_BYTES``; the header; its length in bytes."""
    try:
        with _open_binary(path, compression) as f:
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
        raise InputError(f"{path}: cannot read: {_one_line(exc)}") from None
    newline = head.find(b"\n")
    raw_header = head if newline < 0 else head[:newline + 1]
    header = raw_header[3:] if raw_header.startswith(_BOM) else raw_header
    if not header.strip():
        raise InputError(f"{path}: the file is empty (no header line)")
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}:1: {_utf8_problem(raw_header, exc.start, 0)}") from None
    if not header.endswith(b"\n"):
        header += b"\n"
    body = head[len(raw_header):]
    if not at_eof:
        body = body[:body.rfind(b"\n") + 1]
    bad = _BadLines(path, compression, len(raw_header), skip)
    try:
        sample = _csv_frame(body, header, sep, bad, at_eof)
    except InputError:
        if at_eof:
            raise
        # The sample's last record may be cut inside a quoted field: read the first block whole.
        block = _blocks(size, blocksize, compression)[0]
        base, data = _read_block(path, block, compression, skip_prefix=len(raw_header))
        sample = _csv_frame(data, header, sep, _BadLines(path, compression, base, skip),
                            at_eof=block[1] is None or block[1] >= size)
    return sample.iloc[:0], header, len(raw_header)


# --------------------------------------------------------------------------- text files
class _TextBlockReader:
    """Reads one block of a JSONL/CSV/TSV file: ``block -> (pandas DataFrame, bad-line stats)``."""

    def __init__(self, fmt: str, path: str, compression: str | None, size: int, mtime: float,
                 meta: Any, skip: bool, prefix: int, header: bytes = b""):
        self.fmt, self.path, self.compression = fmt, path, compression
        self.size, self.mtime, self.meta, self.skip = size, mtime, meta, skip
        self.prefix, self.header = prefix, header

    def __dask_tokenize__(self) -> tuple:
        return ("dask-classify-read", self.fmt, self.path, self.size, self.mtime, self.skip,
                list(map(str, self.meta.columns)), list(map(str, self.meta.dtypes)))

    def __call__(self, block: tuple[int, int | None]) -> tuple[Any, tuple]:
        base, data = _read_block(self.path, block, self.compression, skip_prefix=self.prefix)
        bad = _BadLines(self.path, self.compression, base, self.skip)
        if self.fmt == "jsonl":
            frame = _jsonl_frame(data, self.meta, bad)
        else:
            at_eof = block[1] is None or block[1] >= self.size
            sep = "\t" if self.fmt == "tsv" else ","
            frame = _csv_frame(data, self.header, sep, bad, at_eof, at_start=block[0] == 0)
            frame = self.meta.iloc[:0].copy() if not len(frame) else _conform(frame, self.meta)
        return frame, bad.stats()


class _FrameOnly:
    """``block -> DataFrame`` for error mode, where there are no stats to carry."""

    def __init__(self, reader: _TextBlockReader):
        self.reader = reader

    def __dask_tokenize__(self) -> tuple:
        return ("frame-only", *self.reader.__dask_tokenize__())

    def __call__(self, block: tuple[int, int | None]) -> Any:
        return self.reader(block)[0]


def _read_text(path: Path, fmt: str, stat: os.stat_result, blocksize: int | None,
               skip: bool) -> InputFrame:
    from operator import getitem

    import dask
    import dask.dataframe as dd

    name = str(path)
    compression = _compression(path)
    if stat.st_size == 0:
        raise InputError(f"{name}: the file is empty")
    if fmt == "jsonl":
        meta, prefix = _jsonl_meta(name, compression, skip)
        header = b""
    else:
        meta, header, prefix = _csv_meta(name, compression, "\t" if fmt == "tsv" else ",",
                                         skip, blocksize, stat.st_size)
    reader = _TextBlockReader(fmt, name, compression, stat.st_size, stat.st_mtime, meta, skip,
                              prefix, header)
    blocks = _blocks(stat.st_size, blocksize, compression)
    if not skip:
        with _keep_dtypes():
            frame = dd.from_map(_FrameOnly(reader), blocks, meta=meta, label=f"read-{fmt}",
                                enforce_metadata=False)
        return InputFrame(frame, None)
    # Skip mode: each block yields (frame, stats); the frames make the DataFrame and the stats
    # one small summary task. Picking the stats out in their own task lets a block's frame be
    # released as soon as it is consumed.
    token = dask.base.tokenize(reader, blocks)
    parts = [dask.delayed(reader, pure=True)(block, dask_key_name=f"read-{fmt}-{token}-{i}")
             for i, block in enumerate(blocks)]
    frames = [dask.delayed(getitem, pure=True)(part, 0) for part in parts]
    stats = [dask.delayed(getitem, pure=True)(part, 1) for part in parts]
    # The report is a (one-row) DataFrame too: computing Delayed objects together with
    # DataFrame expressions would make dask optimize each expression on its own.
    summary = dask.delayed(_summary_frame, pure=True)(name, compression, stats)
    with _keep_dtypes():
        frame = dd.from_delayed(frames, meta=meta, verify_meta=False)
        report = dd.from_delayed([summary], meta=_summary_frame(name, None, []).iloc[:0],
                                 verify_meta=False)
    return InputFrame(frame, report)


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


class _ParquetPartReader:
    """Reads consecutive row groups of one Parquet file; corruption names file and row groups."""

    def __init__(self, path: str, size: int, mtime: float, index_columns: list):
        self.path, self.size, self.mtime, self.index_columns = path, size, mtime, index_columns

    def __dask_tokenize__(self) -> tuple:
        return ("dask-classify-read-parquet", self.path, self.size, self.mtime)

    def __call__(self, groups: list[int], row_offset: int) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with pq.ParquetFile(self.path) as pf:
                table = (pf.read_row_groups(groups) if groups
                         else pf.schema_arrow.empty_table())
                return _parquet_frame(table, self.index_columns, row_offset)
        except (OSError, ValueError, EOFError, pa.ArrowException) as exc:
            where = (f"row group {groups[0]}" if len(groups) == 1
                     else f"row groups {groups[0]}-{groups[-1]}")
            raise InputError(f"{self.path}: corrupt Parquet data in {where} (from row "
                             f"{row_offset}): {_one_line(exc)}") from None


def _read_parquet(path: Path, blocksize: int | None, partition_rows: int | None = None) -> Any:
    import dask.dataframe as dd
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        stat = path.stat()
        with pq.ParquetFile(name) as pf:
            metadata = pf.metadata
            schema = pf.schema_arrow
            index_columns = (schema.pandas_metadata or {}).get("index_columns", [])
            meta = _parquet_frame(schema.empty_table(), index_columns, 0)
    except (OSError, ValueError, EOFError, pa.ArrowException) as exc:
        raise InputError(f"{name}: not a readable Parquet file (truncated or corrupt?): "
                         f"{_one_line(exc)}") from None
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
    reader = _ParquetPartReader(name, stat.st_size, stat.st_mtime, index_columns)
    with _keep_dtypes():
        return dd.from_map(reader, groups, offsets, meta=meta, label="read-parquet",
                           enforce_metadata=False)


MARKER = "_SUCCESS.json"


def source_stamp(source: Path) -> dict[str, Any]:
    """What identifies an input for resuming: its path, size and modification time.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.io import source_stamp
    >>> path = Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = path.write_text("{}\\n")
    >>> sorted(source_stamp(path)), source_stamp(path)["size"]
    (['mtime', 'size', 'source'], 3)
    """
    stat = source.stat()
    return {"source": str(source.resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


def done_for(target: Path, source: Path) -> bool:
    """True when ``target`` is a finished output of ``source``.

    Raises
    ------
    FileExistsError
        ``target`` exists but was written from another input, or by something else.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.io import MARKER, done_for, source_stamp
    >>> d = Path(tempfile.mkdtemp())
    >>> src = d / "in.jsonl"
    >>> _ = src.write_text("{}\\n")
    >>> done_for(d / "out" / "in.parquet", src)
    False
    >>> (d / "out" / "in.parquet").mkdir(parents=True)
    >>> _ = (d / "out" / "in.parquet" / MARKER).write_text(json.dumps(source_stamp(src)))
    >>> done_for(d / "out" / "in.parquet", src)
    True
    """
    if not target.exists():
        return False
    marker = target / MARKER
    try:
        stamp = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise FileExistsError(f"{target} exists but was not written by dask-classify "
                              f"(no {MARKER}); remove it or use --overwrite") from None
    if stamp.get("source") != str(source.resolve()):
        raise FileExistsError(f"{target} holds the output of another input "
                              f"({stamp.get('source')}); use another --output folder")
    return True


def output_path(out_dir: Path, source: Path, fmt: str) -> Path:
    """Where the output for ``source`` goes: ``OUT/<name without extension>.<fmt>/``.

    Only a compression suffix and then a known format extension are removed, so the files of a
    partitioned data set (``part.00000.parquet``, ``part.00001.parquet``) keep distinct names.

    Examples
    --------
    >>> from pathlib import Path
    >>> from dask_classify.io import output_path
    >>> output_path(Path("out"), Path("data/news.jsonl.gz"), "parquet").as_posix()
    'out/news.parquet'
    >>> output_path(Path("out"), Path("data/part.00001.parquet"), "jsonl").as_posix()
    'out/part.00001.jsonl'
    >>> output_path(Path("out"), Path("data/v1.2_notes"), "parquet").as_posix()
    'out/v1.2_notes.parquet'
    """
    name = source.name
    suffix = Path(name).suffix
    if suffix.lower() in _COMPRESSIONS:
        name = name[: -len(suffix)]
        suffix = Path(name).suffix
    if suffix.lower() in _EXTENSIONS:
        name = name[: -len(suffix)]
    return out_dir / f"{name or source.name}.{fmt}"


def clean_stale_temporaries(out_dir: Path) -> list[Path]:
    """Remove temporary folders left by an interrupted run (names ``.X.tmp-*`` / ``.X.old-*``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.io import clean_stale_temporaries
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / ".x.parquet.tmp-1234abcd").mkdir()
    >>> (d / "x.parquet").mkdir()
    >>> [p.name for p in clean_stale_temporaries(d)], [p.name for p in d.iterdir()]
    (['.x.parquet.tmp-1234abcd'], ['x.parquet'])
    """
    removed = []
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def _label_counts(series: Any) -> Any:
    host = series.astype(object)
    return host.where(host.notna(), "<null>").astype(str).value_counts()


def write_partition(part: Any, folder: str, fmt: str, arrow_types: dict[str, Any],
                    count_field: str | None, partition_info: dict | None = None) -> Any:
    """Write one partition as ``part.NNNNN.<fmt>``; return its label counts (label, count).

    Parquet column types are inferred from the partition's data, except ``arrow_types``, which
    are fixed so that every file agrees (a partition whose scores are all null still writes
    ``list<double>``).

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from dask_classify.io import write_partition
    >>> d = tempfile.mkdtemp()
    >>> part = pd.DataFrame({"text": ["a", "b", None], "preds": ["pos", "neg", None]})
    >>> counts = write_partition(part, d, "jsonl", {}, "preds", {"number": 3})
    >>> sorted(zip(counts["label"], counts["count"]))
    [('<null>', 1), ('neg', 1), ('pos', 1)]
    >>> len(pd.read_json(f"{d}/part.00003.jsonl", lines=True))
    3
    """
    import pandas as pd

    from dask_classify.backend import to_host

    number = partition_info["number"] if partition_info else 0
    host = to_host(part)
    path = Path(folder) / f"part.{number:05d}.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(host, preserve_index=False)
        for name, arrow_type in arrow_types.items():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pa.array(host[name].tolist(), type=arrow_type))
        pq.write_table(table, path)
    elif fmt == "jsonl":
        host.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        raise InputError(f"output format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    if count_field is None:
        counts = pd.Series({"<rows>": len(host)}, dtype="int64")
    else:
        counts = _label_counts(host[count_field])
    return pd.DataFrame({"label": counts.index.astype(str).tolist(),
                         "count": counts.to_numpy(dtype="int64")})


def write_dataframe(ddf: Any, folder: Path, fmt: str, arrow_types: dict[str, Any] | None = None,
                    count_field: str | None = None) -> Any:
    """Lazily write every partition of ``ddf`` into ``folder`` (``part.NNNNN.parquet|jsonl``).

    Returns a lazy pandas-backed Dask DataFrame of per-partition label counts (columns
    ``label``, ``count``); computing it writes the files. Files are numbered by partition, so
    reading the folder back in name order gives the rows in their original order.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import dask.dataframe as dd, pandas as pd
    >>> from dask_classify.io import write_dataframe
    >>> d = Path(tempfile.mkdtemp())
    >>> ddf = dd.from_pandas(pd.DataFrame({"text": list("abcd"), "preds": list("xyxx")}), 2)
    >>> counts = write_dataframe(ddf, d, "parquet", count_field="preds").compute()
    >>> sorted(p.name for p in d.iterdir()), counts.groupby("label")["count"].sum().to_dict()
    (['part.00000.parquet', 'part.00001.parquet'], {'x': 3, 'y': 1})
    """
    import pandas as pd

    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"output format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    meta = pd.DataFrame({"label": pd.Series([], dtype=object),
                         "count": pd.Series([], dtype="int64")})
    return ddf.map_partitions(write_partition, str(folder), fmt, dict(arrow_types or {}),
                              count_field, meta=meta, enforce_metadata=False)
