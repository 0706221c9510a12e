"""Exact duplicate texts are tokenized and run once per chunk; every row still gets its outputs."""

from __future__ import annotations

import dask
import dask.dataframe as dd
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


def test_fold_duplicates_is_true_false_or_global(deberta_ckpt):
    with pytest.raises(UsageError,
                       match="fold_duplicates must be True, False or 'global', not 'yes'"):
        DistributedDataClassifier(deberta_ckpt, fold_duplicates="yes")
    assert DistributedDataClassifier(deberta_ckpt, fold_duplicates="global").fold_duplicates \
        == "global"
    assert DistributedDataClassifier(deberta_ckpt, fold_duplicates=np.bool_(False)) \
        .fold_duplicates is False


# ------------------------------------------------------------------ fold_duplicates="global"
def _spread(texts: list[str], partitions: int) -> list[str]:
    """Each text once in every partition-sized block: no block repeats a text, so per-chunk
    folding finds nothing and only global folding can."""
    return [t for _ in range(partitions) for t in texts]


def test_global_fold_runs_each_text_of_the_frame_once(deberta_ckpt, ag_news_texts):
    distinct = ag_news_texts[:60]
    texts: list[str | None] = _spread(distinct, 4)  # 240 rows, 4 copies of each text
    rng = np.random.default_rng(5)
    order = rng.permutation(len(texts))
    texts = [texts[i] for i in order]
    texts[3] = None
    texts[11] = texts[12] = ""
    index = np.r_[np.arange(120)[::-1], np.arange(120)]  # repeated and out of order
    df = pd.DataFrame({"text": texts, "other": np.arange(240)}, index=index)
    ddf = dd.from_pandas(df, npartitions=6, sort=False)
    glob = DistributedDataClassifier(deberta_ckpt, score_field="p", fold_duplicates="global")
    plain = DistributedDataClassifier(deberta_ckpt, score_field="p", fold_duplicates=False)
    with dask.config.set(scheduler="sync"), profile() as prof:
        a = glob(ddf).compute()
    b = plain(ddf).compute(scheduler="sync")
    wanted = len({t for t in texts if t is not None})
    assert sum(prof.tokenized) == wanted  # every distinct text once in the whole frame
    assert sum(rows for rows, _ in prof.batches) == wanted
    assert a.index.tolist() == index.tolist() and a["other"].tolist() == list(range(240))
    assert a["preds"].tolist() == b["preds"].tolist()
    assert a["preds"].isna().tolist() == [t is None for t in texts]
    np.testing.assert_allclose(np.array(a["p"].dropna().tolist()),
                               np.array(b["p"].dropna().tolist()), atol=1e-5, rtol=0)
    by_text: dict[str, list[float]] = {}
    for text, probs in zip(texts, a["p"], strict=True):
        if text is not None:
            assert by_text.setdefault(text, probs) == probs
    # a pandas frame: folded as one collection, same outputs
    with profile() as prof:
        c = glob(df)
    assert prof.tokenized == [wanted] and c["preds"].tolist() == a["preds"].tolist()


def test_global_fold_beside_other_classifiers_with_filter_and_max_chars(deberta_ckpt,
                                                                        bert_ckpt,
                                                                        ag_news_texts):
    texts = _spread(ag_news_texts[:40], 3)
    df = pd.DataFrame({"text": texts})
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    keep = "pos"

    def make(fold: bool | str) -> list[DistributedDataClassifier]:
        return [
            DistributedDataClassifier(deberta_ckpt, label_field="a", score_field="pa",
                                      fold_duplicates=fold),
            DistributedDataClassifier(bert_ckpt, label_field="b", max_chars=10,
                                      filter_by=[keep], fold_duplicates=fold),
            # per chunk, as before
            DistributedDataClassifier(deberta_ckpt, label_field="c",
                                      fold_duplicates=fold is not False),
        ]

    classifiers, plain = make("global"), make(False)
    with dask.config.set(scheduler="sync"), profile() as prof:
        got = classify_many(ddf, classifiers).compute()
    want = classify_many(df, plain)
    full, cut = len(set(texts)), len({t[:10] for t in texts})
    # a: each full text once; b: each 10-character cut once; c: 40 per 40-row partition
    assert sum(prof.tokenized) == full + cut + 120
    assert got.index.tolist() == want.index.tolist() and len(got) < len(df)
    for col in ("a", "b", "c"):
        assert got[col].tolist() == want[col].tolist()
    np.testing.assert_allclose(np.array(got["pa"].tolist()), np.array(want["pa"].tolist()),
                               atol=1e-5, rtol=0)


