"""The columns a classifier head's outputs become: labels, label lists, scores, probabilities.

One function, :func:`head_columns`, reads the kind of head from a
:class:`~dask_classify.checkpoint.ModelInfo` (single-label, multi-label or regression) and
returns the label column (and the score column when asked), one value per row of a partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dask_classify.backend import string_dtype
from dask_classify.checkpoint import MULTI_LABEL, REGRESSION

if TYPE_CHECKING:
    from dask_classify.checkpoint import ModelInfo

__all__ = ["head_columns"]


def head_columns(outputs: np.ndarray | None, valid: np.ndarray, info: ModelInfo | None,
                 label_field: str, score_field: str | None = None,
                 threshold: float = 0.5) -> dict[str, pd.Series]:
    """The label column (and score column) of a partition from its head's outputs.

    Parameters
    ----------
    outputs : numpy.ndarray, shape ``(valid.sum(), k)``, or None
        The model's outputs for the rows with text, in row order (None when there are none).
    valid : numpy.ndarray of bool, shape ``(rows,)``
        Which rows have text; the others get nulls.
    info : ModelInfo or None
        The head: single-label gives the arg-max label (a string column), multi-label the list
        of labels at or above ``threshold``, regression the score (a float, or a list of floats
        for several outputs).
    label_field, score_field : str
        Names of the columns; the score column (each row's output vector as a list of floats)
        is only made when ``score_field`` is given.
    threshold : float, default 0.5
        The sigmoid a label needs in a multi-label head.

    Returns
    -------
    dict of str to pandas.Series
        ``len(valid)`` long each; dtypes that do not depend on the partition.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.checkpoint import ModelInfo
    >>> from dask_classify.outputs import head_columns
    >>> info = ModelInfo("hf", {0: "neg", 1: "pos"})
    >>> cols = head_columns(np.array([[0.25, 0.75]], dtype=np.float32),
    ...                     np.array([False, True]), info, "label", "probs")
    >>> cols["label"].isna().tolist(), cols["label"][1], cols["probs"].tolist()
    ([True, False], 'pos', [None, [0.25, 0.75]])
    """
    n = len(valid)
    have = outputs is not None and len(outputs) > 0
    problem = info.problem_type if info is not None else None
    if problem == REGRESSION:
        if len(info.id2label) == 1:
            values = np.full(n, np.nan, dtype=np.float64)
            if have:
                values[valid] = outputs[:, 0]
            label_col = pd.Series(values, dtype=np.float64)
        else:
            label_col = _lists(outputs if have else None, valid)
    elif problem == MULTI_LABEL:
        names = info.labels
        chosen = np.full(n, None, dtype=object)
        if have:
            hits = outputs >= threshold
            chosen[np.flatnonzero(valid)] = [
                [names[j] for j in np.flatnonzero(row)] for row in hits]
        label_col = pd.Series(chosen, dtype=object)
    else:
        labels = np.full(n, None, dtype=object)
        if have:
            labels[valid] = np.array(info.labels, dtype=object)[outputs.argmax(axis=1)]
        label_col = pd.Series(labels, dtype=string_dtype())
    cols = {label_field: label_col}
    if score_field:
        cols[score_field] = _lists(outputs if have else None, valid)
    return cols


def _lists(outputs: np.ndarray | None, valid: np.ndarray) -> pd.Series:
    """One list of floats per valid row (None elsewhere), as an object column."""
    values = np.full(len(valid), None, dtype=object)
    if outputs is not None and len(outputs):
        values[np.flatnonzero(valid)] = [row.tolist() for row in outputs]
    return pd.Series(values, dtype=object)
