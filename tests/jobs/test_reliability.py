"""Reliability: random inputs keep every invariant; dead workers cost no row."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dask_classify import DistributedDataClassifier, get_client
from dask_classify.engine.loading import load_model, load_tokenizer

TEXTS = st.one_of(
    st.none(),
    st.just(""),
    st.just(float("nan")),
    st.text(max_size=300),  # any unicode: emoji, CJK, RTL, combining marks, control characters
    st.sampled_from(["😀🎉 great", "非常好的电影", "فيلم رائع", "e\u0301e\u0301", "a\x00b\x1fc",
                     "\u202eevil\u202c", "  \t\n ", "x" * 5000]),
)


@pytest.fixture(scope="module")
def reference_model(bert_ckpt):
    model, info = load_model(bert_ckpt)
    return model, load_tokenizer(bert_ckpt), info


def _reference_labels(reference_model, texts):
    import torch

    model, tok, info = reference_model
    out = []
    with torch.inference_mode():
        for text in texts:
            if not isinstance(text, str):
                out.append(None)
                continue
            enc = tok(text, truncation=True, max_length=64, return_tensors="pt",
                      return_token_type_ids=False)
            probs = model(enc["input_ids"], enc["attention_mask"])[0]
            out.append(info.labels[int(probs.argmax())])
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    texts=st.lists(TEXTS, min_size=0, max_size=40),
    npartitions=st.integers(1, 6),
    index_kind=st.sampled_from(["range", "shuffled", "duplicated", "strings"]),
    batch_size=st.integers(1, 9),
    data=st.data(),
)
def test_invariants_hold_for_random_frames(bert_ckpt, reference_model, texts, npartitions,
                                           index_kind, batch_size, data):
    n = len(texts)
    if index_kind == "range":
        index = pd.RangeIndex(n)
    elif index_kind == "shuffled":
        index = pd.Index(data.draw(st.permutations(list(range(100, 100 + n)))), dtype="int64")
    elif index_kind == "duplicated":
        index = pd.Index(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)),
                         dtype="int64")
    else:
        index = pd.Index([f"doc-{i % 5}" for i in range(n)], dtype=object)
    df = pd.DataFrame({"text": pd.Series(texts, dtype=object, index=index),
                       "n": np.arange(n, dtype="int64")}, index=index)
    ddf = dd.from_pandas(df, npartitions=min(npartitions, max(n, 1)), sort=False)
    clf = DistributedDataClassifier(bert_ckpt, max_seq_length=64,
                                    model_inference_batch_size=batch_size)
    out = clf(ddf).compute()
    assert len(out) == n
    assert out.index.equals(df.index)
    assert out["n"].tolist() == list(range(n))
    assert [t if isinstance(t, str) else None for t in out["text"]] == [
        t if isinstance(t, str) else None for t in texts]  # unicode passes through intact
    got = [None if pd.isna(v) else v for v in out["preds"]]
    assert got == _reference_labels(reference_model, texts)


@pytest.mark.slow
def test_worker_killed_mid_job_loses_no_row(deberta_ckpt, ag_news_texts):
    """SIGKILL one worker process while partitions are being classified."""
    texts = ag_news_texts + ag_news_texts[:500]  # 3,000 rows
    df = pd.DataFrame({"text": texts, "i": np.arange(len(texts))})
    ddf = dd.from_pandas(df, npartitions=30)
    clf = DistributedDataClassifier(deberta_ckpt, model_inference_batch_size=16)
    expected = clf(df)
    client = get_client(backend="cpu", n_workers=2, processes=True, reuse_existing=False,
                        dashboard_address=None)
    try:
        pids = client.run(os.getpid)
        victim = next(iter(pids.values()))
        future = client.compute(clf(ddf))

        def kill_when_busy():
            deadline = time.time() + 60
            while time.time() < deadline:
                processing = client.processing()
                if any(processing.values()) and sum(map(len, processing.values())) > 0:
                    time.sleep(1.0)  # let the workers load the model and start classifying
                    os.kill(victim, signal.SIGKILL)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        result = future.result(timeout=300)
        killer.join()
        assert victim not in client.run(os.getpid).values()  # the process really died
    finally:
        client.close()
        client.cluster.close()
    pd.testing.assert_frame_equal(result, expected, check_dtype=False)
    assert result["i"].tolist() == list(range(len(texts)))  # every row exactly once, in order


def test_two_jobs_with_different_models_at_once(deberta_ckpt, bert_ckpt, ag_news_texts):
    texts = ag_news_texts[:800]
    df = pd.DataFrame({"text": texts})
    ddf = dd.from_pandas(df, npartitions=8)
    a = DistributedDataClassifier(deberta_ckpt, score_field="p")
    b = DistributedDataClassifier(bert_ckpt, score_field="p")
    client = get_client(backend="cpu", n_workers=1, threads_per_worker=2, reuse_existing=False,
                        dashboard_address=None)
    try:
        fa, fb = client.compute(a(ddf)), client.compute(b(ddf))
        ra, rb = fa.result(), fb.result()
    finally:
        client.close()
        client.cluster.close()
    for result, clf in ((ra, a), (rb, b)):
        alone = clf(df)
        assert result["preds"].tolist() == alone["preds"].tolist()
        np.testing.assert_allclose(np.array(result["p"].tolist()), np.array(alone["p"].tolist()),
                                   atol=1e-5)  # other partitions, other padding: fp32 noise
    assert ra["preds"].tolist() != rb["preds"].tolist()  # really two different models


@pytest.mark.slow
def test_cli_killed_mid_write_then_rerun_gives_complete_output(tmp_path, bert_ckpt,
                                                               ag_news_texts):
    import subprocess
    import sys

    src = tmp_path / "docs.jsonl"
    rows = pd.DataFrame({"i": np.arange(4000), "text": (ag_news_texts * 2)[:4000]})
    rows.to_json(src, orient="records", lines=True)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dask_classify", "classify", str(src), "--model",
           str(bert_ckpt), "--output", str(out), "--blocksize", "16KiB", "--no-progress",
           "--dashboard-address", "none", "--batch-size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = out / "docs.parquet"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # wait until some parts are finished
            finished = list(folder.glob("part.*.parquet")) if folder.exists() else []
            if len(finished) >= 3:
                break
            time.sleep(0.05)
        assert len(finished) >= 3, "the run never finished a part"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (folder / "_SUCCESS").exists()  # nothing that looks finished
    assert (out / "_lock.json").exists()  # the dead job's lock is still there
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("part.*.parquet")}
    assert 3 <= len(before) < 60
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "took over the lock of a job that is gone" in done.stdout
    assert f"resume {src}" in done.stdout
    parts = sorted(folder.glob("part.*.parquet"))
    result = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert result["i"].tolist() == list(range(4000))  # complete, no duplicates, in order
    # the parts finished before the kill were kept, not redone
    assert {p.name: p.stat().st_mtime_ns for p in parts if p.name in before} == before
    assert (folder / "_SUCCESS").exists() and not (out / "_lock.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "_summary.json",
                                                     "docs.parquet"]
