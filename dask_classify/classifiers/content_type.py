"""NVIDIA's content-type classifier (11 speech types: News, Blogs, Online Comments, ...)."""

from __future__ import annotations

from dask_classify.classifiers._base import PublishedClassifier


class ContentTypeClassifier(PublishedClassifier):
    """``nvidia/content-type-classifier-deberta``.

    Defaults (NeMo Curator 1.x): ``label_field="content_pred"``, ``max_chars=6000``,
    ``max_seq_length=1024``. Before version 0.2 ``max_chars`` was 5000 (NeMo Curator 0.x);
    ``ContentTypeClassifier(max_chars=5000)`` keeps it.

    Examples
    --------
    >>> from dask_classify import ContentTypeClassifier
    >>> ContentTypeClassifier().label_field, ContentTypeClassifier().max_chars
    ('content_pred', 6000)
    """

    default_model_identifier = "nvidia/content-type-classifier-deberta"
    defaults = {"label_field": "content_pred", "max_chars": 6000, "max_seq_length": 1024}
