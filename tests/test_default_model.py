"""The bundled default model: format, model card, accuracy, and use by the CLI."""

from __future__ import annotations

import json
import re

import dask.dataframe as dd
import pandas as pd

from dask_classify import DistributedDataClassifier
from dask_classify.bundled import default_model_dir  # noqa: E402
from dask_classify.cli import main
from dask_classify.train.data import read_tsv

MODEL = default_model_dir()


def test_bundled_model_is_a_small_nvidia_format_checkpoint():
    config = json.loads((MODEL / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert {"base_model", "fc_dropout", "label2id"} <= set(config)
    size = sum(p.stat().st_size for p in MODEL.iterdir())
    assert size < 10 * 2**20, f"bundled model is {size / 2**20:.1f} MiB"


def test_bundled_model_reaches_its_accuracy_on_sst2_dev(data_dir):
    dev = read_tsv(data_dir / "sst2" / "dev.tsv")
    ddf = dd.from_pandas(dev, npartitions=2)
    out = DistributedDataClassifier(MODEL, text_field="sentence")(ddf).compute()
    predicted = out["preds"].map({"negative": 0, "positive": 1})
    accuracy = float((predicted == dev["label"]).mean())
    assert accuracy >= 0.80
    card = (MODEL / "README.md").read_text()
    claimed = float(re.search(r"872 sentences\)\*\* \| \*\*([0-9.]+)\*\*", card).group(1))
    assert abs(claimed - accuracy) < 1e-3  # the model card states what the model does


def test_classify_uses_the_bundled_model_by_default(tmp_path, capsys):
    src = tmp_path / "reviews.jsonl"
    pd.DataFrame({"text": ["a wonderful, moving film", "dull and far too long"]}).to_json(
        src, orient="records", lines=True)
    assert main(["classify", str(src), "--output", str(tmp_path / "out"), "--no-progress",
                 "--dashboard-address", "none"]) == 0
    result = pd.read_parquet(tmp_path / "out" / "reviews.parquet")
    assert result["preds"].tolist() == ["positive", "negative"]
