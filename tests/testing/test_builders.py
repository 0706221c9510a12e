"""Unit tests of :mod:`dask_classify.testing`: its layers, its re-exports and private helpers.

The public builders are checked by their doctests (``pytest dask_classify/testing
--doctest-modules``) and by every test that uses them.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch

import dask_classify.testing as testing
from dask_classify.errors import UsageError
from dask_classify.testing import checkpoints, corpus, published, tokenizers

PACKAGE = Path(testing.__file__).resolve().parent
#: The package's modules, lowest layer first: each may import only the ones before it.
LAYERS = ["corpus", "tokenizers", "checkpoints", "published"]
#: What the rest of the repository imports from ``dask_classify.testing`` (tests, benchmarks,
#: notebooks, recipes, doctests).
USED_NAMES = [
    "build_llama_tokenizer", "build_tiny_deberta_checkpoint", "build_tiny_encoder",
    "build_tiny_hf_checkpoint", "build_tiny_llama_guard",
    "build_tiny_prompt_complexity_checkpoint", "build_tokenizer", "calibrate_head",
    "default_corpus", "prompt_complexity_config", "tiny_backbone_config",
]
#: Outside the testing package, its modules import only these (and their submodules).
ALLOWED_OUTSIDE = ("dask_classify.errors", "dask_classify.checkpoint", "dask_classify.model",
                   "dask_classify.engine", "dask_classify.classifiers")


def _package_imports(module: str) -> set[str]:
    """The ``dask_classify`` modules that ``dask_classify/testing/<module>.py`` imports."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] == "dask_classify"}


def test_every_module_is_in_a_layer():
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted([*LAYERS, "__init__"])


@pytest.mark.parametrize("module", LAYERS)
def test_modules_import_only_lower_layers(module):
    lower = {f"dask_classify.testing.{m}" for m in LAYERS[: LAYERS.index(module)]}
    for name in _package_imports(module):
        if name.startswith("dask_classify.testing"):
            assert name in lower, f"{module} imports {name}, not a lower layer"
        else:
            assert name.startswith(ALLOWED_OUTSIDE), f"{module} imports {name}"


@pytest.mark.parametrize("name", USED_NAMES)
def test_used_names_are_exported(name):
    assert name in testing.__all__
    value = getattr(testing, name)
    assert importlib.import_module(value.__module__).__name__.startswith("dask_classify.testing.")


def test_all_names_exist():
    missing = [name for name in testing.__all__ if not hasattr(testing, name)]
    assert missing == []


def test_default_corpus_is_the_packaged_file_and_six_lines():
    assert corpus.CORPUS_FILE == PACKAGE.parent / "data" / "sst2_sentences.txt"
    texts = corpus.default_corpus()
    assert len(texts) == 2006
    assert texts[-6:] == corpus._FALLBACK_CORPUS
    assert corpus.default_corpus(limit=0) == corpus._FALLBACK_CORPUS


def test_texts_or_default():
    assert corpus._texts_or_default(iter(["a", "b"])) == ["a", "b"]
    assert corpus._texts_or_default(None) == corpus.default_corpus()


def test_calibration_sample_takes_every_seventh_text_of_a_large_corpus():
    assert corpus._calibration_sample(list("abc")) == list("abc")
    texts = [str(i) for i in range(70)]
    assert corpus._calibration_sample(texts) == [str(i) for i in range(0, 70, 7)]


def test_unknown_tokenizer_kind_is_refused_before_writing(tmp_path):
    with pytest.raises(UsageError, match="'deberta' or 'bert'"):
        tokenizers.build_tokenizer(tmp_path / "tok", "gpt2", ["a b"])
    assert not (tmp_path / "tok").exists()


def test_wordpiece_vocab_is_deterministic_and_covers_every_character():
    texts = ["the running dog", "a dog runs", "Running, the cats ran !"] * 3
    vocab = tokenizers._wordpiece_vocab(texts, 2000)
    assert vocab == tokenizers._wordpiece_vocab(texts, 2000)
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = {c for t in texts for c in t.lower() if not c.isspace()}
    assert chars <= set(vocab) and {"##" + c for c in chars} <= set(vocab)
    assert len(vocab) == len(set(vocab))
    assert not any(t.startswith("\u2581") for t in vocab)


def test_wordpiece_vocab_keeps_every_character_under_a_small_limit():
    vocab = tokenizers._wordpiece_vocab(["abc def", "abd cef", "fed cba"] * 5, 12)
    assert len(vocab) == 5 + 2 * len(set("abcdef"))


def test_major_transformers_is_the_installed_major_version():
    import transformers

    assert tokenizers._major_transformers() == int(transformers.__version__.split(".")[0])


def test_head_config():
    assert checkpoints._head_config(["x"], True, "ignored") == {
        "num_labels": 1, "problem_type": "regression", "id2label": {0: "score"},
        "label2id": {"score": 0}}
    assert checkpoints._head_config(None, False, None) == {
        "id2label": {0: "LABEL_0", 1: "LABEL_1"}, "label2id": {"LABEL_0": 0, "LABEL_1": 1}}
    multi = checkpoints._head_config(["a", "b", "c"], False, "multi_label_classification")
    assert multi["problem_type"] == "multi_label_classification"
    assert multi["id2label"] == {0: "a", 1: "b", 2: "c"}


class _Ids(torch.nn.Module):
    """Embeds token ids and feeds their mean to ``head``."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask):
        return self.head(self.embed(input_ids).mean(1))


def _fake_tokenizer(texts, **kwargs):
    ids = torch.tensor([[len(t) % 10, 1] for t in texts])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_head_inputs_pad_a_small_sample_with_the_builtin_lines():
    model = _Ids()
    x = checkpoints._head_inputs(model, model.head, _fake_tokenizer, ["a", "bb"], 8)
    assert x.shape == (2 + len(corpus._FALLBACK_CORPUS), 4)
    assert not model.head._forward_hooks


def test_head_inputs_take_at_most_256_texts():
    model = _Ids()
    x = checkpoints._head_inputs(model, model.head, _fake_tokenizer, ["abc"] * 300, 8)
    assert x.shape == (256, 4)


def test_calibrated_head_has_the_asked_mean_and_spread():
    torch.manual_seed(0)
    model = _Ids()
    texts = [f"text {'x' * i}" for i in range(20)]
    checkpoints.calibrate_head(model, model.head, _fake_tokenizer, texts, center=1.0, spread=3.0)
    with torch.no_grad():
        out = model(**_fake_tokenizer(texts)).double()
    assert out.mean(0).tolist() == pytest.approx([1.0, 1.0])
    assert out.std(0).tolist() == pytest.approx([3.0, 3.0])


def test_padded_copy_pads_left_with_unk_and_leaves_the_original(tmp_path):
    tok = tokenizers.build_llama_tokenizer(tmp_path, ["is this prompt safe ?"] * 20)
    padded = published._padded_copy(tok)
    assert padded.pad_token == padded.unk_token == "<unk>"
    assert padded.padding_side == "left"
    assert tok.pad_token is None
