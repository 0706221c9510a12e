"""Batched inference on one partition, with the model and tokenizer cached per worker process.

The cache key is computed from the model identifier, every loading option and what the
classifier's own ``build_model`` depends on (:class:`ModelSpec`), so two classifiers in one graph
never share a model by accident, and a classifier that is pickled to a worker many times loads
its model there once.

Engines: torch, or ONNX Runtime on the CPU (:mod:`dask_classify.onnx`). With ``engine="auto"``
(the default) a checkpoint folder that carries a graph exported from exactly its weights
(``dask-classify export``; the bundled model ships one) runs on ONNX Runtime with the
``tokenizers`` library's own tokenizer, and neither torch nor transformers is imported: a small
job starts in about a second. Every other model runs on torch, imported on first use.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_classify.backend import resolve_device
from dask_classify.tokenize import pad_arrays, plan_batches

if TYPE_CHECKING:
    import torch

    from dask_classify.checkpoint import ModelInfo

# torch, transformers and the model code are imported by the first process-wide load, under
# _LOCK: worker threads must not race on transformers 5's lazy imports, which are not
# thread-safe (several threads importing at once raise ImportError).

_LOCK = threading.Lock()
#: ``ModelSpec.options[0]`` of classifiers whose model is :func:`load_model`'s.
DEFAULT_BUILDER = "dask_classify.classifier.DistributedDataClassifier"
# One forward pass at a time per process: the model gets every torch thread, while other task
# threads tokenize (Rust, no GIL) or do Dask work. Concurrent forward passes from several task
# threads would oversubscribe the cores (OpenMP teams per thread) and be slower, not faster.
INFERENCE_LOCK = threading.RLock()
_MODELS: dict[str, tuple[Any, ModelInfo, str]] = {}
_TOKENIZERS: dict[str, Any] = {}
_ENGINES: dict[str, str] = {}  # ModelSpec.key -> "torch", "onnx" or "shipped"


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which model object a worker loads (hashable, picklable).

    Parameters
    ----------
    identifier : str
        Checkpoint folder or hub id.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.
    trust_remote_code : bool, default False
        Let a hub checkpoint's own Python code run.
    device : str, default "auto"
        ``"auto"`` (``"cuda"`` when the worker sees a GPU, else ``"cpu"``), ``"cpu"``,
        ``"cuda"`` or ``"cuda:<n>"``.
    quantize : {None, "int8"}, default None
        ``"int8"``: dynamic int8 quantization of the Linear layers (CPU only).
    revision, token, local_files_only
        Hub options for a hub id (see :func:`dask_classify.model.resolve_model_dir`); the
        token is not shown in the spec's repr.
    options : tuple, default ()
        Everything else the model depends on (hashable values with a stable ``repr``): for a
        classifier, the class whose ``build_model`` builds it and its ``model_options()``.
    tokenizer_options : tuple, default ()
        The same for the tokenizer.
    source : object, optional
        What builds the model and tokenizer: an object with ``build_model(device)`` and
        ``build_tokenizer()`` (a classifier). None: :func:`dask_classify.model.load_model` and
        :func:`dask_classify.model.load_tokenizer`. Not part of the keys or of equality: the
        options stand for it.
    engine : {"auto", "torch", "onnx"}, default "auto"
        ``"onnx"``: ONNX Runtime on the CPU (:mod:`dask_classify.onnx`), torch elsewhere;
        ``"auto"``: ONNX Runtime when the folder ships a graph of these weights (see the
        module docstring), else torch.

    Examples
    --------
    >>> from dask_classify.predict import ModelSpec
    >>> cpu = ModelSpec("/models/quality", device="cpu")
    >>> int8 = ModelSpec("/models/quality", device="cpu", quantize="int8")
    >>> len(cpu.key), cpu.key == int8.key, cpu.tokenizer_key == int8.tokenizer_key
    (16, False, True)
    >>> cpu == ModelSpec("/models/quality", device="cpu")  # equal specs share a cached model
    True
    >>> ModelSpec("/models/quality", device="cpu", options=("mean-pooling",)).key == cpu.key
    False
    """

    identifier: str
    cache_dir: str | None = None
    trust_remote_code: bool = False
    device: str = "auto"  # "auto" (cuda when the worker sees a GPU), "cpu", "cuda", "cuda:1"
    quantize: str | None = None  # None or "int8" (dynamic int8 Linear layers, CPU only)
    revision: str | None = None
    token: str | bool | None = field(default=None, repr=False)
    local_files_only: bool = False
    options: tuple = ()
    tokenizer_options: tuple = ()
    source: Any = field(default=None, compare=False, repr=False)
    engine: str = "auto"  # "auto", "torch" or "onnx" (ONNX Runtime on the CPU)

    @property
    def hub(self) -> dict[str, Any]:
        """The hub options to pass to the loaders."""
        return {"revision": self.revision, "token": self.token,
                "local_files_only": self.local_files_only}

    @property
    def key(self) -> str:
        """A 16-hex-digit hash of every field but ``source``: the model cache key."""
        raw = repr((self.identifier, self.cache_dir, self.trust_remote_code, self.device,
                    self.quantize, self.revision, self.token, self.local_files_only,
                    self.options, self.engine)).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @property
    def tokenizer_key(self) -> str:
        """A 16-hex-digit hash of the fields that decide the tokenizer (not device/quantize)."""
        raw = repr((self.identifier, self.cache_dir, self.trust_remote_code, self.revision,
                    self.token, self.local_files_only, self.tokenizer_options,
                    self.engine)).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


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
    >>> from dask_classify.predict import ModelSpec, get_tokenizer
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
                    from dask_classify.onnx import FileTokenizer

                    tok = FileTokenizer(spec.identifier)
                elif spec.source is not None:
                    tok = spec.source.build_tokenizer()
                else:
                    from dask_classify.model import load_tokenizer

                    tok = load_tokenizer(spec.identifier, spec.cache_dir, spec.trust_remote_code,
                                         **spec.hub)
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
    model : torch.nn.Module or dask_classify.onnx.OnnxModel
        ``spec.source.build_model(device)``'s model (or :func:`dask_classify.model.load_model`'s
        without a source) in eval mode on ``device`` (int8-quantized when
        ``spec.quantize == "int8"``), its DeBERTa-v2/v3 attention given
        :mod:`dask_classify.fast_attention`'s forward; with
        ``spec.engine == "onnx"`` on the CPU an ONNX Runtime session called the same way (its
        graph exported once per machine, :func:`dask_classify.onnx.cached_export`), or the
        torch model with one warning when the checkpoint cannot be exported.
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
        ``engine="onnx"`` without the ``[onnx]`` extra.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.predict import ModelSpec, cached_model_keys, clear_cache, get_model
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
            elif engine == "onnx":
                entry = _load_onnx(spec)
            if entry is None:
                from dask_classify.fast_attention import speed_up_deberta
                from dask_classify.model import load_model

                device = resolve_device(spec.device)
                if spec.quantize == "int8" and device != "cpu":  # "auto" found a GPU here
                    raise ValueError("quantize='int8' runs on the CPU only")
                if spec.source is not None:
                    model, info = spec.source.build_model(device)
                else:
                    model, info = load_model(spec.identifier, spec.cache_dir,
                                             spec.trust_remote_code, **spec.hub)
                speed_up_deberta(model)  # DeBERTa-v2/v3 attention: same results, less work
                if spec.quantize == "int8":
                    model = _quantize_int8(model)
                model = model.to(device).eval()
                entry = (model, info, device)
            _MODELS[spec.key] = entry
    return entry


