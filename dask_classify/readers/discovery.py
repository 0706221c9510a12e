"""Finding a job's input files: paths, globs, folders and fsspec URLs, on any filesystem.

Inputs are discovered once, on the client, through fsspec, so local paths, ``file://``,
``s3://``, ``gs://``, ``abfs://``, ``hdfs://`` and ``memory://`` work alike. Folders are read
recursively; names starting with ``.`` or ``_`` (``_SUCCESS``, ``_metadata``,
``_common_metadata``, Spark's ``_temporary/``, hidden files) and ``.crc`` files are ignored,
as pyarrow's datasets ignore them. Hive-style ``key=value/`` folders below an input folder
become partition columns of their rows.

Each file becomes a :class:`Source`: its URL, format, compression, size and a fingerprint
(size and modification time, and an ETag or checksum where the filesystem has one) that a
rerun compares to tell a changed input from a finished one.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from dask_classify.errors import InputError, UsageError

__all__ = ["COMPRESSIONS", "INPUT_FORMATS", "Source", "detect_format", "discover",
           "output_name"]

INPUT_FORMATS = ("jsonl", "parquet", "csv", "tsv")
_EXTENSIONS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
}
#: File suffix -> fsspec compression name (streamed, never decompressed whole).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_FINGERPRINT_KEYS = ("ETag", "etag", "md5Hash", "crc32c", "checksum", "mtime", "LastModified",
                     "last_modified", "updated", "created")


@dataclass(frozen=True)
class Source:
    """One input file.

    Attributes
    ----------
    url : str
        The file as the user sees it (a local absolute path, or ``protocol://path``).
    protocol : str
        The fsspec protocol (``"file"``, ``"s3"``, ``"memory"``, ...).
    path : str
        The path on that filesystem.
    fmt : {"jsonl", "parquet", "csv", "tsv"}
    compression : str or None
        fsspec's name of the compression (``"gzip"``, ``"bz2"``, ``"xz"``, ``"zstd"``).
    size : int
        Bytes on the filesystem (compressed size for compressed files).
    fingerprint : str
        JSON of the size, modification time and ETag/checksum the filesystem reports.
    relative : str
        The path below the input folder it was found in (its name for a single file): the
        output is written under the same relative path.
    partition_values : tuple of (str, str)
        Hive ``key=value`` folders of ``relative``, outermost first.
    options : str
        JSON of the fsspec storage options (so a worker opens the same filesystem).
    """

    url: str
    protocol: str
    path: str
    fmt: str
    compression: str | None
    size: int
    fingerprint: str
    relative: str
    partition_values: tuple[tuple[str, str], ...] = ()
    options: str = "{}"

    def filesystem(self) -> Any:
        """The fsspec filesystem of this file (fsspec caches instances per process).

        Returns
        -------
        fsspec.AbstractFileSystem
            Opened with the storage options the file was discovered with.
        """
        import fsspec

        return fsspec.filesystem(self.protocol, **json.loads(self.options))

    def open(self, decompress: bool = True) -> Any:
        """Open the file for reading.

        Parameters
        ----------
        decompress : bool, default True
            Decompress a compressed file as it is read; ``False`` gives the raw bytes.

        Returns
        -------
        file-like
            A binary file object; use it as a context manager.
        """
        return self.filesystem().open(self.path, "rb",
                                      compression=self.compression if decompress else None)

    @property
    def is_local(self) -> bool:
        """Whether the file is on the local filesystem (protocol ``file``/``local``)."""
        return self.protocol in ("file", "local")


def detect_format(name: str, forced: str | None = None) -> str:
    """The input format of the file ``name``: ``forced`` if given, else from its extension.

    A compression suffix (``.gz``, ``.bz2``, ``.xz``, ``.zst``) is looked through.

    Parameters
    ----------
    name : str
        A path or URL.
    forced : {"jsonl", "parquet", "csv", "tsv"}, optional
        The format to use whatever the extension.

    Returns
    -------
    str
        One of ``INPUT_FORMATS``.

    Raises
    ------
    UsageError
        A ``forced`` format that is not one of ``INPUT_FORMATS``.
    InputError
        An extension that tells no format (and no ``forced``).

    Examples
    --------
    >>> from dask_classify.readers.discovery import detect_format
    >>> detect_format("docs.jsonl.gz"), detect_format("s3://b/t.tab"), detect_format("x", "csv")
    ('jsonl', 'tsv', 'csv')
    """
    if forced is not None:
        if forced not in INPUT_FORMATS:
            raise UsageError(f"input format must be one of {INPUT_FORMATS}, not {forced!r}")
        return forced
    base = posixpath.basename(name.rstrip("/"))
    stem, ext = posixpath.splitext(base)
    if ext.lower() in COMPRESSIONS:
        stem, ext = posixpath.splitext(stem)
    fmt = _EXTENSIONS.get(ext.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {base!r} from its extension; pass --input-format "
            f"(one of {', '.join(INPUT_FORMATS)})"
        )
    return fmt


def compression_of(name: str) -> str | None:
    """fsspec's compression name for ``name``'s suffix.

    Parameters
    ----------
    name : str
        A path or URL.

    Returns
    -------
    str or None
        ``"gzip"``, ``"bz2"``, ``"xz"`` or ``"zstd"``; ``None`` for any other suffix.

    Examples
    --------
    >>> from dask_classify.readers.discovery import compression_of
    >>> compression_of("a.jsonl.zst"), compression_of("a.parquet")
    ('zstd', None)
    """
    return COMPRESSIONS.get(posixpath.splitext(name)[1].lower())


def output_name(relative: str, fmt: str) -> str:
    """The output folder of an input, relative to the job's output folder.

    The input's relative path without a compression suffix and a known format extension, plus
    ``.<fmt>``. Only those suffixes are removed, so the part files of a data set
    (``part.00000.parquet``, ``part.00001.parquet``) keep distinct names.

    Parameters
    ----------
    relative : str
        :attr:`Source.relative` of the input.
    fmt : str
        The output format (its extension).

    Returns
    -------
    str
        A ``/``-separated relative path.

    Examples
    --------
    >>> from dask_classify.readers.discovery import output_name
    >>> output_name("news.jsonl.gz", "parquet")
    'news.parquet'
    >>> output_name("year=2024/part.00001.parquet", "jsonl")
    'year=2024/part.00001.jsonl'
    >>> output_name("v1.2_notes", "parquet")
    'v1.2_notes.parquet'
    """
    folder, name = posixpath.split(relative)
    stem, ext = posixpath.splitext(name)
    if ext.lower() in COMPRESSIONS:
        name = stem
        stem, ext = posixpath.splitext(name)
    if ext.lower() in _EXTENSIONS:
        name = stem
    return posixpath.join(folder, f"{name or posixpath.basename(relative)}.{fmt}")


def _ignored(relative: str) -> bool:
    parts = relative.split("/")
    return any(p.startswith((".", "_")) for p in parts) or parts[-1].endswith(".crc")


def _partition_values(relative: str) -> tuple[tuple[str, str], ...]:
    values = []
    for segment in relative.split("/")[:-1]:
        key, eq, value = segment.partition("=")
        if eq and key and key.isidentifier():
            values.append((key, unquote(value)))
    return tuple(values)


def _fingerprint(info: dict[str, Any]) -> str:
    found = {"size": int(info.get("size") or 0)}
    for key in _FINGERPRINT_KEYS:
        value = info.get(key)
        if value is not None:
            found[key] = str(value)
    return json.dumps(found, sort_keys=True)


def _url(fs: Any, path: str, protocol: str) -> str:
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def discover(inputs: Sequence[str], storage_options: dict[str, Any] | None = None,
             input_format: str | None = None) -> list[Source]:
    """Every input file of a job, in order, each once.

    Parameters
    ----------
    inputs : sequence of str
        Files, folders (read recursively) and globs (``**`` for any depth), as local paths or
        fsspec URLs. Every one must match at least one file.
    storage_options : dict, optional
        fsspec options for remote filesystems (credentials, ``endpoint_url``, ...).
    input_format : str, optional
        The format of every file; default: from each file's extension.

    Returns
    -------
    list of Source
        Sorted within each input, inputs in the order given, duplicates dropped.

    Raises
    ------
    InputError
        An input that does not exist or matches no file, or a file whose format cannot be told.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.readers.discovery import discover
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("b.jsonl", "a.jsonl", ".hidden", "_SUCCESS", "lang=en/c.jsonl"):
    ...     (d / name).parent.mkdir(exist_ok=True)
    ...     _ = (d / name).write_text("{}")
    >>> [(s.relative, s.partition_values) for s in discover([str(d)])]
    [('a.jsonl', ()), ('b.jsonl', ()), ('lang=en/c.jsonl', (('lang', 'en'),))]
    >>> [s.relative for s in discover([str(d / "*.jsonl")])]
    ['a.jsonl', 'b.jsonl']
    """
    import fsspec

    options = dict(storage_options or {})
    found: list[tuple[Any, str, str, str]] = []  # fs, protocol, path, relative
    for pattern in inputs:
        try:
            fs, root = fsspec.core.url_to_fs(str(pattern), **options)
        except (ImportError, ValueError) as exc:
            raise InputError(f"input {pattern!r}: {exc}") from None
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        try:
            if any(c in root for c in "*?["):
                base = root[: min(root.find(c) for c in "*?[" if c in root)].rsplit("/", 1)[0]
                paths = sorted(p for p in fs.glob(root) if fs.isfile(p))
                matches = [(p, posixpath.relpath(p, base) if base else p) for p in paths]
            elif fs.isdir(root):
                paths = sorted(fs.find(root))
                matches = [(p, posixpath.relpath(p, root)) for p in paths]
            elif fs.exists(root):
                matches = [(root, posixpath.basename(root))]
            else:
                raise InputError(f"input {pattern!r} does not exist")
        except OSError as exc:
            raise InputError(f"input {pattern!r}: cannot list it: {exc}") from None
        matches = [(p, rel) for p, rel in matches if not _ignored(rel)]
        if not matches:
            raise InputError(f"input {pattern!r} matches no file")
        found += [(fs, protocol, p, rel) for p, rel in matches]
    seen: set[tuple[str, str]] = set()
    unique = []
    for entry in found:
        key = (entry[1], entry[2])
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    formats = [detect_format(path, input_format) for _, _, path, _ in unique]

    def describe(entry: tuple[Any, str, str, str]) -> dict[str, Any]:
        fs, _, path, _ = entry
        try:
            return fs.info(path)
        except OSError as exc:
            raise InputError(f"{_url(fs, path, entry[1])}: cannot read: {exc}") from None

    with ThreadPoolExecutor(max_workers=16) as pool:  # remote filesystems: one request each
        infos = list(pool.map(describe, unique))
    encoded = json.dumps(options, sort_keys=True, default=str)
    return [
        Source(url=_url(fs, path, protocol), protocol=protocol, path=path, fmt=fmt,
               compression=compression_of(path), size=int(info.get("size") or 0),
               fingerprint=_fingerprint(info), relative=rel,
               partition_values=_partition_values(rel), options=encoded)
        for (fs, protocol, path, rel), fmt, info in zip(unique, formats, infos, strict=True)
    ]
