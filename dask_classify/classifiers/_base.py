"""Shared base for classifiers that stand for a published checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar

from dask_classify.classifier import DistributedDataClassifier


class PublishedClassifier(DistributedDataClassifier):
    """A :class:`~dask_classify.DistributedDataClassifier` with a published model's defaults.

    Subclasses are data: ``default_model_identifier`` and ``defaults`` (NeMo Curator's values).
    Every parameter of the base class can still be given and overrides the default, e.g.
    ``model_identifier="/models/quality"`` to use a local copy of the weights offline.

    Parameters
    ----------
    model_identifier : str, optional
        A checkpoint folder or hub id; default the class's ``default_model_identifier``.
    **kwargs
        Any parameter of :class:`~dask_classify.DistributedDataClassifier`; each overrides the
        same key of ``defaults``.

    Attributes
    ----------
    default_model_identifier : str
        The published checkpoint's hub id (class attribute).
    defaults : dict
        Parameter values that differ from the base class's defaults (class attribute).

    Examples
    --------
    >>> from dask_classify.classifiers._base import PublishedClassifier
    >>> class TopicClassifier(PublishedClassifier):
    ...     default_model_identifier = "acme/topic-classifier"
    ...     defaults = {"label_field": "topic", "max_chars": 2000}
    >>> clf = TopicClassifier()
    >>> clf.model_identifier, clf.label_field, clf.max_chars
    ('acme/topic-classifier', 'topic', 2000)
    >>> TopicClassifier("/models/topic", max_chars=100).max_chars
    100
    """

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, model_identifier: str | None = None, **kwargs: Any) -> None:
        explicit = kwargs.get("max_seq_length") is not None
        merged = {**self.defaults, **kwargs}
        super().__init__(model_identifier, **merged)
        # a preset max_seq_length is capped (with a warning) on a model that cannot take it;
        # one the caller gave is refused
        self._max_seq_length_explicit = explicit
