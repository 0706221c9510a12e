"""ONNX export of a checkpoint, and ONNX Runtime as a CPU engine for the classifier.

:func:`export_onnx` writes a checkpoint (NVIDIA's format or a plain transformers classifier) as
an ONNX graph with dynamic batch and sequence axes that returns what the PyTorch model returns
(class probabilities, or a regression head's raw scores), beside the tokenizer and
``config.json``, so the folder can be served by any ONNX runtime. ``dask-classify export
--model DIR --format onnx --output DIR`` calls it.

``DistributedDataClassifier(..., engine="onnx")`` runs the same graph with ONNX Runtime's CPU
execution provider instead of torch, with the package's own batches (length-sorted,
token-budgeted). Each worker process finds the graph in an on-disk cache keyed by a hash of the
checkpoint's weights and config (:func:`cached_export`); the first process on a machine exports
it (the others wait for it), none exports per partition. A model that cannot be exported, or
whose graph does not reproduce the PyTorch outputs to 1e-4 on a probe batch, runs on torch
with one :class:`OnnxFallbackWarning`.

The graph is exported with transformers' own attention (the package's faster DeBERTa forward
in :mod:`dask_classify.engine.fast_attention` has data-dependent shapes), BERT-family encoders with
transformers' ``eager`` attention, which ONNX Runtime's transformer optimizer fuses into its
``Attention`` kernels (it fuses nothing in the ``sdpa`` graph, and has no DeBERTa model type).
Needs the ``[onnx]`` extra (``onnx``, ``onnxruntime``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_classify.engine.onnx_runtime import (
    EXPORT_INFO,
    EXPORT_VERSION,
    ONNX_NAME,
    OnnxFallbackWarning,
    OnnxModel,
    _require,
    cache_root,
)
from dask_classify.errors import CheckpointError
from dask_classify.weights import export_key

if TYPE_CHECKING:
    import torch

__all__ = ["cached_export", "export_onnx", "load_onnx_model", "weights_hash"]

OPSET = 18
#: Largest difference from the PyTorch outputs an export may have on its probe batch.
TOLERANCE = 1e-4
#: Encoder types ONNX Runtime's transformer optimizer fuses as ``model_type="bert"``.
_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
_LOCK = threading.Lock()


def weights_hash(folder: str | os.PathLike) -> str:
    """The key of :func:`cached_export`: 32 hex digits of ``folder``'s ``config.json``, weight
    files and :data:`EXPORT_VERSION` (:func:`dask_classify.weights.export_key`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.engine.onnx_export import weights_hash
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text("{}")
    >>> _ = (folder / "model.safetensors").write_bytes(b"weights")
    >>> before = weights_hash(folder)
    >>> _ = (folder / "model.safetensors").write_bytes(b"other weights")
    >>> len(before), weights_hash(folder) == before
    (32, False)
    """
    return export_key(folder, EXPORT_VERSION)


def _probe(vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two right-padded rows of random ids (a [CLS]-like first id), lengths 13 and 7."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, max(6, vocab_size), (2, 13), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def _backbone(model: torch.nn.Module) -> Any:
    inner = getattr(model, "model", None)  # Deberta.model / HFSequenceClassifier.model
    return getattr(inner, "config", None), inner


def _export_graph(model: torch.nn.Module, path: Path, args: tuple[torch.Tensor, ...]) -> None:
    """``torch.onnx.export`` with dynamic batch/sequence axes (TorchScript exporter first: the
    graph ONNX Runtime ran fastest here; the dynamo exporter when that one is gone)."""
    import torch

    names = {"input_ids": {0: "batch", 1: "sequence"},
             "attention_mask": {0: "batch", 1: "sequence"}, "outputs": {0: "batch"}}
    common = dict(input_names=["input_ids", "attention_mask"], output_names=["outputs"],
                  dynamic_axes=names, opset_version=OPSET, do_constant_folding=True)
    with warnings.catch_warnings():
        # torch deprecates the TorchScript exporter (still in torch 2.13) and warns about
        # constants in the trace: both are expected here, where the choice was made
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, args, str(path), dynamo=False, **common)
            return
        except Exception as first:  # noqa: BLE001 - try the other exporter, then give up
            try:
                torch.onnx.export(model, args, str(path), dynamo=True, external_data=False,
                                  **common)
            except Exception as second:
                raise RuntimeError(f"torch.onnx.export failed: {first}; dynamo=True: "
                                   f"{second}") from second


def _optimize(path: Path, config: Any) -> bool:
    """Fuse a BERT-family graph with ONNX Runtime's transformer optimizer, in place."""
    if getattr(config, "model_type", None) not in _BERT_LIKE:
        return False
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(str(path), model_type="bert",
                               num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size), opt_level=0)
    optimized.save_model_to_file(str(path))
    return True


