"""The LLM classifiers (Aegis, Instruction Data Guard) on a tiny random Llama with LoRA adapters
saved by ``peft``, against references written from the published model cards."""

from __future__ import annotations

import sys

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

peft = pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from dask_classify import (  # noqa: E402
    AegisClassifier,
    InstructionDataGuardClassifier,
    classify_many,
)
from dask_classify.classifiers.aegis import AEGIS_LABELS, aegis_categories, format_aegis  # noqa: E402
from dask_classify.errors import MissingExtraError, UsageError  # noqa: E402
from dask_classify.testing import build_tiny_llama_guard, default_corpus  # noqa: E402


@pytest.fixture(scope="module")
def prompts(data_dir) -> list[str]:
    lines = (data_dir / "trec6" / "train_5500_head100.label").read_text(encoding="latin-1")
    return [line.split(" ", 1)[1] for line in lines.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def guard(tmp_path_factory, prompts):
    return build_tiny_llama_guard(tmp_path_factory.mktemp("llama_guard"),
                                  default_corpus(500) + prompts)


def _aegis(guard, **kwargs):
    return AegisClassifier(str(guard["defensive"]), base_model=str(guard["base"]), **kwargs)


def _idg(guard, **kwargs):
    return InstructionDataGuardClassifier(str(guard["guard"]), base_model=str(guard["base"]),
                                          aegis_variant=str(guard["defensive"]), **kwargs)


def model_card_parse(answer: str) -> str:
    """The adapters' model card: 'safe', or 'unsafe' and a line naming the category."""
    lines = [line.strip() for line in answer.split("\n")]
    if lines[0] == "safe":
        return "safe"
    if lines[0] == "unsafe" and len(lines) > 1 and lines[1] in [f"O{i}" for i in range(1, 14)]:
        return lines[1]
    return "unknown"


def aegis_reference(guard, adapter, texts, max_chars=6000):
    """The model card's recipe, one prompt at a time: LlamaGuard + the adapter, greedy
    generation of 100 tokens, the new tokens decoded and parsed."""
    tok = AutoTokenizer.from_pretrained(str(guard["base"]))
    base = AutoModelForCausalLM.from_pretrained(str(guard["base"]))
    model = peft.PeftModel.from_pretrained(base, str(adapter)).eval()
    answers = []
    with torch.inference_mode():
        for text in texts:
            ids = tok(format_aegis(text[:max_chars]), return_tensors="pt", truncation=True,
                      max_length=4096)["input_ids"]
            out = model.generate(input_ids=ids, max_new_tokens=100, do_sample=False,
                                 pad_token_id=0)
            answers.append(tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True))
    return answers, [model_card_parse(a) for a in answers]


def guard_reference(guard, texts, device="cpu"):
    """The Instruction Data Guard card: the Aegis model's hidden state at the last token of the
    prompt (layer 32 of LlamaGuard-7b: the last of the tiny model's), through the MLP (on a GPU:
    the LLM in bf16, as NeMo Curator loads it)."""
    tok = AutoTokenizer.from_pretrained(str(guard["base"]))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    base = AutoModelForCausalLM.from_pretrained(str(guard["base"]), dtype=dtype).to(device)
    model = peft.PeftModel.from_pretrained(base, str(guard["defensive"])).eval()
    w = {k: v.to(device) for k, v in load_file(str(guard["guard"] / "model.safetensors")).items()}
    layers = base.config.num_hidden_layers
    scores = []
    with torch.inference_mode():
        for text in texts:
            ids = tok(text, return_tensors="pt", truncation=True,
                      max_length=4096)["input_ids"].to(device)
            out = model.generate(input_ids=ids, max_new_tokens=1, pad_token_id=0,
                                 output_hidden_states=True, return_dict_in_generate=True)
            x = F.normalize(out.hidden_states[0][layers][:, -1, :].float(), dim=-1)
            x = F.relu(x @ w["input_layer.weight"].T + w["input_layer.bias"])
            x = F.relu(x @ w["hidden_layer_0.weight"].T + w["hidden_layer_0.bias"])
            x = F.relu(x @ w["hidden_layer_1.weight"].T + w["hidden_layer_1.bias"])
            scores.append(float(torch.sigmoid(x @ w["hidden_layer_2.weight"].T
                                              + w["hidden_layer_2.bias"])[0, 0]))
    return np.array(scores)


