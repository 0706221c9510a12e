"""Session-wide fixtures: tiny real checkpoints (built once) and the real data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No model hub at test time: everything is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from dask_classify.testing import (  # noqa: E402
    build_tiny_deberta_checkpoint,
    build_tiny_hf_checkpoint,
    default_corpus,
    shared_data_dir,
)

LABELS3 = ["High", "Medium", "Low"]


def _gpu_present() -> bool:
    from dask_classify.backend import gpu_available

    return gpu_available()


def pytest_collection_modifyitems(config, items):
    if _gpu_present():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU and the [gpu] extra; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "sst2" / "train.tsv").is_file():
        pytest.fail(f"the shared data sets are missing: expected them in {path}")
    return path


@pytest.fixture(scope="session")
def corpus(data_dir) -> list[str]:
    return default_corpus(5000)


@pytest.fixture(scope="session")
def deberta_ckpt(tmp_path_factory, corpus) -> Path:
    """NVIDIA-format checkpoint: DeBERTa-v2 backbone, SentencePiece tokenizer, 3 labels."""
    return build_tiny_deberta_checkpoint(tmp_path_factory.mktemp("deberta"), LABELS3,
                                         tokenizer="deberta", texts=corpus)


@pytest.fixture(scope="session")
def bert_ckpt(tmp_path_factory, corpus) -> Path:
    """NVIDIA-format checkpoint with a BERT backbone (absolute positions), 2 labels."""
    return build_tiny_deberta_checkpoint(tmp_path_factory.mktemp("bert"), ["neg", "pos"],
                                         tokenizer="bert", texts=corpus, seed=1)


@pytest.fixture(scope="session")
def hf_ckpt(tmp_path_factory, corpus) -> Path:
    """Plain AutoModelForSequenceClassification folder (BERT), 4 labels."""
    return build_tiny_hf_checkpoint(tmp_path_factory.mktemp("hf"),
                                    ["World", "Sports", "Business", "Sci/Tech"], texts=corpus)


@pytest.fixture(scope="session")
def regression_ckpt(tmp_path_factory, corpus) -> Path:
    """FineWeb-edu style regression checkpoint (one output)."""
    return build_tiny_hf_checkpoint(tmp_path_factory.mktemp("reg"), regression=True,
                                    texts=corpus, seed=2)


@pytest.fixture(scope="session")
def ag_news_texts(data_dir) -> list[str]:
    lines = (data_dir / "ag_news" / "train_sample_10k.tsv").read_text(encoding="utf-8")
    return [line.split("\t")[0] for line in lines.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def imdb_texts(data_dir) -> list[str]:
    root = data_dir / "imdb" / "aclImdb"
    return [p.read_text(encoding="utf-8") for p in sorted(root.glob("*/*/*.txt"))]
