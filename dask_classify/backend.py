"""CPU / GPU backend decisions, made in one place.

Everything that depends on whether RAPIDS (cudf, dask_cudf, dask_cuda) and an NVIDIA GPU are present
lives here, so the rest of the package is written once for both backends:

* :func:`gpu_available` detects GPUs with NVML without initialising CUDA in the client process
  (DESIGN.md §6: the RAPIDS packages import fine on a machine without a GPU, and a CPU build of
  torch always reports no CUDA, so neither import success nor torch is a reliable signal).
* :func:`import_gpu_module` imports a RAPIDS module lazily, with an error that names the extra.
* :func:`is_gpu_frame` / :func:`to_host` / :func:`from_host` hide pandas vs cudf partitions.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import Any, Literal

Backend = Literal["cpu", "gpu"]

_GPU_EXTRA_HINT = "install the GPU extra: pip install 'dask_classify[gpu]' (CUDA 13 builds)"


class GPUBackendError(ImportError):
    """The GPU backend was asked for but a RAPIDS package or the GPU itself is missing."""


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """Number of NVIDIA GPUs visible through NVML (0 when NVML or the driver is missing).

    NVML is queried instead of ``torch.cuda`` so that the client process never creates a CUDA
    context (which would then be inherited by forked workers, and which a CPU torch cannot do).
    ``CUDA_VISIBLE_DEVICES`` is honoured when it is set.
    """
    try:
        import pynvml  # provided by nvidia-ml-py, part of the [gpu] extra
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - any NVML failure means "no usable GPU"
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        count = min(count, len(ids))
    return count


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible and the RAPIDS packages of the ``[gpu]`` extra import."""
    if gpu_count() == 0:
        return False
    try:
        for name in ("cudf", "dask_cudf", "dask_cuda"):
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken RAPIDS install is "no GPU backend"
        return False
    return True


def resolve_backend(backend: str | None = "auto") -> Backend:
    """Turn ``"auto"``/``None``/``"cpu"``/``"gpu"`` into ``"cpu"`` or ``"gpu"``.

    Raises
    ------
    ValueError
        For any other value.
    GPUBackendError
        When ``"gpu"`` is asked for on a machine without a GPU or without the ``[gpu]`` extra.
    """
    if backend in (None, "auto"):
        return "gpu" if gpu_available() else "cpu"
    if backend == "cpu":
        return "cpu"
    if backend == "gpu":
        if gpu_count() == 0:
            raise GPUBackendError("backend='gpu' was asked for but NVML reports no NVIDIA GPU")
        for name in ("cudf", "dask_cudf", "dask_cuda"):
            import_gpu_module(name)
        return "gpu"
    raise ValueError(f"backend must be 'auto', 'cpu' or 'gpu', not {backend!r}")


def import_gpu_module(name: str) -> ModuleType:
    """Import ``cudf``, ``dask_cudf`` or ``dask_cuda``; fail with an error naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise GPUBackendError(f"{name} is not importable ({exc}); {_GPU_EXTRA_HINT}") from exc


def is_gpu_frame(obj: Any) -> bool:
    """True for cudf DataFrames/Series (checked by module name, so cudf is never imported here)."""
    return type(obj).__module__.split(".")[0] == "cudf"


def is_gpu_collection(ddf: Any) -> bool:
    """True for a Dask collection whose partitions are cudf objects."""
    meta = getattr(ddf, "_meta", None)
    return meta is not None and is_gpu_frame(meta)


def to_host(obj: Any) -> Any:
    """A pandas object for a pandas or cudf object (pandas objects are returned as they are)."""
    return obj.to_pandas() if is_gpu_frame(obj) else obj


def from_host(obj: Any, like: Any) -> Any:
    """Convert a pandas object to the library of ``like`` (cudf if ``like`` is a cudf object)."""
    if is_gpu_frame(like):
        cudf = import_gpu_module("cudf")
        return cudf.from_pandas(obj)
    return obj


def torch_device(backend: Backend | str) -> str:
    """The torch device string for a backend: ``"cuda"`` for ``"gpu"``, else ``"cpu"``.

    Inside a ``LocalCUDACluster`` worker ``CUDA_VISIBLE_DEVICES`` already selects this worker's
    GPU as device 0, so ``"cuda"`` is the right device on every worker.
    """
    if backend == "gpu" or str(backend).startswith("cuda"):
        return "cuda" if backend == "gpu" else str(backend)
    return "cpu"
