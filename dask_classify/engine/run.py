"""The batch run loop: length-sorted, padding-clipped batches through a model, OOM halving.

:func:`run_model` is the same for torch modules and ONNX Runtime sessions (``numpy_io``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_classify.tokenize import pad_arrays, plan_batches

if TYPE_CHECKING:
    import torch

__all__ = ["INFERENCE_LOCK", "run_model"]

# One forward pass at a time per process: the model gets every torch thread, while other task
# threads tokenize (Rust, no GIL) or do Dask work. Concurrent forward passes from several task
# threads would oversubscribe the cores (OpenMP teams per thread) and be slower, not faster.
INFERENCE_LOCK = threading.RLock()



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
    cpu_bf16: bool | None = None,
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
    model : torch.nn.Module or dask_classify.engine.onnx_runtime.OnnxModel
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
    cpu_bf16 : bool, optional
        bf16 on AMX CPUs (``Settings.cpu_bf16``, decided on the client); None: read
        ``DASK_CLASSIFY_CPU_BF16`` here.
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
    >>> from dask_classify.engine.run import run_model
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
    with INFERENCE_LOCK, torch.inference_mode(), _autocast(device, autocast, cpu_bf16):
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
