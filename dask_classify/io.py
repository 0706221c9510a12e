"""Reading and writing JSONL / Parquet / CSV / TSV files as Dask DataFrames, for either backend.

Outputs are written atomically: into a hidden temporary folder beside the destination, renamed
into place only when every partition is written, so an interrupted run never leaves an output
that looks complete.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

INPUT_FORMATS = ("jsonl", "parquet", "csv", "tsv")
OUTPUT_FORMATS = ("parquet", "jsonl")
_EXTENSIONS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


class InputError(ValueError):
    """An input path or file that cannot be read: names the file and the problem."""


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand files, folders (their files, sorted) and globs; every pattern must match."""
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
    """The input format of ``path``: ``forced`` if given, else from its extension."""
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


def read_dataframe(path: str | os.PathLike, fmt: str | None = None, *,
                   blocksize: str | int | None = "64MiB", backend: str = "cpu") -> Any:
    """A lazy Dask DataFrame over one file (pandas partitions, or cudf for ``backend="gpu"``).

    Parameters
    ----------
    path : path-like
        The file.
    fmt : {"jsonl", "parquet", "csv", "tsv"}, optional
        Default: from the extension.
    blocksize : str or int, default "64MiB"
        Bytes per partition for text formats (parquet partitions follow row groups).
    backend : {"cpu", "gpu"}
        ``"gpu"`` reads into cudf partitions (needs the ``[gpu]`` extra).
    """
    import dask
    import dask.dataframe as dd

    path = Path(path)
    fmt = detect_format(path, fmt)
    compressed = path.suffix.lower() in _COMPRESSIONS
    options: dict[str, Any] = {}
    if compressed:
        blocksize = None  # compressed text cannot be split into byte ranges
    with dask.config.set({"dataframe.backend": "cudf" if backend == "gpu" else "pandas"}):
        try:
            if fmt == "parquet":
                return dd.read_parquet(str(path))
            if fmt == "jsonl":
                return dd.read_json(str(path), lines=True, blocksize=blocksize,
                                    compression="infer", **options)
            sep = "\t" if fmt == "tsv" else ","
            return dd.read_csv(str(path), sep=sep, blocksize=blocksize, compression="infer",
                               **options)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise InputError(f"could not read {path} as {fmt}: {type(exc).__name__}: {exc}") \
                from exc


MARKER = "_SUCCESS.json"


def source_stamp(source: Path) -> dict[str, Any]:
    """What identifies an input for resuming: its path, size and modification time."""
    stat = source.stat()
    return {"source": str(source.resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


def done_for(target: Path, source: Path) -> bool:
    """True when ``target`` is a finished output of ``source``.

    Raises
    ------
    FileExistsError
        ``target`` exists but was written from another input, or by something else.
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
    """Where the output for ``source`` goes: ``OUT/<name without extension>.<fmt>/``."""
    name = source.name
    for suffix in reversed(source.suffixes):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return out_dir / f"{name or source.name}.{fmt}"


@contextlib.contextmanager
def atomic_folder(final: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final`` in one rename.

    On error the temporary folder is removed and ``final`` is left as it was.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{final} appeared while writing; not replacing it")
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def clean_stale_temporaries(out_dir: Path) -> list[Path]:
    """Remove temporary folders left by an interrupted run (names ``.X.tmp-*`` / ``.X.old-*``)."""
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
    """
    import pandas as pd

    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"output format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    meta = pd.DataFrame({"label": pd.Series([], dtype=object),
                         "count": pd.Series([], dtype="int64")})
    return ddf.map_partitions(write_partition, str(folder), fmt, dict(arrow_types or {}),
                              count_field, meta=meta, enforce_metadata=False)
