"""head_columns: what each kind of head's outputs become (dask_classify.outputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dask_classify.checkpoint import ModelInfo
from dask_classify.outputs import head_columns

VALID = np.array([True, False, True])


def test_single_label_takes_the_argmax_and_nulls_rows_without_text():
    info = ModelInfo("hf", {0: "neg", 1: "pos"})
    out = np.array([[0.9, 0.1], [0.3, 0.7]], dtype=np.float32)
    cols = head_columns(out, VALID, info, "label", "probs")
    assert cols["label"][0] == "neg" and pd.isna(cols["label"][1]) and cols["label"][2] == "pos"
    assert cols["probs"].tolist() == [out[0].tolist(), None, out[1].tolist()]


def test_multi_label_lists_every_label_at_or_above_the_threshold():
    info = ModelInfo("hf", {0: "sports", 1: "politics", 2: "tech"},
                     problem_type="multi_label_classification")
    out = np.array([[0.9, 0.7, 0.1], [0.2, 0.5, 0.49]], dtype=np.float32)
    cols = head_columns(out, VALID, info, "topics", threshold=0.5)
    assert cols["topics"].tolist() == [["sports", "politics"], None, ["politics"]]
    assert "probs" not in cols
    strict = head_columns(out, VALID, info, "topics", threshold=0.8)
    assert strict["topics"].tolist() == [["sports"], None, []]


def test_regression_gives_floats_or_lists_of_floats():
    one = ModelInfo("hf", {0: "LABEL_0"}, problem_type="regression")
    cols = head_columns(np.array([[3.25], [-1.0]], dtype=np.float32), VALID, one, "score")
    assert cols["score"].dtype == np.float64
    assert cols["score"].tolist()[0] == 3.25 and np.isnan(cols["score"][1])
    two = ModelInfo("hf", {0: "a", 1: "b"}, problem_type="regression")
    cols = head_columns(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), VALID, two, "s")
    assert cols["s"].tolist() == [[1.0, 2.0], None, [3.0, 4.0]]


def test_no_outputs_gives_all_null_columns_of_the_partition_length():
    info = ModelInfo("hf", {0: "neg", 1: "pos"})
    cols = head_columns(None, np.array([False, False]), info, "label", "probs")
    assert len(cols["label"]) == 2 and cols["label"].isna().all()
    assert cols["probs"].tolist() == [None, None]
