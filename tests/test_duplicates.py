"""Exact duplicate texts are tokenized and run once per chunk; every row still gets its outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dask_classify.pipeline as pipeline
from dask_classify import DistributedDataClassifier, classify_many
from dask_classify.errors import UsageError
from dask_classify.pipeline import fold_duplicates, profile


def _with_duplicates(texts: list[str], rows: int, share: float, seed: int = 0) -> list[str]:
    """``rows`` texts of which about ``share`` repeat an earlier row, shuffled."""
    rng = np.random.default_rng(seed)
    distinct = list(texts[: rows - int(rows * share)])
    repeats = [distinct[i] for i in rng.integers(0, len(distinct), rows - len(distinct))]
    out = distinct + repeats
    rng.shuffle(out)
    return out


def test_fold_duplicates_maps_every_row_back():
    texts = ["b", "a", "b", "", "a", "b", "c", ""]
    distinct, inverse = fold_duplicates(texts)
    assert distinct == ["b", "a", "", "c"]  # first occurrences, in order
    assert [distinct[i] for i in inverse] == texts
    assert fold_duplicates(["x", "y"]) == (["x", "y"], None)
    assert fold_duplicates([]) == ([], None)


def test_folded_rows_equal_unfolded_rows_order_and_index_kept(deberta_ckpt, ag_news_texts):
    texts = _with_duplicates(ag_news_texts, 400, 0.5)
    texts[7] = None  # a null row among duplicates
    texts[8] = texts[9] = ""  # empty text repeated
    # an index with repeats and out of order: outputs must follow positions, not labels
    index = np.r_[np.arange(200)[::-1], np.arange(200)]
    df = pd.DataFrame({"text": texts, "other": np.arange(400)}, index=index)
    folded = DistributedDataClassifier(deberta_ckpt, score_field="p", max_seq_length=128)
    plain = DistributedDataClassifier(deberta_ckpt, score_field="p", max_seq_length=128,
                                      fold_duplicates=False)
    with profile() as prof:
        a = folded.classify_partition(df)
    b = plain.classify_partition(df)
    distinct = len({t for t in texts if t is not None})
    assert prof.tokenized == [distinct] and prof.folded == 399 - distinct
    assert sum(rows for rows, _ in prof.batches) == distinct
    assert a.index.tolist() == index.tolist() and a["other"].tolist() == list(range(400))
    assert a["preds"].tolist() == b["preds"].tolist()
    assert a["preds"].isna().tolist() == [t is None for t in texts]
    pa = np.array(a["p"].dropna().tolist())
    np.testing.assert_allclose(pa, np.array(b["p"].dropna().tolist()), atol=1e-5, rtol=0)
    # every copy of a text holds exactly the same probabilities
    by_text: dict[str, list[float]] = {}
    for text, probs in zip(texts, a["p"], strict=True):
        if text is not None:
            assert by_text.setdefault(text, probs) == probs


def test_duplicates_fold_per_chunk_and_per_text_column(deberta_ckpt, bert_ckpt, ag_news_texts,
                                                      monkeypatch):
    texts = _with_duplicates(ag_news_texts, 300, 0.2, seed=3)
    df = pd.DataFrame({"text": texts, "title": [t[:12] for t in texts]})
    a = DistributedDataClassifier(deberta_ckpt, label_field="a", score_field="pa")
    b = DistributedDataClassifier(deberta_ckpt, label_field="b", text_field="title")
    c = DistributedDataClassifier(bert_ckpt, label_field="c", max_chars=12)
    whole = classify_many(df, [a, b, c])
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 64)
    with profile() as prof:
        chunked = classify_many(df, [a, b, c])
    chunks = [texts[i : i + 64] for i in range(0, 300, 64)]
    # per chunk: a's full texts; the 12-character titles, shared by b (text column "title")
    # and c (max_chars=12 of "text"): same strings, but folded and tokenized per column key
    expected, folded = [], 0
    for chunk in chunks:
        counts = [len(set(chunk)), len({t[:12] for t in chunk}), len({t[:12] for t in chunk})]
        expected += counts
        folded += sum(len(chunk) - n for n in counts)
    assert prof.tokenized == expected and prof.folded == folded > 0
    for col in ("a", "b", "c"):
        assert chunked[col].tolist() == whole[col].tolist()
    np.testing.assert_allclose(np.array(chunked["pa"].tolist()), np.array(whole["pa"].tolist()),
                               atol=1e-5, rtol=0)


def test_fold_duplicates_must_be_a_bool(deberta_ckpt):
    with pytest.raises(UsageError, match="fold_duplicates must be True or False, not 'yes'"):
        DistributedDataClassifier(deberta_ckpt, fold_duplicates="yes")
