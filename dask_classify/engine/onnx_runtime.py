"""ONNX Runtime as a CPU engine: a session called like the torch model, and shipped graphs.

:class:`OnnxModel` runs a graph written by :func:`dask_classify.engine.onnx_export.export_onnx`
with the package's own batches; :func:`shipped_graph` finds the graph a checkpoint folder carries
(the bundled model has one) and :class:`FileTokenizer` tokenizes for it with the ``tokenizers``
library, so such a folder runs without importing torch or transformers. Needs the ``[onnx]``
extra (``onnxruntime``).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dask_classify.engine.spec import ONNX_CACHE_ENV
from dask_classify.errors import MissingExtraError
from dask_classify.weights import export_key, has_weights

__all__ = ["CACHE_ENV", "EXPORT_INFO", "EXPORT_VERSION", "ONNX_NAME", "FileTokenizer",
           "OnnxFallbackWarning", "OnnxModel", "cache_root", "shipped_graph"]

#: Bumped whenever the export writes a different graph for the same weights (part of the cache
#: key, so old exports are not reused).
EXPORT_VERSION = 1
ONNX_NAME = "model.onnx"
EXPORT_INFO = "onnx_export.json"
CACHE_ENV = ONNX_CACHE_ENV
_WARNED: set[str] = set()


class OnnxFallbackWarning(UserWarning):
    """A model could not be run by ONNX Runtime; the classifier runs it on torch instead."""


def _require(export: bool = True) -> Any:
    """onnxruntime (and, to export, onnx), or a :class:`MissingExtraError` naming the extra."""
    try:
        if export:
            import onnx  # noqa: F401
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError.for_module(exc.name or "onnxruntime", "onnx",
                                           "ONNX export and engine='onnx'") from None
    return onnxruntime


def cache_root() -> Path:
    """Where exported graphs are cached: ``$DASK_CLASSIFY_ONNX_CACHE``, else
    ``~/.cache/dask_classify/onnx``.

    Examples
    --------
    >>> import os
    >>> from dask_classify.engine.onnx_runtime import CACHE_ENV, cache_root
    >>> os.environ[CACHE_ENV] = "/tmp/onnx-cache"
    >>> str(cache_root())
    '/tmp/onnx-cache'
    >>> del os.environ[CACHE_ENV]
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "dask_classify" / "onnx"


class OnnxModel:
    """An ONNX Runtime session called like the PyTorch model: ``model(input_ids, mask)``.

    Takes and returns numpy arrays (``numpy_io``), so :func:`dask_classify.engine.run.run_model`
    runs it with the same batches as a torch module, without torch.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file (inputs ``input_ids`` and ``attention_mask``, int64).
    threads : int, optional
        ONNX Runtime intra-op threads (default: this process's share of the cores,
        :func:`dask_classify.backend.default_torch_threads`).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from dask_classify.engine.onnx_export import export_onnx
    >>> from dask_classify.engine.onnx_runtime import OnnxModel
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "bad"])
    >>> out = export_onnx(folder, tempfile.mkdtemp() + "/onnx")
    >>> model = OnnxModel(out / "model.onnx", threads=1)
    >>> probs = model(np.array([[2, 7, 9, 3], [2, 5, 3, 0]]), np.array([[1, 1, 1, 1],
    ...                                                                 [1, 1, 1, 0]]))
    >>> probs.shape, probs.dtype, bool(np.allclose(probs.sum(-1), 1.0))
    ((2, 2), dtype('float32'), True)
    """

    numpy_io = True

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        from dask_classify.backend import default_torch_threads

        ort = _require(export=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or default_torch_threads())
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": np.asarray(input_ids, dtype=np.int64),
                "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        return self.session.run(None, feed)[0]

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, threads={self.threads})"


def shipped_graph(identifier: str | os.PathLike) -> Path | None:
    """The ``model.onnx`` a checkpoint folder carries, when it can replace torch there.

    That is: a local folder with ``model.onnx``, ``onnx_export.json`` and ``tokenizer.json``
    (what ``dask-classify export`` writes; the bundled model ships one), whose recorded
    ``weights_hash`` is the hash of the weights now in the folder (or a folder without weights,
    such as an export's own output), and ``onnxruntime`` installed. A graph exported from other
    weights is not used (one :class:`OnnxFallbackWarning`: export again).

    Examples
    --------
    >>> from dask_classify.bundled import default_model_dir
    >>> from dask_classify.engine.onnx_runtime import shipped_graph
    >>> shipped_graph(default_model_dir()).name
    'model.onnx'
    >>> shipped_graph("nvidia/quality-classifier-deberta") is None  # a hub id: torch
    True
    """
    import importlib.util

    folder = Path(identifier)
    graph, info = folder / ONNX_NAME, folder / EXPORT_INFO
    if not (graph.is_file() and info.is_file() and (folder / "tokenizer.json").is_file()):
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    try:
        recorded = json.loads(info.read_text(encoding="utf-8")).get("weights_hash")
    except ValueError:
        recorded = None
    # no weights: the graph is the model
    if has_weights(folder) and recorded != export_key(folder, EXPORT_VERSION):
        key = str(folder.resolve())
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(f"{graph} was not exported from the weights now in {folder} (export "
                          "it again with dask-classify export); torch runs this model",
                          OnnxFallbackWarning, stacklevel=3)
        return None
    return graph


class FileTokenizer:
    """A checkpoint's ``tokenizer.json`` run by the ``tokenizers`` library: the same token ids
    as the transformers tokenizer saved there, without importing transformers or torch.

    Called like a transformers tokenizer the way :func:`dask_classify.tokenize.tokenize` calls
    it; ``pad_token_id`` and ``model_max_length`` come from ``tokenizer_config.json``.

    Examples
    --------
    >>> from dask_classify.bundled import default_model_dir
    >>> from dask_classify.engine.onnx_runtime import FileTokenizer
    >>> tok = FileTokenizer(default_model_dir())
    >>> ids = tok(["a charming film", "dull"], truncation=True, max_length=4)["input_ids"]
    >>> [len(row) for row in ids], tok.pad_token_id, tok.model_max_length
    ([4, 3], 0, 512)
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._base = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._base.no_padding()
        self._base.no_truncation()
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() \
            else {}
        self.model_max_length = int(config.get("model_max_length") or int(1e30))
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self._base.token_to_id(pad) if pad else None
        self._truncating: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _for(self, max_length: int | None) -> Any:
        if max_length is None:
            return self._base
        with self._lock:  # one tokenizer per limit: truncation is state of the Rust object
            tok = self._truncating.get(max_length)
            if tok is None:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_str(self._base.to_str())
                tok.enable_truncation(max_length)
                self._truncating[max_length] = tok
        return tok

    def __call__(self, texts: list[str], truncation: bool = False,
                 max_length: int | None = None, **_: Any) -> dict[str, list[list[int]]]:
        tok = self._for(max_length if truncation else None)
        return {"input_ids": [e.ids for e in tok.encode_batch(list(texts))]}
