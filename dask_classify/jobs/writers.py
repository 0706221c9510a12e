"""Writing classified parts: one Arrow schema per output, files that appear only when complete.

Every Parquet part of one output folder is written with the same schema
(:func:`output_schema`: the classified frame's ``meta``, Arrow types from a sample of the input
rows, the classifiers' own types such as ``list<double>`` scores), so a column that is all null
in one part is not typed ``null`` there and ``pd.read_parquet(folder)`` or
``dd.read_parquet(folder)`` reads the folder back as one data set. Hive partition columns of the
input are not written into Parquet rows: the output keeps their ``key=value`` folders, which the
readers turn back into columns.

On a local filesystem a part is written under a hidden temporary name and renamed into place;
on object stores (no rename) it is uploaded under its final name, which appears only once the
upload is complete.
"""

from __future__ import annotations

import posixpath
import uuid
from typing import Any

from dask_classify.errors import InputError, UsageError

__all__ = ["OUTPUT_FORMATS", "label_counts", "output_schema", "write_part"]

OUTPUT_FORMATS = ("parquet", "jsonl")


def output_schema(meta: Any, sample: Any, arrow_types: dict[str, Any],
                  drop: tuple[str, ...] = (), where: str = "") -> Any:
    """The Arrow schema every Parquet part of one output is written with.

    Parameters
    ----------
    meta : pandas.DataFrame
        The classified frame's (empty) meta: its columns, in order, and dtypes.
    sample : pandas.DataFrame
        A sample of the input rows: types pandas dtypes cannot tell (``object`` columns holding
        strings, lists or dicts) come from its values.
    arrow_types : dict
        Fixed types of the classifiers' columns (``DistributedDataClassifier.arrow_types``).
    drop : tuple of str
        Columns left out (hive partition columns, kept in the folder names).
    where : str
        Names the input in errors.

    Returns
    -------
    pyarrow.Schema
        Without pandas metadata; a column with no type information (all null in the sample
        and ``object`` in the meta) is ``string``.

    Raises
    ------
    InputError
        A column of the sample mixes values Arrow cannot hold in one type (``"a"`` and ``1``),
        naming ``where`` and the column.

    Examples
    --------
    >>> import pandas as pd, pyarrow as pa
    >>> from dask_classify.jobs.writers import output_schema
    >>> meta = pd.DataFrame({"text": pd.Series([], dtype=object),
    ...                      "tags": pd.Series([], dtype=object),
    ...                      "note": pd.Series([], dtype=object),
    ...                      "preds": pd.Series([], dtype=object)})
    >>> sample = pd.DataFrame({"text": ["a"], "tags": [["x", "y"]], "note": [None]})
    >>> schema = output_schema(meta, sample, {"preds": pa.string()})
    >>> [str(schema.field(c).type) for c in schema.names]
    ['large_string', 'list<item: string>', 'string', 'string']
    """
    import pyarrow as pa

    columns = [c for c in meta.columns if c not in drop]
    base = pa.Schema.from_pandas(meta[columns], preserve_index=False)
    known = [c for c in columns if c in sample.columns and c not in arrow_types]
    sampled = _sampled_schema(sample[known], where) if known else None
    fields = []
    for name in columns:
        kind = arrow_types.get(name)
        if kind is None and sampled is not None and name in known:
            kind = sampled.field(name).type
            if pa.types.is_null(kind):
                kind = None
        if kind is None:
            kind = base.field(name).type
        if pa.types.is_null(kind):
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


_ARROW_ERRORS = (TypeError, ValueError)  # pyarrow's ArrowInvalid/ArrowTypeError derive from them


def _bad_column(frame: Any, types: dict[str, Any]) -> tuple[str, BaseException] | None:
    """The first column of ``frame`` Arrow cannot convert (to ``types[name]`` where given)."""
    import pyarrow as pa

    for name in frame.columns:
        try:
            pa.array(frame[name].tolist(), type=types.get(name), from_pandas=True)
        except _ARROW_ERRORS as exc:
            return name, exc
    return None


