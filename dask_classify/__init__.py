"""dask_classify: classify text at scale with transformer models on Dask DataFrames.

Importing the package is cheap: torch, transformers and dask load on first use of a name below.

Examples
--------
>>> import dask_classify
>>> "DistributedDataClassifier" in dask_classify.__all__
True
"""

from __future__ import annotations

import importlib
from typing import Any

from dask_classify.classifiers import _MODULES as _PUBLISHED_NAMES

__version__ = "0.1.0"

_EXPORTS = {
    "DistributedDataClassifier": "dask_classify.classifier",
    "classify_many": "dask_classify.apply",
    "classify_files": "dask_classify.jobs",
    "JobSummary": "dask_classify.jobs",
    "Deberta": "dask_classify.model",
    "HFSequenceClassifier": "dask_classify.model",
    "CheckpointError": "dask_classify.model",
    "load_model": "dask_classify.model",
    "save_checkpoint": "dask_classify.model",
    "get_client": "dask_classify.cluster",
    "clear_cache": "dask_classify.engine.cache",
}
# the published classifiers, from their one registry
_EXPORTS.update(dict.fromkeys(_PUBLISHED_NAMES, "dask_classify.classifiers"))

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dask_classify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
