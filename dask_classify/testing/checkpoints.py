"""Tiny random backbones and classifier checkpoints: NVIDIA DeBERTa format, plain HF, encoders.

Every builder trains a real tokenizer (:mod:`.tokenizers`) on the texts given and saves a randomly
initialised model through the same code path the trainer uses, so a tiny checkpoint exercises
exactly what a real one does. Imports :mod:`dask_classify.model`, :mod:`.corpus` and
:mod:`.tokenizers`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from dask_classify.testing.corpus import _FALLBACK_CORPUS, _calibration_sample, _texts_or_default
from dask_classify.testing.tokenizers import MODEL_MAX_LENGTH, build_tokenizer

_DEBERTA_V3_ATTENTION = dict(relative_attention=True, position_buckets=256,
                             pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
                             share_att_key=True, position_biased_input=False, type_vocab_size=0)


def tiny_backbone_config(model_type: str = "deberta-v2", vocab_size: int = 2000,
                         pad_token_id: int = 0, **overrides: Any) -> dict[str, Any]:
    """A tiny backbone config (hidden 64, 2 layers, about 0.2M parameters) as a plain dict.

    The weights are drawn with ``initializer_range`` 0.3, wider than the usual 0.02, so a random
    encoder maps different texts to clearly different [CLS] vectors.

    Parameters
    ----------
    model_type : {"deberta-v2", "bert"} or str, default "deberta-v2"
        A transformers model type; ``"deberta-v2"`` gets DeBERTa-v3's relative attention
        settings.
    vocab_size : int, default 2000
        Size of the embedding table (use ``len(tokenizer)``).
    pad_token_id : int, default 0
        The tokenizer's padding id.
    **overrides
        Any other config key (e.g. ``initializer_range``, ``num_hidden_layers``); replaces the
        defaults.

    Returns
    -------
    dict
        ``AutoConfig.for_model(...).to_dict()``, including ``model_type``; usable as a
        checkpoint's ``backbone_config``.

    Examples
    --------
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = tiny_backbone_config("bert", vocab_size=100, num_hidden_layers=1)
    >>> cfg["model_type"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    ('bert', 64, 1, 100)
    """
    from transformers import AutoConfig

    common = dict(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=128, pad_token_id=pad_token_id,
                  max_position_embeddings=MODEL_MAX_LENGTH,
                  # With the usual 0.02 the head would need a large gain, and float rounding
                  # would decide labels.
                  initializer_range=0.3)
    if model_type == "deberta-v2":
        common.update(_DEBERTA_V3_ATTENTION)
    common.update(overrides)
    return AutoConfig.for_model(model_type, **common).to_dict()


def calibrate_head(model: torch.nn.Module, head: torch.nn.Linear, tokenizer: Any,
                   texts: Sequence[str], seed: int = 0, center: float = 0.0,
                   spread: float = 2.0, max_length: int = 64) -> None:
    """Re-draw ``head`` so its outputs on ``texts`` have mean ``center`` and std ``spread``.

    A head drawn at random over a random encoder gives near-uniform probabilities and one label
    for everything. A random projection standardised over real texts gives varied labels with
    clear margins, like a trained model, so tests can tell a right answer from a wrong one.

    Parameters
    ----------
    model : torch.nn.Module
        The model holding ``head``; called as ``model(input_ids=..., attention_mask=...)``.
    head : torch.nn.Linear
        The layer to re-draw, in place (its input is what ``model`` feeds it).
    tokenizer : transformers tokenizer
        Encodes ``texts`` (it must pad).
    texts : sequence of str
        Calibration sample (the first 256 are used; six built-in lines are added to fewer
        than 8).
    seed : int, default 0
        Seed of the random projection.
    center, spread : float, default 0.0 and 2.0
        Mean and standard deviation of each output over the sample.
    max_length : int, default 64
        Truncation length of the sample.

    Returns
    -------
    None
        ``head.weight`` and ``head.bias`` are overwritten.

    Examples
    --------
    >>> import tempfile, torch
    >>> from dask_classify.model import load_model, load_tokenizer
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint, calibrate_head
    >>> texts = ["good film", "bad film", "a fine day", "rain again", "so dull", "loved it",
    ...          "what a mess", "pure joy"]
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["a", "b"], tokenizer="bert",
    ...                                        texts=texts)
    >>> model, _ = load_model(folder)
    >>> tok = load_tokenizer(folder)
    >>> calibrate_head(model, model.fc, tok, texts, center=3.0, spread=1.0)
    >>> enc = tok(texts, padding=True, return_tensors="pt")
    >>> with torch.no_grad():
    ...     out = model.logits(enc["input_ids"], enc["attention_mask"])
    >>> round(float(out.mean()), 3)
    3.0
    """
    x = _head_inputs(model, head, tokenizer, texts, max_length).double()
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(head.out_features, head.in_features, generator=gen, dtype=torch.float64)
    raw = x @ proj.T
    mu, sd = raw.mean(0), raw.std(0).clamp_min(1e-12)
    with torch.no_grad():
        head.weight.copy_((proj * (spread / sd)[:, None]).to(head.weight.dtype))
        head.bias.copy_((center - mu * spread / sd).to(head.bias.dtype))


def _head_inputs(model: torch.nn.Module, head: torch.nn.Linear, tokenizer: Any,
                 texts: Sequence[str], max_length: int) -> torch.Tensor:
    """What ``head`` receives when ``model`` runs on a sample of ``texts``, one row per input."""
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    sample = list(texts)[:256]
    if len(sample) < 8:
        sample += list(_FALLBACK_CORPUS)
    try:
        with torch.no_grad():
            enc = tokenizer(sample, padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt", return_token_type_ids=False)
            model.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    finally:
        hook.remove()
    return feats[0].reshape(-1, head.in_features)


def _model_type(tokenizer: str) -> str:
    """The transformers model type that goes with a :func:`build_tokenizer` kind."""
    return "deberta-v2" if tokenizer == "deberta" else "bert"


def build_tiny_encoder(folder: str | os.PathLike, kind: str = "bert",
                       texts: Iterable[str] | None = None, seed: int = 0,
                       **overrides: Any) -> Path:
    """A tiny "pretrained" encoder folder (tokenizer and random weights) to train from.

    The weights use the usual 0.02 initializer range (unless overridden), which trains well.

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    kind : {"bert", "deberta"}, default "bert"
        Tokenizer and backbone type (see :func:`build_tokenizer`).
    texts : iterable of str, optional
        Tokenizer training corpus; default :func:`default_corpus`.
    seed : int, default 0
        Torch seed for the random weights.
    **overrides
        Backbone config keys (see :func:`tiny_backbone_config`), e.g. ``hidden_size=128``.

    Returns
    -------
    pathlib.Path
        ``folder``, holding the tokenizer and an ``AutoModel`` (``config.json``,
        ``model.safetensors``): pass it as ``model.language_model.pretrained_model_name``.

    Examples
    --------
    >>> import json, tempfile
    >>> from dask_classify.testing import build_tiny_encoder
    >>> folder = build_tiny_encoder(tempfile.mkdtemp(), "bert", texts=["a good film", "bad"],
    ...                             hidden_size=32)
    >>> json.loads((folder / "config.json").read_text())["hidden_size"]
    32
    """
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    tok = build_tokenizer(folder, kind, _texts_or_default(texts))
    model_type = _model_type(kind)
    overrides.setdefault("initializer_range", 0.02)
    cfg = tiny_backbone_config(model_type, len(tok), tok.pad_token_id, **overrides)
    cfg.pop("model_type")
    torch.manual_seed(seed)
    AutoModel.from_config(AutoConfig.for_model(model_type, **cfg)).save_pretrained(str(folder))
    return folder


def build_tiny_deberta_checkpoint(folder: str | os.PathLike, labels: Sequence[str],
                                  tokenizer: str = "deberta", texts: Iterable[str] | None = None,
                                  seed: int = 0, num_output_layers: int = 1,
                                  vocab_size: int = 2000) -> Path:
    """A tiny NVIDIA-format checkpoint (``config.json`` with ``base_model``, ``fc.*`` keys).

    The head is calibrated on ``texts`` (:func:`calibrate_head`). The backbone's config is
    embedded (``backbone_config``), so the folder loads offline.

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    labels : sequence of str
        Label names in id order.
    tokenizer : {"deberta", "bert"}, default "deberta"
        Tokenizer kind (see :func:`build_tokenizer`); also picks a DeBERTa-v2 or BERT backbone.
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default :func:`default_corpus`.
    seed : int, default 0
        Seed of the weights and the head.
    num_output_layers : int, default 1
        Head layers (see :class:`dask_classify.Deberta`).
    vocab_size : int, default 2000
        Upper bound on the tokenizer's vocabulary.

    Returns
    -------
    pathlib.Path
        ``folder``, loadable with :func:`dask_classify.load_model` and
        :class:`dask_classify.DistributedDataClassifier`.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.model import model_info
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["High", "Medium", "Low"],
    ...                                        tokenizer="bert", texts=["a good text", "bad"])
    >>> info = model_info(folder)
    >>> info.kind, info.labels, info.config["base_model"]
    ('deberta', ['High', 'Medium', 'Low'], 'tiny-bert')
    """
    from dask_classify.engine.loading import save_checkpoint
    from dask_classify.engine.model import Deberta

    folder = Path(folder)
    texts = _texts_or_default(texts)
    tok = build_tokenizer(folder, tokenizer, texts, vocab_size=vocab_size)
    model_type = _model_type(tokenizer)
    torch.manual_seed(seed)
    config = {
        "base_model": f"tiny-{model_type}",
        "fc_dropout": 0.2,
        "id2label": {str(i): str(lab) for i, lab in enumerate(labels)},
        "label2id": {str(lab): i for i, lab in enumerate(labels)},
        "num_output_layers": num_output_layers,
        "backbone_config": tiny_backbone_config(model_type, len(tok), tok.pad_token_id),
    }
    model = Deberta(config).eval()
    calibrate_head(model, model.fc, tok, _calibration_sample(texts), seed)
    save_checkpoint(model, tok, folder)
    return folder


def build_tiny_hf_checkpoint(folder: str | os.PathLike, labels: Sequence[str] | None = None,
                             regression: bool = False, tokenizer: str = "bert",
                             texts: Iterable[str] | None = None, seed: int = 0,
                             problem_type: str | None = None, **overrides: Any) -> Path:
    """A tiny plain ``AutoModelForSequenceClassification`` folder (classification or regression).

    With ``regression=True`` the head has one output and ``problem_type="regression"`` (the
    FineWeb-edu format), calibrated so scores spread around the middle of [0, 5].

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    labels : sequence of str, optional
        Label names in id order (default ``["LABEL_0", "LABEL_1"]``); ignored for regression.
    regression : bool, default False
        One regression output (label ``"score"``) instead of a classification head.
    tokenizer : {"bert", "deberta"}, default "bert"
        Tokenizer kind; also picks a BERT or DeBERTa-v2 model.
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default :func:`default_corpus`.
    seed : int, default 0
        Seed of the weights and the head.
    problem_type : str, optional
        ``config.problem_type`` of a classification head (e.g.
        ``"multi_label_classification"``); regression heads always say ``"regression"``.
    **overrides
        Backbone config keys (e.g. ``max_position_embeddings=32``).

    Returns
    -------
    pathlib.Path
        ``folder``, with ``config.json`` (``model_type``, ``architectures``), the weights and the
        tokenizer.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.model import model_info
    >>> from dask_classify.testing import build_tiny_hf_checkpoint
    >>> folder = build_tiny_hf_checkpoint(tempfile.mkdtemp(), regression=True,
    ...                                   texts=["a good text", "a bad one"])
    >>> info = model_info(folder)
    >>> info.kind, info.regression, info.labels
    ('hf', True, ['score'])
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = Path(folder)
    texts = _texts_or_default(texts)
    tok = build_tokenizer(folder, tokenizer, texts)
    model_type = _model_type(tokenizer)
    cfg = tiny_backbone_config(model_type, len(tok), tok.pad_token_id, **overrides)
    cfg.pop("model_type", None)
    cfg.update(_head_config(labels, regression, problem_type))
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, **cfg))
    head = model.classifier if hasattr(model, "classifier") else model.score
    head = head if isinstance(head, torch.nn.Linear) else head.out_proj
    length = min(64, int(cfg.get("max_position_embeddings", 64)))
    # regression scores spread over [0, 5] around the 2.5 threshold
    where = dict(center=2.5, spread=1.5) if regression else {}
    calibrate_head(model, head, tok, _calibration_sample(texts), seed, max_length=length, **where)
    model.save_pretrained(str(folder))
    # Make sure the folder does not depend on the saving transformers' defaults for labels.
    config_path = folder / "config.json"
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    saved.setdefault("architectures", [type(model).__name__])
    config_path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    return folder


def _head_config(labels: Sequence[str] | None, regression: bool,
                 problem_type: str | None) -> dict[str, Any]:
    """The config keys of a sequence classification head (see :func:`build_tiny_hf_checkpoint`)."""
    if regression:
        return dict(num_labels=1, problem_type="regression", id2label={0: "score"},
                    label2id={"score": 0})
    labels = list(labels or ["LABEL_0", "LABEL_1"])
    cfg: dict[str, Any] = dict(id2label={i: lab for i, lab in enumerate(labels)},
                               label2id={lab: i for i, lab in enumerate(labels)})
    if problem_type is not None:
        cfg["problem_type"] = problem_type
    return cfg
