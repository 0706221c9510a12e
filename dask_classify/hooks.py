"""What the per-partition pipeline needs of a classifier, declared as a :class:`typing.Protocol`.

:mod:`dask_classify.pipeline` sees a classifier only through :class:`ClassifierHooks`, so it
sits below :mod:`dask_classify.classifier` in the layers: the classifier holds options and
validation and implements these hooks; the pipeline calls them and owns the model call.
A user's classifier overrides the hooks it needs (the README's "Your own model").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from dask_classify.checkpoint import ModelInfo
    from dask_classify.engine.spec import ModelSpec

__all__ = ["ClassifierHooks", "defined_by"]


@runtime_checkable
class ClassifierHooks(Protocol):
    """The options and hooks :func:`dask_classify.pipeline.classify_partition` reads.

    Options: ``text_field``, ``filter_by``, ``fold_duplicates``, ``torch_threads``,
    ``model_inference_batch_size``, ``padding_side``, ``sort_by_length``, ``autocast`` and
    ``quantize``; :attr:`model_spec` names the worker's model. Hooks, in the order the pipeline
    calls them: :meth:`format_texts` (with :meth:`format_options`, which decides shared
    tokens), :meth:`token_limit`, :meth:`batch_token_limit`, :meth:`output_columns`,
    :meth:`filter_mask`, and :meth:`model_info` for partitions where no model ran; on the
    client, :func:`dask_classify.apply.classify_many` reads :attr:`output_fields`,
    :meth:`validate_frame` and :meth:`validate_model`.
    """

    text_field: str
    filter_by: list[str] | None
    fold_duplicates: bool | str
    torch_threads: int | None
    model_inference_batch_size: int
    padding_side: str
    sort_by_length: bool
    autocast: bool
    quantize: str | None

    @property
    def model_spec(self) -> ModelSpec: ...

    @property
    def output_fields(self) -> list[str]: ...

    def validate_frame(self, frame: Any) -> None: ...

    def validate_model(self, info: ModelInfo) -> None: ...

    def model_info(self) -> ModelInfo: ...

    def format_texts(self, texts: list[str]) -> list[str]: ...

    def format_options(self) -> tuple: ...

    def token_limit(self, tokenizer: Any, info: ModelInfo) -> int: ...

    def batch_token_limit(self, device: str) -> int | None: ...

    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]: ...

    def filter_mask(self, columns: dict[str, pd.Series], info: ModelInfo) -> np.ndarray: ...


def defined_by(cls: type, name: str) -> str:
    """``module.Qualname`` of the class in ``cls``'s MRO that defines ``name`` ("" if none).

    Cache keys name the code of a hook this way: two classifiers share a tokenizer, a model or
    the tokens of a chunk only when the same class defines the hook that builds them.

    Examples
    --------
    >>> from dask_classify.hooks import defined_by
    >>> class Base:
    ...     def format_texts(self, texts): return texts
    >>> class Child(Base):
    ...     pass
    >>> defined_by(Child, "format_texts").endswith("Base")
    True
    """
    for klass in cls.__mro__:
        if name in vars(klass):
            return f"{klass.__module__}.{klass.__qualname__}"
    return ""