def _max_diff(model: torch.nn.Module, path: Path, probe: tuple[torch.Tensor, ...]) -> float:
    import torch

    with torch.inference_mode():
        expected = model(*probe).float().numpy()
    got = OnnxModel(path, threads=1)(*(t.numpy() for t in probe))
    if got.shape != expected.shape:
        return float("inf")
    return float(np.abs(got - expected).max())


def export_onnx(
    model_identifier: str | os.PathLike,
    output: str | os.PathLike,
    *,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
    optimize: bool = True,
    overwrite: bool = False,
    with_tokenizer: bool = True,
) -> Path:
    """Write a checkpoint as ``model.onnx`` (dynamic batch and sequence axes) in ``output``.

    The graph takes ``input_ids`` and ``attention_mask`` (int64, ``(batch, sequence)``) and
    returns ``outputs`` (float32, ``(batch, labels)``): class probabilities, or a regression
    head's scores, exactly what the PyTorch model returns. The folder also gets the checkpoint's
    ``config.json`` (labels), its tokenizer and ``onnx_export.json`` (inputs, outputs, versions,
    the largest difference from PyTorch on a probe batch).

    Parameters
    ----------
    model_identifier : str or path-like
        A checkpoint folder or hub id (as for :class:`dask_classify.DistributedDataClassifier`).
    output : path-like
        The folder to write (written to a temporary folder, then renamed).
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.
    trust_remote_code : bool, default False
        Let a hub checkpoint's own code run.
    optimize : bool, default True
        Fuse BERT-family graphs with ONNX Runtime's transformer optimizer (kept only when the
        fused graph still matches PyTorch to 1e-4).
    overwrite : bool, default False
        Replace an existing ``output`` folder.
    with_tokenizer : bool, default True
        Save the tokenizer beside the graph.

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    MissingExtraError
        Without the ``[onnx]`` extra.
    CheckpointError
        The checkpoint cannot be loaded, cannot be exported, or its graph does not reproduce the
        PyTorch outputs to 1e-4 (the message names the difference).
    FileExistsError
        ``output`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import json, tempfile
    >>> from dask_classify.engine.onnx_export import export_onnx
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="deberta", texts=["a good film", "bad"])
    >>> out = export_onnx(folder, tempfile.mkdtemp() + "/onnx")
    >>> sorted(p.name for p in out.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['config.json', 'model.onnx', 'onnx_export.json', 'tokenizer.json', 'tokenizer_config.json']
    >>> info = json.loads((out / "onnx_export.json").read_text())
    >>> info["inputs"], info["outputs"], info["max_abs_diff"] < 1e-4
    (['input_ids', 'attention_mask'], ['outputs'], True)
    """
    _require()
    from dask_classify.atomic import atomic_folder
    from dask_classify.checkpoint import resolve_model_dir
    from dask_classify.engine.loading import load_model, load_tokenizer

    folder = resolve_model_dir(model_identifier, cache_dir)
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it")
    model, info = load_model(folder, cache_dir, trust_remote_code)
    model = model.float().eval()
    config, inner = _backbone(model)
    if getattr(config, "model_type", None) in _BERT_LIKE and inner is not None:
        # transformers' sdpa path exports a graph the optimizer cannot fuse; eager it can
        inner.set_attn_implementation("eager")
    probe = _probe(int(getattr(config, "vocab_size", 100) or 100))
    with atomic_folder(output, overwrite=overwrite) as tmp:
        path = tmp / ONNX_NAME
        try:
            _export_graph(model, path, probe)
        except RuntimeError as exc:
            raise CheckpointError(f"could not export {folder} to ONNX: {exc}") from exc
        diff = _max_diff(model, path, probe)
        if not diff <= TOLERANCE:
            raise CheckpointError(f"the ONNX graph of {folder} differs from PyTorch by {diff:.3g}"
                                  f" (more than {TOLERANCE}) on a probe batch")
        optimized = False
        if optimize:
            plain = tmp / "plain.onnx"
            shutil.copyfile(path, plain)
            try:
                optimized = _optimize(path, config)
                if optimized:
                    fused_diff = _max_diff(model, path, probe)
                    if fused_diff <= TOLERANCE:
                        diff = max(diff, fused_diff)
                    else:
                        optimized = False
            except Exception:  # noqa: BLE001 - the optimizer is an extra, the plain graph works
                optimized = False
            if optimized:
                plain.unlink()
            else:
                os.replace(plain, path)
        shutil.copyfile(folder / "config.json", tmp / "config.json")
        if with_tokenizer:
            load_tokenizer(folder, cache_dir, trust_remote_code).save_pretrained(str(tmp))
        import onnxruntime
        import torch
        import transformers

        meta = {
            "format": "onnx", "opset": OPSET, "source": str(folder),
            "inputs": ["input_ids", "attention_mask"], "outputs": ["outputs"],
            "dynamic_axes": {"input_ids": ["batch", "sequence"],
                             "attention_mask": ["batch", "sequence"], "outputs": ["batch"]},
            "returns": "raw scores" if info.regression else "probabilities",
            "labels": info.labels, "ort_transformer_optimizer": optimized,
            "max_abs_diff": diff, "weights_hash": weights_hash(folder),
            "export_version": EXPORT_VERSION, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__,
        }
        (tmp / EXPORT_INFO).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return output


