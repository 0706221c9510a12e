"""What names a worker's model: :class:`ModelSpec`, and the environment :class:`Settings`.

A spec is built on the client and travels with the task; its :attr:`ModelSpec.key` decides the
per-process model cache and enters the job fingerprint, so everything that can change a model's
numbers is in it, the environment switches included (read once, on the client).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dask_classify.backend import CPU_BF16_ENV, DEVICE_ENV
from dask_classify.options import HubOptions

__all__ = ["DEVICE_ENV", "CPU_BF16_ENV", "FAST_ATTENTION_ENV", "ONNX_CACHE_ENV", "ModelSpec",
           "Settings"]

FAST_ATTENTION_ENV = "DASK_CLASSIFY_FAST_ATTENTION"
ONNX_CACHE_ENV = "DASK_CLASSIFY_ONNX_CACHE"


@dataclass(frozen=True)
class Settings:
    """The environment switches that change a model's numbers, read once where it is built.

    Parameters
    ----------
    force_cpu : bool, default False
        ``DASK_CLASSIFY_DEVICE=cpu``: ``device="auto"`` means the CPU even where a GPU is seen.
    cpu_bf16 : bool, default False
        ``DASK_CLASSIFY_CPU_BF16=1``: bf16 autocast on CPUs with AMX (ignored on others).
    fast_attention : bool, default True
        ``DASK_CLASSIFY_FAST_ATTENTION`` not ``0``: the package's DeBERTa attention forward.
    onnx_cache : str, optional
        ``DASK_CLASSIFY_ONNX_CACHE``: the folder of exported graphs.

    Examples
    --------
    >>> from dask_classify.engine.spec import Settings
    >>> Settings.from_environ({"DASK_CLASSIFY_CPU_BF16": "1", "DASK_CLASSIFY_FAST_ATTENTION": "0"})
    Settings(force_cpu=False, cpu_bf16=True, fast_attention=False, onnx_cache=None)
    """

    force_cpu: bool = False
    cpu_bf16: bool = False
    fast_attention: bool = True
    onnx_cache: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        return cls(
            force_cpu=env.get(DEVICE_ENV, "").strip().lower() == "cpu",
            cpu_bf16=env.get(CPU_BF16_ENV, "").strip() == "1",
            fast_attention=env.get(FAST_ATTENTION_ENV, "1").strip().lower()
            not in {"0", "false", "no", "off"},
            onnx_cache=env.get(ONNX_CACHE_ENV) or None,
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings by name (what a job fingerprint records)."""
        return {"force_cpu": self.force_cpu, "cpu_bf16": self.cpu_bf16,
                "fast_attention": self.fast_attention, "onnx_cache": self.onnx_cache}


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
    hub : HubOptions, optional
        Revision, token and local-files-only for a hub id (the token is never shown).
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
    engine : {"auto", "torch", "onnx", "openvino"}, default "auto"
        ``"onnx"``: ONNX Runtime on the CPU, torch elsewhere; ``"auto"``: ONNX Runtime when
        the folder ships a graph of these weights, else torch.
    default_builder : bool, default True
        False when a classifier's own ``build_model`` builds the model (ONNX cannot replace it).
    settings : Settings, optional
        The environment switches (:meth:`Settings.from_environ` on the client); in the key.

    Examples
    --------
    >>> from dask_classify.engine.spec import ModelSpec
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
    hub: HubOptions = HubOptions()
    options: tuple = ()
    tokenizer_options: tuple = ()
    source: Any = field(default=None, compare=False, repr=False)
    engine: str = "auto"  # "auto", "torch", "onnx" or "openvino" (on the CPU)
    #: The loader builds the model (not a classifier's own ``build_model``): ONNX can replace it.
    default_builder: bool = True
    settings: Settings = field(default_factory=lambda: Settings.from_environ())

    @property
    def key(self) -> str:
        """A 16-hex-digit hash of every field but ``source``: the model cache key."""
        raw = repr((self.identifier, self.cache_dir, self.trust_remote_code, self.device,
                    self.quantize, self.hub.key(), self.options, self.engine,
                    self.default_builder, self.settings)).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @property
    def tokenizer_key(self) -> str:
        """A 16-hex-digit hash of the fields that decide the tokenizer (not device/quantize)."""
        raw = repr((self.identifier, self.cache_dir, self.trust_remote_code, self.hub.key(),
                    self.tokenizer_options, self.engine, self.default_builder)).encode()
        return hashlib.sha256(raw).hexdigest()[:16]
