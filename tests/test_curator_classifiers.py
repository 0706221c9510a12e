"""NeMo Curator 1.x's prompt task and complexity and FineMath classifiers, against references
written from the published model cards (architecture, pooling, heads and post-processing)."""

from __future__ import annotations

import json

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from dask_classify import (
    CheckpointError,
    FineMathClassifier,
    PromptTaskComplexityClassifier,
    classify_many,
)
from dask_classify.classifiers.prompt_complexity import OUTPUT_FIELDS
from dask_classify.engine.fast_attention import speed_up_deberta
from dask_classify.engine.loading import load_tokenizer
from dask_classify.errors import UsageError
from dask_classify.testing import build_tiny_prompt_complexity_checkpoint


@pytest.fixture(scope="module")
def prompts(data_dir) -> list[str]:
    """100 real questions (TREC): prompts as people write them."""
    lines = (data_dir / "trec6" / "train_5500_head100.label").read_text(encoding="latin-1")
    return [line.split(" ", 1)[1] for line in lines.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ptc_ckpt(tmp_path_factory, corpus, prompts):
    return build_tiny_prompt_complexity_checkpoint(tmp_path_factory.mktemp("ptc"),
                                                   texts=corpus[:600] + prompts)


def ptc_reference(folder, texts):
    """The model card's description written out: DeBERTa -> mean pooling over the attention
    mask -> eight linear heads; then NeMo Curator's rules, one text at a time.

    The backbone runs the attention forward the classifier runs (``speed_up_deberta``; it is
    compared with transformers' own in test_fast_attention), so that the comparison isolates
    the pooling, heads and rules: the calibrated heads amplify float noise of the backbone.
    """
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    backbone = AutoModel.from_config(AutoConfig.from_pretrained(config["base_model"])).eval()
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in weights.items()
                              if k.startswith("backbone.")})
    speed_up_deberta(backbone)
    tok = load_tokenizer(folder)
    targets = list(config["target_sizes"])
    rows, margins = [], []
    with torch.inference_mode():
        for text in texts:
            enc = tok(text, truncation=True, max_length=512, return_tensors="pt",
                      return_token_type_ids=False)
            hidden = backbone(**enc).last_hidden_state[0]
            pooled = hidden.mean(0)  # one unpadded row: every token counts
            logits = {t: weights[f"head_{i}.fc.weight"] @ pooled + weights[f"head_{i}.fc.bias"]
                      for i, t in enumerate(targets)}
            row = {}
            task = logits["task_type"]
            probs = torch.softmax(task, 0)
            order = torch.argsort(task, descending=True)[:2].tolist()
            margins.append(float(task[order[0]] - task[order[1]]))
            row["task_type_1"] = config["task_type_map"][str(order[0])]
            second = round(float(probs[order[1]]), 3)
            row["task_type_2"] = config["task_type_map"][str(order[1])] if second >= 0.1 else "NA"
            row["task_type_prob"] = round(float(probs[order[0]]), 3)
            row["raw:task_type_prob"] = float(probs[order[0]])
            for t in targets[1:]:
                p = torch.softmax(logits[t], 0).double().numpy()
                value = float(p @ np.array(config["weights_map"][t], dtype=float))
                value = value / config["divisor_map"][t]
                row[f"raw:{t}"] = value
                value = round(value, 4)
                if t == "number_of_few_shots" and value < 0.05:
                    value = 0.0
                row[t] = value
            total = (0.35 * row["creativity_scope"] + 0.25 * row["reasoning"]
                     + 0.15 * row["constraint_ct"] + 0.15 * row["domain_knowledge"]
                     + 0.05 * row["contextual_knowledge"] + 0.05 * row["number_of_few_shots"])
            row["raw:prompt_complexity_score"] = total
            row["prompt_complexity_score"] = round(total, 5)
            rows.append(row)
    return pd.DataFrame(rows), np.array(margins)