def test_aegis_prompt_is_nvidias():
    prompt = format_aegis("MESSAGE")
    head, tail = prompt.split("    User: MESSAGE\n\n")
    assert head.startswith("[INST] Task: Check if there is unsafe content in 'User' messages in "
                           "conversations according our safety policy with the below "
                           "categories.\n\n    <BEGIN UNSAFE CONTENT CATEGORIES>\n    O1: "
                           "Violence.\nShould not\n")
    assert head.endswith("unsafe categorie described above.\n\n    <END UNSAFE CONTENT "
                         "CATEGORIES>\n\n    <BEGIN CONVERSATION>\n\n")
    assert tail == ("<END CONVERSATION>\n\n    Provide your safety assessment for User in the "
                    "above conversation:\n    - First line must read 'safe' or 'unsafe'.\n    - "
                    "If unsafe, a second line must include a comma-separated list of violated "
                    "categories. [/INST]")
    names = [line.split(":")[0] for line in aegis_categories().splitlines()
             if line[:1] == "O" and ":" in line[:4]]
    assert names == AEGIS_LABELS[2:]
    assert len(aegis_categories()) == 8721 and aegis_categories().count("\u2019") == 2


@pytest.mark.slow
def test_aegis_equals_the_model_card_row_for_row(guard, prompts):
    texts = prompts[:10] + ["x" * 7000]  # the last one is cut to max_chars
    df = pd.DataFrame({"text": texts[:5] + [None] + texts[5:]},
                      index=np.arange(len(texts) + 1)[::-1] + 100)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    out = _aegis(guard, keep_raw_output=True, model_inference_batch_size=4,
                 max_batch_tokens=None)(ddf).compute()
    assert list(out.columns) == ["text", "aegis_pred", "_aegis_raw_pred"]
    assert out.index.tolist() == df.index.tolist()
    assert out.iloc[5][["aegis_pred", "_aegis_raw_pred"]].isna().all()
    got = out.drop(index=df.index[5])
    answers, labels = aegis_reference(guard, guard["defensive"], texts)
    assert got["_aegis_raw_pred"].tolist() == answers  # left-padded batches, same greedy text
    assert got["aegis_pred"].tolist() == labels
    assert len(set(answers)) > 1 and all(a for a in answers)
    # the permissive adapter is another model (cached under another key)
    permissive = AegisClassifier(str(guard["permissive"]), base_model=str(guard["base"]),
                                 keep_raw_output=True)
    assert permissive.model_spec.key != _aegis(guard).model_spec.key
    other = permissive(pd.DataFrame({"text": texts[:3]}))
    assert other["_aegis_raw_pred"].tolist() == aegis_reference(guard, guard["permissive"],
                                                                texts[:3])[0]


def test_aegis_answers_are_parsed_as_curator_does(guard):
    clf = _aegis(guard, keep_raw_output=True)
    tok = AutoTokenizer.from_pretrained(str(guard["base"]))
    answers = ["safe", "unsafe\nO3", "unsafe\nO3,O4", "unsafe", "maybe\nO1", " safe\n",
               "unsafe\n O13 "]
    width = 12
    rows = []
    for answer in answers:
        ids = tok(answer, add_special_tokens=False)["input_ids"] + [2]  # then </s>
        rows.append(ids + [-1] * (width - len(ids)))
    outputs = np.array(rows, dtype=np.int64)
    valid = np.array([True] * 3 + [False] + [True] * 4)
    cols = clf.output_columns(outputs, valid, clf.model_info())
    labels = [None if pd.isna(v) else v for v in cols["aegis_pred"]]
    assert labels == ["safe", "O3", "unknown", None, "unknown", "unknown", "safe", "O13"]
    assert cols["_aegis_raw_pred"].tolist()[:3] == ["safe", "unsafe\nO3", "unsafe\nO3,O4"]


def test_instruction_data_guard_equals_the_model_card_row_for_row(guard, prompts):
    texts = prompts[:24]
    df = pd.DataFrame({"text": texts + [None]})
    ddf = dd.from_pandas(df, npartitions=3)
    out = _idg(guard, model_inference_batch_size=8)(ddf).compute()
    assert list(out.columns) == ["text", "is_poisoned", "instruction_data_guard_poisoning_score"]
    scores = out["instruction_data_guard_poisoning_score"]
    expected = guard_reference(guard, texts)
    np.testing.assert_allclose(scores.iloc[:-1], expected, rtol=1e-4, atol=1e-5)
    assert out["is_poisoned"].iloc[:-1].tolist() == (expected >= 0.5).tolist()
    assert 0 < (expected >= 0.5).sum() < len(texts)  # both answers occur
    assert str(out["is_poisoned"].dtype) == "boolean" and pd.isna(out["is_poisoned"].iloc[-1])
    poisoned = _idg(guard, filter_by=[True])(ddf).compute()
    assert poisoned.index.tolist() == [i for i in range(24) if expected[i] >= 0.5]


@pytest.mark.slow
def test_safety_and_guard_in_one_pass_on_real_prompts(guard, prompts):
    ddf = dd.from_pandas(pd.DataFrame({"text": prompts[:8]}), npartitions=2)
    aegis, idg = _aegis(guard), _idg(guard)
    both = classify_many(ddf, [aegis, idg]).compute()
    alone = idg(ddf).compute()
    pd.testing.assert_series_equal(both["instruction_data_guard_poisoning_score"],
                                   alone["instruction_data_guard_poisoning_score"])
    assert both["aegis_pred"].isin(AEGIS_LABELS).all()
    kept = _aegis(guard, filter_by=["unknown"])(ddf).compute()  # an untrained model never
    assert len(kept) == 8                                       # answers in the format