def test_global_fold_of_a_job_across_shards_in_process_and_on_a_cluster(tmp_path, deberta_ckpt,
                                                                       ag_news_texts):
    from distributed import Client, LocalCluster

    from dask_classify import classify_files

    distinct = ag_news_texts[:30]
    src = tmp_path / "in"
    src.mkdir()
    for k in range(5):  # every shard holds every text, plus one of its own, plus a null
        rows = [*distinct[k:], f"shard {k} only", None, *distinct[:k]]
        pd.DataFrame({"text": rows, "shard": k}).to_json(src / f"s{k}.jsonl", orient="records",
                                                          lines=True)
    glob = DistributedDataClassifier(deberta_ckpt, score_field="p", fold_duplicates="global")
    plain = DistributedDataClassifier(deberta_ckpt, score_field="p", fold_duplicates=False)
    with profile() as prof:
        summary = classify_files(str(src), str(tmp_path / "g"), glob)
    assert sum(prof.tokenized) == summary.distinct_texts == len(distinct) + 5
    assert summary.table_bytes == summary.distinct_texts * (16 + 3 * 4)
    classify_files(str(src), str(tmp_path / "plain"), plain)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = classify_files(str(src), str(tmp_path / "c"), glob, client=client)
    assert remote.where == cluster.scheduler_address
    assert remote.distinct_texts == summary.distinct_texts
    for k in range(5):
        want = pd.read_parquet(tmp_path / "plain" / f"s{k}.parquet")
        for run in ("g", "c"):
            got = pd.read_parquet(tmp_path / run / f"s{k}.parquet")
            assert got["text"].tolist() == want["text"].tolist()  # rows and order kept
            assert got["preds"].tolist() == want["preds"].tolist()
            np.testing.assert_allclose(np.stack(got["p"].dropna()), np.stack(want["p"].dropna()),
                                       atol=1e-5, rtol=0)


def test_global_fold_hash_pass_names_the_bad_file(tmp_path, deberta_ckpt):
    from dask_classify import classify_files
    from dask_classify.errors import TextColumnError

    src = tmp_path / "in"
    src.mkdir()
    (src / "good.jsonl").write_text('{"text": "fine"}\n')
    # past the planner's schema sample, so the hash pass is the first to read the int
    (src / "bad.jsonl").write_text('{"text": "fine"}\n' * 1500 + '{"text": 3}\n')
    glob = DistributedDataClassifier(deberta_ckpt, fold_duplicates="global")
    with pytest.raises(TextColumnError, match=r"bad\.jsonl.*text"):
        classify_files(str(src), str(tmp_path / "out"), glob)


def test_output_table_finds_every_hash_and_refuses_a_foreign_one():
    from dask_classify.hashing import OutputTable, hash_texts

    texts = [f"text {i}" for i in range(500)]
    h1, h2 = hash_texts(texts)
    # a table with h1 collisions (the same h1, other h2s): lookup must use both halves
    h1 = h1.copy()
    h1[1::2] = h1[0::2]
    outputs = np.arange(500, dtype=np.float32)[:, None]
    table = OutputTable.build([(h1[:250], h2[:250], outputs[:250]),
                               (h1[200:], h2[200:], outputs[200:])])  # overlap kept once
    assert len(table) == 500 and table.nbytes == 500 * (16 + 4)
    order = np.random.default_rng(0).permutation(500)
    np.testing.assert_array_equal(table.lookup(h1[order], h2[order]), outputs[order])
    f1, f2 = hash_texts(["not in the table"])
    with pytest.raises(KeyError, match="not in the output table"):
        table.lookup(f1, f2)