def _assert_same_rounded_columns(got, ref, margins, noise=2e-6):
    """Equal row for row, but where float noise may round a value sitting on a half step (or
    swap two task types whose logits nearly tie) either way."""
    clear = margins > 1e-3
    assert clear.mean() > 0.9
    assert got["task_type_1"][clear].tolist() == ref["task_type_1"][clear].tolist()
    assert (got["task_type_2"] == ref["task_type_2"]).mean() > 0.95
    # Rounded values are equal, except one rounding step apart where the unrounded value sits
    # on a half step (within batching noise), which float arithmetic may round either way;
    # the complexity score also moves when one of its rounded inputs did.
    inputs_moved = np.zeros(len(ref), dtype=bool)
    for name, decimals in [("task_type_prob", 3), *[(t, 4) for t in OUTPUT_FIELDS[4:]],
                           ("prompt_complexity_score", 5)]:
        diff = np.abs(got[name].to_numpy(dtype=float) - ref[name].to_numpy(dtype=float))
        raw = ref[f"raw:{name}"].to_numpy(dtype=float)
        scaled = raw * 10 ** decimals
        tolerance = noise * np.maximum(1.0, np.abs(raw))
        on_half = np.abs(scaled - np.floor(scaled) - 0.5) < tolerance * 10 ** decimals
        excused = on_half | (inputs_moved if name == "prompt_complexity_score" else False)
        assert diff.max() <= 1.01 * 10.0 ** -decimals, name
        assert ((diff < 1e-6) | excused).all(), (name, np.flatnonzero(~((diff < 1e-6) | excused)))
        assert (diff < 1e-6).mean() > 0.75, name
        if name in OUTPUT_FIELDS[4:]:
            inputs_moved |= diff > 1e-6


def test_prompt_complexity_equals_the_model_card_row_for_row(ptc_ckpt, prompts):
    texts = prompts + [None]
    df = pd.DataFrame({"text": texts}, index=np.arange(len(texts))[::-1] * 3)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    ref, margins = ptc_reference(ptc_ckpt, prompts)
    # one row per forward pass: the same computation as the reference
    single = PromptTaskComplexityClassifier(str(ptc_ckpt), model_inference_batch_size=1)(
        ddf).compute()
    assert list(single.columns) == ["text", *OUTPUT_FIELDS]
    assert single.index.tolist() == df.index.tolist()
    assert single.iloc[-1][OUTPUT_FIELDS].isna().all()
    got = single.iloc[:-1].reset_index(drop=True)
    _assert_same_rounded_columns(got, ref, margins)
    # length-sorted, padded batches (the default): batching noise is larger, ~1e-5 on the
    # calibrated heads' probabilities
    batched = PromptTaskComplexityClassifier(str(ptc_ckpt), model_inference_batch_size=16)(
        ddf).compute()
    _assert_same_rounded_columns(batched.iloc[:-1].reset_index(drop=True), ref, margins,
                                 noise=3e-5)
    # the rules show: "NA" seconds, several task types, the 0.05 floor, scores in [0, 1]
    assert "NA" in set(got["task_type_2"]) and got["task_type_1"].nunique() >= 3
    assert ((got["number_of_few_shots"] == 0) | (got["number_of_few_shots"] >= 0.05)).all()
    assert got["prompt_complexity_score"].between(0, 1).all()
    assert got["prompt_complexity_score"].dtype == np.float32


def test_prompt_complexity_with_other_classifiers_and_empty_partitions(ptc_ckpt, hf_ckpt,
                                                                       prompts):
    from dask_classify import DistributedDataClassifier

    df = pd.DataFrame({"text": [None] * 5 + prompts[:20]})
    ddf = dd.from_pandas(df, npartitions=5)  # the first partition has no text at all
    out = classify_many(ddf, [PromptTaskComplexityClassifier(str(ptc_ckpt)),
                              DistributedDataClassifier(hf_ckpt, label_field="topic")])
    meta_dtypes = out.dtypes.to_dict()
    result = out.compute()
    assert result.dtypes.to_dict() == meta_dtypes
    assert result["task_type_1"].iloc[:5].isna().all() and result["task_type_1"].iloc[5:].notna(
    ).all()


