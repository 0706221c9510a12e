"""Concrete classifiers: thin subclasses carrying a published model's id and defaults.

Each is imported on first use (the LLM and prompt-complexity modules define torch modules, so
importing this package stays cheap until one of them is asked for).
"""

from __future__ import annotations

import importlib
from typing import Any

#: The one registry of published classifiers: command-line name -> (module, class name).
#: ``dask-classify classify --classifier NAME``, this package's lazy names and the top-level
#: ``dask_classify`` namespace all read it.
PUBLISHED: dict[str, tuple[str, str]] = {
    "quality": ("quality", "QualityClassifier"),
    "domain": ("domain", "DomainClassifier"),
    "multilingual-domain": ("domain", "MultilingualDomainClassifier"),
    "content-type": ("content_type", "ContentTypeClassifier"),
    "fineweb-edu": ("fineweb", "FineWebEduClassifier"),
    "fineweb-mixtral-edu": ("fineweb", "FineWebMixtralEduClassifier"),
    "fineweb-nemotron-edu": ("fineweb", "FineWebNemotronEduClassifier"),
    "finemath": ("finemath", "FineMathClassifier"),
    "prompt-task-complexity": ("prompt_complexity", "PromptTaskComplexityClassifier"),
    "aegis": ("aegis", "AegisClassifier"),
    "instruction-data-guard": ("aegis", "InstructionDataGuardClassifier"),
}
_MODULES = {name: module for module, name in PUBLISHED.values()}

__all__ = sorted(_MODULES)


def published(name: str) -> type:
    """The class registered under the command-line ``name`` (imported on first use).

    Examples
    --------
    >>> from dask_classify.classifiers import published
    >>> published("quality").__name__
    'QualityClassifier'
    """
    module, cls = PUBLISHED[name]
    return getattr(importlib.import_module(f"dask_classify.classifiers.{module}"), cls)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'dask_classify.classifiers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dask_classify.classifiers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
