"""The errors of the training data readers: every bad line of a file, in one exception."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from dask_classify.errors import UsageError, UserError

__all__ = ["DataFileNotFoundError", "DataFormatError"]


class DataFormatError(UserError, ValueError):
    """A training data file that is missing, unreadable or not in the expected format.

    Parameters
    ----------
    path : str or os.PathLike
        The file the problems are in.
    problems : sequence of (int or None, str)
        ``(line_number, message)`` pairs; line numbers start at 1, ``None`` for a problem of the
        whole file (empty file, unreadable file).
    total : int, optional
        How many problems were found in all (``problems`` may hold only the first ones);
        defaults to ``len(problems)``.

    Attributes
    ----------
    path : str
    problems : list of (int or None, str)
    total : int

    Examples
    --------
    >>> err = DataFormatError("train.tsv", [(3, "missing tab"), (7, "empty label")])
    >>> print(err)
    train.tsv: 2 problems:
    train.tsv:3: missing tab
    train.tsv:7: empty label
    >>> err.problems[0]
    (3, 'missing tab')
    """

    def __init__(self, path: str | os.PathLike, problems: Sequence[tuple[int | None, str]],
                 total: int | None = None) -> None:
        self.path = str(path)
        self.problems = [(line, str(msg)) for line, msg in problems]
        self.total = len(self.problems) if total is None else int(total)
        self.message = self._message()
        super().__init__(self.message)

    def __str__(self) -> str:  # not OSError's "[Errno 2] ..." in the subclass below
        return self.message

    def _message(self) -> str:
        def where(line: int | None) -> str:
            return self.path if line is None else f"{self.path}:{line}"

        if len(self.problems) == 1 and self.total == 1:
            line, msg = self.problems[0]
            return f"{where(line)}: {msg}"
        head = f"{self.path}: {self.total} problem{'s' if self.total != 1 else ''}"
        if self.total > len(self.problems):
            head += f" (the first {len(self.problems)} listed)"
        lines = [head + ":"] + [f"{where(line)}: {msg}" for line, msg in self.problems]
        if self.total > len(self.problems):
            lines.append(f"... and {self.total - len(self.problems)} more")
        return "\n".join(lines)

    def __reduce__(self):  # keep the structured fields through pickling (Dask, multiprocessing)
        return (type(self), (self.path, self.problems, self.total))


class DataFileNotFoundError(DataFormatError, FileNotFoundError):
    """A data file that does not exist: both a :class:`DataFormatError` and a
    :class:`FileNotFoundError`, so either ``except`` clause catches it.

    Parameters
    ----------
    path : str or os.PathLike
        The missing file.
    problems : sequence of (int or None, str), default ``((None, "file not found"),)``
        As for :class:`DataFormatError`.
    total : int, optional
        As for :class:`DataFormatError`.

    Examples
    --------
    >>> from dask_classify.train.data import read_tsv
    >>> try:
    ...     read_tsv("no/such/file.tsv")
    ... except FileNotFoundError as err:
    ...     print(err)
    no/such/file.tsv: file not found
    """

    def __init__(self, path: str | os.PathLike, problems: Sequence[tuple[int | None, str]]
                 = ((None, "file not found"),), total: int | None = None) -> None:
        super().__init__(path, problems, total)
        self.errno = errno.ENOENT
        self.strerror = "file not found"
        self.filename = self.path


class _Problems:
    """Collects ``(line, message)`` problems, keeping the first ``limit`` and counting all."""

    def __init__(self, path: str | os.PathLike, limit: int) -> None:
        if int(limit) < 1:
            raise UsageError(f"max_errors must be >= 1, not {limit!r}")
        self.path = path
        self.limit = int(limit)
        self.kept: list[tuple[int | None, str]] = []
        self.total = 0

    def add(self, line: int | None, message: str) -> None:
        self.total += 1
        if len(self.kept) < self.limit:
            self.kept.append((line, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        if self.total:
            raise DataFormatError(self.path, self.kept, self.total)
