"""CPU / GPU decisions, made in one place: data frames, clusters and torch.

Everything that depends on whether RAPIDS (cudf, dask_cudf, dask_cuda), an NVIDIA GPU or a CPU
feature is present lives here, so the rest of the package is written once for both:

* :func:`gpu_available` detects GPUs with NVML without initialising CUDA in the client process
  (the RAPIDS packages import fine on a machine without a GPU, and a CPU build of torch always
  reports no CUDA, so neither import success nor torch is a reliable signal).
* :func:`import_gpu_module` imports a RAPIDS module lazily, with an error that names the extra.
* :func:`is_gpu_frame` / :func:`to_host` / :func:`from_host` hide pandas vs cudf partitions;
  :func:`string_dtype` is pandas' dtype for text columns.
* :func:`cpu_cores`, :func:`resolve_device`, :func:`autocast`, :func:`cpu_has_native_bf16` and
  :func:`set_torch_threads` decide where and how torch runs (torch is imported only by them).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from types import ModuleType
from typing import Any, Literal

from dask_classify.errors import UsageError, UserError

Backend = Literal["cpu", "gpu"]

_GPU_EXTRA_HINT = "install the GPU extra: pip install 'dask_classify[gpu]' (CUDA 13 builds)"


class GPUBackendError(UserError, ImportError):
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
    dask_classify.errors.UsageError
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
    dask_classify.errors.UsageError: backend must be 'auto', 'cpu' or 'gpu', not 'tpu'
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
    raise UsageError(f"backend must be 'auto', 'cpu' or 'gpu', not {backend!r}")


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


def string_dtype() -> Any:
    """pandas' default dtype for a column of strings (``str`` in pandas 3, ``object`` before).

    Examples
    --------
    >>> import pandas as pd
    >>> from dask_classify.backend import string_dtype
    >>> pd.Series(["a"], dtype=string_dtype()).dtype == pd.Series(["b"]).dtype
    True
    """
    import pandas as pd

    return pd.Series(["x"]).dtype


# ------------------------------------------------------------------------------------- torch
def cpu_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count).

    Examples
    --------
    >>> from dask_classify.backend import cpu_cores
    >>> cpu_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


DEVICE_ENV = "DASK_CLASSIFY_DEVICE"


def resolve_device(device: str, force_cpu: bool | None = None) -> str:
    """The torch device to run on: ``"auto"`` is ``"cuda"`` when this process sees a GPU.

    Inside a ``LocalCUDACluster`` worker ``CUDA_VISIBLE_DEVICES`` already selects the worker's
    GPU as device 0, so ``"cuda"`` is right on every worker. ``DASK_CLASSIFY_DEVICE=cpu`` (read
    where the model runs, at each call) makes ``"auto"`` the CPU on a machine with a GPU, e.g.
    one whose GPU is busy training, and keeps the CPU semantics of the test suite on GPU hosts.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:<n>"``; anything but ``"auto"`` is kept.
    force_cpu : bool, optional
        ``"auto"`` is the CPU (what ``DASK_CLASSIFY_DEVICE=cpu`` says; the classifier reads it
        once on the client, :class:`dask_classify.engine.spec.Settings`). None: read it here.

    Examples
    --------
    >>> import torch
    >>> from dask_classify.backend import resolve_device
    >>> resolve_device("cpu"), resolve_device("cuda:1")
    ('cpu', 'cuda:1')
    >>> import os
    >>> resolve_device("auto") == ("cuda" if torch.cuda.is_available()
    ...                            and os.environ.get("DASK_CLASSIFY_DEVICE") != "cpu" else "cpu")
    True
    """
    if device == "auto":
        # DASK_CLASSIFY_DEVICE=cpu, or NVML sees no GPU: no CUDA either (and no torch import)
        if force_cpu is None:
            force_cpu = os.environ.get(DEVICE_ENV, "").strip().lower() == "cpu"
        if force_cpu or gpu_count() == 0:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX tiles, where bf16 matmuls beat fp32.

    AVX512-BF16 alone is not enough: on this project's CI CPU (AVX512 with avx512_bf16) a bf16
    matmul through torch ran about 200x slower than fp32, so autocast would slow the CPU down.

    Returns
    -------
    bool
        Whether ``/proc/cpuinfo`` lists ``amx_bf16`` (False where it cannot be read).

    Examples
    --------
    >>> from dask_classify.backend import cpu_has_native_bf16
    >>> isinstance(cpu_has_native_bf16(), bool)
    True
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            return "amx_bf16" in fh.read()
    except OSError:
        return False


CPU_BF16_ENV = "DASK_CLASSIFY_CPU_BF16"


def cpu_bf16_opted_in(requested: bool | None = None) -> bool:
    """Whether this process runs CPU inference in bf16: ``DASK_CLASSIFY_CPU_BF16=1`` on an AMX CPU.

    Off by default: bf16 moves probabilities by up to a few hundredths and flips near-ties, so a
    document's label would depend on which CPU its worker landed on. Set the variable on the
    workers' machines (it is read where the model runs) to trade that for AMX's speed.

    Examples
    --------
    >>> from dask_classify.backend import cpu_bf16_opted_in
    >>> isinstance(cpu_bf16_opted_in(), bool)
    True
    """
    if requested is None:
        requested = os.environ.get(CPU_BF16_ENV, "").strip() == "1"
    return bool(requested) and cpu_has_native_bf16()


def autocast(device: str, enabled: bool = True, cpu_bf16: bool | None = None) -> Any:
    """The mixed-precision context for inference on ``device``.

    CUDA: bf16 where the GPU supports it, else fp16. CPU: fp32, the same numbers on every CPU,
    unless :func:`cpu_bf16_opted_in` (AMX and ``DASK_CLASSIFY_CPU_BF16=1``; on CPUs without AMX,
    AVX512-BF16 ones included, a bf16 matmul is ~200x slower, so the variable is ignored there).
    ``enabled=False``: fp32 everywhere.

    Examples
    --------
    >>> import contextlib
    >>> from dask_classify.backend import autocast, cpu_bf16_opted_in
    >>> isinstance(autocast("cpu"), contextlib.nullcontext) == (not cpu_bf16_opted_in())
    True
    >>> isinstance(autocast("cuda", enabled=False), contextlib.nullcontext)
    True
    """
    if not enabled:
        return contextlib.nullcontext()
    import torch

    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device == "cpu" and cpu_bf16_opted_in(cpu_bf16):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def default_torch_threads() -> int:
    """This process's share of the cores: ``OMP_NUM_THREADS`` when set, else every core.

    Dask nannies set ``OMP_NUM_THREADS`` for process workers, and
    :func:`dask_classify.get_client` sets it to the cores divided by the workers. Without it every
    core is used: forward passes in one process run one at a time.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> from dask_classify.backend import default_torch_threads
    >>> with mock.patch.dict(os.environ, {"OMP_NUM_THREADS": "3"}):
    ...     default_torch_threads()
    3
    """
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return cpu_cores()


def set_torch_threads(requested: int | None = None) -> None:
    """Give torch ``requested`` intra-op threads (default :func:`default_torch_threads`).

    Examples
    --------
    >>> import torch
    >>> from dask_classify.backend import set_torch_threads
    >>> before = torch.get_num_threads()
    >>> set_torch_threads(1)
    >>> torch.get_num_threads()
    1
    >>> set_torch_threads(before)
    """
    import torch

    wanted = int(requested) if requested is not None else default_torch_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
