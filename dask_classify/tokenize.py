"""Tokenizing one partition and cutting it into length-sorted, padding-clipped batches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

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

    Raises
    ------
    TypeError
        When a value is neither a string nor null; names the column, the type and the index.
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
            raise TypeError(
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
    else (when that is unset or absurdly large) the model's ``max_position_embeddings``."""
    if max_seq_length is not None:
        if int(max_seq_length) < 2:
            raise ValueError(f"max_seq_length must be >= 2, not {max_seq_length}")
        return int(max_seq_length)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > _ABSURD_MAX_LENGTH:
        limit = max_position_embeddings or 512
    return int(limit)


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (special tokens added, truncated to ``max_length``, not padded).

    Texts longer than ``SAFETY_CHARS_PER_TOKEN * max_length`` characters are cut to that length
    first (see :data:`SAFETY_CHARS_PER_TOKEN`).
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
    """Row positions in processing order: longest first (stable), or as given."""
    if not sort_by_length:
        return np.arange(len(lengths))
    return np.argsort(-lengths, kind="stable")


def pad_batch(
    token_ids: Sequence[Sequence[int]], pad_id: int, padding_side: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad rows to the batch's longest row (not to the global limit): ids and attention mask."""
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
    return torch.from_numpy(ids), torch.from_numpy(mask)
