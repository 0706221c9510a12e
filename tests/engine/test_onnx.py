"""ONNX export (``dask-classify export``) and ONNX Runtime as the classifier's CPU engine."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("onnxruntime")

import onnxruntime as ort  # noqa: E402

import dask_classify.engine.onnx_export as onnx_mod  # noqa: E402
from dask_classify import DistributedDataClassifier  # noqa: E402
from dask_classify.bundled import default_model_dir  # noqa: E402
from dask_classify.cli import main  # noqa: E402
from dask_classify.engine.cache import clear_cache
from dask_classify.engine.loading import load_model, load_tokenizer
from dask_classify.engine.spec import ONNX_CACHE_ENV  # noqa: E402
from dask_classify.errors import UsageError  # noqa: E402
from dask_classify.tokenize import pad_batch, tokenize  # noqa: E402


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    """A fresh export cache for the test; no models cached in this process before or after."""
    monkeypatch.setenv(ONNX_CACHE_ENV, str(tmp_path / "onnx-cache"))
    clear_cache()
    yield tmp_path / "onnx-cache"
    clear_cache()


def _torch_and_ort(folder, onnx_file, texts, max_length=128, padding_side="right"):
    """Probabilities of the PyTorch model and of a plain ORT session on the same batches."""
    model, _ = load_model(folder)
    tok = load_tokenizer(folder)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    ids = tokenize(tok, list(texts), max_length)
    expected, got = [], []
    # batches of different sizes and widths: the graph's batch and sequence axes are dynamic
    for start, stop in [(0, 1), (1, 9), (9, len(ids))]:
        x, m = pad_batch(ids[start:stop], tok.pad_token_id or 0, padding_side)
        with torch.inference_mode():
            expected.append(model(x, m).numpy())
        got.append(session.run(None, {"input_ids": x.numpy(), "attention_mask": m.numpy()})[0])
    return np.concatenate(expected), np.concatenate(got)


@pytest.mark.parametrize("name", ["deberta_ckpt", *(pytest.param(n, marks=pytest.mark.slow)
                                                  for n in ("bert_ckpt", "hf_ckpt",
                                                            "regression_ckpt"))])
def test_cli_export_runs_in_onnxruntime_like_pytorch(name, request, tmp_path, ag_news_texts,
                                                     capsys):
    folder = request.getfixturevalue(name)
    out = tmp_path / "exported"
    assert main(["export", "--model", str(folder), "--format", "onnx", "--output", str(out)]) == 0
    assert "model.onnx: inputs input_ids, attention_mask" in capsys.readouterr().out
    info = json.loads((out / "onnx_export.json").read_text())
    assert info["returns"] == ("raw scores" if name == "regression_ckpt" else "probabilities")
    # BERT-family encoders get ORT's fused attention; DeBERTa has no optimizer model type
    assert info["ort_transformer_optimizer"] == (name != "deberta_ckpt")
    expected, got = _torch_and_ort(folder, out / "model.onnx", ag_news_texts[:40])
    assert got.shape == expected.shape == (40, len(info["labels"]) if name != "regression_ckpt"
                                           else 1)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    if name != "regression_ckpt":
        assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.slow
def test_bundled_model_exports_and_matches_on_real_text(tmp_path, data_dir):
    rows = (data_dir / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [r.split("\t")[0] for r in rows[:60]]
    out = tmp_path / "sst2-onnx"
    assert main(["export", "--output", str(out)]) == 0  # --model defaults to the bundled one
    expected, got = _torch_and_ort(default_model_dir(), out / "model.onnx", texts, 512, "left")
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_cli_export_refuses_to_overwrite_and_names_a_missing_model(tmp_path, deberta_ckpt,
                                                                   capsys):
    out = tmp_path / "x"
    out.mkdir()
    assert main(["export", "--model", str(deberta_ckpt), "--output", str(out)]) == 2
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["export", "--model", str(deberta_ckpt), "--output", str(out),
                 "--overwrite"]) == 0
    assert (out / "model.onnx").is_file()
    assert main(["export", "--model", str(tmp_path / "nope"), "--output", str(out / "y")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_onnx_engine_equals_torch_and_exports_once(deberta_ckpt, bert_ckpt, ag_news_texts,
                                                   imdb_texts, onnx_cache, monkeypatch):
    exports = []
    real_export = onnx_mod.export_onnx
    monkeypatch.setattr(onnx_mod, "export_onnx",
                        lambda *a, **k: exports.append(a[0]) or real_export(*a, **k))
    # short news and long reviews (truncated at 512 tokens), with duplicates
    texts = ag_news_texts[:135] + imdb_texts[:15] + ag_news_texts[:50]
    texts[3] = None
    df = pd.DataFrame({"text": texts}, index=np.arange(200)[::-1])
    for folder in (deberta_ckpt, bert_ckpt):
        torch_out = DistributedDataClassifier(folder, score_field="p").classify_partition(df)
        clf = DistributedDataClassifier(folder, score_field="p", engine="onnx")
        onnx_out = clf.classify_partition(df)
        assert onnx_out.index.tolist() == df.index.tolist()
        assert onnx_out["preds"].tolist() == torch_out["preds"].tolist()
        np.testing.assert_allclose(np.array(onnx_out["p"].dropna().tolist()),
                                   np.array(torch_out["p"].dropna().tolist()), atol=1e-4, rtol=0)
        clear_cache()  # a new process: the graph comes from the disk cache, no second export
        clf.classify_partition(df.iloc[:20])
    assert len(exports) == 2 and len(list(onnx_cache.glob("*/model.onnx"))) == 2


def test_onnx_engine_through_dask(deberta_ckpt, ag_news_texts, onnx_cache):
    import dask.dataframe as dd

    ddf = dd.from_pandas(pd.DataFrame({"text": ag_news_texts[:120]}), npartitions=3)
    # device="cpu": ONNX Runtime is a CPU engine (on a GPU host "auto" would run torch on it)
    a = DistributedDataClassifier(deberta_ckpt, score_field="p", device="cpu")(ddf).compute()
    b = DistributedDataClassifier(deberta_ckpt, score_field="p", engine="onnx",
                                  device="cpu")(ddf).compute()
    assert a["preds"].tolist() == b["preds"].tolist()
    np.testing.assert_allclose(np.array(a["p"].tolist()), np.array(b["p"].tolist()), atol=1e-4)


def test_model_that_cannot_be_exported_runs_on_torch_with_one_warning(deberta_ckpt, onnx_cache,
                                                                      monkeypatch, ag_news_texts):
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_mod, "_export_graph", refuse)
    monkeypatch.setattr(onnx_mod, "_WARNED", set())
    df = pd.DataFrame({"text": ag_news_texts[:30]})
    expected = DistributedDataClassifier(deberta_ckpt, device="cpu").classify_partition(df)
    clf = DistributedDataClassifier(deberta_ckpt, engine="onnx", device="cpu")
    with pytest.warns(onnx_mod.OnnxFallbackWarning, match="unsupported operator.*on torch"):
        out = clf.classify_partition(df)
    assert out["preds"].tolist() == expected["preds"].tolist()
    clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per checkpoint
        clf.classify_partition(df)


def test_changed_weights_are_exported_again(tmp_path, corpus, onnx_cache):
    from dask_classify.testing import build_tiny_deberta_checkpoint

    folder = build_tiny_deberta_checkpoint(tmp_path / "m", ["a", "b"], tokenizer="bert",
                                           texts=corpus[:200])
    first = onnx_mod.cached_export(folder)
    build_tiny_deberta_checkpoint(tmp_path / "m2", ["a", "b"], tokenizer="bert",
                                  texts=corpus[:200], seed=7)
    (folder / "model.safetensors").write_bytes((tmp_path / "m2" / "model.safetensors")
                                               .read_bytes())
    second = onnx_mod.cached_export(folder)
    assert first != second and first.is_file() and second.is_file()


@pytest.mark.parametrize("kwargs, message", [
    ({"engine": "tensorrt"},
     "engine must be one of ['auto', 'torch', 'onnx', 'openvino'], not 'tensorrt'"),
    ({"engine": "onnx", "device": "cuda"}, "engine='onnx' runs on the CPU only"),
    ({"engine": "onnx", "quantize": "int8"}, "quantize must be None"),
])
def test_engine_is_validated_when_the_classifier_is_built(kwargs, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        DistributedDataClassifier("/models/x", **kwargs)


# --------------------------------------------------------------------------- a shipped graph
def test_bundled_model_runs_its_shipped_graph_without_torch(tmp_path):
    """The README's first command: ONNX Runtime and the tokenizers library, no torch import."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from dask_classify.cli import main\n"
            f"rc = main(['classify', 'examples/reviews.jsonl', '--output', {str(tmp_path)!r},"
            " '--score-field', 'p', '--no-progress'])\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
            "sys.exit(rc)")
    root = default_model_dir().parents[2]
    # on a GPU host "auto" would run the model there, with torch: conftest's
    # DASK_CLASSIFY_DEVICE=cpu, inherited, keeps this the CPU run of a machine without a GPU
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    got = pd.read_parquet(tmp_path / "reviews.parquet")
    texts = pd.read_json(root / "examples" / "reviews.jsonl", lines=True)
    torch_run = DistributedDataClassifier(default_model_dir(), engine="torch", score_field="p",
                                          device="cpu")(texts)
    assert got["preds"].tolist() == torch_run["preds"].tolist()  # the same labels
    np.testing.assert_allclose(np.array(got["p"].tolist()), np.array(torch_run["p"].tolist()),
                               atol=1e-4, rtol=0)


