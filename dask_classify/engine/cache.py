"""Batched inference on one partition, with the model and tokenizer cached per worker process.

The cache key is computed from the model identifier, every loading option and what the
classifier's own ``build_model`` depends on (:class:`ModelSpec`), so two classifiers in one graph
never share a model by accident, and a classifier that is pickled to a worker many times loads
its model there once.

Engines: torch, or ONNX Runtime or OpenVINO on the CPU (:mod:`dask_classify.engine.onnx_export`,
:mod:`dask_classify.engine.openvino_runtime`; both run the same cached export).
With ``engine="auto"``
(the default) a checkpoint folder that carries a graph exported from exactly its weights
(``dask-classify export``; the bundled model ships one) runs on ONNX Runtime with the
``tokenizers`` library's own tokenizer, and neither torch nor transformers is imported: a small
job starts in about a second. Every other model runs on torch, imported on first use.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any

from dask_classify.backend import resolve_device
from dask_classify.engine.spec import ModelSpec

if TYPE_CHECKING:
    import torch

    from dask_classify.checkpoint import ModelInfo

# torch, transformers and the model code are imported by the first process-wide load, under
# _LOCK: worker threads must not race on transformers 5's lazy imports, which are not
# thread-safe (several threads importing at once raise ImportError).

_LOCK = threading.Lock()
_MODELS: dict[str, tuple[Any, ModelInfo, str]] = {}
_TOKENIZERS: dict[str, Any] = {}
_ENGINES: dict[str, str] = {}  # ModelSpec.key -> "torch", "onnx", "openvino", "shipped"


def get_tokenizer(spec: ModelSpec) -> Any:
    """This process's tokenizer for ``spec`` (loaded once).

    Parameters
    ----------
    spec : ModelSpec
        Names the checkpoint; specs with the same :attr:`ModelSpec.tokenizer_key` share one
        tokenizer.

    Returns
    -------
    transformers tokenizer
        From ``spec.source.build_tokenizer()`` (or :func:`dask_classify.model.load_tokenizer`
        without a source), cached for the process (thread-safe).

    Raises
    ------
    dask_classify.CheckpointError
        When the tokenizer cannot be loaded.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.engine.cache import ModelSpec, get_tokenizer
    >>> from dask_classify.testing import build_tokenizer
    >>> folder = tempfile.mkdtemp()
    >>> _ = build_tokenizer(folder, "bert", ["a good film", "a bad film"])
    >>> tok = get_tokenizer(ModelSpec(folder, device="cpu"))
    >>> get_tokenizer(ModelSpec(folder, device="cuda")) is tok  # loaded once
    True
    """
    key = spec.tokenizer_key
    tok = _TOKENIZERS.get(key)
    if tok is None:
        with _LOCK:
            tok = _TOKENIZERS.get(key)
            if tok is None:
                if resolved_engine(spec) == "shipped":
                    from dask_classify.engine.onnx_runtime import FileTokenizer

                    tok = FileTokenizer(spec.identifier)
                elif spec.source is not None:
                    tok = spec.source.build_tokenizer()
                else:
                    from dask_classify.engine.loading import load_tokenizer

                    tok = load_tokenizer(spec.identifier, spec.cache_dir, spec.trust_remote_code,
                                         **spec.hub.as_kwargs())
                _TOKENIZERS[key] = tok
    return tok


def get_model(spec: ModelSpec) -> tuple[Any, ModelInfo, str]:
    """This process's model for ``spec`` (loaded once): module, info and torch device.

    Parameters
    ----------
    spec : ModelSpec
        Names the checkpoint and how to load it; cached under :attr:`ModelSpec.key`.

    Returns
    -------
    model : torch.nn.Module or dask_classify.engine.onnx_runtime.OnnxModel
        ``spec.source.build_model(device)``'s model (or :func:`dask_classify.model.load_model`'s
        without a source) in eval mode on ``device`` (int8-quantized when
        ``spec.quantize == "int8"``), its DeBERTa-v2/v3 attention given
        :mod:`dask_classify.engine.fast_attention`'s forward; with
        ``spec.engine == "onnx"`` (``"openvino"``) on the CPU an ONNX Runtime session (an
        OpenVINO compiled model) called the same way (its graph exported once per machine,
        :func:`dask_classify.engine.onnx_export.cached_export`), or the torch model with one
        warning when the checkpoint cannot be exported (or compiled).
    info : dask_classify.model.ModelInfo
        The checkpoint's description.
    device : str
        The torch device the model is on (``"auto"`` resolved).

    Raises
    ------
    dask_classify.CheckpointError
        When the checkpoint cannot be loaded.
    ValueError
        ``quantize="int8"`` on a device that is not the CPU (``device="auto"`` on a GPU worker).
    dask_classify.MissingExtraError
        ``engine="onnx"`` without the ``[onnx]`` extra (``"openvino"``: ``[openvino]``).

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.engine.cache import ModelSpec, cached_model_keys, clear_cache, get_model
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "bad"])
    >>> spec = ModelSpec(str(folder), device="cpu")
    >>> model, info, device = get_model(spec)
    >>> info.labels, device, get_model(spec)[0] is model
    (['neg', 'pos'], 'cpu', True)
    >>> spec.key in cached_model_keys()
    True
    >>> clear_cache()
    """
    entry = _MODELS.get(spec.key)
    if entry is None:
        with _LOCK:
            entry = _MODELS.get(spec.key)
            engine = resolved_engine(spec) if entry is None else None
            if engine == "shipped":
                entry = _load_shipped(spec)
            elif engine in ("onnx", "openvino"):
                entry = _load_onnx(spec)
            if entry is None:
                from dask_classify.engine.fast_attention import speed_up_deberta
                from dask_classify.engine.loading import load_model

                device = _device(spec)
                if spec.quantize == "int8" and device != "cpu":  # "auto" found a GPU here
                    raise ValueError("quantize='int8' runs on the CPU only")
                if spec.source is not None:
                    model, info = spec.source.build_model(device)
                else:
                    model, info = load_model(spec.identifier, spec.cache_dir,
                                             spec.trust_remote_code, **spec.hub.as_kwargs())
                if spec.settings.fast_attention:  # DeBERTa-v2/v3: same results, less work
                    speed_up_deberta(model, enabled=True)
                if spec.quantize == "int8":
                    model = _quantize_int8(model)
                model = model.to(device).eval()
                entry = (model, info, device)
            _MODELS[spec.key] = entry
    return entry


def _device(spec: ModelSpec) -> str:
    """The torch device ``spec`` runs on in this process (``"auto"`` resolved)."""
    return resolve_device(spec.device, force_cpu=spec.settings.force_cpu)


def _load_onnx(spec: ModelSpec) -> tuple[Any, ModelInfo, str] | None:
    """The ONNX Runtime or OpenVINO entry of :func:`get_model` (``spec.engine``; None: run
    torch, after one warning)."""
    from dask_classify.checkpoint import model_info, resolve_model_dir

    if spec.engine == "openvino":
        from dask_classify.engine.openvino_runtime import OpenVinoFallbackWarning as Fallback
        from dask_classify.engine.openvino_runtime import load_openvino_model as load
    else:
        from dask_classify.engine.onnx_export import load_onnx_model as load
        from dask_classify.engine.onnx_runtime import OnnxFallbackWarning as Fallback
    engine = spec.engine
    device = _device(spec)
    if device != "cpu":  # device="auto" found a GPU on this worker: torch runs it there
        warnings.warn(f"engine={engine!r} runs on the CPU; this worker's device is {device!r}, "
                      "so torch runs the model", Fallback, stacklevel=3)
        return None
    if not spec.default_builder:  # a classifier's own model
        warnings.warn(f"engine={engine!r} exports the checkpoint formats load_model reads; "
                      f"{spec.options[0] if spec.options else 'a classifier'} builds its own "
                      "model, so torch runs it", Fallback, stacklevel=3)
        return None
    from dask_classify.backend import default_torch_threads

    model = load(spec.identifier, cache_dir=spec.cache_dir,
                 trust_remote_code=spec.trust_remote_code, threads=default_torch_threads(),
                 root=spec.settings.onnx_cache)
    if model is None:
        return None
    info = model_info(resolve_model_dir(spec.identifier, spec.cache_dir,
                                        **spec.hub.as_kwargs()))
    return model, info, "cpu"


def resolved_engine(spec: ModelSpec) -> str:
    """What runs ``spec`` in this process: ``"torch"``, ``"onnx"`` or ``"openvino"`` (a graph
    exported into the cache, :func:`dask_classify.engine.onnx_export.cached_export`) or
    ``"shipped"`` (the graph the checkpoint
    folder carries, with its ``tokenizer.json``; torch is not imported).

    ``engine="auto"`` takes the shipped graph only where it fits: a local folder whose
    ``onnx_export.json`` names its present weights, ``onnxruntime`` installed, the CPU, no
    ``quantize``, and a model that :func:`dask_classify.model.load_model` would build (not a
    classifier's own). A folder that holds the graph but no weights (an export's output) runs
    it on the CPU with ``device="auto"`` even where a GPU is present: torch has nothing to
    load there. Decided once per spec and process.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.engine.cache import ModelSpec, resolved_engine
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "bad"])
    >>> resolved_engine(ModelSpec(str(folder)))  # no graph beside the weights
    'torch'
    >>> from dask_classify.bundled import default_model_dir
    >>> resolved_engine(ModelSpec(str(default_model_dir()), device="cpu"))  # ships its graph
    'shipped'
    """
    engine = _ENGINES.get(spec.key)
    if engine is None:
        engine = spec.engine if spec.engine != "auto" else "torch"
        if spec.engine == "auto" and spec.quantize is None and spec.default_builder:
            from dask_classify.engine.onnx_runtime import shipped_graph
            from dask_classify.weights import has_weights

            graph = shipped_graph(spec.identifier)
            if graph is not None and (_device(spec) == "cpu" or (
                    spec.device == "auto" and not has_weights(graph.parent))):
                engine = "shipped"
        _ENGINES[spec.key] = engine
    return engine


def _load_shipped(spec: ModelSpec) -> tuple[Any, ModelInfo, str]:
    """The ONNX Runtime entry for the graph a checkpoint folder ships (no torch)."""
    from dask_classify.backend import default_torch_threads
    from dask_classify.checkpoint import model_info
    from dask_classify.engine.onnx_runtime import OnnxModel, shipped_graph

    path = shipped_graph(spec.identifier)
    assert path is not None  # resolved_engine checked it
    return (OnnxModel(path, threads=default_torch_threads()),
            model_info(path.parent), "cpu")


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of ``model``'s Linear layers (weights int8, activations fp32).

    torch >= 2.10 marks ``torch.ao.quantization`` deprecated in favour of the separate ``torchao``
    package, and warns on every call; the API still works in the torch we pin (2.13), so the
    warnings are silenced here, where we chose it, instead of surfacing on every worker.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor",
                                category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                      dtype=torch.qint8)


def clear_cache() -> None:
    """Drop every cached model and tokenizer of this process (and free CUDA memory).

    The next :func:`get_model` / :func:`get_tokenizer` call loads afresh, e.g. after a
    checkpoint folder was overwritten. Run it on every worker with
    ``client.run(dask_classify.clear_cache)``.

    Examples
    --------
    >>> from dask_classify.engine.cache import cached_model_keys, clear_cache
    >>> clear_cache()
    >>> cached_model_keys()
    []
    """
    import sys

    with _LOCK:
        _MODELS.clear()
        _TOKENIZERS.clear()
        _ENGINES.clear()
    torch = sys.modules.get("torch")  # nothing to free where torch never ran
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def cached_model_keys() -> list[str]:
    """Keys of the models loaded in this process (for tests and diagnostics).

    Returns
    -------
    list of str
        The :attr:`ModelSpec.key` of each cached model, sorted.

    Examples
    --------
    >>> from dask_classify.engine.cache import cached_model_keys
    >>> isinstance(cached_model_keys(), list)
    True
    """
    return sorted(_MODELS)


