"""NVIDIA's quality classifier (High / Medium / Low), DeBERTa-v3 base."""

from __future__ import annotations

from dask_classify.classifiers._base import PublishedClassifier


class QualityClassifier(PublishedClassifier):
    """``nvidia/quality-classifier-deberta``: document quality, labels High, Medium, Low.

    Defaults: ``label_field="quality_pred"``, ``max_chars=6000``, ``max_seq_length=1024``.
    All parameters are those of :class:`~dask_classify.DistributedDataClassifier`.

    Examples
    --------
    >>> from dask_classify import QualityClassifier
    >>> clf = QualityClassifier(model_identifier="/models/quality", filter_by=["High"])
    >>> clf.label_field, clf.max_chars, clf.max_seq_length
    ('quality_pred', 6000, 1024)
    """

    default_model_identifier = "nvidia/quality-classifier-deberta"
    defaults = {"label_field": "quality_pred", "max_chars": 6000, "max_seq_length": 1024}