def _load_onnx(spec: ModelSpec) -> tuple[Any, ModelInfo, str] | None:
    """The ONNX Runtime entry of :func:`get_model` (None: run torch, after one warning)."""
    from dask_classify.model import model_info, resolve_model_dir
    from dask_classify.onnx import OnnxFallbackWarning, load_onnx_model

    device = resolve_device(spec.device)
    if device != "cpu":  # device="auto" found a GPU on this worker: torch runs it there
        warnings.warn(f"engine='onnx' runs on the CPU; this worker's device is {device!r}, "
                      "so torch runs the model", OnnxFallbackWarning, stacklevel=3)
        return None
    if spec.options and spec.options[0] != DEFAULT_BUILDER:  # a classifier's own model
        warnings.warn(f"engine='onnx' exports the checkpoint formats load_model reads; "
                      f"{spec.options[0]} builds its own model, so torch runs it",
                      OnnxFallbackWarning, stacklevel=3)
        return None
    from dask_classify.backend import default_torch_threads

    model = load_onnx_model(spec.identifier, cache_dir=spec.cache_dir,
                            trust_remote_code=spec.trust_remote_code,
                            threads=default_torch_threads())
    if model is None:
        return None
    info = model_info(resolve_model_dir(spec.identifier, spec.cache_dir, **spec.hub))
    return model, info, "cpu"


