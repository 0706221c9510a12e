"""FineMath: the mathematical value of a web page, a regression head scoring 0-5."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dask_classify.checkpoint import ModelInfo
from dask_classify.classifiers._base import PublishedClassifier
from dask_classify.classifiers.fineweb import require_regression, score_columns
from dask_classify.errors import UsageError


def center_crop(text: str, chars: int) -> str:
    """The middle of ``text``: up to ``chars`` characters on each side of its centre.

    NeMo Curator's FineMath crop (``CenterCropTextStage._mid_slice``): with the default 10,000
    it keeps at most 20,000 characters, centred.

    Examples
    --------
    >>> from dask_classify.classifiers.finemath import center_crop
    >>> center_crop("abcdefghij", 2)
    'defg'
    >>> center_crop("short", 10)
    'short'
    """
    middle = len(text) // 2
    return text[max(0, middle - chars):min(middle + chars, len(text))]


class FineMathClassifier(PublishedClassifier):
    """``HuggingFaceTB/finemath-classifier``: mathematical content of a web page, 0 to 5.

    As NeMo Curator 1.x's ``FineMathClassifier`` (``nemo_curator/stages/math/classifiers/
    finemath.py``): each text is centre-cropped (:func:`center_crop`, ``center_crop_chars`` on
    each side of the middle), then cut to ``max_chars`` if given, tokenized to 512 tokens and
    scored by a one-output regression head. Adds two columns:

    * ``score_field`` (float, default ``finemath_scores``): the score clipped to [0, 5];
    * ``int_field`` (``Int64``, default ``finemath_int_scores``): the clipped score rounded half
      to even (Python's ``round``, as Curator does).

    Rows with null text get nulls (Curator would classify the string ``"None"``); the text
    column is left as it was (Curator replaces it with the cropped text).

    Parameters
    ----------
    model_identifier : str, optional
        Checkpoint folder or hub id; default ``HuggingFaceTB/finemath-classifier``.
    score_field, int_field : str
        The two columns' names.
    center_crop_chars : int or None, default 10000
        Characters kept on each side of the middle; None or 0 keeps the whole text.
    **kwargs
        Parameters of :class:`~dask_classify.DistributedDataClassifier`. Defaults as in NeMo
        Curator: ``max_seq_length=512``, ``model_inference_batch_size=1024``, no ``max_chars``.
        (Curator also turns length sorting off; it only changes speed, so it stays on here.)

    Raises
    ------
    dask_classify.errors.UsageError
        A negative ``center_crop_chars``, ``filter_by`` (no labels), or (when called) a
        checkpoint that is not a one-output regression model.

    Examples
    --------
    >>> from dask_classify import FineMathClassifier
    >>> clf = FineMathClassifier(model_identifier="/models/finemath")
    >>> clf.output_fields, clf.model_inference_batch_size
    (['finemath_scores', 'finemath_int_scores'], 1024)
    >>> clf.format_texts(["x" * 30_000])[0] == "x" * 20_000
    True
    """

    default_model_identifier = "HuggingFaceTB/finemath-classifier"
    defaults = {"max_seq_length": 512, "model_inference_batch_size": 1024}

    parameters = ("int_field", "center_crop_chars")

    def __init__(self, model_identifier: str | None = None, *,
                 score_field: str = "finemath_scores", int_field: str = "finemath_int_scores",
                 center_crop_chars: int | None = 10_000, **kwargs: Any) -> None:
        if kwargs.get("filter_by"):
            raise UsageError("filter_by needs labels; FineMathClassifier writes scores "
                             "(filter on finemath_int_scores after classifying)")
        kwargs.pop("filter_by", None)
        if kwargs.get("label_field") is not None:
            raise UsageError("FineMathClassifier writes score_field and int_field; "
                             "label_field does not apply")
        kwargs.pop("label_field", None)
        ok = center_crop_chars is None or (isinstance(center_crop_chars, int)
                                           and not isinstance(center_crop_chars, bool)
                                           and center_crop_chars >= 0)
        if not ok:
            raise UsageError("center_crop_chars must be a non-negative integer or None, not "
                             f"{center_crop_chars!r}")
        self.int_field = int_field
        self.center_crop_chars = center_crop_chars or None
        super().__init__(model_identifier, score_field=score_field, label_field=int_field,
                         **kwargs)

    @property
    def output_fields(self) -> list[str]:
        """The float and the integer score columns."""
        return [self.score_field, self.int_field]

    def arrow_types(self) -> dict[str, Any]:
        return {}

    def format_texts(self, texts: list[str]) -> list[str]:
        """Centre crop (``center_crop_chars``), then ``max_chars``, as NeMo Curator does."""
        if self.center_crop_chars:
            texts = [center_crop(t, self.center_crop_chars) for t in texts]
        return super().format_texts(texts)

    def format_options(self) -> tuple:
        return ("center_crop", self.center_crop_chars, *super().format_options())

    def validate_model(self, info: ModelInfo) -> None:
        require_regression(self, info)
        super().validate_model(info)

    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]:
        score, as_int = score_columns(outputs, valid)
        return {self.score_field: score, self.int_field: as_int}
