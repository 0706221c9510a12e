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
    """The GPU backend was asked for but a RAPIDS package or the GPU itself is missing.

    A subclass of :class:`ImportError`, so ``except ImportError`` catches it too. The message
    names the missing piece and how to install the ``[gpu]`` extra.

    Examples
    --------
    >>> from dask_classify.backend import GPUBackendError, import_gpu_module
    >>> try:
    ...     import_gpu_module("no_such_rapids_module")
    ... except GPUBackendError as err:
    ...     print(str(err).split(";")[0])
    no_such_rapids_module is not importable (No module named 'no_such_rapids_module')
    >>> issubclass(GPUBackendError, ImportError)
    True
    """


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """Number of NVIDIA GPUs visible through NVML (0 when NVML or the driver is missing).

    NVML is queried instead of ``torch.cuda`` so that the client process never creates a CUDA
    context (which would then be inherited by forked workers, and which a CPU torch cannot do).
    ``CUDA_VISIBLE_DEVICES`` is honoured when it is set. The result is cached for the life of
    the process.

    Returns
    -------
    int
        The number of usable GPUs; 0 without ``nvidia-ml-py`` (``pynvml``), without a driver,
        or when any NVML call fails.

    Examples
    --------
    >>> from dask_classify.backend import gpu_count
    >>> n = gpu_count()
    >>> isinstance(n, int) and n >= 0
    True
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
    """True when an NVIDIA GPU is visible and the RAPIDS packages of the ``[gpu]`` extra import.

    Returns
    -------
    bool
        ``gpu_count() > 0`` and ``cudf``, ``dask_cudf`` and ``dask_cuda`` all import (a broken
        RAPIDS install counts as "no GPU backend").

    Examples
    --------
    >>> from dask_classify.backend import gpu_available, gpu_count
    >>> ok = gpu_available()
    >>> isinstance(ok, bool)
    True
    >>> ok <= (gpu_count() > 0)  # never True without a GPU
    True
    """
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

    Parameters
    ----------
    backend : {"auto", "cpu", "gpu"} or None, default "auto"
        ``"auto"`` and None pick ``"gpu"`` when :func:`gpu_available`, else ``"cpu"``.

    Returns
    -------
    {"cpu", "gpu"}
        The backend to use.

    Raises
    ------
    ValueError
        For any other value.
    GPUBackendError
        When ``"gpu"`` is asked for on a machine without a GPU or without the ``[gpu]`` extra.

    Examples
    --------
    >>> from dask_classify.backend import gpu_available, resolve_backend
    >>> resolve_backend("cpu")
    'cpu'
    >>> resolve_backend("auto") == ("gpu" if gpu_available() else "cpu")
    True
    >>> resolve_backend("tpu")
    Traceback (most recent call last):
    ...
    ValueError: backend must be 'auto', 'cpu' or 'gpu', not 'tpu'
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
    """Import ``cudf``, ``dask_cudf`` or ``dask_cuda``; fail with an error naming the extra.

    Parameters
    ----------
    name : str
        The module's import name.

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    GPUBackendError
        When the module cannot be imported; the message says how to install the ``[gpu]``
        extra.

    Examples
    --------
    >>> from dask_classify.backend import import_gpu_module
    >>> cudf = import_gpu_module("cudf")  # doctest: +SKIP
    >>> import_gpu_module("no_such_rapids_module")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dask_classify.backend.GPUBackendError: no_such_rapids_module is not importable (...
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise GPUBackendError(f"{name} is not importable ({exc}); {_GPU_EXTRA_HINT}") from exc


def is_gpu_frame(obj: Any) -> bool:
    """True for cudf DataFrames/Series (checked by module name, so cudf is never imported here).

    Parameters
    ----------
    obj : object
        Any object, typically one partition of a Dask DataFrame.

    Returns
    -------
    bool
        Whether ``obj``'s type comes from the ``cudf`` package.

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.backend import is_gpu_frame
    >>> is_gpu_frame(pd.DataFrame())
    False
    >>> import cudf  # doctest: +SKIP
    >>> is_gpu_frame(cudf.DataFrame())  # doctest: +SKIP
    True
    """
    return type(obj).__module__.split(".")[0] == "cudf"


def is_gpu_collection(ddf: Any) -> bool:
    """True for a Dask collection whose partitions are cudf objects.

    Parameters
    ----------
    ddf : object
        A Dask DataFrame or Series (anything else gives False).

    Returns
    -------
    bool
        Whether ``ddf._meta`` is a cudf object.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd
    >>> from dask_classify.backend import is_gpu_collection
    >>> is_gpu_collection(dd.from_pandas(pd.DataFrame({"text": ["a"]}), npartitions=1))
    False
    >>> is_gpu_collection(pd.DataFrame())  # not a Dask collection
    False
    """
    meta = getattr(ddf, "_meta", None)
    return meta is not None and is_gpu_frame(meta)


def to_host(obj: Any) -> Any:
    """A pandas object for a pandas or cudf object (pandas objects are returned as they are).

    Parameters
    ----------
    obj : pandas or cudf DataFrame/Series

    Returns
    -------
    pandas DataFrame/Series
        ``obj.to_pandas()`` for a cudf object (a copy in host memory), else ``obj`` itself.

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.backend import to_host
    >>> frame = pd.DataFrame({"text": ["a", "b"]})
    >>> to_host(frame) is frame
    True
    """
    return obj.to_pandas() if is_gpu_frame(obj) else obj


def from_host(obj: Any, like: Any) -> Any:
    """Convert a pandas object to the library of ``like`` (cudf if ``like`` is a cudf object).

    Parameters
    ----------
    obj : pandas DataFrame/Series
        The object to convert.
    like : object
        A pandas or cudf object whose library the result should have.

    Returns
    -------
    pandas or cudf DataFrame/Series
        ``cudf.from_pandas(obj)`` when ``like`` is a cudf object, else ``obj`` itself.

    Raises
    ------
    GPUBackendError
        When ``like`` is a cudf object but cudf cannot be imported.

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.backend import from_host
    >>> labels = pd.Series(["neg", "pos"])
    >>> from_host(labels, like=pd.DataFrame()) is labels
    True
    >>> import cudf  # doctest: +SKIP
    >>> type(from_host(labels, like=cudf.DataFrame())).__module__  # doctest: +SKIP
    'cudf.core.series'
    """
    if is_gpu_frame(like):
        cudf = import_gpu_module("cudf")
        return cudf.from_pandas(obj)
    return obj


def torch_device(backend: Backend | str) -> str:
    """The torch device string for a backend: ``"cuda"`` for ``"gpu"``, else ``"cpu"``.

    Inside a ``LocalCUDACluster`` worker ``CUDA_VISIBLE_DEVICES`` already selects this worker's
    GPU as device 0, so ``"cuda"`` is the right device on every worker.

    Parameters
    ----------
    backend : {"cpu", "gpu"} or str
        A backend, or a torch device string (``"cuda"``, ``"cuda:1"``), which is kept as given.

    Returns
    -------
    str
        ``"cuda"`` for ``"gpu"``, the device itself for ``"cuda..."``, else ``"cpu"``.

    Examples
    --------
    >>> from dask_classify.backend import torch_device
    >>> torch_device("gpu"), torch_device("cpu"), torch_device("cuda:1")
    ('cuda', 'cpu', 'cuda:1')
    """
    if backend == "gpu" or str(backend).startswith("cuda"):
        return "cuda" if backend == "gpu" else str(backend)
    return "cpu"