def _sampled_schema(sample: Any, where: str) -> Any:
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(sample, preserve_index=False).schema
    except _ARROW_ERRORS as first:
        bad = _bad_column(sample, {})
        if bad is not None:
            raise InputError(f"{where}: column {bad[0]!r} mixes values of different types "
                             f"among the first rows ({_first_line(bad[1])}); one column holds "
                             "one type") from None
        raise InputError(f"{where}: cannot type the first rows for Parquet: "
                         f"{_first_line(first)}") from None


def _table(frame: Any, schema: Any, where: str) -> Any:
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False,
                                    safe=True)
    except _ARROW_ERRORS as first:
        bad = _bad_column(frame[schema.names], {f.name: f.type for f in schema})
        if bad is not None:  # a message that names the column
            name, exc = bad
            raise InputError(
                f"{where}: column {name!r} holds values that are not "
                f"{schema.field(name).type} like the file's first rows ({_first_line(exc)}); "
                "every part of an output has one schema") from None
        raise InputError(f"{where}: cannot write the rows as Parquet: {_first_line(first)}") \
            from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def write_part(frame: Any, fs: Any, folder: str, name: str, fmt: str, schema: Any = None,
               where: str = "") -> str:
    """Write ``frame`` as ``folder/name`` (``fmt``: parquet or jsonl), atomically; its path.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows (the index is not written).
    fs : fsspec filesystem
        Where ``folder`` is.
    schema : pyarrow.Schema, optional
        Parquet: the schema to write (columns not in it are dropped, e.g. partition columns).
    where : str
        Names the input in errors.

    Examples
    --------
    >>> import fsspec, tempfile, pandas as pd
    >>> from dask_classify.jobs.writers import write_part
    >>> fs, folder = fsspec.filesystem("file"), tempfile.mkdtemp()
    >>> path = write_part(pd.DataFrame({"text": ["a", None]}), fs, folder, "part.00000.jsonl",
    ...                   "jsonl")
    >>> open(path).read().splitlines()
    ['{"text":"a"}', '{"text":null}']
    """
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"output format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    from dask_classify.backend import to_host

    frame = to_host(frame)
    final = posixpath.join(folder, name)
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    target = posixpath.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:8]}") if local else final
    fs.makedirs(folder, exist_ok=True)
    try:
        with fs.open(target, "wb") as fh:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                table = _table(frame, schema, where or final) if schema is not None else None
                if table is None:
                    import pyarrow as pa

                    table = pa.Table.from_pandas(frame, preserve_index=False)
                pq.write_table(table, fh)
            else:
                text = frame.to_json(orient="records", lines=True, force_ascii=False)
                fh.write(text.encode("utf-8"))
        if local:
            fs.mv(target, final)
    except BaseException:
        if local and fs.exists(target):
            fs.rm(target)
        raise
    return final


def label_counts(series: Any) -> dict[str, int]:
    """How many rows hold each label of ``series`` (nulls as ``"<null>"``).

    A column of label lists (multi-label heads) counts each label; a column of numbers (a
    regression score) has no labels to count: only its nulls are counted.

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.jobs.writers import label_counts
    >>> label_counts(pd.Series(["pos", None, "pos"]))
    {'<null>': 1, 'pos': 2}
    >>> label_counts(pd.Series([["a", "b"], ["a"], None]))
    {'<null>': 1, 'a': 2, 'b': 1}
    >>> label_counts(pd.Series([0.5, 2.25, None]))
    {'<null>': 1}
    """
    import pandas as pd

    host = series.astype(object)
    nulls = int(host.isna().sum())
    values = host[host.notna()]
    counts: dict[str, int] = {"<null>": nulls} if nulls else {}
    if not len(values) or pd.api.types.is_numeric_dtype(series.dtype) and \
            not pd.api.types.is_bool_dtype(series.dtype):
        return counts
    if isinstance(values.iloc[0], (list, tuple)) or hasattr(values.iloc[0], "tolist"):
        values = values.explode().dropna()
    for key, count in values.astype(str).value_counts().items():
        counts[str(key)] = int(count)
    return dict(sorted(counts.items()))
