"""Concrete classifiers: thin subclasses carrying a published model's id and defaults."""

from dask_classify.classifiers.aegis import AegisClassifier, InstructionDataGuardClassifier
from dask_classify.classifiers.content_type import ContentTypeClassifier
from dask_classify.classifiers.domain import DomainClassifier, MultilingualDomainClassifier
from dask_classify.classifiers.finemath import FineMathClassifier
from dask_classify.classifiers.fineweb import (
    FineWebEduClassifier,
    FineWebMixtralEduClassifier,
    FineWebNemotronEduClassifier,
)
from dask_classify.classifiers.prompt_complexity import PromptTaskComplexityClassifier
from dask_classify.classifiers.quality import QualityClassifier

__all__ = [
    "AegisClassifier",
    "ContentTypeClassifier",
    "DomainClassifier",
    "FineMathClassifier",
    "FineWebEduClassifier",
    "FineWebMixtralEduClassifier",
    "FineWebNemotronEduClassifier",
    "InstructionDataGuardClassifier",
    "MultilingualDomainClassifier",
    "PromptTaskComplexityClassifier",
    "QualityClassifier",
]
