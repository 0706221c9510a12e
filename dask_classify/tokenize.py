"""Tokenizing one partition and cutting it into length-sorted, padding-clipped batches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dask_classify.errors import TextColumnError

# Texts longer than this many characters per allowed token are cut before tokenizing. No token of
# natural text spans 64 characters, so the first ``max_length`` tokens are unchanged, while a
# 10 MB document no longer costs seconds and hundreds of MB to tokenize only to be truncated.
SAFETY_CHARS_PER_TOKEN = 64

# Tokenizers often report a sentinel (int(1e30)) when no limit was saved; treat anything above
# this as "unset" and fall back to the model's position limit.
_ABSURD_MAX_LENGTH = 100_000


def prepare_texts(
    values: Sequence[Any], column: str, index: Sequence[Any], max_chars: int | None
) -> tuple[list[str], np.ndarray]:
    """Validate a text column's values and apply ``max_chars``.

    Returns the texts of the non-null rows (cut to ``max_chars`` characters) and a boolean mask
    of those rows. None/NaN/NA rows are not classified (their outputs are null); empty strings
    are classified as empty text.

    Parameters
    ----------
    values : sequence
        The column's values (e.g. ``series.tolist()``).
    column : str
        The column's name, for error messages.
    index : sequence
        The partition's index labels, same length as ``values``, for error messages.
    max_chars : int or None
        Keep the first ``max_chars`` characters of each text; None keeps them whole.

    Returns
    -------
    texts : list of str
        The non-null values, in order, cut to ``max_chars``.
    valid : numpy.ndarray of bool, shape ``(len(values),)``
        True where a row holds a string.

    Raises
    ------
    dask_classify.errors.TextColumnError
        When a value is neither a string nor null; names the column, the type and the index
        (a ``TypeError``).

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.tokenize import prepare_texts
    >>> texts, valid = prepare_texts(["good film", None, float("nan"), pd.NA, ""], "text",
    ...                              range(5), max_chars=4)
    >>> texts, valid.tolist()
    (['good', ''], [True, False, False, False, True])
    >>> prepare_texts(["a", 3], "text", [10, 11], None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dask_classify.errors.TextColumnError: text column 'text' holds a value of type int (3) at ...
    """
    valid = np.zeros(len(values), dtype=bool)
    texts: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            valid[i] = True
            texts.append(value if max_chars is None else value[:max_chars])
        elif value is None or (isinstance(value, float) and math.isnan(value)) or _is_na(value):
            continue
        else:
            where = index[i]
            where = where.item() if hasattr(where, "item") else where
            raise TextColumnError(
                f"text column {column!r} holds a value of type {type(value).__name__} "
                f"({value!r:.60}) at index {where!r}; only strings and nulls can be classified"
            )
    return texts, valid


def _is_na(value: Any) -> bool:
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def resolve_max_length(tokenizer: Any, max_position_embeddings: int | None,
                       max_seq_length: int | None) -> int:
    """The token limit: ``max_seq_length`` if given, else the tokenizer's ``model_max_length``,
    else (when that is unset or absurdly large) the model's ``max_position_embeddings``.

    Parameters
    ----------
    tokenizer : object
        Anything with an optional ``model_max_length`` attribute (a transformers tokenizer).
    max_position_embeddings : int or None
        The model's position limit, the fallback (512 when this is None too).
    max_seq_length : int or None
        An explicit limit in tokens, which wins when given.

    Returns
    -------
    int
        The maximum number of tokens per text, special tokens included.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from dask_classify.tokenize import resolve_max_length
    >>> resolve_max_length(SimpleNamespace(model_max_length=512), 1024, None)
    512
    >>> resolve_max_length(SimpleNamespace(model_max_length=int(1e30)), 1024, None)  # unset
    1024
    >>> resolve_max_length(SimpleNamespace(model_max_length=512), 1024, 128)
    128
    """
    if max_seq_length is not None:  # validated by the classifier that carries it
        return int(max_seq_length)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > _ABSURD_MAX_LENGTH:
        limit = max_position_embeddings or 512
    return int(limit)


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (special tokens added, truncated to ``max_length``, not padded).

    Texts longer than ``SAFETY_CHARS_PER_TOKEN * max_length`` characters are cut to that length
    first (see :data:`SAFETY_CHARS_PER_TOKEN`).

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Called on the whole list at once (fast tokenizers run it in Rust, without the GIL).
    texts : list of str
        The texts to tokenize.
    max_length : int
        Token limit per text, special tokens included.

    Returns
    -------
    list of list of int
        Token ids of each text, in order (``[]`` for no texts).

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tokenizer
    >>> from dask_classify.tokenize import tokenize
    >>> tok = build_tokenizer(tempfile.mkdtemp(), "bert", ["a good film", "a bad film"])
    >>> ids = tokenize(tok, ["a good film", "a bad film indeed"], max_length=4)
    >>> [tok.convert_ids_to_tokens(row) for row in ids]
    [['[CLS]', 'a', 'good', '[SEP]'], ['[CLS]', 'a', 'bad', '[SEP]']]
    """
    if not texts:
        return []
    limit = SAFETY_CHARS_PER_TOKEN * max_length
    if any(len(t) > limit for t in texts):
        texts = [t[:limit] for t in texts]
    enc = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return enc["input_ids"]


def batch_order(lengths: np.ndarray, sort_by_length: bool) -> np.ndarray:
    """Row positions in processing order: longest first (stable), or as given.

    Parameters
    ----------
    lengths : numpy.ndarray of int
        Number of tokens of each row.
    sort_by_length : bool
        True: longest first, ties in input order; False: input order.

    Returns
    -------
    numpy.ndarray of int
        A permutation of ``range(len(lengths))``.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.tokenize import batch_order
    >>> batch_order(np.array([3, 5, 1, 5]), sort_by_length=True).tolist()
    [1, 3, 0, 2]
    >>> batch_order(np.array([3, 5, 1, 5]), sort_by_length=False).tolist()
    [0, 1, 2, 3]
    """
    if not sort_by_length:
        return np.arange(len(lengths))
    return np.argsort(-lengths, kind="stable")


def plan_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    max_tokens: int | None = None,
    sort_by_length: bool = True,
) -> list[np.ndarray]:
    """Split rows into forward-pass batches: at most ``batch_size`` rows, and, with
    ``max_tokens``, at most ``max_tokens`` padded tokens (rows x the batch's longest row).

    Batches take rows in :func:`batch_order` (longest first when sorting), greedily: a batch
    grows while it has fewer than ``batch_size`` rows and its padded size stays within
    ``max_tokens``. A row longer than ``max_tokens`` gets a batch of its own. Every row is in
    exactly one batch.

    Parameters
    ----------
    lengths : sequence of int
        Number of tokens of each row.
    batch_size : int
        Most rows per batch (>= 1).
    max_tokens : int, optional
        Most padded tokens per batch; None: rows only (``batch_size``).
    sort_by_length : bool, default True
        Longest first (stable) or input order.

    Returns
    -------
    list of numpy.ndarray of int
        Row positions of each batch, in processing order.

    Examples
    --------
    >>> from dask_classify.tokenize import plan_batches
    >>> [b.tolist() for b in plan_batches([5, 50, 7, 3, 50, 20], batch_size=4)]
    [[1, 4, 5, 2], [0, 3]]
    >>> [b.tolist() for b in plan_batches([5, 50, 7, 3, 50, 20], 4, max_tokens=100)]
    [[1, 4], [5, 2, 0, 3]]
    >>> [b.tolist() for b in plan_batches([5, 50, 7], 4, max_tokens=60, sort_by_length=False)]
    [[0], [1], [2]]
    """
    lens = np.asarray(lengths, dtype=np.int64)
    order = batch_order(lens, sort_by_length)
    n = len(order)
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    ordered = lens[order].tolist()
    batches, start = [], 0
    while start < n:
        width, end = ordered[start], start + 1
        while end < n and end - start < batch_size:
            wider = max(width, ordered[end])
            if (end - start + 1) * wider > max_tokens:
                break
            width, end = wider, end + 1
        batches.append(order[start:end])
        start = end
    return batches


