"""OpenVINO as the classifier's CPU engine: same graph as ONNX Runtime, same batches, fallback."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

import dask_classify.engine.onnx_export as onnx_mod  # noqa: E402
import dask_classify.engine.openvino_runtime as ov_mod  # noqa: E402
from dask_classify import DistributedDataClassifier  # noqa: E402
from dask_classify.cli import main  # noqa: E402
from dask_classify.engine.cache import clear_cache, get_model  # noqa: E402
from dask_classify.engine.spec import ONNX_CACHE_ENV  # noqa: E402
from dask_classify.errors import UsageError  # noqa: E402


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    """A fresh export cache; no models cached in this process before or after; warnings reset."""
    monkeypatch.setenv(ONNX_CACHE_ENV, str(tmp_path / "onnx-cache"))
    monkeypatch.setattr(ov_mod, "_WARNED", set())
    clear_cache()
    yield tmp_path / "onnx-cache"
    clear_cache()


def _frame(ag_news_texts, imdb_texts):
    # short news, long reviews (cut at 512 tokens), a null and duplicates; a reversed index
    texts = ag_news_texts[:100] + imdb_texts[:10] + ag_news_texts[:30]
    texts[3] = None
    return pd.DataFrame({"text": texts}, index=np.arange(len(texts))[::-1])


@pytest.mark.parametrize("name", ["deberta_ckpt", "bert_ckpt"])
def test_openvino_engine_equals_torch_and_uses_the_onnx_export(name, request, ag_news_texts,
                                                               imdb_texts, onnx_cache):
    folder = request.getfixturevalue(name)
    df = _frame(ag_news_texts, imdb_texts)
    torch_out = DistributedDataClassifier(folder, score_field="p",
                                          device="cpu").classify_partition(df)
    clf = DistributedDataClassifier(folder, score_field="p", engine="openvino", device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ov_mod.OpenVinoFallbackWarning)
        out = clf.classify_partition(df)
    model = get_model(clf.model_spec)[0]
    assert isinstance(model, ov_mod.OpenVinoModel) and model.precision == "f32"
    # the graph ONNX Runtime runs: one export in the cache, shared by both engines
    assert [p.parent for p in onnx_cache.glob("*/model.onnx")] == [model.path.parent]
    DistributedDataClassifier(folder, engine="onnx", device="cpu").classify_partition(df[:5])
    assert len(list(onnx_cache.glob("*/model.onnx"))) == 1
    assert out.index.tolist() == df.index.tolist()
    assert out["preds"].tolist() == torch_out["preds"].tolist()
    np.testing.assert_allclose(np.array(out["p"].dropna().tolist()),
                               np.array(torch_out["p"].dropna().tolist()), atol=1e-4, rtol=0)


def test_openvino_compiles_once_for_every_batch_shape(deberta_ckpt, onnx_cache):
    model = ov_mod.load_openvino_model(deberta_ckpt, threads=1)
    rng = np.random.default_rng(0)
    shapes = [(1, 5), (7, 33), (2, 128), (16, 9), (7, 33)]
    outs = []
    for rows, width in shapes:
        ids = rng.integers(5, 100, size=(rows, width))
        outs.append(model(ids, np.ones_like(ids)))
    assert [o.shape for o in outs] == [(r, 3) for r, _ in shapes]
    # one compiled model with dynamic axes: its inputs stay [?,?] after every shape ran
    assert [str(i.get_partial_shape()) for i in model.compiled.inputs] == ["[?,?]", "[?,?]"]


def test_openvino_engine_through_dask(bert_ckpt, ag_news_texts, onnx_cache):
    import dask.dataframe as dd

    ddf = dd.from_pandas(pd.DataFrame({"text": ag_news_texts[:90]}), npartitions=3)
    a = DistributedDataClassifier(bert_ckpt, score_field="p", device="cpu")(ddf).compute()
    b = DistributedDataClassifier(bert_ckpt, score_field="p", engine="openvino",
                                  device="cpu")(ddf).compute()
    assert a.index.tolist() == b.index.tolist() and a["preds"].tolist() == b["preds"].tolist()
    np.testing.assert_allclose(np.array(a["p"].tolist()), np.array(b["p"].tolist()), atol=1e-4)


def test_graph_openvino_cannot_compile_runs_on_torch_with_one_warning(deberta_ckpt, onnx_cache,
                                                                      ag_news_texts):
    # a cached export OpenVINO cannot read (a truncated file): the model runs on torch
    graph = onnx_mod.cached_export(deberta_ckpt)
    graph.write_bytes(graph.read_bytes()[:4096])
    df = pd.DataFrame({"text": ag_news_texts[:30]})
    expected = DistributedDataClassifier(deberta_ckpt, device="cpu").classify_partition(df)
    clf = DistributedDataClassifier(deberta_ckpt, engine="openvino", device="cpu")
    with pytest.warns(ov_mod.OpenVinoFallbackWarning, match="could not compile.*on torch"):
        out = clf.classify_partition(df)
    assert out["preds"].tolist() == expected["preds"].tolist()
    assert not isinstance(get_model(clf.model_spec)[0], ov_mod.OpenVinoModel)
    clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per checkpoint
        clf.classify_partition(df)


def test_model_that_cannot_be_exported_falls_back_once(deberta_ckpt, onnx_cache, monkeypatch,
                                                       ag_news_texts):
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_mod, "_export_graph", refuse)
    clf = DistributedDataClassifier(deberta_ckpt, engine="openvino", device="cpu")
    with pytest.warns(ov_mod.OpenVinoFallbackWarning, match="unsupported operator"):
        out = clf.classify_partition(pd.DataFrame({"text": ag_news_texts[:10]}))
    assert out["preds"].notna().all()


def test_compiled_model_that_differs_from_onnxruntime_falls_back(deberta_ckpt, onnx_cache,
                                                                 monkeypatch):
    monkeypatch.setattr(ov_mod, "TOLERANCE", -1.0)  # nothing is close enough
    with pytest.warns(ov_mod.OpenVinoFallbackWarning, match="differs from ONNX Runtime"):
        assert ov_mod.load_openvino_model(deberta_ckpt, threads=1) is None


def test_classifiers_own_model_runs_on_torch_with_a_warning(deberta_ckpt, onnx_cache):
    class Own(DistributedDataClassifier):
        def build_model(self, device):
            return super().build_model(device)

    with pytest.warns(ov_mod.OpenVinoFallbackWarning, match="builds its own model"):
        out = Own(deberta_ckpt, engine="openvino", device="cpu").classify_partition(
            pd.DataFrame({"text": ["a good film"]}))
    assert out["preds"].notna().all()


@pytest.mark.parametrize("kwargs, message", [
    ({"engine": "openvino", "device": "cuda"}, "engine='openvino' runs on the CPU only"),
    ({"engine": "openvino", "quantize": "int8"}, "quantize must be None"),
])
def test_openvino_engine_is_validated_when_the_classifier_is_built(kwargs, message):
    with pytest.raises(UsageError, match=message):
        DistributedDataClassifier("/models/x", **kwargs)


def test_missing_extra_is_named(monkeypatch):
    import importlib.util

    from dask_classify.errors import MissingExtraError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"\[openvino\] extra"):
        DistributedDataClassifier("/models/x", engine="openvino")


def test_cli_runs_the_openvino_engine(bert_ckpt, tmp_path, onnx_cache, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a good film"}\n{"text": "a dull film"}\n', encoding="utf-8")
    args = ["classify", str(src), "--model", str(bert_ckpt), "--output-format", "jsonl",
            "--backend", "cpu", "--n-workers", "1", "--threads-per-worker", "1", "--no-progress"]
    assert main([*args, "--output", str(tmp_path / "torch")]) == 0
    assert main([*args, "--engine", "openvino", "--output", str(tmp_path / "ov")]) == 0
    read = [pd.concat([pd.read_json(p, lines=True)
                       for p in sorted((tmp_path / d / "in.jsonl").glob("part.*"))])
            for d in ("torch", "ov")]
    assert len(read[1]) == 2 and read[0]["preds"].tolist() == read[1]["preds"].tolist()
    assert "rows in: 2  rows out: 2" in capsys.readouterr().out
