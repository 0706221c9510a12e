"""JSONL: each non-empty line one JSON object, checked line by line.

Empty lines are skipped. The columns are the keys of the rows in the file's first
``SAMPLE_BYTES`` (1 MiB); a key missing from a row gives a null there; a key that first appears
later is an error (the column list would be too short). Values keep their JSON types; raw
control characters inside strings are accepted; lone UTF-16 surrogate escapes are bad lines.
"""

from __future__ import annotations

import json
import re
from typing import Any

import dask_classify.readers.base as _base
from dask_classify.errors import InputError
from dask_classify.readers.base import (
    _BOM,
    SAMPLE_ROWS,
    SourceMeta,
    _BadLines,
    _conform,
    _one_line,
    _open,
    _utf8_problem,
)
from dask_classify.readers.discovery import Source

_JSON_WHITESPACE = " \t\r"


# strict=False: raw control characters inside strings (JSON wants them escaped) are kept as they
# are instead of failing the line; writers that emit raw tabs are common.
_JSON_DECODER = json.JSONDecoder(strict=False)


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
                chunk = f.read(_base.SAMPLE_BYTES)
            except Exception as exc:  # noqa: BLE001 - decompression errors: name the file
                raise InputError(f"{source.url}: cannot read: {_one_line(exc)}") from None
            at_eof = len(chunk) < _base.SAMPLE_BYTES
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
