"""Concrete classifiers: thin subclasses carrying a published model's id and defaults.

Each is imported on first use (the LLM and prompt-complexity modules define torch modules, so
importing this package stays cheap until one of them is asked for).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "AegisClassifier": "aegis",
    "InstructionDataGuardClassifier": "aegis",
    "ContentTypeClassifier": "content_type",
    "DomainClassifier": "domain",
    "MultilingualDomainClassifier": "domain",
    "FineMathClassifier": "finemath",
    "FineWebEduClassifier": "fineweb",
    "FineWebMixtralEduClassifier": "fineweb",
    "FineWebNemotronEduClassifier": "fineweb",
    "PromptTaskComplexityClassifier": "prompt_complexity",
    "QualityClassifier": "quality",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'dask_classify.classifiers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dask_classify.classifiers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