def test_shipped_graph_equals_torch_on_sst2_dev(data_dir):
    from dask_classify.engine.cache import resolved_engine
    from dask_classify.engine.spec import ModelSpec
    from dask_classify.train.data import read_tsv

    texts = pd.DataFrame({"text": read_tsv(data_dir / "sst2" / "dev.tsv")["sentence"]})
    auto = DistributedDataClassifier(default_model_dir(), score_field="p", device="cpu")
    assert resolved_engine(auto.model_spec) == "shipped"
    assert resolved_engine(ModelSpec(str(default_model_dir()), engine="torch")) == "torch"
    a = auto(texts)
    b = DistributedDataClassifier(default_model_dir(), score_field="p", engine="torch",
                                  device="cpu")(texts)
    assert a["preds"].tolist() == b["preds"].tolist()
    np.testing.assert_allclose(np.array(a["p"].tolist()), np.array(b["p"].tolist()), atol=1e-4,
                               rtol=0)


@pytest.mark.parametrize("kind", ["bundled", "bert"])
def test_file_tokenizer_gives_the_transformers_tokenizer_ids(kind, tmp_path, ag_news_texts,
                                                            imdb_texts, data_dir):
    from dask_classify.engine.onnx_runtime import FileTokenizer
    from dask_classify.testing import build_tokenizer
    from dask_classify.train.data import read_tsv

    if kind == "bundled":
        folder = default_model_dir()
    else:
        folder = tmp_path / "bert"
        build_tokenizer(folder, "bert", ag_news_texts[:500])
    texts = (read_tsv(data_dir / "sst2" / "dev.tsv")["sentence"].tolist()[:300]
             + ag_news_texts[:300] + imdb_texts + ["", "  ", "😀 émoji\tand\u2028breaks"])
    reference = load_tokenizer(folder)
    light = FileTokenizer(folder)
    assert light.pad_token_id == reference.pad_token_id
    assert light.model_max_length == reference.model_max_length
    for limit in (16, 64, 512):  # truncation counts the special tokens, as transformers does
        assert tokenize(light, texts, limit) == tokenize(reference, texts, limit)


