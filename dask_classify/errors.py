"""The errors that mean "what you gave cannot be used", as opposed to a bug in this package.

Every error about the caller's input derives from :class:`UserError` (and from the built-in
exception a Python caller would expect: ``ValueError``, ``TypeError`` or ``ImportError``). The
command line prints a :class:`UserError` as one line and exits with status 2; anything else is
our bug and is shown with its traceback (exit status 1). ``--debug`` shows tracebacks for both.

All of them pickle with their message, so an error raised inside a Dask worker reaches the
client as the same type.

Examples
--------
>>> from dask_classify.errors import TextColumnError, UsageError, UserError
>>> issubclass(UsageError, ValueError), issubclass(TextColumnError, TypeError)
(True, True)
>>> isinstance(UsageError("max_chars must be a positive integer"), UserError)
True
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CheckpointError",
    "InputError",
    "MissingExtraError",
    "TextColumnError",
    "UsageError",
    "UserError",
]


class UserError(Exception):
    """Base class of the errors about the caller's input (printed as one line by the CLI)."""


class UsageError(UserError, ValueError):
    """A parameter, option or column name that cannot be used as given; names what is wrong."""


class InputError(UserError, ValueError):
    """An input path or file that cannot be read: names the file (and line) and the problem.

    Examples
    --------
    >>> from dask_classify.errors import InputError
    >>> str(InputError("docs.jsonl:3: not valid JSON"))
    'docs.jsonl:3: not valid JSON'
    """


class CheckpointError(UserError, ValueError):
    """A model folder or hub id that cannot be loaded: missing files, bad keys, unsafe pickle.

    The message names the folder and what is wrong with it.
    """


class TextColumnError(UserError, TypeError):
    """A text column holding a value that is neither a string nor null (names column and row)."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it.

    Examples
    --------
    >>> from dask_classify.errors import MissingExtraError
    >>> err = MissingExtraError.for_module("torchmetrics", "train", "dask-classify train")
    >>> print(err)  # doctest: +NORMALIZE_WHITESPACE
    dask-classify train needs the [train] extra (No module named 'torchmetrics'):
    pip install 'dask_classify[train]'
    """

    @classmethod
    def for_module(cls, module: str, extra: str, what: str) -> MissingExtraError:
        """The error for ``what`` when importing ``module`` (part of ``[extra]``) failed."""
        return cls(f"{what} needs the [{extra}] extra (No module named {module!r}): "
                   f"pip install 'dask_classify[{extra}]'")


class ConfigError(UserError, ValueError):
    """A training config with an unknown key, a missing required value or an invalid value.

    A subclass of :class:`ValueError`; the message names each offending key.

    Examples
    --------
    >>> from dask_classify.errors import ConfigError
    >>> from dask_classify.train.config import load_config
    >>> try:
    ...     load_config(overrides=["model.optim.lr=-1"])
    ... except ConfigError as err:
    ...     print(err)
    invalid training config:
      model.optim.lr: must be a number > 0 or null (chosen for you), not -1
    """