def cached_export(model_identifier: str | os.PathLike, *, cache_dir: str | None = None,
                  trust_remote_code: bool = False, root: str | os.PathLike | None = None) -> Path:
    """The ``model.onnx`` of a checkpoint in the export cache, exported on first use.

    Keyed by :func:`weights_hash` (config and weights), so a changed checkpoint is exported
    again and an unchanged one never is. Processes on one machine take a file lock: the first
    exports, the others wait and reuse its graph.

    Parameters
    ----------
    model_identifier : str or path-like
        A checkpoint folder or hub id.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.
    trust_remote_code : bool, default False
        Let a hub checkpoint's own code run.
    root : path-like, optional
        The export cache (default :func:`cache_root`).

    Returns
    -------
    pathlib.Path
        The cached ``model.onnx``.

    Raises
    ------
    MissingExtraError, CheckpointError
        As :func:`export_onnx`.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.engine.onnx_export import cached_export
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "bad"])
    >>> root = tempfile.mkdtemp()
    >>> path = cached_export(folder, root=root)
    >>> path.name, cached_export(folder, root=root) == path  # the second call exports nothing
    ('model.onnx', True)
    """
    _require()
    from filelock import FileLock

    from dask_classify.checkpoint import resolve_model_dir

    folder = resolve_model_dir(model_identifier, cache_dir)
    target = Path(root or cache_root()) / weights_hash(folder)
    if (target / ONNX_NAME).is_file():
        return target / ONNX_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, FileLock(str(target) + ".lock"):
        if not (target / ONNX_NAME).is_file():
            export_onnx(folder, target, cache_dir=cache_dir, trust_remote_code=trust_remote_code,
                        overwrite=True, with_tokenizer=False)
    return target / ONNX_NAME


_WARNED: set[str] = set()


def load_onnx_model(model_identifier: str | os.PathLike, *, cache_dir: str | None = None,
                    trust_remote_code: bool = False, threads: int | None = None,
                    root: str | os.PathLike | None = None) -> OnnxModel | None:
    """An :class:`OnnxModel` for a checkpoint (exported through :func:`cached_export`), or None
    with one :class:`OnnxFallbackWarning` per checkpoint when it cannot be exported.

    Raises
    ------
    MissingExtraError
        Without the ``[onnx]`` extra (not a fallback: the user asked for ONNX Runtime).
    """
    _require()
    try:
        path = cached_export(model_identifier, cache_dir=cache_dir,
                             trust_remote_code=trust_remote_code, root=root)
    except CheckpointError as exc:
        key = os.fspath(model_identifier)
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(f"engine='onnx': {exc}; running this model on torch instead",
                          OnnxFallbackWarning, stacklevel=2)
        return None
    return OnnxModel(path, threads=threads)