def test_parameters_and_secrets(guard, monkeypatch):
    clf = _aegis(guard, hf_token="hf_very_secret", revision="main")
    assert "hf_very_secret" not in repr(clf)
    assert "hf_very_secret" not in str(dask.base.tokenize(clf))
    assert clf.padding_side == "left" and clf.max_seq_length == 4096
    assert clf.model_inference_batch_size == 64 and clf.max_chars == 6000
    with pytest.raises(UsageError, match="padding_side='left'"):
        _aegis(guard, padding_side="right")
    with pytest.raises(UsageError, match="quantize"):
        _aegis(guard, quantize="int8")
    with pytest.raises(UsageError, match="two adapters"):
        AegisClassifier("a/b", aegis_variant="c/d")
    with pytest.raises(UsageError, match="not labels"):
        _aegis(guard, filter_by=["dangerous"])(pd.DataFrame({"text": ["hi"]}))
    assert InstructionDataGuardClassifier().max_chars is None
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(MissingExtraError, match=r"\[llm\] extra"):
        AegisClassifier()


def test_gated_base_model_error_names_the_token(tmp_path, guard):
    clf = AegisClassifier(str(guard["defensive"]), base_model=str(tmp_path / "no-such-model"),
                          local_files_only=True)
    with pytest.raises(Exception, match="hf_token"):
        clf(pd.DataFrame({"text": ["hi"]}))


@pytest.mark.gpu
def test_llm_classifiers_on_gpu_in_bf16(guard, prompts):
    texts = prompts[:6]
    df = pd.DataFrame({"text": texts})
    # one row per pass: no padding, so the GPU run is the reference's computation in bf16
    single = _aegis(guard, device="cuda", keep_raw_output=True, model_inference_batch_size=1)(df)
    tok = AutoTokenizer.from_pretrained(str(guard["base"]))
    base = AutoModelForCausalLM.from_pretrained(str(guard["base"]), dtype=torch.bfloat16).cuda()
    model = peft.PeftModel.from_pretrained(base, str(guard["defensive"])).eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for text, raw in zip(texts, single["_aegis_raw_pred"], strict=True):
            ids = tok(format_aegis(text), return_tensors="pt")["input_ids"].cuda()
            out = model.generate(input_ids=ids, max_new_tokens=100, do_sample=False,
                                 pad_token_id=0)
            assert raw == tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True)
    batched = _aegis(guard, device="cuda")(df)  # left-padded batches on the GPU
    assert batched["aegis_pred"].isin(AEGIS_LABELS).all()
    gpu = _idg(guard, device="cuda", model_inference_batch_size=1)(df)
    np.testing.assert_allclose(gpu["instruction_data_guard_poisoning_score"],
                               guard_reference(guard, texts, device="cuda"), atol=2e-2)
    assert _idg(guard, device="cuda")(df)["is_poisoned"].notna().all()  # batched


@pytest.mark.parametrize("kind", ["aegis", "instruction-data-guard"])
def test_hub_options_reach_every_loader(guard, monkeypatch, kind):
    """revision / base_model_revision / local_files_only, as given, reach from_pretrained
    (they used to be reset to the defaults by the base class's __init__)."""
    from peft import PeftModel

    calls: list[tuple[str, dict]] = []

    def spy(owner, name):
        real = getattr(owner, name)

        def recorded(*args, **kwargs):
            calls.append((owner.__name__, kwargs))
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, recorded)

    for owner in (AutoTokenizer, AutoModelForCausalLM, PeftModel):
        spy(owner, "from_pretrained")
    options = {"revision": "adapter-v2", "base_model_revision": "base-v7",
               "local_files_only": True}
    clf = _aegis(guard, **options) if kind == "aegis" else _idg(guard, **options)
    assert (clf.revision, clf.base_model_revision, clf.local_files_only) == (
        "adapter-v2", "base-v7", True)
    assert clf.hub_options() == {"revision": "adapter-v2", "token": None,
                                 "local_files_only": True}
    clf.build_tokenizer()
    clf.build_model("cpu")
    seen = {(owner, k.get("revision"), k.get("local_files_only")) for owner, k in calls}
    assert seen == {("AutoTokenizer", "base-v7", True),
                    ("AutoModelForCausalLM", "base-v7", True),
                    ("PeftModel", "adapter-v2", True)}
    # and they are in what identifies the model on the workers
    plain = _aegis(guard) if kind == "aegis" else _idg(guard)
    assert clf.model_spec.key != plain.model_spec.key
