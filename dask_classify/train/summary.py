"""What training prints when it starts and ends (as NeMo does).

At the start (:func:`log_start`, global rank 0 only): the resolved config, the devices, where the
outputs and logs go, a few training examples with their tokens, and per split the statistics of
sequence lengths with how many examples ``max_seq_length`` truncated (a warning when it cuts more
than :data:`TRUNCATION_WARNING_SHARE` of a split). At the end (:func:`infer_samples`): the
``model.infer_samples`` texts with their predicted labels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["TRUNCATION_WARNING_SHARE", "format_length_stats", "infer_samples", "log_start"]

logger = logging.getLogger("dask_classify.train")

#: Warn when ``max_seq_length`` truncates more than this share of a split's examples.
TRUNCATION_WARNING_SHARE = 0.05
SAMPLES_SHOWN = 2


def format_length_stats(split: str, stats: dict[str, Any]) -> str:
    """One line of token-length statistics.

    Parameters
    ----------
    split : str
        The split's name, at the start of the line (``"train_ds"``).
    stats : dict
        Its statistics (:func:`dask_classify.train.tokens.length_stats`).

    Returns
    -------
    str
        ``"<split>: no examples"`` for an empty split.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.train.tokens import length_stats
    >>> line = format_length_stats("train_ds", length_stats([3, 5, 8, 8], np.array(
    ...     [False, False, True, False]), 8))
    >>> print(line.replace("; ", ";\\n"))
    train_ds: 4 examples, tokens min 3 / mean 6.0 / median 6.5 / p90 8.0 / p99 8.0 / max 8;
    1 (25.0%) truncated at max_seq_length=8
    """
    if not stats.get("count"):
        return f"{split}: no examples"
    return (f"{split}: {stats['count']} examples, tokens min {stats['min']} / mean "
            f"{stats['mean']:.1f} / median {stats['median']:.1f} / p90 {stats['p90']:.1f} / p99 "
            f"{stats['p99']:.1f} / max {stats['max']}; {stats['truncated']} "
            f"({100 * stats['truncated_share']:.1f}%) truncated at max_seq_length="
            f"{stats['max_seq_length']}")


def _devices(trainer: Any) -> str:
    accelerator = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    line = (f"devices: {accelerator}, {trainer.world_size} process(es) ({trainer.num_nodes} "
            f"node(s) x {trainer.num_devices} device(s)), strategy "
            f"{type(trainer.strategy).__name__}, precision {trainer.precision}")
    if accelerator == "cuda":
        import torch

        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        line += f", GPUs: {', '.join(names)}"
    return line


def log_start(cfg: DictConfig, trainer: Any, data: Any, tokenizer: Any, exp_dir: Path,
              loggers: Sequence[Any]) -> None:
    """Log the start-of-training report (see the module docstring); the caller runs it on
    global rank 0 only.

    Parameters
    ----------
    cfg : DictConfig
        The resolved config.
    trainer : lightning.Trainer
        The trainer (for the devices and the rank).
    data : TextClassificationDataModule
        Loaded data (``frames``, ``datasets``, ``stats``).
    tokenizer : transformers tokenizer
        For the tokens of the examples shown.
    exp_dir : pathlib.Path
        The output folder.
    loggers : sequence of Lightning loggers
        Where metrics are logged.
    """
    logger.info("config:\n%s", OmegaConf.to_yaml(cfg).rstrip())
    logger.info(_devices(trainer))
    logs = ", ".join(f"{type(lg).__name__.replace('Logger', '')}: {lg.log_dir}" for lg in loggers)
    logger.info("outputs: %s (best_model/, checkpoints/, config.yaml, train_result.json); "
                "logs: %s", exp_dir, logs or "none")
    frame = data.frames.get("train_ds")
    dataset = data.datasets.get("train_ds")
    if frame is not None and dataset is not None:
        for i in range(min(SAMPLES_SHOWN, len(dataset))):
            ids, label, _ = dataset[i]
            tokens = tokenizer.convert_ids_to_tokens(ids)
            name = data.id2label.get(label, str(label))
            shown = f"{label}" if name == str(label) else f"{label} ({name})"
            logger.info("example %d of train_ds (label %s): %r\n  tokens (%d): %s\n  "
                        "input_ids: %s", i, shown, frame["sentence"].iloc[i], len(ids),
                        " ".join(tokens), ids)
    for split, stats in data.stats.items():
        logger.info(format_length_stats(split, stats))
        if stats.get("truncated_share", 0) > TRUNCATION_WARNING_SHARE:
            logger.warning("model.dataset.max_seq_length=%d truncates %.1f%% of the %s "
                           "examples (p90 %.0f, max %d tokens): raise it unless the ends of "
                           "long texts do not matter", stats["max_seq_length"],
                           100 * stats["truncated_share"], split, stats["p90"], stats["max"])


def infer_samples(model: Any, tokenizer: Any, texts: Sequence[str], max_seq_length: int
                  ) -> list[dict[str, Any]]:
    """Predicted labels of ``texts`` (NeMo's ``model.infer_samples``), logged one per line.

    Parameters
    ----------
    model : Deberta
        The trained classifier.
    tokenizer : transformers tokenizer
        Its tokenizer.
    texts : sequence of str
        The texts.
    max_seq_length : int
        Token limit.

    Returns
    -------
    list of dict
        ``{"text", "label", "probability"}`` per text, in order.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.model import load_model, load_tokenizer
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert")
    >>> model, _ = load_model(folder)
    >>> out = infer_samples(model, load_tokenizer(folder), ["a fine film"], 64)
    >>> out[0]["label"] in ("neg", "pos"), 0.5 <= out[0]["probability"] <= 1
    (True, True)
    """
    from dask_classify.train.module import predict_probabilities

    texts = [str(t) for t in texts]
    if not texts:
        return []
    probs = predict_probabilities(model, tokenizer, texts, int(max_seq_length))
    out = []
    for text, row in zip(texts, probs, strict=True):
        best = int(row.argmax())
        item = {"text": text, "label": model.id2label[best], "probability": float(row[best])}
        out.append(item)
        logger.info("infer_samples: %r -> %s (p=%.3f)", text, item["label"], item["probability"])
    return out
