"""Any head a checkpoint has: problem types, position limits, and a user-defined model."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification

from dask_classify import CheckpointError, DistributedDataClassifier, classify_many
from dask_classify.checkpoint import ModelInfo, config_for, read_config, resolve_model_dir
from dask_classify.classifiers._base import PublishedClassifier
from dask_classify.engine.cache import clear_cache
from dask_classify.engine.loading import load_tokenizer
from dask_classify.engine.model import backbone_config, load_weights
from dask_classify.engine.run import run_model
from dask_classify.errors import UsageError
from dask_classify.testing import build_tiny_hf_checkpoint, build_tokenizer, tiny_backbone_config


def hf_logits(folder, texts, max_length=512):
    """transformers' own forward, one text at a time (the reference)."""
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    tok = load_tokenizer(folder)
    rows = []
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt",
                      return_token_type_ids=False)
            rows.append(model(**enc).logits[0].numpy())
    return np.stack(rows)


def _rewrite_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


# -------------------------------------------------------------------- problem types
def test_regression_checkpoint_gives_float_scores_and_no_label(regression_ckpt, ag_news_texts):
    texts = ag_news_texts[:120] + [None]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    out = DistributedDataClassifier(regression_ckpt, label_field="score",
                                    score_field="raw")(ddf).compute()
    assert out["score"].dtype == np.float64 and out["score"].isna().tolist() == [False] * 120 + [
        True]
    expected = hf_logits(regression_ckpt, texts[:-1])[:, 0]
    np.testing.assert_allclose(out["score"].iloc[:-1], expected, rtol=1e-5, atol=1e-5)
    assert [len(r) for r in out["raw"].iloc[:-1]] == [1] * 120
    with pytest.raises(UsageError, match="regression head"):
        DistributedDataClassifier(regression_ckpt, filter_by=["LABEL_0"])(ddf)


def test_one_output_without_problem_type_is_a_regression_not_label_0(tmp_path, corpus,
                                                                      ag_news_texts):
    folder = build_tiny_hf_checkpoint(tmp_path / "one", regression=True, texts=corpus, seed=5)
    _rewrite_config(folder, problem_type=None, id2label={"0": "LABEL_0"},
                    label2id={"LABEL_0": 0})
    texts = ag_news_texts[:40]
    out = DistributedDataClassifier(folder)(pd.DataFrame({"text": texts}))
    assert out["preds"].dtype == np.float64 and "LABEL_0" not in set(out["preds"].astype(str))
    np.testing.assert_allclose(out["preds"], hf_logits(folder, texts)[:, 0], rtol=1e-5,
                               atol=1e-5)


def test_single_label_head_with_one_output_is_refused(tmp_path, corpus):
    folder = build_tiny_hf_checkpoint(tmp_path / "bad", regression=True, texts=corpus[:50])
    _rewrite_config(folder, problem_type="single_label_classification")
    with pytest.raises(CheckpointError, match="softmax is 1 for every text"):
        DistributedDataClassifier(folder)(pd.DataFrame({"text": ["a"]}))


@pytest.fixture(scope="module")
def multi_label_ckpt(tmp_path_factory, corpus):
    return build_tiny_hf_checkpoint(tmp_path_factory.mktemp("multi"),
                                    ["sports", "politics", "tech", "health"], texts=corpus,
                                    seed=3, problem_type="multi_label_classification")


def test_multi_label_checkpoint_gives_sigmoids_and_labels_over_the_threshold(multi_label_ckpt,
                                                                              ag_news_texts):
    texts = ag_news_texts[:150]
    df = pd.DataFrame({"text": texts + [None]}, index=np.arange(151)[::-1])
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    clf = DistributedDataClassifier(multi_label_ckpt, label_field="topics", score_field="p",
                                    multi_label_threshold=0.6)
    out = clf(ddf).compute()
    assert out.index.tolist() == df.index.tolist()
    probs = 1 / (1 + np.exp(-hf_logits(multi_label_ckpt, texts).astype(np.float64)))
    got = np.array(out["p"].iloc[:-1].tolist())
    np.testing.assert_allclose(got, probs, rtol=1e-5, atol=1e-6)
    names = ["sports", "politics", "tech", "health"]
    expected = [[names[j] for j in np.flatnonzero(row >= 0.6)] for row in got]
    assert out["topics"].iloc[:-1].tolist() == expected
    assert out["topics"].iloc[-1] is None
    sizes = {len(t) for t in expected}
    assert 0 in sizes and max(sizes) >= 2  # some rows have no label, some several
    kept = DistributedDataClassifier(multi_label_ckpt, label_field="topics",
                                     filter_by=["tech", "health"],
                                     multi_label_threshold=0.6)(ddf).compute()
    want = [i for i, labels in zip(df.index, expected, strict=False)
            if {"tech", "health"} & set(labels)]
    assert kept.index.tolist() == want and 0 < len(want) < 150
    pa = pytest.importorskip("pyarrow")
    assert clf.arrow_types()["topics"] == pa.list_(pa.string())
    with pytest.raises(UsageError, match="multi_label_threshold"):
        DistributedDataClassifier(multi_label_ckpt, multi_label_threshold=1.5)


