"""Every environment switch that changes a number is read once, on the client, into the model
spec's key and the job fingerprint: workers follow the client's reading, and a job resumed under
another setting redoes its parts (naming the setting) instead of mixing them."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from dask_classify import DistributedDataClassifier, classify_files
from dask_classify.engine.cache import clear_cache, get_model
from dask_classify.engine.fast_attention import FastDisentangledSelfAttention
from dask_classify.engine.spec import (
    CPU_BF16_ENV,
    DEVICE_ENV,
    FAST_ATTENTION_ENV,
    ONNX_CACHE_ENV,
    ModelSpec,
    Settings,
)


@pytest.mark.parametrize("name,value", [(DEVICE_ENV, "cpu"), (CPU_BF16_ENV, "1"),
                                        (FAST_ATTENTION_ENV, "0"), (ONNX_CACHE_ENV, "/x")])
def test_each_switch_changes_the_spec_key_and_nothing_else_does(monkeypatch, name, value):
    for var in (DEVICE_ENV, CPU_BF16_ENV, FAST_ATTENTION_ENV, ONNX_CACHE_ENV):
        monkeypatch.delenv(var, raising=False)
    plain = DistributedDataClassifier("/models/m")
    monkeypatch.setenv(name, value)
    switched = DistributedDataClassifier("/models/m")
    assert switched.settings != plain.settings
    assert switched.model_spec.key != plain.model_spec.key
    # the tokenizer does not depend on these switches: shared
    assert switched.model_spec.tokenizer_key == plain.model_spec.tokenizer_key
    # read once: the classifier keeps what it read when it was built
    monkeypatch.delenv(name)
    assert switched.model_spec.key != DistributedDataClassifier("/models/m").model_spec.key
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # threads change speed, not the key
    assert DistributedDataClassifier("/models/m").model_spec.key == plain.model_spec.key


def test_settings_read_the_documented_values():
    assert Settings.from_environ({}) == Settings()
    assert Settings.from_environ({DEVICE_ENV: " CPU ", FAST_ATTENTION_ENV: "off",
                                  CPU_BF16_ENV: "1", ONNX_CACHE_ENV: "/c"}) == Settings(
        force_cpu=True, cpu_bf16=True, fast_attention=False, onnx_cache="/c")
    assert Settings.from_environ({FAST_ATTENTION_ENV: "1", CPU_BF16_ENV: "yes"}) == Settings()


def test_the_worker_follows_the_client_reading_not_its_own_environment(monkeypatch,
                                                                       deberta_ckpt):
    clear_cache()
    monkeypatch.setenv(FAST_ATTENTION_ENV, "0")
    client_side = DistributedDataClassifier(deberta_ckpt, device="cpu")
    monkeypatch.delenv(FAST_ATTENTION_ENV)  # the worker's environment says "fast"
    model, _, _ = get_model(client_side.model_spec)
    assert not any(type(m) is FastDisentangledSelfAttention for m in model.modules())
    fast, _, _ = get_model(DistributedDataClassifier(deberta_ckpt, device="cpu").model_spec)
    assert any(type(m) is FastDisentangledSelfAttention for m in fast.modules())
    assert ModelSpec(str(deberta_ckpt)).settings == Settings.from_environ()
    clear_cache()


def test_a_resumed_job_under_another_setting_redoes_every_part(tmp_path, monkeypatch,
                                                               deberta_ckpt, ag_news_texts):
    monkeypatch.delenv(FAST_ATTENTION_ENV, raising=False)
    src = tmp_path / "in"
    src.mkdir()
    for name, texts in (("a", ag_news_texts[:6]), ("b", ag_news_texts[6:12])):
        (src / f"{name}.jsonl").write_text(
            "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out"
    first = DistributedDataClassifier(deberta_ckpt, score_field="p")
    classify_files(str(src), str(out), first)
    # as a run killed after finishing a.jsonl leaves it: b's part and record are missing
    manifest = json.loads((out / "_manifest.json").read_text())
    b = str(src / "b.jsonl")
    manifest["inputs"][b].update(parts={}, complete=False)
    (out / "_manifest.json").write_text(json.dumps(manifest))
    (out / "b.parquet" / "part.00000.parquet").unlink()
    (out / "b.parquet" / "_SUCCESS").unlink()
    a_part = out / "a.parquet" / "part.00000.parquet"
    a_written = a_part.stat().st_mtime_ns

    monkeypatch.setenv(FAST_ATTENTION_ENV, "0")  # the rerun's environment differs
    rerun = DistributedDataClassifier(deberta_ckpt, score_field="p")
    summary = classify_files(str(src), str(out), rerun)
    reason = "the setting fast_attention changed (True -> False)"
    assert sorted(summary.redone) == [(str(src / "a.jsonl"), reason), (b, reason)]
    assert a_part.stat().st_mtime_ns != a_written  # redone under the new setting, not kept
    assert summary.rows_in == 12 and summary.skipped == 0
    described = json.loads((out / "_manifest.json").read_text())["job_description"]
    assert described["classifiers"][0]["settings"]["fast_attention"] is False
    rows = pd.read_parquet(out)
    assert len(rows) == 12 and sorted(rows["id"]) == sorted(list(range(6)) * 2)
    assert os.environ[FAST_ATTENTION_ENV] == "0"