def pad_arrays(
    token_ids: Sequence[Sequence[int]], pad_id: int, padding_side: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pad rows to the batch's longest row (not to the global limit): ids and attention mask.

    Parameters
    ----------
    token_ids : sequence of sequence of int
        The rows of one batch (at least one row).
    pad_id : int
        Id written into padding positions.
    padding_side : {"right", "left"}
        Where padding goes; anything but ``"left"`` pads on the right.

    Returns
    -------
    input_ids : numpy.ndarray of int64, shape ``(rows, longest row)``
        The padded ids.
    attention_mask : numpy.ndarray of int64, same shape
        1 for real tokens, 0 for padding.

    Examples
    --------
    >>> from dask_classify.tokenize import pad_arrays
    >>> ids, mask = pad_arrays([[2, 5, 3], [2, 3]], pad_id=0, padding_side="left")
    >>> ids.tolist(), mask.tolist()
    ([[2, 5, 3], [0, 2, 3]], [[1, 1, 1], [0, 1, 1]])
    >>> pad_arrays([[2, 5, 3], [2, 3]], pad_id=0, padding_side="right")[0].tolist()
    [[2, 5, 3], [2, 3, 0]]
    """
    width = max(len(ids) for ids in token_ids)
    ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, seq in enumerate(token_ids):
        n = len(seq)
        if padding_side == "left":
            ids[row, width - n :] = seq
            mask[row, width - n :] = 1
        else:
            ids[row, :n] = seq
            mask[row, :n] = 1
    return ids, mask


def pad_batch(token_ids: Sequence[Sequence[int]], pad_id: int, padding_side: str) -> tuple:
    """:func:`pad_arrays` as torch tensors (shared memory): ``(input_ids, attention_mask)``.

    Examples
    --------
    >>> from dask_classify.tokenize import pad_batch
    >>> ids, mask = pad_batch([[2, 5, 3], [2, 3]], pad_id=0, padding_side="right")
    >>> ids.dtype, mask.tolist()
    (torch.int64, [[1, 1, 1], [1, 1, 0]])
    """
    import torch

    ids, mask = pad_arrays(token_ids, pad_id, padding_side)
    return torch.from_numpy(ids), torch.from_numpy(mask)
