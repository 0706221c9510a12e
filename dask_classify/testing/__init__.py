"""Tiny, real, offline models for tests, doctests, notebooks and benchmarks.

Every builder trains a real tokenizer on the texts given and saves a randomly initialised model
in the format the package loads, so a tiny checkpoint exercises exactly what a real one does.
Building a SentencePiece tokenizer needs ``sentencepiece`` and ``protobuf`` (the ``[test]``
extra); loading a saved folder needs neither. The modules, lowest layer first: ``corpus``,
``tokenizers``, ``checkpoints`` (DeBERTa/BERT/HF classifiers, encoders) and ``published``
(prompt complexity, LlamaGuard/Aegis, Instruction Data Guard).

Examples
--------
>>> import tempfile
>>> from dask_classify.testing import build_tiny_deberta_checkpoint
>>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["a", "b"], tokenizer="bert",
...                                        texts=["a tiny corpus", "of two lines"])
>>> sorted(p.name for p in folder.iterdir())  # doctest: +NORMALIZE_WHITESPACE
['README.md', 'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json',
 'vocab.txt']
"""

from __future__ import annotations

from dask_classify.testing.checkpoints import (
    build_tiny_deberta_checkpoint,
    build_tiny_encoder,
    build_tiny_hf_checkpoint,
    calibrate_head,
    tiny_backbone_config,
)
from dask_classify.testing.corpus import CORPUS_FILE, default_corpus
from dask_classify.testing.published import (
    PROMPT_TASK_TYPES,
    build_tiny_llama_guard,
    build_tiny_prompt_complexity_checkpoint,
    prompt_complexity_config,
)
from dask_classify.testing.tokenizers import (
    MODEL_MAX_LENGTH,
    build_llama_tokenizer,
    build_tokenizer,
)

__all__ = [
    "CORPUS_FILE",
    "MODEL_MAX_LENGTH",
    "PROMPT_TASK_TYPES",
    "build_llama_tokenizer",
    "build_tiny_deberta_checkpoint",
    "build_tiny_encoder",
    "build_tiny_hf_checkpoint",
    "build_tiny_llama_guard",
    "build_tiny_prompt_complexity_checkpoint",
    "build_tokenizer",
    "calibrate_head",
    "default_corpus",
    "prompt_complexity_config",
    "tiny_backbone_config",
]
