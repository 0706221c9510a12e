"""Reading input files in bounded pieces, with errors that name the file and the line.

One module per format (:mod:`~dask_classify.readers.jsonl`,
:mod:`~dask_classify.readers.delimited` for CSV/TSV, :mod:`~dask_classify.readers.parquet`)
on a shared base (:mod:`~dask_classify.readers.base`: units, bad lines, byte ranges, UTF-8);
:mod:`~dask_classify.readers.units` plans a file's units and reads them, and
:mod:`~dask_classify.readers.discovery` finds the input files on any filesystem.

Every file is cut into *units* (:func:`plan_units`): byte ranges of an uncompressed JSONL/CSV/TSV
file cut at line breaks, groups of Parquet row groups, or, for a compressed text file, the whole
file read as a stream of pieces. Our own parsers check every line: a broken input fails with an
:class:`~dask_classify.errors.InputError` naming the file and the 1-based line (for invalid UTF-8
also the byte offset; for Parquet the row group) instead of an error from deep inside a parser,
or, with ``on_bad_lines="skip"``, loses only the bad lines and counts them.
:func:`read_input` builds a lazy Dask DataFrame over one file from the same units, for library
use; the job layer (:mod:`dask_classify.jobs`) runs the units as tasks itself.
"""

from dask_classify.readers.base import (
    MIN_ROWS_BLOCKSIZE,
    ON_BAD_LINES,
    SAMPLE_BYTES,
    SAMPLE_ROWS,
    BadLines,
    InputFrame,
    SourceMeta,
    Unit,
    add_partition_columns,
    parse_blocksize,
    summarize_bad_lines,
)
from dask_classify.readers.units import plan_units, read_input, read_meta, read_unit

__all__ = ["MIN_ROWS_BLOCKSIZE", "ON_BAD_LINES", "SAMPLE_BYTES", "SAMPLE_ROWS", "BadLines",
           "InputFrame", "SourceMeta", "Unit", "add_partition_columns", "parse_blocksize",
           "plan_units", "read_input", "read_meta", "read_unit", "summarize_bad_lines"]
