"""NVIDIA's domain classifiers (26 domains), English and multilingual."""

from __future__ import annotations

from dask_classify.classifiers._base import PublishedClassifier


class DomainClassifier(PublishedClassifier):
    """``nvidia/domain-classifier``: 26 domains such as Sports, Finance, Health.

    Defaults: ``label_field="domain_pred"``, ``max_chars=2000``, ``max_seq_length=512``.

    Examples
    --------
    >>> from dask_classify import DomainClassifier
    >>> DomainClassifier().model_identifier
    'nvidia/domain-classifier'
    """

    default_model_identifier = "nvidia/domain-classifier"
    defaults = {"label_field": "domain_pred", "max_chars": 2000, "max_seq_length": 512}


class MultilingualDomainClassifier(PublishedClassifier):
    """``nvidia/multilingual-domain-classifier``: the 26 domains in 52 languages (mDeBERTa).

    Defaults (NeMo Curator 1.x): ``label_field="multilingual_domain_pred"``,
    ``max_chars=2000``, ``max_seq_length=512``. Before version 0.2 the column was
    ``domain_pred`` (NeMo Curator 0.x); ``MultilingualDomainClassifier(label_field="domain_pred")``
    keeps it.

    Examples
    --------
    >>> from dask_classify import MultilingualDomainClassifier
    >>> MultilingualDomainClassifier().label_field, MultilingualDomainClassifier().max_chars
    ('multilingual_domain_pred', 2000)
    """

    default_model_identifier = "nvidia/multilingual-domain-classifier"
    defaults = {"label_field": "multilingual_domain_pred", "max_chars": 2000,
                "max_seq_length": 512}
