"""Fine-tuning and evaluation: NeMo-style configs and data, trained with PyTorch Lightning.

``train``, ``evaluate`` and ``load_config`` need the ``[train]`` extra (lightning, torchmetrics,
omegaconf, matplotlib): without it they raise :class:`~dask_classify.errors.MissingExtraError`
naming the extra. They are imported on first use, so ``dask_classify.train.data`` and
``dask_classify.train.convert`` (the TSV format and converters) work without it.

Examples
--------
>>> from dask_classify.train import load_config
>>> cfg = load_config(overrides=["model.dataset.num_classes=2"])
>>> cfg.model.dataset.num_classes
2
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "dask_classify.train.trainer",
    "TrainResult": "dask_classify.train.trainer",
    "evaluate": "dask_classify.train.evaluation",
    "load_config": "dask_classify.train.config",
    "default_config": "dask_classify.train.config",
    "ConfigError": "dask_classify.train.config",
    "ConfigWarning": "dask_classify.train.nemo",
    "classification_report": "dask_classify.train.metrics",
}

__all__ = list(_EXPORTS)


#: The top-level modules of the [train] extra's packages.
EXTRA_MODULES = ("lightning", "torchmetrics", "omegaconf", "matplotlib")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dask_classify.train' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in EXTRA_MODULES:
            raise
        from dask_classify.errors import MissingExtraError

        raise MissingExtraError.for_module(
            root, "train", "training and evaluation (dask_classify.train)") from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