def test_run_model_keeps_integer_outputs():
    class FirstTokenAndLength(nn.Module):  # a generator's output: token ids, fixed width
        def forward(self, input_ids, attention_mask):
            return torch.stack([input_ids[:, 0], attention_mask.sum(1)], dim=1)

    out = run_model(FirstTokenAndLength(), [[5, 6, 7], [8], [9, 10]], pad_id=0, device="cpu",
                    batch_size=2)
    assert out.dtype == np.int64 and out.tolist() == [[5, 3], [8, 1], [9, 2]]


# -------------------------------------------------------------------- position limits
@pytest.fixture(scope="module")
def short_bert(tmp_path_factory, corpus):
    """A BERT classifier with 32 positions whose tokenizer claims 512 (a bad save)."""
    return build_tiny_hf_checkpoint(tmp_path_factory.mktemp("short"), ["a", "b"], texts=corpus,
                                    max_position_embeddings=32)


def test_tokenizer_limit_above_the_position_table_is_capped_with_one_warning(short_bert,
                                                                              imdb_texts):
    texts = imdb_texts[:12]  # hundreds of tokens each
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    clear_cache()
    with pytest.warns(UserWarning, match="capped to 32") as caught:
        out = DistributedDataClassifier(short_bert, score_field="p")(ddf).compute(
            scheduler="sync")
    assert len([w for w in caught if "capped" in str(w.message)]) == 1
    probs = np.exp(hf_logits(short_bert, texts, max_length=32).astype(np.float64))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.array(out["p"].tolist()), probs, rtol=1e-5, atol=1e-6)


def test_explicit_max_seq_length_above_the_position_table_is_refused(short_bert):
    ddf = dd.from_pandas(pd.DataFrame({"text": ["a b c"]}), npartitions=1)
    with pytest.raises(UsageError, match="max_seq_length=64 is more than .* holds 32 tokens"):
        DistributedDataClassifier(short_bert, max_seq_length=64)(ddf)
    DistributedDataClassifier(short_bert, max_seq_length=32)(ddf).compute()  # at the limit


def test_a_published_preset_above_the_position_table_is_capped(short_bert, imdb_texts):
    class LongPreset(PublishedClassifier):
        default_model_identifier = "acme/long"
        defaults = {"max_seq_length": 1024}

    ddf = dd.from_pandas(pd.DataFrame({"text": imdb_texts[:4]}), npartitions=2)
    with pytest.warns(UserWarning, match=r"default max_seq_length \(1024\) .* capped to 32") \
            as caught:
        out = LongPreset(str(short_bert))(ddf).compute(scheduler="sync")
    assert len(caught) == 1  # on the client; the in-process worker does not repeat it
    assert out["preds"].isin(["a", "b"]).all()
    with pytest.raises(UsageError, match="max_seq_length=1024"):
        LongPreset(str(short_bert), max_seq_length=1024)(ddf)


def test_relative_positions_have_no_limit(deberta_ckpt, imdb_texts):
    """DeBERTa-v3 style backbones (relative buckets) take sequences past 512 positions."""
    text = " ".join(imdb_texts[:6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = DistributedDataClassifier(deberta_ckpt, max_seq_length=1024)(
            pd.DataFrame({"text": [text]}))
    assert out["preds"].notna().all()


# -------------------------------------------------------------------- your own model
# The worked example of the README's "Your own model" section, as a user would write it.
class MeanPoolTwoHeads(nn.Module):
    """Backbone -> mean pooling -> a sentiment head (softmax) and an intensity head."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.backbone = AutoModel.from_config(backbone_config(config))
        hidden = self.backbone.config.hidden_size
        self.sentiment = nn.Linear(hidden, len(config["labels"]))
        self.intensity = nn.Linear(hidden, 1)

    def forward(self, input_ids, attention_mask):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.cat([self.sentiment(pooled).softmax(-1), self.intensity(pooled)], 1)


class SentimentIntensityClassifier(DistributedDataClassifier):
    """A sentiment label and an intensity score from one model."""

    parameters = ("intensity_field",)

    def __init__(self, model_identifier, *, intensity_field="intensity", **kwargs):
        self.intensity_field = intensity_field
        super().__init__(model_identifier, **kwargs)

    @property
    def output_fields(self):
        return [self.label_field, self.intensity_field]

    def model_info(self):
        config = config_for(self.model_identifier, self.cache_dir)
        return ModelInfo(kind="sentiment-intensity", config=config,
                         id2label=dict(enumerate(config["labels"])))

    def build_model(self, device):
        folder = resolve_model_dir(self.model_identifier, self.cache_dir)
        model = load_weights(MeanPoolTwoHeads(read_config(folder)), folder)
        return model, self.model_info()

    def output_columns(self, outputs, valid, info):
        labels = np.full(len(valid), None, dtype=object)
        intensity = np.full(len(valid), np.nan)
        if outputs is not None and len(outputs):
            k = len(info.id2label)
            labels[valid] = np.array(info.labels, dtype=object)[outputs[:, :k].argmax(1)]
            intensity[valid] = outputs[:, k]
        return {self.label_field: pd.Series(labels, dtype="string"),
                self.intensity_field: pd.Series(intensity)}


@pytest.fixture(scope="module")
def two_heads_ckpt(tmp_path_factory, corpus):
    folder = tmp_path_factory.mktemp("two_heads")
    tok = build_tokenizer(folder, "bert", corpus)
    config = {"labels": ["negative", "positive"],
              "backbone_config": tiny_backbone_config("bert", len(tok), tok.pad_token_id)}
    torch.manual_seed(7)
    model = MeanPoolTwoHeads(config).eval()
    with torch.no_grad():  # heads far from zero, so labels and scores vary between texts
        model.sentiment.weight.normal_(0, 3.0)
        model.intensity.weight.normal_(0, 3.0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def two_heads_reference(folder, texts):
    """The model card's description, written out: mean pooling, then the two heads."""
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    backbone = AutoModel.from_config(backbone_config(config)).eval()
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in weights.items()
                              if k.startswith("backbone.")})
    tok = load_tokenizer(folder)
    labels, intensity = [], []
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, truncation=True, max_length=512, return_tensors="pt",
                      return_token_type_ids=False)
            pooled = backbone(**enc)[0][0].mean(0)  # one unpadded row: a plain mean
            logits = weights["sentiment.weight"] @ pooled + weights["sentiment.bias"]
            labels.append(config["labels"][int(logits.argmax())])
            intensity.append(float(weights["intensity.weight"][0] @ pooled
                                   + weights["intensity.bias"][0]))
    return labels, np.array(intensity)


