"""Shared base for classifiers that stand for a published checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar

from dask_classify.classifier import DistributedDataClassifier


class PublishedClassifier(DistributedDataClassifier):
    """A :class:`~dask_classify.DistributedDataClassifier` with a published model's defaults.

    Subclasses are data: ``default_model_identifier`` and ``defaults`` (NeMo Curator's values).
    Every parameter of the base class can still be given and overrides the default, e.g.
    ``model_identifier="/models/quality"`` to use a local copy of the weights offline.
    """

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, model_identifier: str | None = None, **kwargs: Any) -> None:
        merged = {**self.defaults, **kwargs}
        super().__init__(model_identifier or self.default_model_identifier, **merged)