def resolved_engine(spec: ModelSpec) -> str:
    """What runs ``spec`` in this process: ``"torch"``, ``"onnx"`` (a graph exported into the
    cache, :func:`dask_classify.onnx.cached_export`) or ``"shipped"`` (the graph the checkpoint
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
    >>> from dask_classify.predict import ModelSpec, resolved_engine
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "bad"])
    >>> resolved_engine(ModelSpec(str(folder)))  # no graph beside the weights
    'torch'
    >>> from dask_classify.cli import default_model_dir
    >>> resolved_engine(ModelSpec(str(default_model_dir()), device="cpu"))  # ships its graph
    'shipped'
    """
    engine = _ENGINES.get(spec.key)
    if engine is None:
        engine = spec.engine if spec.engine != "auto" else "torch"
        if spec.engine == "auto" and spec.quantize is None and (
                not spec.options or spec.options[0] == DEFAULT_BUILDER):
            from dask_classify.onnx import has_weights, shipped_graph

            graph = shipped_graph(spec.identifier)
            if graph is not None and (resolve_device(spec.device) == "cpu" or (
                    spec.device == "auto" and not has_weights(graph.parent))):
                engine = "shipped"
        _ENGINES[spec.key] = engine
    return engine


def _load_shipped(spec: ModelSpec) -> tuple[Any, ModelInfo, str]:
    """The ONNX Runtime entry for the graph a checkpoint folder ships (no torch)."""
    from dask_classify.backend import default_torch_threads
    from dask_classify.checkpoint import model_info
    from dask_classify.onnx import OnnxModel, shipped_graph

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
    >>> from dask_classify.predict import cached_model_keys, clear_cache
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
    >>> from dask_classify.predict import cached_model_keys
    >>> isinstance(cached_model_keys(), list)
    True
    """
    return sorted(_MODELS)


def run_model(
    model: Any,
    token_ids: list[list[int]],
    *,
    pad_id: int,
    device: str,
    batch_size: int,
    padding_side: str = "right",
    sort_by_length: bool = True,
    autocast: bool = True,
    max_tokens: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Model outputs (shape ``(n, outputs)``) in the order of ``token_ids``.

    Rows are processed longest first in batches of at most ``batch_size`` rows (and at most
    ``max_tokens`` padded tokens, see :func:`dask_classify.tokenize.plan_batches`), each padded
    only to its own longest row. On CUDA out-of-memory the failing batch is split in halves and
    retried, down to single rows, so one huge partition never costs the job.

    Parameters
    ----------
    model : torch.nn.Module or dask_classify.onnx.OnnxModel
        Called as ``model(input_ids, attention_mask)``; returns ``(batch, outputs)`` (every
        batch the same width: a generative model pads its new tokens to a fixed count). A model
        with ``numpy_io = True`` (ONNX Runtime) takes and returns numpy arrays: torch is not
        used.
    token_ids : list of list of int
        Unpadded token ids of each row (from :func:`dask_classify.tokenize.tokenize`).
    pad_id : int
        The tokenizer's padding id.
    device : str
        Torch device the model is on (``"cpu"``, ``"cuda"``, ...).
    batch_size : int
        Rows per forward pass.
    padding_side : {"right", "left"}, default "right"
        Where each batch is padded.
    sort_by_length : bool, default True
        Batch rows longest first (less padding); False keeps the input order.
    autocast : bool, default True
        Mixed precision on CUDA (fp16/bf16) and on CPUs with AMX (bf16); fp32 elsewhere.
    max_tokens : int, optional
        Most padded tokens (rows x longest row) per batch; None: ``batch_size`` rows only.
    on_batch : callable, optional
        Called with ``(rows, padded width)`` of every forward pass that ran (profiling).

    Returns
    -------
    numpy.ndarray, shape ``(n, outputs)``
        One row per input row, in input order; ``(0, 0)`` when ``token_ids`` is empty.
        Floating-point outputs (fp16/bf16 under autocast too) come back as float32; integer
        outputs (token ids of a generative model) keep their dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify import Deberta
    >>> from dask_classify.predict import run_model
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
    >>> model = Deberta(cfg).eval()
    >>> ids = [[2, 5, 3], [2, 5, 6, 7, 8, 3], [2, 3]]
    >>> sorted_out = run_model(model, ids, pad_id=0, device="cpu", batch_size=2)
    >>> one_by_one = run_model(model, ids, pad_id=0, device="cpu", batch_size=1,
    ...                        sort_by_length=False)
    >>> sorted_out.shape, sorted_out.dtype, bool(np.allclose(sorted_out, one_by_one, atol=1e-5))
    ((3, 2), dtype('float32'), True)
    """
    n = len(token_ids)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=n)
    pending = deque(plan_batches(lengths, batch_size, max_tokens, sort_by_length))
    if getattr(model, "numpy_io", False):
        return _run_numpy(model, token_ids, pending, pad_id, padding_side, on_batch)
    import torch

    from dask_classify.backend import autocast as _autocast

    results: np.ndarray | None = None
    with INFERENCE_LOCK, torch.inference_mode(), _autocast(device, autocast):
        while pending:
            rows = pending.popleft()
            ids, mask = map(torch.from_numpy,
                            pad_arrays([token_ids[i] for i in rows], pad_id, padding_side))
            try:
                out = model(ids.to(device, non_blocking=True), mask.to(device, non_blocking=True))
            except torch.OutOfMemoryError:
                if len(rows) == 1:
                    raise
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                half = len(rows) // 2
                pending.extendleft([rows[half:], rows[:half]])
                continue
            out = (out if _is_integer(out) else out.float()).cpu().numpy()
            if on_batch is not None:
                on_batch(len(rows), ids.shape[1])
            if results is None:
                results = np.empty((n, out.shape[1]), dtype=out.dtype)
            results[rows] = out
        if device.startswith("cuda"):
            # Give the partition's activations back to the GPU before the next partition (other
            # models and cudf share the device); the weights stay cached.
            del ids, mask, out
            torch.cuda.empty_cache()
    assert results is not None
    return results


def _run_numpy(model: Any, token_ids: list[list[int]], pending: deque, pad_id: int,
               padding_side: str, on_batch: Callable[[int, int], None] | None) -> np.ndarray:
    """:func:`run_model` for a model that takes and returns numpy arrays (ONNX Runtime)."""
    results: np.ndarray | None = None
    with INFERENCE_LOCK:
        for rows in pending:
            ids, mask = pad_arrays([token_ids[i] for i in rows], pad_id, padding_side)
            out = model(ids, mask)
            out = out if np.issubdtype(out.dtype, np.integer) else out.astype(np.float32,
                                                                             copy=False)
            if on_batch is not None:
                on_batch(len(rows), ids.shape[1])
            if results is None:
                results = np.empty((len(token_ids), out.shape[1]), dtype=out.dtype)
            results[rows] = out
    assert results is not None
    return results


def _is_integer(tensor: torch.Tensor) -> bool:
    return not (tensor.dtype.is_floating_point or tensor.dtype.is_complex)
