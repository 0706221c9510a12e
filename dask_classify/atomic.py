"""Writing files and folders so that a reader never sees half of them.

Both helpers write beside the target under a hidden temporary name and rename into place only
when the block finished; an error (or a kill) leaves the previous target, or none, and the
temporaries are removed (or, after a kill, recognisable by their ``.tmp`` names).
``os.replace`` is atomic within one file system on POSIX and Windows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_files", "atomic_folder", "file_mode"]

_UMASK: int | None = None


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` gives a new file.

    ``tempfile.mkstemp`` makes files ``0600``; files it made are given this mode before they
    are renamed into place.

    Examples
    --------
    >>> from dask_classify.atomic import file_mode
    >>> file_mode() & 0o600 == 0o600
    True
    """
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)  # the only portable way to read the umask is to set it
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


@contextmanager
def atomic_folder(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a new hidden folder beside ``final``; on success it becomes ``final`` in one rename.

    The temporary folder is named ``.<name>.tmp-<8 hex digits>``. On error it is removed and
    ``final`` is left as it was.

    Parameters
    ----------
    final : path-like
        The folder to write (its parent is created if missing).
    overwrite : bool, default False
        Replace an existing ``final`` (moved aside, then removed); without it an existing
        ``final`` raises ``FileExistsError`` and the new folder is discarded.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.atomic import atomic_folder
    >>> final = Path(tempfile.mkdtemp()) / "result"
    >>> with atomic_folder(final) as tmp:
    ...     _ = (tmp / "part.00000.jsonl").write_text("{}\\n")
    ...     print(tmp.name.startswith(".result.tmp-"), final.exists())
    True False
    >>> sorted(p.name for p in final.iterdir())
    ['part.00000.jsonl']
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # mode 0777 less the umask, like any new folder
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


@contextmanager
def atomic_files(folder: str | os.PathLike, names: Sequence[str]) -> Iterator[dict[str, IO[str]]]:
    """Open temporary text files in ``folder`` for ``names``; on success they replace ``names``.

    The temporaries are hidden (``.<name>.XXXX.tmp``), flushed to disk and given the mode a new
    file would get (:func:`file_mode`) before the renames.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.atomic import atomic_files
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_files(folder, ["a.txt", "b.txt"]) as files:
    ...     _ = files["a.txt"].write("one\\n")
    ...     _ = files["b.txt"].write("two\\n")
    >>> sorted(p.name for p in folder.iterdir()), (folder / "b.txt").read_text()
    (['a.txt', 'b.txt'], 'two\\n')
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    temps: dict[str, str] = {}
    handles: dict[str, IO[str]] = {}
    try:
        for name in names:
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            temps[name] = temp
            handles[name] = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        yield handles
        mode = file_mode()
        for name, handle in handles.items():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.chmod(temps[name], mode)
        for name, temp in temps.items():
            os.replace(temp, folder / name)
    finally:
        for handle in handles.values():
            if not handle.closed:
                handle.close()
        for temp in temps.values():
            if os.path.exists(temp):
                os.unlink(temp)
