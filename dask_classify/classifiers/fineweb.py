"""FineWeb-edu educational-value classifiers: a regression head scoring 0-5."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dask_classify.backend import string_dtype
from dask_classify.checkpoint import ModelInfo
from dask_classify.classifiers._base import PublishedClassifier
from dask_classify.errors import UsageError

HIGH, LOW = "high_quality", "low_quality"


def score_columns(outputs: np.ndarray | None, valid: np.ndarray) -> tuple[pd.Series, pd.Series]:
    """A one-output regression head's scores clipped to [0, 5], and rounded half to even.

    Rows without text (``~valid``) get NaN and ``<NA>``.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.classifiers.fineweb import score_columns
    >>> score, as_int = score_columns(np.array([[2.5], [7.0]]), np.array([True, False, True]))
    >>> score.tolist()[::2], as_int.tolist()
    ([2.5, 5.0], [2, <NA>, 5])
    """
    score = np.full(len(valid), np.nan, dtype=np.float64)
    if outputs is not None and len(outputs):
        score[valid] = np.clip(outputs[:, 0].astype(np.float64), 0.0, 5.0)
    as_int = pd.array(np.rint(np.nan_to_num(score)).astype(np.int64), dtype="Int64")
    as_int[~valid] = pd.NA
    return pd.Series(score, dtype=np.float64), pd.Series(as_int)


def require_regression(clf: PublishedClassifier, info: ModelInfo) -> None:
    """Refuse a checkpoint without a one-output regression head for a score classifier.

    Raises
    ------
    UsageError
        ``info`` is not a regression head with one output.
    """
    if not info.regression or len(info.id2label) != 1:
        raise UsageError(
            f"{clf.model_identifier!r} is not a regression checkpoint (one output); "
            f"{type(clf).__name__} needs a model with one regression output"
        )


class FineWebEduClassifier(PublishedClassifier):
    """``HuggingFaceFW/fineweb-edu-classifier``: educational value of a web page, 0 to 5.

    Adds three columns:

    * ``score_field`` (float): the model's score clipped to [0, 5];
    * ``int_field`` (``Int64``): that score rounded half to even (``np.rint``), so 2.5 -> 2;
    * ``label_field`` (str): ``"high_quality"`` if the clipped score >= 2.5, else
      ``"low_quality"``; None adds no label column.

    Rows with null text get nulls in all three. ``filter_by`` takes ``"high_quality"`` /
    ``"low_quality"``. The checkpoint is a plain ``AutoModelForSequenceClassification`` with one
    regression output. Other parameters are those of
    :class:`~dask_classify.DistributedDataClassifier`.

    The columns are NeMo Curator 1.x's (``fineweb-edu-score-float``, ``-int``, ``-label``).
    Before version 0.2 the float column was ``"<prefix>"`` (``fineweb-edu-score``, NeMo
    Curator 0.x's name); ``score_field="fineweb-edu-score"`` keeps it.

    Parameters
    ----------
    model_identifier : str, optional
        Checkpoint folder or hub id; default ``HuggingFaceFW/fineweb-edu-classifier``.
    score_field : str, optional
        Column of the clipped float score; default ``"<prefix>-float"``
        (``"fineweb-edu-score-float"``).
    int_field : str, optional
        Column of the rounded score; default ``"<prefix>-int"``.
    label_field : str or None, default ``"<prefix>-label"``
        Column of ``"high_quality"``/``"low_quality"``; None adds no label column (and then
        ``filter_by`` cannot be used).
    **kwargs
        Any other parameter of :class:`~dask_classify.DistributedDataClassifier`;
        ``max_seq_length`` defaults to 512, ``model_inference_batch_size`` to 256 (1024 for
        the Mixtral and Nemotron variants, as in NeMo Curator).

    Raises
    ------
    dask_classify.errors.UsageError
        ``filter_by`` with ``label_field=None``, or (when called) a checkpoint that is not a
        one-output regression model.

    Examples
    --------
    >>> from dask_classify import FineWebEduClassifier
    >>> clf = FineWebEduClassifier(model_identifier="/models/fineweb-edu")
    >>> clf.output_fields
    ['fineweb-edu-score-float', 'fineweb-edu-score-int', 'fineweb-edu-score-label']
    >>> FineWebEduClassifier(score_field="fineweb-edu-score").output_fields[0]  # before 0.2
    'fineweb-edu-score'

    With a tiny regression checkpoint (a pandas DataFrame is classified at once):

    >>> import pandas as pd, tempfile
    >>> from dask_classify.testing import build_tiny_hf_checkpoint
    >>> folder = build_tiny_hf_checkpoint(tempfile.mkdtemp(), regression=True,
    ...                                   texts=["a lesson on fractions", "buy cheap watches"])
    >>> out = FineWebEduClassifier(folder)(pd.DataFrame({"text": ["a lesson on fractions",
    ...                                                           None]}))
    >>> score = out["fineweb-edu-score-float"]
    >>> bool(0 <= score[0] <= 5), score.isna().tolist(), str(out["fineweb-edu-score-int"].dtype)
    (True, [False, True], 'Int64')
    >>> out["fineweb-edu-score-label"][0] == ("high_quality" if score[0] >= 2.5
    ...                                       else "low_quality")
    True
    """

    default_model_identifier = "HuggingFaceFW/fineweb-edu-classifier"
    defaults = {"max_seq_length": 512, "model_inference_batch_size": 256}
    prefix: ClassVar[str] = "fineweb-edu-score"
    threshold: ClassVar[float] = 2.5

    parameters = ("int_field",)

    def __init__(self, model_identifier: str | None = None, *, score_field: str | None = None,
                 int_field: str | None = None, label_field: str | None = "__default__",
                 **kwargs: Any) -> None:
        self.int_field = int_field or f"{self.prefix}-int"
        label = f"{self.prefix}-label" if label_field == "__default__" else label_field
        self._with_label = label is not None
        super().__init__(model_identifier, score_field=score_field or f"{self.prefix}-float",
                         label_field=label or f"{self.prefix}-label", **kwargs)
        if self.filter_by is not None and not self._with_label:
            raise UsageError("filter_by needs the label column (label_field is None)")

    @property
    def output_fields(self) -> list[str]:
        """The score, integer score and (unless ``label_field=None``) label columns, in order."""
        fields = [self.score_field, self.int_field]
        return fields + ([self.label_field] if self._with_label else [])

    def filter_values(self, info: ModelInfo) -> list[str]:
        return [HIGH, LOW]

    def validate_model(self, info: ModelInfo) -> None:
        require_regression(self, info)
        super().validate_model(info)

    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                        info: ModelInfo | None) -> dict[str, pd.Series]:
        score, as_int = score_columns(outputs, valid)
        cols = {self.score_field: score, self.int_field: as_int}
        if self._with_label:
            labels = np.full(len(valid), None, dtype=object)
            labels[valid] = np.where(score.to_numpy()[valid] >= self.threshold, HIGH, LOW)
            cols[self.label_field] = pd.Series(labels, dtype=string_dtype())
        return cols


class FineWebMixtralEduClassifier(FineWebEduClassifier):
    """``nvidia/nemocurator-fineweb-mixtral-edu-classifier`` (annotations by Mixtral 8x22B).

    Columns ``fineweb-mixtral-edu-score-float``, ``...-int`` and ``...-label``;
    ``model_inference_batch_size`` 1024; otherwise as :class:`FineWebEduClassifier`.

    Examples
    --------
    >>> from dask_classify import FineWebMixtralEduClassifier
    >>> clf = FineWebMixtralEduClassifier(model_identifier="/models/mixtral-edu")
    >>> clf.output_fields  # doctest: +NORMALIZE_WHITESPACE
    ['fineweb-mixtral-edu-score-float', 'fineweb-mixtral-edu-score-int',
     'fineweb-mixtral-edu-score-label']
    >>> clf.model_inference_batch_size
    1024
    >>> FineWebMixtralEduClassifier().model_identifier
    'nvidia/nemocurator-fineweb-mixtral-edu-classifier'
    """

    default_model_identifier = "nvidia/nemocurator-fineweb-mixtral-edu-classifier"
    defaults = {"max_seq_length": 512, "model_inference_batch_size": 1024}
    prefix = "fineweb-mixtral-edu-score"


class FineWebNemotronEduClassifier(FineWebEduClassifier):
    """``nvidia/nemocurator-fineweb-nemotron-4-edu-classifier`` (annotations by Nemotron-4 340B).

    Columns ``fineweb-nemotron-edu-score-float``, ``...-int`` and ``...-label``;
    ``model_inference_batch_size`` 1024; otherwise as :class:`FineWebEduClassifier`.

    Examples
    --------
    >>> from dask_classify import FineWebNemotronEduClassifier
    >>> clf = FineWebNemotronEduClassifier(model_identifier="/models/nemotron-edu",
    ...                                    label_field=None)
    >>> clf.output_fields
    ['fineweb-nemotron-edu-score-float', 'fineweb-nemotron-edu-score-int']
    """

    default_model_identifier = "nvidia/nemocurator-fineweb-nemotron-4-edu-classifier"
    defaults = {"max_seq_length": 512, "model_inference_batch_size": 1024}
    prefix = "fineweb-nemotron-edu-score"
