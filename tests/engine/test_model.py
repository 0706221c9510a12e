"""Checkpoint format, loading and safety (model.py)."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dask_classify import CheckpointError, Deberta
from dask_classify.checkpoint import model_info
from dask_classify.engine.loading import load_model, load_tokenizer, save_checkpoint
from dask_classify.engine.model import HFSequenceClassifier


def _encode(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    return enc["input_ids"], enc["attention_mask"]


def test_nvidia_checkpoint_layout(deberta_ckpt):
    config = json.loads((deberta_ckpt / "config.json").read_text())
    assert {"base_model", "fc_dropout", "id2label", "label2id"} <= set(config)
    assert config["id2label"] == {"0": "High", "1": "Medium", "2": "Low"}
    assert config["label2id"] == {"High": 0, "Medium": 1, "Low": 2}
    keys = set(load_file(str(deberta_ckpt / "model.safetensors")))
    assert {"fc.weight", "fc.bias"} <= keys
    assert all(k.startswith(("model.", "fc.")) for k in keys)
    assert (deberta_ckpt / "tokenizer.json").is_file()


def test_round_trip_same_outputs(deberta_ckpt, tmp_path):
    model, info = load_model(deberta_ckpt)
    tok = load_tokenizer(deberta_ckpt)
    ids, mask = _encode(tok, ["a charming and moving film", "dull"])
    before = model(ids, mask)
    save_checkpoint(model, tok, tmp_path / "again")
    again = Deberta.from_pretrained(tmp_path / "again").eval()
    assert torch.allclose(before, again(ids, mask), atol=0, rtol=0)
    assert again.id2label == {0: "High", 1: "Medium", 2: "Low"}
    assert info.kind == "deberta" and info.labels == ["High", "Medium", "Low"]
    assert torch.allclose(before.sum(-1), torch.ones(2))


def test_nvidia_config_without_backbone_config_builds_backbone_from_base_model(
    deberta_ckpt, tmp_path
):
    """NVIDIA's config.json has only base_model: its config is read, its weights never are."""
    backbone_dir = tmp_path / "backbone"
    backbone_dir.mkdir()
    config = json.loads((deberta_ckpt / "config.json").read_text())
    backbone = dict(config.pop("backbone_config"))
    config.pop("num_output_layers")
    (backbone_dir / "config.json").write_text(json.dumps(backbone))  # no weights in this folder
    ckpt = tmp_path / "nvidia"
    shutil.copytree(deberta_ckpt, ckpt)
    config["base_model"] = str(backbone_dir)
    (ckpt / "config.json").write_text(json.dumps(config))
    model, _ = load_model(ckpt)
    reference, _ = load_model(deberta_ckpt)
    tok = load_tokenizer(ckpt)
    ids, mask = _encode(tok, ["the same weights give the same answer"])
    assert torch.equal(model(ids, mask), reference(ids, mask))


def test_unreachable_base_model_is_a_clear_error(deberta_ckpt, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(deberta_ckpt, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    del config["backbone_config"]
    config["base_model"] = "microsoft/deberta-v3-base"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="base_model 'microsoft/deberta-v3-base'"):
        load_model(ckpt)


def test_hf_folder_loads_as_sequence_classifier(hf_ckpt):
    model, info = load_model(hf_ckpt)
    assert isinstance(model, HFSequenceClassifier)
    assert info.kind == "hf" and not info.regression
    assert info.labels == ["World", "Sports", "Business", "Sci/Tech"]


def test_regression_folder_is_detected(regression_ckpt):
    info = model_info(regression_ckpt)
    assert info.regression


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "model.safetensors").unlink(), "has no weights"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), "not a readable safetensors"),
    ],
)
def test_broken_checkpoints_name_the_problem(deberta_ckpt, tmp_path, damage, message):
    ckpt = tmp_path / "broken"
    shutil.copytree(deberta_ckpt, ckpt)
    damage(ckpt)
    with pytest.raises(CheckpointError, match=message):
        load_model(ckpt)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("fc.bias"), "missing keys \\['fc.bias'\\]"),
        (lambda s: s.update({"extra.weight": torch.zeros(1)}),
         "unexpected keys \\['extra.weight'\\]"),
        (lambda s: s.update({"fc.weight": s["fc.weight"][:2]}), "size mismatch for fc.weight"),
    ],
)
def test_mismatched_weights_are_refused(deberta_ckpt, tmp_path, edit, message):
    ckpt = tmp_path / "mismatch"
    shutil.copytree(deberta_ckpt, ckpt)
    state = load_file(str(ckpt / "model.safetensors"))
    edit(state)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError, match=message):
        load_model(ckpt)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused(deberta_ckpt, tmp_path):
    ckpt = tmp_path / "evil"
    shutil.copytree(deberta_ckpt, ckpt)
    state = load_file(str(ckpt / "model.safetensors"))
    (ckpt / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    payload = dict(state)
    payload["fc.bias"] = _Exploit(marker)
    with open(ckpt / "pytorch_model.bin", "wb") as fh:
        pickle.dump(payload, fh)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(ckpt)
    assert not marker.exists(), "the pickle's code ran"


def test_plain_weights_pickle_loads(deberta_ckpt, tmp_path):
    ckpt = tmp_path / "pickled"
    shutil.copytree(deberta_ckpt, ckpt)
    state = load_file(str(ckpt / "model.safetensors"))
    (ckpt / "model.safetensors").unlink()
    torch.save(state, ckpt / "pytorch_model.bin")
    model, _ = load_model(ckpt)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_multi_layer_head_round_trips(tmp_path, corpus):
    from dask_classify.testing import build_tiny_deberta_checkpoint

    ckpt = build_tiny_deberta_checkpoint(tmp_path / "mlp", ["a", "b"], tokenizer="bert",
                                         texts=corpus[:500], num_output_layers=3)
    model, _ = load_model(ckpt)
    assert sum(isinstance(m, torch.nn.Linear) for m in model.mlp) == 2
    keys = set(load_file(str(ckpt / "model.safetensors")))
    assert {"mlp.0.weight", "mlp.3.weight", "fc.weight"} <= keys


@pytest.mark.parametrize("kind", ["bert", "deberta"])
def test_test_checkpoints_are_reproducible(tmp_path, kind):
    """The same corpus and seed give the same tokenizer and the same model, run after run.

    The tokenizers WordPiece trainer breaks frequency ties in hash order; a fixture built on it
    gave another vocabulary (and other predictions) on every run, which made CI flaky.
    """
    from dask_classify.testing import build_tiny_hf_checkpoint, default_corpus

    corpus = default_corpus(3000)
    a = build_tiny_hf_checkpoint(tmp_path / "a", tokenizer=kind, texts=corpus, seed=3)
    b = build_tiny_hf_checkpoint(tmp_path / "b", tokenizer=kind, texts=corpus, seed=3)
    tok_a, tok_b = load_tokenizer(a), load_tokenizer(b)
    assert tok_a.get_vocab() == tok_b.get_vocab() and len(tok_a) > 1500
    text = "an unpredictable, beautifully acted film"
    assert tok_a(text)["input_ids"] == tok_b(text)["input_ids"]
    # subword pieces, not characters: a realistic sequence length for the test models
    assert len(tok_a(text)["input_ids"]) <= 14
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
