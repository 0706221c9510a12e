"""The classifier's option rules, each written once: positive integers, engines, devices, hubs.

Everything here is light (no torch, no dask) and sits low in the layers: the classifier, the
engine and the command line all check their values with these functions.

Examples
--------
>>> from dask_classify.options import HubOptions, positive_int
>>> positive_int("batch size", 8), positive_int("max_chars", None, allow_none=True)
(8, None)
>>> HubOptions(revision="v1", token="hf_secret")
HubOptions(revision='v1', local_files_only=False)
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from typing import Any

from dask_classify.errors import MissingExtraError, UsageError

__all__ = ["CPU_BATCH_TOKENS", "DEVICE_PATTERN", "ENGINES", "PADDING_SIDES", "HubOptions",
           "check_device", "check_engine", "positive_int"]

#: Inference engines: ``"auto"`` (ONNX Runtime for a checkpoint that ships a graph of its
#: weights, else torch), torch, or ONNX Runtime on the CPU.
ENGINES = ("auto", "torch", "onnx")
PADDING_SIDES = ("left", "right")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
#: Padded tokens per forward pass on the CPU when ``max_batch_tokens="auto"`` (chosen by the
#: sweep in ``benchmarks/README.md``).
CPU_BATCH_TOKENS = 2048


def positive_int(name: str, value: Any, allow_none: bool = False, minimum: int = 1,
                 extra: str | None = None) -> int | None:
    """``value`` as an int >= ``minimum`` (or None when allowed), else a :class:`UsageError`.

    Raises
    ------
    UsageError
        Naming ``name``, what it must be and what it was (bools and floats are refused).
    """
    if value is None and allow_none:
        return None
    ok = (isinstance(value, int) or type(value).__name__.startswith(("int", "uint"))) and \
        not isinstance(value, bool) and value >= minimum
    if not ok:
        allowed = ("a positive integer" if minimum == 1 else f"an integer >= {minimum}") + (
            f", {extra}" if extra else "") + (" or None" if allow_none else "")
        raise UsageError(f"{name} must be {allowed}, not {value!r}")
    return int(value)


def check_device(device: Any) -> str:
    """``device`` if it is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:<n>"``."""
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise UsageError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', not {device!r}")
    return device


def check_engine(engine: Any, device: str = "auto", quantize: str | None = None) -> str:
    """``engine`` if it is one of :data:`ENGINES` and fits the device and quantization.

    Raises
    ------
    UsageError
        An unknown engine, or ``"onnx"`` with a CUDA device or with ``quantize``.
    MissingExtraError
        ``"onnx"`` without the ``[onnx]`` extra.
    """
    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {list(ENGINES)}, not {engine!r}")
    if engine == "onnx":
        if device.startswith("cuda"):
            raise UsageError(f"engine='onnx' runs on the CPU only, not on device {device!r}")
        if quantize is not None:
            raise UsageError("engine='onnx' runs the float32 graph; quantize must be None")
        for module in ("onnxruntime", "onnx"):
            if importlib.util.find_spec(module) is None:
                raise MissingExtraError.for_module(module, "onnx", "engine='onnx'")
    return engine


@dataclass(frozen=True)
class HubOptions:
    """How a hub id is fetched: ``revision``, ``token`` (never shown) and ``local_files_only``.

    The one record of these three options: the classifier, the model spec and the loaders take
    it, and :meth:`as_kwargs` gives the keyword arguments of the hub loaders.
    """

    revision: str | None = None
    token: str | bool | None = field(default=None, repr=False)
    local_files_only: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        """``revision``, ``token`` and ``local_files_only`` as keyword arguments."""
        return {"revision": self.revision, "token": self.token,
                "local_files_only": bool(self.local_files_only)}

    def key(self) -> tuple:
        """What identifies the fetched files (the token only as whether one is given)."""
        return (self.revision, self.token is not None, bool(self.local_files_only))
