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

import dataclasses
import importlib.util
import numbers
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dask_classify.errors import MissingExtraError, UsageError

__all__ = ["CPU_BATCH_TOKENS", "CPU_ENGINES", "DEVICE_PATTERN", "ENGINES", "PADDING_SIDES",
           "QUANTIZE", "ClassifierOptions", "HubOptions", "check_device", "check_engine",
           "positive_int"]

#: Inference engines: ``"auto"`` (ONNX Runtime for a checkpoint that ships a graph of its
#: weights, else torch), torch, ONNX Runtime or OpenVINO on the CPU.
ENGINES = ("auto", "torch", "onnx", "openvino")
#: The engines that run an exported graph on the CPU, and the extra each needs.
CPU_ENGINES = {"onnx": ("onnx", ("onnxruntime", "onnx")),
               "openvino": ("openvino", ("openvino", "onnxruntime", "onnx"))}
PADDING_SIDES = ("left", "right")
#: Quantization modes (``None``: the checkpoint's own precision).
QUANTIZE = (None, "int8")
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
        An unknown engine, or ``"onnx"``/``"openvino"`` with a CUDA device or with
        ``quantize``.
    MissingExtraError
        ``"onnx"`` without the ``[onnx]`` extra, ``"openvino"`` without ``[openvino]``.

    Examples
    --------
    >>> from dask_classify.options import check_engine
    >>> check_engine("openvino")
    'openvino'
    >>> check_engine("openvino", device="cuda")
    Traceback (most recent call last):
    ...
    dask_classify.errors.UsageError: engine='openvino' runs on the CPU only, not on device 'cuda'
    """
    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {list(ENGINES)}, not {engine!r}")
    if engine in CPU_ENGINES:
        extra, modules = CPU_ENGINES[engine]
        if device.startswith("cuda"):
            raise UsageError(f"engine={engine!r} runs on the CPU only, not on device {device!r}")
        if quantize is not None:
            raise UsageError(f"engine={engine!r} runs the float32 graph; quantize must be None")
        for module in modules:
            if importlib.util.find_spec(module) is None:
                raise MissingExtraError.for_module(module, extra, f"engine={engine!r}")
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


@dataclass(frozen=True)
class ClassifierOptions:
    """A classifier's options, validated once when it is built.

    The one record behind :class:`~dask_classify.DistributedDataClassifier`'s constructor: the
    fields are its parameters (same names, same defaults; see its docstring for what each does)
    and the classifier's attributes of these names read from here. Building one checks every
    value, so that nothing fails later on a worker; :meth:`replace` checks the changed ones.

    Raises
    ------
    UsageError
        A value out of its range, naming the parameter.
    MissingExtraError
        ``engine="onnx"`` without the ``[onnx]`` extra.

    Examples
    --------
    >>> from dask_classify.options import ClassifierOptions
    >>> opts = ClassifierOptions("acme/topics", max_chars=100, filter_by="sports")
    >>> opts.max_chars, opts.filter_by, opts.hub.revision
    (100, ['sports'], None)
    >>> opts.replace(max_chars=0)
    Traceback (most recent call last):
    ...
    dask_classify.errors.UsageError: max_chars must be a positive integer or None, not 0
    """

    model_identifier: str
    cache_dir: str | None = None
    text_field: str = "text"
    label_field: str = "preds"
    score_field: str | None = None
    filter_by: Sequence[str] | None = None
    max_chars: int | None = None
    max_seq_length: int | None = None
    padding_side: str = "right"
    sort_by_length: bool = True
    fold_duplicates: bool | str = True
    model_inference_batch_size: int = 256
    max_batch_tokens: int | str | None = "auto"
    autocast: bool = True
    device: str = "auto"
    quantize: str | None = None
    engine: str = "auto"
    trust_remote_code: bool = False
    torch_threads: int | None = None
    multi_label_threshold: float = 0.5
    revision: str | None = None
    token: str | bool | None = field(default=None, repr=False)
    local_files_only: bool = False

    def __post_init__(self) -> None:
        for name, value in self._checked().items():
            object.__setattr__(self, name, value)

    def _checked(self) -> dict[str, Any]:
        """Every field's value after its check (normalised: lists, bools, absolute paths)."""
        if self.model_identifier is None:
            raise UsageError("model_identifier is required (a checkpoint folder or hub id)")
        identifier = os.fspath(self.model_identifier)
        local = Path(identifier).expanduser()
        if local.exists():  # workers get the path as the client sees it, never a relative one
            identifier = str(local.resolve())
        if self.padding_side not in PADDING_SIDES:
            raise UsageError(f"padding_side must be 'left' or 'right', not {self.padding_side!r}")
        device = check_device(self.device)
        if self.quantize not in QUANTIZE:
            raise UsageError(f"quantize must be None or 'int8', not {self.quantize!r}")
        if self.quantize == "int8" and device.startswith("cuda"):
            raise UsageError(f"quantize='int8' runs on the CPU only, not on device {device!r}")
        check_engine(self.engine, device, self.quantize)
        fold = self.fold_duplicates
        if not (isinstance(fold, bool) or type(fold).__name__ in ("bool", "bool_") or
                fold == "global"):
            raise UsageError(
                f"fold_duplicates must be True, False or 'global', not {fold!r}")
        threshold = self.multi_label_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or \
                not 0.0 <= float(threshold) <= 1.0:
            raise UsageError(f"multi_label_threshold must be a number in [0, 1], not "
                             f"{threshold!r}")
        filter_by = [self.filter_by] if isinstance(self.filter_by, str) else self.filter_by
        tokens = self.max_batch_tokens
        return {
            "model_identifier": identifier,
            "filter_by": list(filter_by) if filter_by is not None else None,
            "max_chars": positive_int("max_chars", self.max_chars, allow_none=True),
            "max_seq_length": positive_int("max_seq_length", self.max_seq_length,
                                           allow_none=True, minimum=2),
            "model_inference_batch_size": positive_int("model_inference_batch_size",
                                                       self.model_inference_batch_size),
            "max_batch_tokens": tokens if tokens in ("auto", None) else positive_int(
                "max_batch_tokens", tokens, extra="'auto'", allow_none=True),
            "torch_threads": positive_int("torch_threads", self.torch_threads, allow_none=True),
            "multi_label_threshold": float(threshold),
            "sort_by_length": bool(self.sort_by_length),
            "fold_duplicates": fold if fold == "global" else bool(fold),
            "autocast": bool(self.autocast),
            "trust_remote_code": bool(self.trust_remote_code),
            "local_files_only": bool(self.local_files_only),
        }

    @property
    def hub(self) -> HubOptions:
        """``revision``, ``token`` and ``local_files_only`` as one record."""
        return HubOptions(self.revision, self.token, self.local_files_only)

    def replace(self, **changes: Any) -> ClassifierOptions:
        """A copy with ``changes`` applied and checked."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Every option by name, in field order (``token`` included: callers hide it)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: The classifier options in the order of the constructor's parameters.
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(ClassifierOptions))
