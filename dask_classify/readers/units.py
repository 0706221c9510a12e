"""Planning a file's units, reading one, and a lazy Dask DataFrame over a file.

:func:`plan_units` cuts a file into units; :func:`read_meta` fixes its columns and dtypes from
its start; :func:`read_unit` reads one unit (a stream of pieces of about ``partition_rows``
lines for a compressed text file, so a multi-GB ``.jsonl.gz`` never sits whole in a worker's
memory); :func:`read_input` builds a lazy Dask DataFrame over one file from the same units, for
library use (the job layer runs the units as tasks itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask_classify.readers.base as _base
from dask_classify.errors import InputError, UsageError
from dask_classify.readers.base import (
    MIN_ROWS_BLOCKSIZE,
    ON_BAD_LINES,
    InputFrame,
    SourceMeta,
    Unit,
    _BadLines,
    _blocks,
    _conform,
    _keep_dtypes,
    _one_line,
    _open,
    _read_block,
    _summary_frame,
    _thaw,
    add_partition_columns,
    parse_blocksize,
)
from dask_classify.readers.delimited import _csv_frame, _csv_meta
from dask_classify.readers.discovery import Source
from dask_classify.readers.jsonl import _jsonl_frame, _jsonl_meta
from dask_classify.readers.parquet import _parquet_meta, _parquet_units, _read_row_groups


def read_meta(source: Source, on_bad_lines: str = "error",
              blocksize: int | None = None) -> SourceMeta:
    """The columns and dtypes of ``source`` and a sample of its first rows.

    JSONL and CSV/TSV columns come from the rows in the first ``SAMPLE_BYTES`` of the file,
    Parquet columns from its footer. Partition columns of a hive path (``key=value`` folders)
    are added as string columns.

    Parameters
    ----------
    source : Source
        The file (from :func:`~dask_classify.readers.discovery.discover`).
    on_bad_lines : {"error", "skip"}, default "error"
        What a bad line among the first rows does: raise, or drop it.
    blocksize : int, optional
        CSV/TSV: the bytes of the first unit, read whole when the sample ends inside a quoted
        field (see :func:`plan_units`).

    Returns
    -------
    SourceMeta

    Raises
    ------
    InputError
        A file that cannot be opened, an empty file, a Parquet file without a valid footer, a
        bad line among the first rows (error mode), or a partition key that is also a column.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.readers.discovery import discover
    >>> path = Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = path.write_text("id,text\\n1,a\\n2,b\\n")
    >>> meta = read_meta(discover([str(path)])[0])
    >>> list(meta.frame.columns), len(meta.sample), meta.header
    (['id', 'text'], 2, b'id,text\\n')
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


# --------------------------------------------------------------------------- units
def _rows_blocksize(source: Source, blocksize: int | None, rows: int) -> int | None:
    """``blocksize`` lowered to about ``rows`` lines of ``source`` (from its first bytes)."""
    with _open(source) as fh:
        sample = fh.read(_base.SAMPLE_BYTES)
    per_line = len(sample) / max(1, sample.count(b"\n"))
    target = max(MIN_ROWS_BLOCKSIZE, int(per_line * rows))
    return target if blocksize is None else min(blocksize, target)


def plan_units(source: Source, blocksize: str | int | None = "64MiB",
               partition_rows: int | None = None) -> list[Unit]:
    """Cut ``source`` into the units that tasks read.

    An uncompressed text file is cut into byte ranges at line breaks (as
    ``dask.bytes.read_bytes`` cuts them), a Parquet file into groups of row groups; a compressed
    text file is one stream unit.

    Parameters
    ----------
    source : Source
        The file (from :func:`~dask_classify.readers.discovery.discover`).
    blocksize : str or int or None, default "64MiB"
        Bytes per unit: text is cut at the first line break after each multiple of it; Parquet
        units gather consecutive row groups up to this many uncompressed bytes.
        ``None``/``0``/``"none"``: one unit per text file, one per Parquet row group; for a
        compressed file, one piece.
    partition_rows : int, optional
        Also aim for at most this many rows per unit (or per piece of a compressed stream):
        Parquet row groups are gathered only up to it (a row group is never split); text units
        shrink to about this many lines, estimated from the file's first ``SAMPLE_BYTES``
        (never below ``MIN_ROWS_BLOCKSIZE``).

    Returns
    -------
    list of Unit
        In file order, numbered from 0; at least one (an empty file is one empty unit).

    Raises
    ------
    UsageError
        A malformed ``blocksize`` or a ``partition_rows`` below 1.
    InputError
        A Parquet file without a valid footer, or a file that cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.readers.discovery import discover
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


def read_unit(source: Source, unit: Unit, meta: SourceMeta,
              on_bad_lines: str = "error") -> Iterator[tuple[Any, tuple]]:
    """The rows of one unit as pandas frames with the meta's columns.

    One frame for a byte range or row groups; for a stream unit, one frame per piece, read as
    the file is decompressed.

    Parameters
    ----------
    source : Source
        The file.
    unit : Unit
        One of :func:`plan_units`' units of ``source``.
    meta : SourceMeta
        :func:`read_meta` of ``source``.
    on_bad_lines : {"error", "skip"}, default "error"
        Raise on the first bad line, or drop bad lines and count them.

    Yields
    ------
    frame : pandas.DataFrame
        Rows in file order, with the columns of ``meta.frame``.
    stats : tuple
        The unit's (or piece's) bad lines, for :func:`summarize_bad_lines`.

    Raises
    ------
    InputError
        A bad line (error mode), a JSONL key outside the columns, a CSV quote left open at the
        unit's end, corrupt Parquet data, or a file that cannot be read or decompressed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.readers.discovery import discover
    >>> path = Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = path.write_text('{"text": "a"}\\n[1]\\n{"text": "b"}\\n')
    >>> source = discover([str(path)])[0]
    >>> meta = read_meta(source, "skip")
    >>> [(frame["text"].tolist(), stats[0]) for frame, stats in
    ...  read_unit(source, plan_units(source)[0], meta, "skip")]
    [(['a', 'b'], 1)]
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

    from dask_classify.readers.discovery import discover

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
