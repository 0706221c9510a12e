"""Moved to :mod:`dask_classify.engine` (``spec``, ``cache``, ``run``); removed in 0.3."""

from dask_classify.engine.cache import (  # noqa: F401
    cached_model_keys,
    clear_cache,
    get_model,
    get_tokenizer,
    resolved_engine,
)
from dask_classify.engine.run import INFERENCE_LOCK, run_model  # noqa: F401
from dask_classify.engine.spec import ModelSpec, Settings  # noqa: F401