def test_stale_shipped_graph_falls_back_to_torch_with_one_warning(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from dask_classify.engine.cache import resolved_engine
    from dask_classify.engine.onnx_runtime import OnnxFallbackWarning
    from dask_classify.engine.spec import ModelSpec

    folder = tmp_path / "retrained"
    shutil.copytree(default_model_dir(), folder)
    weights = load_file(folder / "model.safetensors")
    weights["fc.bias"] = weights["fc.bias"] + 1.0  # "retrained": the shipped graph is stale
    save_file(weights, folder / "model.safetensors")
    with pytest.warns(OnnxFallbackWarning, match="not exported from the weights now in"):
        assert resolved_engine(ModelSpec(str(folder), device="cpu")) == "torch"
    export = tmp_path / "export"
    assert main(["export", "--model", str(folder), "--format", "onnx", "--output",
                 str(export)]) == 0
    # an export's folder (graph, config, tokenizer, no weights) is a model of its own
    assert resolved_engine(ModelSpec(str(export), device="cpu")) == "shipped"
    # ... on the CPU even where "auto" would pick a GPU: torch has no weights to load there
    assert resolved_engine(ModelSpec(str(export))) == "shipped"
    texts = pd.DataFrame({"text": ["a warm and moving film", "dull and lifeless"]})
    via_graph = DistributedDataClassifier(export, score_field="p")(texts)
    via_torch = DistributedDataClassifier(folder, score_field="p", engine="torch",
                                          device="cpu")(texts)
    np.testing.assert_allclose(np.array(via_graph["p"].tolist()),
                               np.array(via_torch["p"].tolist()), atol=1e-4, rtol=0)
