"""Fine-tuning and evaluation: NeMo-style configs and data, trained with PyTorch Lightning.

``train`` and ``evaluate`` need the ``[train]`` extra (lightning, torchmetrics, matplotlib); they
are imported on first use, so ``dask_classify.train.data`` (the TSV format and converters) works
without it.

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
    "classification_report": "dask_classify.train.metrics",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dask_classify.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