def _frame(texts):
    rng = np.random.default_rng(1)
    index = rng.permutation(len(texts)) * 10  # neither sorted nor a range
    values = list(texts)
    values[3] = None
    return pd.DataFrame({"text": values, "n": np.arange(len(texts))}, index=index)


def test_user_defined_model_equals_its_reference_and_keeps_order_and_index(two_heads_ckpt,
                                                                           hf_ckpt,
                                                                           ag_news_texts):
    df = _frame(ag_news_texts[:90])
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    custom = SentimentIntensityClassifier(str(two_heads_ckpt), label_field="sentiment",
                                          filter_by=None)
    plain = DistributedDataClassifier(hf_ckpt, label_field="topic")
    out = classify_many(ddf, [custom, plain]).compute()
    assert list(out.columns) == ["text", "n", "sentiment", "intensity", "topic"]
    assert out.index.tolist() == df.index.tolist() and out["n"].tolist() == list(range(90))
    valid = df["text"].notna().to_numpy()
    labels, intensity = two_heads_reference(two_heads_ckpt, df["text"][valid])
    assert out["sentiment"][valid].tolist() == labels and len(set(labels)) == 2
    np.testing.assert_allclose(out["intensity"][valid], intensity, rtol=1e-4, atol=1e-4)
    assert out.iloc[3][["sentiment", "intensity", "topic"]].isna().all()
    # its own filter_by works through the default hooks, and its model was cached once
    kept = SentimentIntensityClassifier(str(two_heads_ckpt), label_field="sentiment",
                                        filter_by=["positive"])(ddf).compute()
    assert kept.index.tolist() == [i for i, lab in zip(df.index[valid], labels, strict=True)
                                   if lab == "positive"]
    assert custom.model_spec.key != DistributedDataClassifier(str(two_heads_ckpt)).model_spec.key


@pytest.mark.slow
def test_user_defined_model_on_a_cluster_of_worker_processes(two_heads_ckpt, hf_ckpt,
                                                             ag_news_texts):
    import cloudpickle

    from dask_classify import get_client

    # A class defined in a script's __main__ travels by value; this test module must too.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    df = _frame(ag_news_texts[:200])
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    custom = SentimentIntensityClassifier(str(two_heads_ckpt), label_field="sentiment")
    plain = DistributedDataClassifier(hf_ckpt, label_field="topic")
    local = classify_many(ddf, [custom, plain]).compute(scheduler="sync")
    client = get_client(backend="cpu", n_workers=2, processes=True, reuse_existing=False,
                        dashboard_address=None)
    try:
        out = classify_many(ddf, [custom, plain]).compute()
        loaded = client.run(lambda: __import__("dask_classify.engine.cache").engine.cache
                            .cached_model_keys())
    finally:
        client.close()
        client.cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    pd.testing.assert_frame_equal(out, local)
    assert out.index.tolist() == df.index.tolist()
    assert all(custom.model_spec.key in keys for keys in loaded.values())


def test_a_declared_parameter_is_part_of_the_identity():
    one = SentimentIntensityClassifier("/m", intensity_field="strength")
    two = SentimentIntensityClassifier("/m")
    assert "intensity_field='strength'" in repr(one)
    assert one.params()["intensity_field"] == "strength"
    assert one.model_spec.key != two.model_spec.key
    from dask.base import tokenize

    assert tokenize(one) != tokenize(two)
