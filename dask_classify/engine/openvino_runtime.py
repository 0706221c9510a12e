"""OpenVINO as a CPU engine: the exported ONNX graph compiled by OpenVINO, called like torch.

``DistributedDataClassifier(..., engine="openvino")`` reads the graph that ``engine="onnx"``
runs (exported once per machine and cached by a hash of the weights,
:func:`dask_classify.engine.onnx_export.cached_export`) and compiles it for the CPU with
OpenVINO, with dynamic batch and sequence axes: the package's length-sorted, token-budgeted
batches run on one compiled model, never recompiled per shape. Inference precision is fp32 (on
CPUs with bf16 or AMX, OpenVINO would otherwise pick bf16 by itself), the threads are the
worker's share of the cores, and the performance hint is ``LATENCY`` with one stream (the batches
of a worker run one after the other; ``benchmarks/README.md`` has the comparison with
``THROUGHPUT``). At load, the compiled model is checked against ONNX Runtime on a probe batch; a
graph OpenVINO cannot read or compile, or whose outputs differ by more than 1e-4, runs on torch
after one :class:`OpenVinoFallbackWarning`. Needs the ``[openvino]`` extra.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dask_classify.errors import MissingExtraError

__all__ = ["HINTS", "TOLERANCE", "OpenVinoFallbackWarning", "OpenVinoModel", "load_openvino_model"]

#: Performance hints OpenVINO's CPU plugin takes.
HINTS = ("LATENCY", "THROUGHPUT")
#: Largest difference from ONNX Runtime a compiled model may have on its probe batch.
TOLERANCE = 1e-4
_WARNED: set[str] = set()


class OpenVinoFallbackWarning(UserWarning):
    """OpenVINO could not run a model; the classifier runs it on torch instead."""


def _require() -> Any:
    """The ``openvino`` module, or a :class:`MissingExtraError` naming the extra."""
    try:
        import openvino
    except ImportError as exc:
        raise MissingExtraError.for_module(exc.name or "openvino", "openvino",
                                           "engine='openvino'") from None
    return openvino


class OpenVinoModel:
    """An ONNX graph compiled by OpenVINO for the CPU, called like the PyTorch model.

    Takes and returns numpy arrays (``numpy_io``), so :func:`dask_classify.engine.run.run_model`
    runs it with the same batches as a torch module or an ONNX Runtime session.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file (inputs ``input_ids`` and ``attention_mask``, int64, dynamic axes).
    threads : int, optional
        OpenVINO inference threads (default: this process's share of the cores,
        :func:`dask_classify.backend.default_torch_threads`).
    hint : {"LATENCY", "THROUGHPUT"}, default "LATENCY"
        OpenVINO's performance hint; ``LATENCY`` runs one stream with every thread.

    Raises
    ------
    MissingExtraError
        Without the ``[openvino]`` extra.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from dask_classify.engine.onnx_export import export_onnx
    >>> from dask_classify.engine.openvino_runtime import OpenVinoModel
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "bad"])
    >>> out = export_onnx(folder, tempfile.mkdtemp() + "/onnx")
    >>> model = OpenVinoModel(out / "model.onnx", threads=1)
    >>> probs = model(np.array([[2, 7, 9, 3], [2, 5, 3, 0]]), np.array([[1, 1, 1, 1],
    ...                                                                 [1, 1, 1, 0]]))
    >>> probs.shape, probs.dtype, bool(np.allclose(probs.sum(-1), 1.0))
    ((2, 2), dtype('float32'), True)
    >>> model.precision, model.threads
    ('f32', 1)
    """

    numpy_io = True

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 hint: str = "LATENCY") -> None:
        from dask_classify.backend import default_torch_threads

        if hint not in HINTS:
            raise ValueError(f"hint must be one of {list(HINTS)}, not {hint!r}")
        ov = _require()
        self.path = Path(path)
        self.threads = int(threads or default_torch_threads())
        self.hint = hint
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32",
                                  "INFERENCE_NUM_THREADS": self.threads,
                                  "PERFORMANCE_HINT": hint}
        if hint == "LATENCY":
            config["NUM_STREAMS"] = 1
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        # the precision it runs in, as OpenVINO names element types ("f32", "bf16")
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._request = self.compiled.create_infer_request()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": np.asarray(input_ids, dtype=np.int64),
                "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        # share_outputs=False: the result outlives the request's next call
        return self._request.infer(feed, share_outputs=False)[0]

    def __repr__(self) -> str:
        return f"OpenVinoModel({str(self.path)!r}, threads={self.threads}, hint={self.hint!r})"


def _probe(vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rows of token ids inside the vocabulary, the second padded (as a batch is)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, max(2, min(vocab_size, 1000)), size=(2, 12), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    ids[1, 8:] = 0
    return ids, mask


def _checked(model: OpenVinoModel, graph: Path, vocab_size: int) -> float:
    """Largest difference between ``model`` and ONNX Runtime on the same graph and probe."""
    from dask_classify.engine.onnx_runtime import OnnxModel

    probe = _probe(vocab_size)
    expected = OnnxModel(graph, threads=1)(*probe)
    got = model(*probe)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.abs(got.astype(np.float32) - expected).max())


def _fallback(key: str, why: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"engine='openvino': {why}; running this model on torch instead",
                      OpenVinoFallbackWarning, stacklevel=4)


def load_openvino_model(model_identifier: str | os.PathLike, *, cache_dir: str | None = None,
                        trust_remote_code: bool = False, threads: int | None = None,
                        root: str | os.PathLike | None = None,
                        hint: str = "LATENCY") -> OpenVinoModel | None:
    """An :class:`OpenVinoModel` of a checkpoint's cached ONNX export, or None (run torch) with
    one :class:`OpenVinoFallbackWarning` per checkpoint when it cannot be exported, read,
    compiled, or does not match ONNX Runtime to :data:`TOLERANCE` on a probe batch.

    Raises
    ------
    MissingExtraError
        Without the ``[openvino]`` extra or the ``[onnx]`` packages it exports with (not a
        fallback: the user asked for OpenVINO).

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.engine.openvino_runtime import load_openvino_model
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="deberta", texts=["a good film", "bad"])
    >>> load_openvino_model(folder, threads=1, root=tempfile.mkdtemp()).path.name
    'model.onnx'
    """
    from dask_classify.checkpoint import read_config, resolve_model_dir
    from dask_classify.engine.onnx_export import cached_export
    from dask_classify.errors import CheckpointError

    _require()
    try:  # the graph is exported (onnx) and checked (onnxruntime): both are in the extra
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError.for_module(exc.name or "onnx", "openvino",
                                           "engine='openvino'") from None
    key = os.fspath(model_identifier)
    try:
        graph = cached_export(model_identifier, cache_dir=cache_dir,
                              trust_remote_code=trust_remote_code, root=root)
    except CheckpointError as exc:
        _fallback(key, str(exc))
        return None
    try:
        model = OpenVinoModel(graph, threads=threads, hint=hint)
    except Exception as exc:  # noqa: BLE001 - any failure to read or compile: torch runs it
        _fallback(key, f"OpenVINO could not compile {graph} ({type(exc).__name__}: "
                       f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})")
        return None
    config = read_config(resolve_model_dir(model_identifier, cache_dir))
    vocab = config.get("vocab_size") or (config.get("backbone_config") or {}).get(
        "vocab_size") or 10  # small ids are in every vocabulary
    try:
        diff = _checked(model, graph, int(vocab))
    except Exception as exc:  # noqa: BLE001 - a probe OpenVINO cannot run: torch runs it
        _fallback(key, f"OpenVINO could not run a probe batch ({type(exc).__name__})")
        return None
    if not diff <= TOLERANCE:
        _fallback(key, f"the compiled model differs from ONNX Runtime by {diff:.3g} (more than "
                       f"{TOLERANCE}) on a probe batch")
        return None
    return model
