"""DistributedDataClassifier end to end on pandas-backed Dask DataFrames."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch

from dask_classify import CheckpointError, DistributedDataClassifier
from dask_classify.engine.cache import cached_model_keys, clear_cache
from dask_classify.engine.fast_attention import speed_up_deberta
from dask_classify.engine.loading import load_model, load_tokenizer


def reference(ckpt, texts, max_length=None, max_chars=None):
    """The same model run one row at a time: no batching, no sorting, no padding.

    With the same attention forward the classifier runs (``speed_up_deberta``), so the comparison
    isolates batching; that forward is compared with transformers' own in test_fast_attention.
    """
    model, _ = load_model(ckpt)
    speed_up_deberta(model)
    tok = load_tokenizer(ckpt)
    max_length = max_length or tok.model_max_length
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one short row at a time: threads only add overhead
    try:
        with torch.inference_mode():
            for text in texts:
                text = text if max_chars is None else text[:max_chars]
                enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt",
                          return_token_type_ids=False)
                rows.append(model(enc["input_ids"], enc["attention_mask"])[0].numpy())
    finally:
        torch.set_num_threads(threads)
    return np.stack(rows)


def labels_of(ckpt, probs):
    from dask_classify.checkpoint import model_info

    names = np.array(model_info(ckpt).labels, dtype=object)
    return names[probs.argmax(axis=1)].tolist()


@pytest.fixture(scope="module")
def mixed_texts(ag_news_texts, imdb_texts):
    """Thousands of real texts of mixed lengths (short news, long reviews), interleaved."""
    rng = np.random.default_rng(0)
    texts = ag_news_texts[:1500] + imdb_texts  # 60 reviews of 500-4,000 characters
    return [texts[i] for i in rng.permutation(len(texts))]


@pytest.fixture(scope="module")
def mixed_reference(deberta_ckpt, mixed_texts):
    return reference(deberta_ckpt, mixed_texts, 256)


@pytest.mark.parametrize(("padding_side", "max_batch_tokens"),
                         [("right", "auto"), ("left", None), ("right", 500)])
@pytest.mark.slow
def test_batched_equals_unbatched_on_real_text(deberta_ckpt, mixed_texts, mixed_reference,
                                               padding_side, max_batch_tokens):
    max_len = 256
    ref = mixed_reference
    ddf = dd.from_pandas(pd.DataFrame({"text": mixed_texts}), npartitions=4)
    clf = DistributedDataClassifier(deberta_ckpt, score_field="probs", max_seq_length=max_len,
                                    model_inference_batch_size=64, padding_side=padding_side,
                                    max_batch_tokens=max_batch_tokens)
    out = clf(ddf).compute()
    probs = np.array(out["probs"].tolist())
    np.testing.assert_allclose(probs, ref, atol=1e-5, rtol=0)
    assert out["preds"].tolist() == labels_of(deberta_ckpt, ref)
    assert out["preds"].nunique() == 3  # the tiny model gives varied answers, not one label


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_bert_backbone_batched_equals_unbatched(bert_ckpt, ag_news_texts, padding_side):
    """Absolute position embeddings: left padding must not shift positions."""
    texts = ag_news_texts[1900:2500]
    ref = reference(bert_ckpt, texts)
    clf = DistributedDataClassifier(bert_ckpt, score_field="p", padding_side=padding_side,
                                    model_inference_batch_size=32)
    out = clf(dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)).compute()
    np.testing.assert_allclose(np.array(out["p"].tolist()), ref, atol=1e-5, rtol=0)
    assert out["preds"].tolist() == labels_of(bert_ckpt, ref)


def test_hf_checkpoint_batched_equals_unbatched(hf_ckpt, ag_news_texts):
    texts = ag_news_texts[:800]
    ref = reference(hf_ckpt, texts)
    clf = DistributedDataClassifier(hf_ckpt, label_field="topic", score_field="p",
                                    model_inference_batch_size=50)
    out = clf(dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=2)).compute()
    np.testing.assert_allclose(np.array(out["p"].tolist()), ref, atol=1e-5, rtol=0)
    assert out["topic"].tolist() == labels_of(hf_ckpt, ref)


@pytest.mark.parametrize("bad", [0, -5, "many", "none"])
def test_bad_token_limit_is_refused(deberta_ckpt, bad):
    with pytest.raises(ValueError, match="max_batch_tokens must be a positive integer"):
        DistributedDataClassifier(deberta_ckpt, max_batch_tokens=bad)


def test_token_limit_defaults_to_the_cpu_measurement(deberta_ckpt):
    from dask_classify.classifier import CPU_BATCH_TOKENS

    clf = DistributedDataClassifier(deberta_ckpt)
    assert clf.max_batch_tokens == "auto" and CPU_BATCH_TOKENS == 2048
    assert clf.batch_token_limit("cpu") == 2048 and clf.batch_token_limit("cuda") is None
    assert DistributedDataClassifier(deberta_ckpt, max_batch_tokens=300).batch_token_limit(
        "cuda") == 300


def test_hf_checkpoint_refuses_left_padding(hf_ckpt):
    clf = DistributedDataClassifier(hf_ckpt, padding_side="left")
    ddf = dd.from_pandas(pd.DataFrame({"text": ["a", "b"]}), npartitions=1)
    with pytest.raises(ValueError, match="padding_side='left' is not supported"):
        clf(ddf).compute()


def test_order_index_and_other_columns_preserved(deberta_ckpt, ag_news_texts):
    n = 1000
    rng = np.random.default_rng(1)
    index = rng.integers(-50, 50, size=n)  # shuffled, duplicated, negative, not zero-based
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "text": ag_news_texts[:n],
            "score": rng.random(n).astype("float32"),
            "cat": pd.Categorical(rng.choice(["x", "y"], n)),
        },
        index=pd.Index(index, name="doc"),
    )
    ddf = dd.from_pandas(df, npartitions=7, sort=False)
    out = DistributedDataClassifier(deberta_ckpt, label_field="q")(ddf).compute()
    assert out.index.equals(df.index) and out.index.name == "doc"
    # Same rows, order, values and dtypes as the input collection (dask itself may turn object
    # text into pyarrow strings when the collection is built; that is not ours to change).
    pd.testing.assert_frame_equal(out[df.columns.tolist()], ddf.compute(), check_dtype=True)
    assert out["id"].tolist() == list(range(n))
    assert out["q"].tolist() == labels_of(deberta_ckpt, reference(deberta_ckpt, df["text"]))


def test_meta_matches_computed_result(deberta_ckpt):
    df = pd.DataFrame({"text": ["one", "two", None], "n": [1, 2, 3]})
    res = DistributedDataClassifier(deberta_ckpt, score_field="s")(dd.from_pandas(df, 2))
    computed = res.compute()
    assert list(res.columns) == ["text", "n", "preds", "s"]
    assert dict(res.dtypes) == dict(computed.dtypes)


def test_empty_partitions_and_empty_frame(deberta_ckpt):
    parts = [pd.DataFrame({"text": pd.Series(t, dtype=object)}) for t in
             (["a good film"], [], ["awful", "fine"], [])]
    ddf = dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[1])
    out = DistributedDataClassifier(deberta_ckpt, score_field="p")(ddf).compute()
    assert out["text"].tolist() == ["a good film", "awful", "fine"]
    assert out["preds"].notna().all()
    empty = DistributedDataClassifier(deberta_ckpt, score_field="p")(
        dd.from_pandas(pd.DataFrame({"text": pd.Series([], dtype=str)}), npartitions=1)
    ).compute()
    assert len(empty) == 0 and list(empty.columns) == ["text", "preds", "p"]


def test_null_and_empty_text(deberta_ckpt):
    df = pd.DataFrame({"text": ["", None, np.nan, "ok then"]}, dtype=object)
    out = DistributedDataClassifier(deberta_ckpt, score_field="p")(
        dd.from_pandas(df, npartitions=1)).compute()
    assert out["preds"].isna().tolist() == [False, True, True, False]
    assert out["p"].isna().tolist() == [False, True, True, False]
    assert out["preds"].iloc[0] == labels_of(deberta_ckpt, reference(deberta_ckpt, [""]))[0]


def test_filter_by_keeps_exactly_the_listed_labels(deberta_ckpt, ag_news_texts):
    texts = ag_news_texts[:600]
    df = pd.DataFrame({"text": texts, "i": np.arange(600)})
    ddf = dd.from_pandas(df, npartitions=3)
    full = DistributedDataClassifier(deberta_ckpt)(ddf).compute()
    kept = DistributedDataClassifier(deberta_ckpt, filter_by=["High", "Low"])(ddf).compute()
    expected = full[full["preds"].isin(["High", "Low"])]
    assert 0 < len(kept) < len(full)
    pd.testing.assert_frame_equal(kept, expected)


def test_unknown_filter_label_is_an_error(deberta_ckpt):
    ddf = dd.from_pandas(pd.DataFrame({"text": ["x"]}), npartitions=1)
    with pytest.raises(ValueError, match=r"\['Great'\] are not labels.*'High', 'Medium', 'Low'"):
        DistributedDataClassifier(deberta_ckpt, filter_by=["High", "Great"])(ddf)


def test_score_field_on_and_off(deberta_ckpt):
    ddf = dd.from_pandas(pd.DataFrame({"text": ["a", "bb"]}), npartitions=1)
    off = DistributedDataClassifier(deberta_ckpt)(ddf).compute()
    on = DistributedDataClassifier(deberta_ckpt, score_field="prob")(ddf).compute()
    assert list(off.columns) == ["text", "preds"]
    assert list(on.columns) == ["text", "preds", "prob"]
    assert all(len(p) == 3 and abs(sum(p) - 1) < 1e-5 for p in on["prob"])
    assert on["preds"].tolist() == off["preds"].tolist()


def test_max_chars_cuts_text_before_tokenizing(deberta_ckpt, imdb_texts):
    texts = imdb_texts[:200]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=2)
    out = DistributedDataClassifier(deberta_ckpt, score_field="p", max_chars=40)(ddf).compute()
    ref = reference(deberta_ckpt, texts, max_chars=40)
    np.testing.assert_allclose(np.array(out["p"].tolist()), ref, atol=1e-5, rtol=0)
    uncut = reference(deberta_ckpt, texts)
    assert not np.allclose(ref, uncut, atol=1e-3)  # cutting changed the inputs


def test_max_seq_length_defaults_to_tokenizer_limit(deberta_ckpt, imdb_texts):
    from dask_classify.tokenize import resolve_max_length

    tok = load_tokenizer(deberta_ckpt)
    assert resolve_max_length(tok, 512, None) == 512 == tok.model_max_length
    tok.model_max_length = int(1e30)
    assert resolve_max_length(tok, 128, None) == 128
    assert resolve_max_length(tok, 128, 64) == 64
    long_texts = [t for t in imdb_texts if len(tok(t)["input_ids"]) > 100][:30]
    ddf = dd.from_pandas(pd.DataFrame({"text": long_texts}), npartitions=1)
    out = DistributedDataClassifier(deberta_ckpt, score_field="p", max_seq_length=32)(ddf)
    np.testing.assert_allclose(np.array(out.compute()["p"].tolist()),
                               reference(deberta_ckpt, long_texts, max_length=32), atol=1e-5)


def test_autocast_never_changes_cpu_results(deberta_ckpt, ag_news_texts, monkeypatch):
    """The CPU runs fp32 on every CPU, AMX ones included, unless DASK_CLASSIFY_CPU_BF16=1."""
    import contextlib

    import torch

    from dask_classify import backend

    monkeypatch.delenv("DASK_CLASSIFY_CPU_BF16", raising=False)
    ddf = dd.from_pandas(pd.DataFrame({"text": ag_news_texts[:300]}), npartitions=1)
    a = DistributedDataClassifier(deberta_ckpt, score_field="p", autocast=True)(ddf).compute()
    b = DistributedDataClassifier(deberta_ckpt, score_field="p", autocast=False)(ddf).compute()
    assert a["p"].tolist() == b["p"].tolist()
    # the opt-in: bf16 only with AMX and the variable set to 1
    for amx, value, bf16 in ((True, None, False), (True, "1", True), (False, "1", False),
                             (True, "0", False)):
        monkeypatch.setattr(backend, "cpu_has_native_bf16", lambda amx=amx: amx)
        if value is None:
            monkeypatch.delenv("DASK_CLASSIFY_CPU_BF16", raising=False)
        else:
            monkeypatch.setenv("DASK_CLASSIFY_CPU_BF16", value)
        ctx = backend.autocast("cpu")
        assert (not isinstance(ctx, contextlib.nullcontext)) == bf16, (amx, value)
        if bf16:
            with ctx:
                assert torch.get_autocast_dtype("cpu") == torch.bfloat16
                assert torch.is_autocast_enabled("cpu")


def test_two_classifiers_in_one_graph_use_their_own_models(deberta_ckpt, bert_ckpt,
                                                           ag_news_texts):
    clear_cache()
    texts = ag_news_texts[:300]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    first = DistributedDataClassifier(deberta_ckpt, label_field="a")
    second = DistributedDataClassifier(bert_ckpt, label_field="b")
    out = second(first(ddf)).compute()
    assert out["a"].tolist() == labels_of(deberta_ckpt, reference(deberta_ckpt, texts))
    assert out["b"].tolist() == labels_of(bert_ckpt, reference(bert_ckpt, texts))
    assert cached_model_keys() == sorted([first.model_spec.key, second.model_spec.key])


def test_graph_is_deterministic_and_parameters_change_it(deberta_ckpt):
    ddf = dd.from_pandas(pd.DataFrame({"text": ["a"]}), npartitions=1)
    a = DistributedDataClassifier(deberta_ckpt)(ddf)
    b = DistributedDataClassifier(deberta_ckpt)(ddf)
    c = DistributedDataClassifier(deberta_ckpt, max_chars=5)(ddf)
    assert a._name == b._name != c._name


def test_input_errors_are_raised_when_the_graph_is_built(deberta_ckpt):
    ddf = dd.from_pandas(pd.DataFrame({"body": ["x"], "preds": ["y"]}), npartitions=1)
    with pytest.raises(ValueError, match=r"text column 'text' is not in .*\['body', 'preds'\]"):
        DistributedDataClassifier(deberta_ckpt)(ddf)
    with pytest.raises(ValueError, match=r"\['preds'\] already exist"):
        DistributedDataClassifier(deberta_ckpt, text_field="body")(ddf)
    numbers = dd.from_pandas(pd.DataFrame({"text": [1, 2]}), npartitions=1)
    with pytest.raises(TypeError, match="'text' has dtype int64"):
        DistributedDataClassifier(deberta_ckpt)(numbers)
    with pytest.raises(ValueError, match="must differ"):
        DistributedDataClassifier(deberta_ckpt, label_field="x", score_field="x")
    with pytest.raises(ValueError, match="padding_side"):
        DistributedDataClassifier(deberta_ckpt, padding_side="middle")


def test_non_string_values_name_column_type_and_index(deberta_ckpt):
    df = pd.DataFrame({"text": ["fine", 42, "ok"]}, index=[10, 11, 12], dtype=object)
    clf = DistributedDataClassifier(deberta_ckpt)
    with pytest.raises(TypeError, match=r"'text' holds a value of type int \(42\) at index 11"):
        clf(df)
    with dask.config.set({"dataframe.convert-string": False}):  # keep the object column as is
        ddf = dd.from_pandas(df, npartitions=1)
    with pytest.raises(TypeError, match=r"'text' holds a value of type int \(42\) at index 11"):
        clf(ddf).compute()


def test_constructor_touches_nothing_and_bad_model_fails_on_call(tmp_path):
    clf = DistributedDataClassifier(tmp_path / "does-not-exist")  # no error: nothing is read
    ddf = dd.from_pandas(pd.DataFrame({"text": ["x"]}), npartitions=1)
    with pytest.raises(CheckpointError, match="does not exist"):
        clf(ddf)


def test_pandas_frame_is_classified_eagerly(deberta_ckpt):
    df = pd.DataFrame({"text": ["a", "b"]}, index=[3, 3])
    out = DistributedDataClassifier(deberta_ckpt)(df)
    assert isinstance(out, pd.DataFrame) and out.index.tolist() == [3, 3]
    assert out["preds"].tolist() == labels_of(deberta_ckpt, reference(deberta_ckpt, ["a", "b"]))


def test_unsorted_batches_give_the_same_results(deberta_ckpt, mixed_texts):
    texts = mixed_texts[:400]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=2)
    a = DistributedDataClassifier(deberta_ckpt, score_field="p", max_seq_length=128)(ddf)
    b = DistributedDataClassifier(deberta_ckpt, score_field="p", max_seq_length=128,
                                  sort_by_length=False)(ddf)
    np.testing.assert_allclose(np.array(a.compute()["p"].tolist()),
                               np.array(b.compute()["p"].tolist()), atol=1e-5)


def test_classify_many_equals_chained_classifiers_and_tokenizes_once(deberta_ckpt, bert_ckpt,
                                                                     ag_news_texts):
    from dask_classify import classify_many
    from dask_classify.pipeline import profile

    texts = ag_news_texts[:300]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    df = ddf.compute()  # the same frame, with the dtypes dask gave it
    a = DistributedDataClassifier(deberta_ckpt, label_field="a", score_field="pa")
    b = DistributedDataClassifier(deberta_ckpt, label_field="b", filter_by=["High", "Low"],
                                  model_inference_batch_size=7)
    c = DistributedDataClassifier(bert_ckpt, label_field="c")
    chained = c(b(a(ddf))).compute()
    with profile() as prof:  # eager, in this process: count tokenizer calls
        together = classify_many(df, [a, b, c])
    # one partition of 300 rows batches them differently from three of 100: probabilities agree
    # to fp32 noise, labels exactly
    pd.testing.assert_frame_equal(together, chained, check_exact=False, rtol=0, atol=1e-5)
    assert together[["a", "b", "c"]].equals(chained[["a", "b", "c"]])
    assert prof.tokenized == [300, 300]  # a and b share the DeBERTa tokenizer; c has its own
    lazy = classify_many(ddf, [a, b, c]).compute()
    pd.testing.assert_frame_equal(lazy, chained)
    with pytest.raises(ValueError, match="both write column 'a'"):
        classify_many(ddf, [a, DistributedDataClassifier(bert_ckpt, label_field="a")])


@pytest.mark.slow
def test_partitions_run_in_chunks_with_the_same_results(deberta_ckpt, bert_ckpt, mixed_texts,
                                                         mixed_reference, monkeypatch):
    import dask_classify.pipeline as pipeline
    from dask_classify import classify_many

    texts = list(mixed_texts[:300])
    texts[10] = None  # a null row inside the first chunk
    df = pd.DataFrame({"text": texts}, index=np.arange(300)[::-1])
    a = DistributedDataClassifier(deberta_ckpt, label_field="a", score_field="pa",
                                  max_seq_length=256)
    b = DistributedDataClassifier(deberta_ckpt, label_field="b", max_seq_length=256,
                                  filter_by=["High", "Low"])
    c = DistributedDataClassifier(bert_ckpt, label_field="c")
    whole = classify_many(df, [a, b, c])
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 64)
    with pipeline.profile() as prof:
        chunked = classify_many(df, [a, b, c])
    # 299 texts: chunks of 64 rows, each tokenized once for a+b and once for c
    assert prof.tokenized == [64, 64] * 4 + [43, 43]
    assert chunked.index.tolist() == whole.index.tolist()
    for col in ("a", "b", "c"):
        assert chunked[col].tolist() == whole[col].tolist()
    assert 0 < len(chunked) < 299 and 289 not in chunked.index  # filtered; null row dropped
    positions = [299 - i for i in chunked.index]  # the index counts down
    np.testing.assert_allclose(np.array(chunked["pa"].tolist()), mixed_reference[positions],
                               atol=1e-5, rtol=0)


def test_ten_megabyte_document_is_cut_before_tokenizing(deberta_ckpt, imdb_texts):
    from dask_classify.tokenize import SAFETY_CHARS_PER_TOKEN

    huge = " ".join(imdb_texts) * 200
    huge = huge[: 10 * 2**20]
    assert len(huge) == 10 * 2**20
    df = pd.DataFrame({"text": [huge, "short one", huge[:5000]]})
    out = DistributedDataClassifier(deberta_ckpt, score_field="p", max_seq_length=128)(df)
    # the safety cut keeps the first 128 tokens exactly as full tokenization would
    cut = reference(deberta_ckpt, [huge[: SAFETY_CHARS_PER_TOKEN * 128]], max_length=128)
    np.testing.assert_allclose(np.array(out["p"].iloc[0]), cut[0], atol=1e-5)
    tok = load_tokenizer(deberta_ckpt)
    sample = huge[:200_000]
    full = tok(sample, truncation=True, max_length=128)["input_ids"]
    assert tok(sample[: SAFETY_CHARS_PER_TOKEN * 128], truncation=True,
               max_length=128)["input_ids"] == full
