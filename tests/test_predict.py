"""Batched inference internals: batching, padding, out-of-memory recovery, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dask_classify.model import load_model, load_tokenizer
from dask_classify.predict import run_model
from dask_classify.tokenize import batch_order, pad_batch, tokenize


class OOMAbove(torch.nn.Module):
    """A real model that raises the real CUDA out-of-memory error for batches above a size."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit, self.sizes = model, limit, []

    def forward(self, ids, mask):
        self.sizes.append(len(ids))
        if len(ids) > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (batch of {len(ids)} rows)")
        return self.model(ids, mask)


def test_out_of_memory_halves_the_batch_and_loses_nothing(deberta_ckpt, ag_news_texts):
    model, _ = load_model(deberta_ckpt)
    tok = load_tokenizer(deberta_ckpt)
    ids = tokenize(tok, ag_news_texts[:200], 128)
    expected = run_model(model, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=8)
    flaky = OOMAbove(model, limit=12)
    got = run_model(flaky, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=64)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert max(s for s in flaky.sizes if s <= 12) <= 12 and 64 in flaky.sizes
    assert sum(s for s in flaky.sizes if s <= 12) == 200  # every row exactly once


def test_out_of_memory_on_a_single_row_is_raised(deberta_ckpt):
    model, _ = load_model(deberta_ckpt)
    tok = load_tokenizer(deberta_ckpt)
    with pytest.raises(torch.OutOfMemoryError):
        run_model(OOMAbove(model, limit=0), tokenize(tok, ["a", "b"], 16), pad_id=0,
                  device="cpu", batch_size=2)


def test_batches_are_longest_first_and_padding_is_clipped():
    lengths = np.array([3, 9, 1, 9, 4])
    assert batch_order(lengths, True).tolist() == [1, 3, 4, 0, 2]  # stable for ties
    assert batch_order(lengths, False).tolist() == [0, 1, 2, 3, 4]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, padding_side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, padding_side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
