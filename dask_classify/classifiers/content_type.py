"""NVIDIA's content-type classifier (11 speech types: News, Blogs, Online Comments, ...)."""

from __future__ import annotations

from dask_classify.classifiers._base import PublishedClassifier


class ContentTypeClassifier(PublishedClassifier):
    """``nvidia/content-type-classifier-deberta``.

    Defaults: ``label_field="content_pred"``, ``max_chars=5000``, ``max_seq_length=1024``.

    Examples
    --------
    >>> from dask_classify import ContentTypeClassifier
    >>> ContentTypeClassifier().label_field
    'content_pred'
    """

    default_model_identifier = "nvidia/content-type-classifier-deberta"
    defaults = {"label_field": "content_pred", "max_chars": 5000, "max_seq_length": 1024}
