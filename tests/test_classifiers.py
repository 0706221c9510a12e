"""Concrete classifiers: NeMo Curator's ids and defaults, and FineWeb-edu post-processing."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch

from dask_classify import (
    ContentTypeClassifier,
    DomainClassifier,
    FineWebEduClassifier,
    FineWebMixtralEduClassifier,
    FineWebNemotronEduClassifier,
    MultilingualDomainClassifier,
    QualityClassifier,
)
from dask_classify.engine.loading import load_model, load_tokenizer


@pytest.mark.parametrize(
    "cls, model_id, label_field, max_chars, max_len",
    [
        (QualityClassifier, "nvidia/quality-classifier-deberta", "quality_pred", 6000, 1024),
        (DomainClassifier, "nvidia/domain-classifier", "domain_pred", 2000, 512),
        (MultilingualDomainClassifier, "nvidia/multilingual-domain-classifier",
         "multilingual_domain_pred", 2000, 512),
        (ContentTypeClassifier, "nvidia/content-type-classifier-deberta", "content_pred", 6000,
         1024),
    ],
)
def test_nvidia_classifier_defaults(cls, model_id, label_field, max_chars, max_len):
    clf = cls()
    assert (clf.model_identifier, clf.label_field, clf.max_chars, clf.max_seq_length) == (
        model_id, label_field, max_chars, max_len)
    assert clf.text_field == "text" and clf.score_field is None
    custom = cls(model_identifier="/local/copy", cache_dir="/cache", max_chars=10,
                 score_field="p")
    assert (custom.model_identifier, custom.cache_dir, custom.max_chars, custom.score_field) == (
        "/local/copy", "/cache", 10, "p")


def test_quality_classifier_on_a_local_nvidia_format_checkpoint(deberta_ckpt, ag_news_texts):
    texts = ag_news_texts[:200]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=2)
    out = QualityClassifier(model_identifier=str(deberta_ckpt), score_field="quality_prob",
                            filter_by=["High", "Medium"])(ddf).compute()
    assert set(out["quality_pred"]) <= {"High", "Medium"} and len(out) > 0
    assert all(len(p) == 3 for p in out["quality_prob"])


def _raw_scores(ckpt, texts):
    model, _ = load_model(ckpt)
    tok = load_tokenizer(ckpt)
    with torch.inference_mode():
        return np.array([
            model(**{k: v for k, v in tok(t, return_tensors="pt", truncation=True,
                                          max_length=512).items()
                     if k in ("input_ids", "attention_mask")})[0, 0].item()
            for t in texts
        ])


def test_fineweb_edu_post_processing(regression_ckpt, ag_news_texts):
    texts = ag_news_texts[:300] + [None]
    ddf = dd.from_pandas(pd.DataFrame({"text": texts}), npartitions=3)
    out = FineWebEduClassifier(model_identifier=str(regression_ckpt))(ddf).compute()
    assert list(out.columns) == ["text", "fineweb-edu-score-float", "fineweb-edu-score-int",
                                 "fineweb-edu-score-label"]
    raw = _raw_scores(regression_ckpt, texts[:-1])
    assert (raw < 0).any() and (raw > 5).any() and (raw > 2.5).any() and (raw < 2.5).any()
    clipped = np.clip(raw, 0, 5)
    # raw scores are unbounded (here up to ~8): fp32 batching noise scales with them, so 1e-5 is
    # relative as well as absolute
    np.testing.assert_allclose(out["fineweb-edu-score-float"].iloc[:-1], clipped, rtol=1e-5,
                               atol=1e-5)
    # int and label derive from the reported score (comparing them with `clipped` could flip on
    # a score within fp32 noise of x.5 or 2.5)
    scores = out["fineweb-edu-score-float"].iloc[:-1].to_numpy(dtype=float)
    assert out["fineweb-edu-score-int"].iloc[:-1].tolist() == np.rint(scores).astype(int).tolist()
    assert out["fineweb-edu-score-label"].iloc[:-1].tolist() == [
        "high_quality" if s >= 2.5 else "low_quality" for s in scores]
    last = out.iloc[-1]
    assert pd.isna(last["fineweb-edu-score-float"]) and pd.isna(last["fineweb-edu-score-int"])
    assert pd.isna(last["fineweb-edu-score-label"])


def test_fineweb_int_score_rounds_half_to_even(regression_ckpt):
    clf = FineWebEduClassifier(model_identifier=str(regression_ckpt))
    outputs = np.array([[0.5], [1.5], [2.5], [3.5], [-1.0], [7.0], [2.49]], dtype=np.float32)
    cols = clf.output_columns(outputs, np.ones(7, dtype=bool), None)
    assert cols["fineweb-edu-score-int"].tolist() == [0, 2, 2, 4, 0, 5, 2]
    assert cols["fineweb-edu-score-label"].tolist() == [
        "low_quality", "low_quality", "high_quality", "high_quality", "low_quality",
        "high_quality", "low_quality"]


def test_fineweb_filter_and_variants(regression_ckpt, ag_news_texts):
    ddf = dd.from_pandas(pd.DataFrame({"text": ag_news_texts[:200]}), npartitions=2)
    high = FineWebEduClassifier(model_identifier=str(regression_ckpt),
                                filter_by=["high_quality"])(ddf).compute()
    assert len(high) and (high["fineweb-edu-score-float"] >= 2.5).all()
    with pytest.raises(ValueError, match="not labels"):
        FineWebEduClassifier(model_identifier=str(regression_ckpt), filter_by=["great"])(ddf)
    mixtral = FineWebMixtralEduClassifier(model_identifier=str(regression_ckpt))
    nemotron = FineWebNemotronEduClassifier(model_identifier=str(regression_ckpt),
                                            label_field=None)
    assert mixtral.output_fields == ["fineweb-mixtral-edu-score-float",
                                     "fineweb-mixtral-edu-score-int",
                                     "fineweb-mixtral-edu-score-label"]
    assert nemotron.output_fields == ["fineweb-nemotron-edu-score-float",
                                      "fineweb-nemotron-edu-score-int"]
    assert (mixtral.model_inference_batch_size, nemotron.model_inference_batch_size) == (1024,
                                                                                         1024)
    assert FineWebMixtralEduClassifier().model_identifier == (
        "nvidia/nemocurator-fineweb-mixtral-edu-classifier")
    assert FineWebNemotronEduClassifier().model_identifier == (
        "nvidia/nemocurator-fineweb-nemotron-4-edu-classifier")
    out = nemotron(ddf).compute()
    assert list(out.columns) == ["text", *nemotron.output_fields]


def test_fineweb_refuses_a_classification_checkpoint(deberta_ckpt):
    ddf = dd.from_pandas(pd.DataFrame({"text": ["x"]}), npartitions=1)
    with pytest.raises(ValueError, match="not a regression checkpoint"):
        FineWebEduClassifier(model_identifier=str(deberta_ckpt))(ddf)


CURATOR_1X = [  # class name, model id, columns (NeMo Curator 1.x defaults)
    ("QualityClassifier", "nvidia/quality-classifier-deberta", ["quality_pred"]),
    ("DomainClassifier", "nvidia/domain-classifier", ["domain_pred"]),
    ("MultilingualDomainClassifier", "nvidia/multilingual-domain-classifier",
     ["multilingual_domain_pred"]),
    ("ContentTypeClassifier", "nvidia/content-type-classifier-deberta", ["content_pred"]),
    ("FineWebEduClassifier", "HuggingFaceFW/fineweb-edu-classifier",
     ["fineweb-edu-score-float", "fineweb-edu-score-int", "fineweb-edu-score-label"]),
    ("FineWebMixtralEduClassifier", "nvidia/nemocurator-fineweb-mixtral-edu-classifier",
     ["fineweb-mixtral-edu-score-float", "fineweb-mixtral-edu-score-int",
      "fineweb-mixtral-edu-score-label"]),
    ("FineWebNemotronEduClassifier", "nvidia/nemocurator-fineweb-nemotron-4-edu-classifier",
     ["fineweb-nemotron-edu-score-float", "fineweb-nemotron-edu-score-int",
      "fineweb-nemotron-edu-score-label"]),
    ("PromptTaskComplexityClassifier", "nvidia/prompt-task-and-complexity-classifier",
     ["prompt_complexity_score", "task_type_1", "task_type_2", "task_type_prob",
      "creativity_scope", "reasoning", "contextual_knowledge", "number_of_few_shots",
      "domain_knowledge", "no_label_reason", "constraint_ct"]),
    ("AegisClassifier", "nvidia/Aegis-AI-Content-Safety-LlamaGuard-Defensive-1.0",
     ["aegis_pred"]),
    ("InstructionDataGuardClassifier", "nvidia/instruction-data-guard",
     ["is_poisoned", "instruction_data_guard_poisoning_score"]),
    ("FineMathClassifier", "HuggingFaceTB/finemath-classifier",
     ["finemath_scores", "finemath_int_scores"]),
]


@pytest.mark.parametrize("name, model_id, columns", CURATOR_1X)
def test_every_curator_classifier_is_here_with_its_columns(name, model_id, columns):
    import dask_classify
    from dask_classify.cli import CLASSIFIERS

    if name in ("AegisClassifier", "InstructionDataGuardClassifier"):
        pytest.importorskip("peft")
    clf = getattr(dask_classify, name)()
    assert (clf.model_identifier, clf.output_fields) == (model_id, columns)
    assert name in CLASSIFIERS.values()


def test_cli_token_reaches_the_gated_base_model_or_the_hub_model():
    pytest.importorskip("peft")
    from dask_classify.cli import build_parser, make_classifier

    base = ["classify", "x.jsonl", "-o", "out", "--token", "hf_x"]
    clf = make_classifier(build_parser().parse_args([*base, "--classifier", "aegis"]))
    assert clf._hf_token == "hf_x" and "hf_x" not in repr(clf)
    quality = make_classifier(build_parser().parse_args([*base, "--classifier", "quality"]))
    assert quality.token == "hf_x" and "hf_x" not in repr(quality)  # a gated hub checkpoint
    assert quality.model_spec.hub.token == "hf_x"  # what the workers download with
