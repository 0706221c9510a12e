"""Session-wide fixtures: tiny real checkpoints (built once) and samples of real data sets.

The samples live in ``tests/data`` (origins and licenses: ``tests/data/SOURCES.md``).
"""

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
)

LABELS3 = ["High", "Medium", "Low"]
DATA = Path(__file__).resolve().parent / "data"


def _cuda_present() -> bool:
    """An NVIDIA GPU (NVML) that this torch can use (a CPU build of torch cannot)."""
    from dask_classify.backend import gpu_count

    if gpu_count() == 0:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    from dask_classify.backend import gpu_available

    cuda, rapids = _cuda_present(), gpu_available()
    for item in items:
        if "rapids" in item.keywords and not rapids:
            item.add_marker(pytest.mark.skip(
                reason="needs an NVIDIA GPU and the [gpu] extra (cudf, dask_cudf, dask_cuda)"))
        elif "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU and a CUDA build of "
                                                    "torch; none here"))


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request, monkeypatch):
    """Tests not marked gpu state CPU behaviour (fp32 numbers): on a GPU host, device="auto"
    would run them on the GPU under autocast. Processes they start inherit the variable."""
    if "gpu" not in request.node.keywords and "rapids" not in request.node.keywords:
        monkeypatch.setenv("DASK_CLASSIFY_DEVICE", "cpu")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``tests/data``: samples of SST-2, AG News, IMDB and TREC-6 committed with the tests."""
    return DATA


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return default_corpus()


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
    lines = (data_dir / "ag_news" / "train_sample.tsv").read_text(encoding="utf-8")
    return [line.split("\t")[0] for line in lines.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def imdb_texts(data_dir) -> list[str]:
    root = data_dir / "imdb" / "aclImdb"
    return [p.read_text(encoding="utf-8") for p in sorted(root.glob("*/*/*.txt"))]
