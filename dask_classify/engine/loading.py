"""Loading checkpoints on a worker: weights into a torch model, a tokenizer, and saving.

:func:`load_model` builds NVIDIA's format (:class:`~dask_classify.engine.model.Deberta`, its
backbone from its config, then its weights) or a transformers sequence classifier
(:class:`~dask_classify.engine.model.HFSequenceClassifier`); :func:`load_tokenizer` loads the
checkpoint's tokenizer; :func:`save_checkpoint` writes NVIDIA's format. Which files hold the
weights is :mod:`dask_classify.weights`'s rule.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from dask_classify.checkpoint import (
    ModelInfo,
    model_info,
    position_limit,
    read_config,
    resolve_model_dir,
)
from dask_classify.engine.model import (
    TOKENIZER_FILES,
    Deberta,
    HFSequenceClassifier,
    load_deberta,
)
from dask_classify.errors import CheckpointError
from dask_classify.weights import SAFETENSORS_NAME, has_weights

__all__ = ["load_model", "load_tokenizer", "save_checkpoint"]


def load_model(
    identifier: str | os.PathLike,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
    **hub: Any,
) -> tuple[nn.Module, ModelInfo]:
    """Load an NVIDIA-format or plain HF classifier; returns the module (eval mode) and its info.

    Parameters
    ----------
    identifier : str or path-like
        A checkpoint folder or a hub id (see :func:`resolve_model_dir`).
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.
    trust_remote_code : bool, default False
        Let a plain transformers checkpoint run its own Python code.
    **hub
        ``revision``, ``token``, ``local_files_only`` for a hub id (:func:`resolve_model_dir`).

    Returns
    -------
    model : torch.nn.Module
        A :class:`Deberta` (NVIDIA format) or an :class:`HFSequenceClassifier`, in eval mode on
        the CPU. Both are called as ``model(input_ids, attention_mask)``.
    info : ModelInfo
        What :func:`model_info` reads from ``config.json``.

    Raises
    ------
    CheckpointError
        The folder or hub id cannot be resolved, or its config or weights cannot be loaded.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify import load_model
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "a bad one"])
    >>> model, info = load_model(folder)
    >>> type(model).__name__, info.kind, info.labels, model.training
    ('Deberta', 'deberta', ['neg', 'pos'], False)
    >>> model, info = load_model("nvidia/quality-classifier-deberta")  # doctest: +SKIP
    """
    folder = resolve_model_dir(identifier, cache_dir, **hub)
    info = model_info(folder)
    if info.kind == "deberta":
        model = load_deberta(folder, cache_dir=cache_dir)
        if info.position_limit is None:  # config.json names base_model only: ask the backbone
            limit = position_limit(model.model.config.to_dict())
            info = replace(info, position_limit=limit,
                           max_position_embeddings=model.model.config.max_position_embeddings)
        return model, info
    if not has_weights(folder):
        raise CheckpointError(f"{folder} has no weights: expected {SAFETENSORS_NAME}")
    try:
        hf = AutoModelForSequenceClassification.from_pretrained(
            str(folder), trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise CheckpointError(f"could not load {folder} as a sequence classifier: {exc}") from exc
    return HFSequenceClassifier(hf).eval(), info


def load_tokenizer(
    identifier: str | os.PathLike,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
    **hub: Any,
):
    """The checkpoint's tokenizer, or its ``base_model``'s when the folder holds none.

    Parameters
    ----------
    identifier : str or path-like
        A checkpoint folder or a hub id (see :func:`resolve_model_dir`).
    cache_dir : str, optional
        Hugging Face cache folder for hub ids (also used for ``base_model``).
    trust_remote_code : bool, default False
        Let the tokenizer's own Python code run.
    **hub
        ``revision``, ``token``, ``local_files_only`` for a hub id (:func:`resolve_model_dir`).

    Returns
    -------
    transformers.PreTrainedTokenizerBase
        The tokenizer from ``AutoTokenizer.from_pretrained``.

    Raises
    ------
    CheckpointError
        The folder holds no tokenizer files and its config names no ``base_model``, or the
        tokenizer cannot be loaded.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.engine.loading import load_tokenizer
    >>> from dask_classify.testing import build_tokenizer
    >>> tok_dir = tempfile.mkdtemp()
    >>> _ = build_tokenizer(tok_dir, "bert", ["a good film", "a bad film"])
    >>> tok = load_tokenizer(tok_dir)
    >>> tok.convert_ids_to_tokens(tok("a good film")["input_ids"])
    ['[CLS]', 'a', 'good', 'film', '[SEP]']

    A checkpoint without tokenizer files falls back to its ``base_model``:

    >>> ckpt = Path(tempfile.mkdtemp())
    >>> _ = (ckpt / "config.json").write_text(json.dumps({"base_model": tok_dir}))
    >>> load_tokenizer(ckpt)("a good film")["input_ids"] == tok("a good film")["input_ids"]
    True
    """
    folder = resolve_model_dir(identifier, cache_dir, **hub)
    if any((folder / name).is_file() for name in TOKENIZER_FILES):
        source: str = str(folder)
    else:
        base = read_config(folder).get("base_model")
        if not base:
            raise CheckpointError(f"{folder} holds no tokenizer files ({list(TOKENIZER_FILES)})")
        source = str(base)
    try:
        return AutoTokenizer.from_pretrained(
            source, cache_dir=cache_dir, trust_remote_code=trust_remote_code,
            token=hub.get("token"), local_files_only=bool(hub.get("local_files_only")),
        )
    except Exception as exc:
        raise CheckpointError(f"could not load the tokenizer from {source}: {exc}") from exc


def save_checkpoint(model: Deberta, tokenizer: Any, folder: str | os.PathLike) -> Path:
    """Save ``model`` and ``tokenizer`` as one folder in the NVIDIA checkpoint format.

    Parameters
    ----------
    model : Deberta
        The classifier; its ``config`` (with ``id2label``/``label2id`` rewritten from the model)
        becomes ``config.json`` and its weights ``model.safetensors``.
    tokenizer : transformers tokenizer
        Saved into the same folder, so the checkpoint loads without its ``base_model``.
    folder : str or path-like
        Output folder (created, with its parents, if missing; files in it are overwritten).

    Returns
    -------
    pathlib.Path
        ``folder``. For an atomic write, see :func:`dask_classify.train.trainer.export_checkpoint`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify import Deberta, load_model, save_checkpoint
    >>> from dask_classify.testing import build_tokenizer, tiny_backbone_config
    >>> tok = build_tokenizer(tempfile.mkdtemp(), "bert", ["a good film", "a bad film"])
    >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=len(tok))}
    >>> folder = save_checkpoint(Deberta(cfg), tok, Path(tempfile.mkdtemp()) / "ckpt")
    >>> sorted(p.name for p in folder.glob("*.json"))
    ['config.json', 'tokenizer.json', 'tokenizer_config.json']
    >>> load_model(folder)[1].labels
    ['neg', 'pos']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    # save_pretrained writes the config given at construction; keep ours authoritative.
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    config["id2label"] = {str(k): v for k, v in model.id2label.items()}
    config["label2id"] = {v: int(k) for k, v in model.id2label.items()}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(folder))
    return folder