def test_prompt_complexity_refusals(ptc_ckpt, tmp_path):
    with pytest.raises(UsageError, match="filter_by is not supported"):
        PromptTaskComplexityClassifier(str(ptc_ckpt), filter_by=["Chatbot"])
    with pytest.raises(UsageError, match="label_field does not apply"):
        PromptTaskComplexityClassifier(str(ptc_ckpt), label_field="x")
    config = json.loads((ptc_ckpt / "config.json").read_text())
    config["target_sizes"] = dict(reversed(list(config["target_sizes"].items())))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(config))
    ddf = dd.from_pandas(pd.DataFrame({"text": ["hi"]}), npartitions=1)
    with pytest.raises(CheckpointError, match="in this order"):
        PromptTaskComplexityClassifier(str(bad))(ddf)  # on the client, before any worker


@pytest.mark.parametrize("crop", [10_000, 300])
def test_finemath_equals_the_model_card_row_for_row(regression_ckpt, imdb_texts, ag_news_texts,
                                                    crop):
    """Centre crop (Curator's), then a one-output regression head, clipped and rounded."""
    texts = imdb_texts[:30] + ag_news_texts[:30] + ["x" * 25_000 + " a long page"]
    clf = FineMathClassifier(str(regression_ckpt), center_crop_chars=crop)
    out = clf(dd.from_pandas(pd.DataFrame({"text": texts + [None]}), npartitions=3)).compute()
    assert list(out.columns) == ["text", "finemath_scores", "finemath_int_scores"]
    assert out["text"].iloc[:-1].tolist() == texts  # the text column is left alone
    model = AutoModelForSequenceClassification.from_pretrained(str(regression_ckpt)).eval()
    tok = load_tokenizer(regression_ckpt)
    raw = []
    with torch.inference_mode():
        for text in texts:
            mid = len(text) // 2
            text = text[max(0, mid - crop):min(mid + crop, len(text))]
            enc = tok(text, truncation=True, max_length=512, return_tensors="pt",
                      return_token_type_ids=False)
            raw.append(float(model(**enc).logits[0, 0]))
    raw = np.array(raw)
    scores = out["finemath_scores"].iloc[:-1].to_numpy(dtype=float)
    np.testing.assert_allclose(scores, np.clip(raw, 0, 5), rtol=1e-5, atol=1e-5)
    assert out["finemath_int_scores"].iloc[:-1].tolist() == [round(s) for s in scores]
    assert (raw < 0).any() or (raw > 5).any()  # clipping is exercised
    assert out.iloc[-1][["finemath_scores", "finemath_int_scores"]].isna().all()
    assert str(out["finemath_int_scores"].dtype) == "Int64"


def test_finemath_refusals(regression_ckpt, deberta_ckpt):
    with pytest.raises(UsageError, match="filter_by needs labels"):
        FineMathClassifier(str(regression_ckpt), filter_by=["3"])
    with pytest.raises(UsageError, match="center_crop_chars"):
        FineMathClassifier(str(regression_ckpt), center_crop_chars=-1)
    ddf = dd.from_pandas(pd.DataFrame({"text": ["x"]}), npartitions=1)
    with pytest.raises(UsageError, match="not a regression checkpoint"):
        FineMathClassifier(str(deberta_ckpt))(ddf)


@pytest.mark.gpu
def test_prompt_complexity_on_gpu_matches_cpu(ptc_ckpt, prompts):
    df = pd.DataFrame({"text": prompts})
    # fp32 on both sides: on a CPU with AMX (GPU hosts have it) device="cpu" would run bf16
    # autocast. The calibrated heads amplify bf16 noise too much for a comparison of the
    # mixed-precision run, which is checked for sense only.
    cpu = PromptTaskComplexityClassifier(str(ptc_ckpt), device="cpu", autocast=False)(df)
    gpu = PromptTaskComplexityClassifier(str(ptc_ckpt), device="cuda", autocast=False)(df)
    assert (gpu["task_type_1"] == cpu["task_type_1"]).mean() > 0.95
    np.testing.assert_allclose(gpu["prompt_complexity_score"], cpu["prompt_complexity_score"],
                               atol=2e-4)
    mixed = PromptTaskComplexityClassifier(str(ptc_ckpt), device="cuda")(df)  # bf16/fp16
    assert mixed[OUTPUT_FIELDS].notna().all().all()
    assert mixed["prompt_complexity_score"].between(0, 1).all()
