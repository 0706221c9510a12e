"""Tiny random stand-ins for published models: prompt task and complexity, LlamaGuard and Aegis.

Each builder writes the published checkpoint's format (config keys, layer names, head sizes) with
tiny random weights, so the classifiers of :mod:`dask_classify.classifiers` load and run them
offline. Imports :mod:`dask_classify.classifiers`, :mod:`.corpus`, :mod:`.tokenizers` and
:mod:`.checkpoints`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from dask_classify.testing.checkpoints import calibrate_head, tiny_backbone_config
from dask_classify.testing.corpus import _calibration_sample, _texts_or_default
from dask_classify.testing.tokenizers import build_llama_tokenizer, build_tokenizer

#: Task types of the published prompt task and complexity classifier, in id order.
PROMPT_TASK_TYPES = ["Brainstorming", "Chatbot", "Classification", "Closed QA", "Code Generation",
                     "Extraction", "Open QA", "Other", "Rewrite", "Summarization",
                     "Text Generation", "Unknown"]


def prompt_complexity_config() -> dict[str, Any]:
    """A ``config.json`` shaped like ``nvidia/prompt-task-and-complexity-classifier``'s.

    The same keys, head order and sizes, task types, weights and divisors as the published
    checkpoint's model card describes.

    Returns
    -------
    dict
        ``target_sizes``, ``task_type_map``, ``weights_map`` and ``divisor_map``; no
        ``base_model`` (:func:`build_tiny_prompt_complexity_checkpoint` adds one).

    Examples
    --------
    >>> from dask_classify.testing import prompt_complexity_config
    >>> cfg = prompt_complexity_config()
    >>> list(cfg["target_sizes"].values()), cfg["task_type_map"]["4"]
    ([12, 3, 2, 2, 6, 4, 1, 2], 'Code Generation')
    """
    return {
        "target_sizes": {"task_type": 12, "creativity_scope": 3, "reasoning": 2,
                         "contextual_knowledge": 2, "number_of_few_shots": 6,
                         "domain_knowledge": 4, "no_label_reason": 1, "constraint_ct": 2},
        "task_type_map": {str(i): name for i, name in enumerate(PROMPT_TASK_TYPES)},
        "weights_map": {"creativity_scope": [2, 1, 0], "reasoning": [0, 1],
                        "contextual_knowledge": [0, 1], "number_of_few_shots": [0, 1, 2, 3, 4, 5],
                        "domain_knowledge": [3, 1, 2, 0], "no_label_reason": [0],
                        "constraint_ct": [1, 0]},
        "divisor_map": {"creativity_scope": 2, "reasoning": 1, "contextual_knowledge": 1,
                        "number_of_few_shots": 1, "domain_knowledge": 3, "no_label_reason": 1,
                        "constraint_ct": 1},
    }


def build_tiny_prompt_complexity_checkpoint(folder: str | os.PathLike,
                                            texts: Iterable[str] | None = None,
                                            seed: int = 0) -> Path:
    """A tiny checkpoint in the published prompt task and complexity format (untrained).

    ``config.json`` names ``base_model`` (here the absolute path of a tiny DeBERTa-v3-style
    config in ``folder/backbone``, where the published one names ``microsoft/DeBERTa-v3-base``),
    with :func:`prompt_complexity_config`'s heads; ``model.safetensors`` holds ``backbone.*``
    and ``head_<i>.fc.*``; the SentencePiece tokenizer sits beside them. Every head is
    calibrated on ``texts`` so the random model gives varied answers.

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default :func:`default_corpus`.
    seed : int, default 0
        Seed of the weights.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Examples
    --------
    >>> import json, tempfile
    >>> from dask_classify.testing import build_tiny_prompt_complexity_checkpoint
    >>> folder = build_tiny_prompt_complexity_checkpoint(
    ...     tempfile.mkdtemp(), texts=["write a poem about the sea", "what is two plus two ?"])
    >>> sorted(json.loads((folder / "config.json").read_text()))
    ['base_model', 'divisor_map', 'target_sizes', 'task_type_map', 'weights_map']
    """
    from transformers import AutoConfig

    from dask_classify.classifiers.prompt_complexity import PromptTaskComplexityModel

    folder = Path(folder)
    texts = _texts_or_default(texts)
    tok = build_tokenizer(folder, "deberta", texts)
    backbone = tiny_backbone_config("deberta-v2", len(tok), tok.pad_token_id)
    backbone_dir = (folder / "backbone").resolve()
    AutoConfig.for_model(**backbone).save_pretrained(str(backbone_dir))
    config = {"base_model": str(backbone_dir), **prompt_complexity_config()}
    torch.manual_seed(seed)
    model = PromptTaskComplexityModel(config).eval()
    sample = _calibration_sample(texts)
    for i in range(len(config["target_sizes"])):
        calibrate_head(model, getattr(model, f"head_{i}").fc, tok, sample, seed + i)
    _save_weights(model, folder, config)
    return folder


def _save_weights(model: torch.nn.Module, folder: Path, config: dict[str, Any]) -> None:
    """Write ``model``'s state as ``folder/model.safetensors`` and ``config`` as ``config.json``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def build_tiny_llama_guard(folder: str | os.PathLike, texts: Iterable[str] | None = None,
                           seed: int = 0) -> dict[str, Path]:
    """Tiny, random stand-ins for LlamaGuard-7b, the two Aegis adapters and Instruction Data Guard.

    Four folders under ``folder``, in the published formats:

    * ``base``: a 2-layer ``LlamaForCausalLM`` (hidden size 32) and a LlamaGuard-style
      tokenizer (:func:`build_llama_tokenizer`) trained on ``texts`` and the Aegis prompt;
    * ``defensive`` and ``permissive``: LoRA adapters (``q_proj``/``v_proj``, random non-zero
      weights) saved with ``peft``;
    * ``guard``: an :class:`~dask_classify.classifiers.aegis.InstructionDataGuardNet` with the
      published layer names and sizes (``config.json`` with ``input_dim``), its last layer
      calibrated on ``texts`` so scores spread on both sides of 0.5.

    Nothing is trained: answers are random text (Aegis labels come out ``"unknown"``).

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default :func:`default_corpus`.
    seed : int, default 0
        Seed of the weights.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"base": ..., "defensive": ..., "permissive": ..., "guard": ...}``.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tiny_llama_guard
    >>> paths = build_tiny_llama_guard(tempfile.mkdtemp(), ["write a poem", "how are you ?"])
    >>> sorted(p.name for p in paths["defensive"].iterdir())
    ['README.md', 'adapter_config.json', 'adapter_model.safetensors']
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from dask_classify.classifiers.aegis import (
        InstructionDataGuardModel,
        InstructionDataGuardNet,
        format_aegis,
    )

    folder = Path(folder)
    texts = _texts_or_default(texts)
    paths = {name: folder / name for name in ("base", "defensive", "permissive", "guard")}
    # SentencePiece skips over-long lines: the prompt goes in line by line
    tok = build_llama_tokenizer(paths["base"], texts + format_aegis("").split("\n") * 5)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(paths["base"]))
    defensive = _save_lora_adapters(paths, seed)
    torch.manual_seed(seed + 3)
    guard = InstructionDataGuardNet(config.hidden_size).eval()
    calibrate_head(InstructionDataGuardModel(defensive, guard), guard.hidden_layer_2,
                   _padded_copy(tok), _calibration_sample(texts), seed)
    _save_weights(guard, paths["guard"], {"input_dim": config.hidden_size, "dropout": 0.7})
    return paths


def _save_lora_adapters(paths: dict[str, Path], seed: int) -> torch.nn.Module:
    """Save random LoRA adapters over ``paths["base"]`` as ``defensive`` and ``permissive``.

    Returns the defensive one, applied to its base model, in eval mode.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    adapters = {}
    for i, name in enumerate(("defensive", "permissive")):
        torch.manual_seed(seed + 1 + i)
        base = LlamaForCausalLM.from_pretrained(str(paths["base"]))
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                          init_lora_weights=False, task_type="CAUSAL_LM")
        adapters[name] = get_peft_model(base, lora).eval()
        adapters[name].save_pretrained(str(paths[name]))
    return adapters["defensive"]


def _padded_copy(tok: Any) -> Any:
    """A copy of a Llama tokenizer that pads on the left with ``<unk>``, as the classifiers do."""
    tok = copy.deepcopy(tok)
    tok.pad_token = tok.unk_token
    tok.padding_side = "left"
    return tok
