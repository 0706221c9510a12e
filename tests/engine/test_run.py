"""Batched inference internals: batching, padding, out-of-memory recovery, threads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_classify.engine.cache import clear_cache, get_model
from dask_classify.engine.loading import load_model, load_tokenizer
from dask_classify.engine.run import run_model
from dask_classify.engine.spec import ModelSpec
from dask_classify.tokenize import batch_order, pad_batch, plan_batches, tokenize


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


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.integers(1, 600), max_size=60), batch_size=st.integers(1, 70),
       max_tokens=st.one_of(st.none(), st.integers(1, 3000)), sort=st.booleans())
def test_batch_plan_keeps_every_row_once_within_both_limits(lengths, batch_size, max_tokens,
                                                            sort):
    batches = plan_batches(lengths, batch_size, max_tokens, sort)
    flat = np.concatenate(batches).tolist() if batches else []
    assert flat == batch_order(np.array(lengths, dtype=np.int64), sort).tolist()
    for rows in batches:
        assert 1 <= len(rows) <= batch_size
        if max_tokens is not None and len(rows) > 1:
            assert len(rows) * max(lengths[i] for i in rows) <= max_tokens
    if max_tokens is None:  # rows only: every batch but the last is full
        assert all(len(rows) == batch_size for rows in batches[:-1])


def test_batch_plan_fills_batches_up_to_the_token_limit():
    # longest first: 2 rows of 50 fill 100 tokens; the rest (<= 20 wide) fit 4 rows
    assert [b.tolist() for b in plan_batches([5, 50, 7, 3, 50, 20], 8, 100)] == [
        [1, 4], [5, 2, 0, 3]]
    assert [len(b) for b in plan_batches([10] * 100, 16, 2048)] == [16] * 6 + [4]  # rows cap
    assert [len(b) for b in plan_batches([512] * 5, 256, 2048)] == [4, 1]
    assert [len(b) for b in plan_batches([5000, 3], 256, 2048)] == [1, 1]  # too long: alone
    # bad sizes are refused once, where the user gives them (test_classifier)


def test_token_limit_does_not_change_outputs(deberta_ckpt, ag_news_texts, imdb_texts):
    model, _ = load_model(deberta_ckpt)
    tok = load_tokenizer(deberta_ckpt)
    ids = tokenize(tok, ag_news_texts[:150] + imdb_texts[:50], 256)
    rows_only = run_model(model, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=64)
    limited = run_model(model, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=64,
                        max_tokens=700)
    unsorted = run_model(model, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=64,
                         max_tokens=700, sort_by_length=False)
    np.testing.assert_allclose(limited, rows_only, atol=1e-5, rtol=0)
    np.testing.assert_allclose(unsorted, rows_only, atol=1e-5, rtol=0)


def test_int8_quantization_is_quiet_close_and_cpu_only(data_dir):
    # the bundled, trained model (int8 on random tiny heads flips labels that barely differ)
    from dask_classify.bundled import default_model_dir
    from dask_classify.train.data import read_tsv

    model_dir = str(default_model_dir())
    texts = read_tsv(data_dir / "sst2" / "dev.tsv")["sentence"].tolist()
    tok = load_tokenizer(model_dir)
    ids = tokenize(tok, texts, 128)
    fp32, _, _ = get_model(ModelSpec(model_dir, device="cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's deprecation notices stay inside get_model
        int8, _, device = get_model(ModelSpec(model_dir, device="cpu", quantize="int8"))
    try:
        assert device == "cpu" and int8 is not fp32
        linear = [type(m).__module__ for m in int8.modules() if type(m).__name__ == "Linear"]
        assert linear and all("quantized" in mod for mod in linear)
        want = run_model(fp32, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=32)
        got = run_model(int8, ids, pad_id=tok.pad_token_id, device="cpu", batch_size=32)
        assert not np.allclose(got, want, atol=1e-6)  # really int8 arithmetic
        assert np.abs(got - want).mean() < 0.01
        assert (got.argmax(1) == want.argmax(1)).mean() >= 0.98
        with pytest.raises(ValueError, match="CPU only"):
            get_model(ModelSpec(model_dir, device="cuda", quantize="int8"))
    finally:
        clear_cache()
