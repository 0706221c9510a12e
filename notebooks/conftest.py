"""Running the notebooks under pytest (``pytest --nbmake notebooks``).

* 04_multi_gpu needs NVIDIA GPUs: without one it is skipped, and the skip shows in the report.
* 02_train_then_classify fine-tunes all-MiniLM-L6-v2 by default; unless ``DASK_CLASSIFY_ENCODER``
  is set, CI points it at a tiny encoder built here and trains on 300 rows, so it stays fast.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_collection_modifyitems(config, items):
    notebooks = [item for item in items if str(item.fspath).endswith(".ipynb")]
    if not notebooks:
        return
    for item in notebooks:  # each starts a kernel and a cluster: the full suite runs them
        item.add_marker(pytest.mark.slow)
    from dask_classify.backend import gpu_available

    if not gpu_available():
        skip = pytest.mark.skip(reason="04_multi_gpu needs NVIDIA GPUs and the [gpu] extra; "
                                       "this machine has none")
        for item in notebooks:
            if "04_multi_gpu" in str(item.fspath):
                item.add_marker(skip)
    # CI-sized corpora (the notebooks default to larger ones when run by hand).
    os.environ.setdefault("DASK_CLASSIFY_ROWS", "600")
    if any("02_train" in str(item.fspath) for item in notebooks):
        if "DASK_CLASSIFY_ENCODER" not in os.environ:
            from dask_classify.testing import build_tiny_encoder, default_corpus

            folder = tempfile.mkdtemp(prefix="dask-classify-tiny-encoder-")
            build_tiny_encoder(folder, "bert", default_corpus(5000))
            os.environ["DASK_CLASSIFY_ENCODER"] = folder
            os.environ.setdefault("DASK_CLASSIFY_TRAIN_ROWS", "300")
