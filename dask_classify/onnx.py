"""Moved to :mod:`dask_classify.engine.onnx_export` and :mod:`dask_classify.engine.onnx_runtime`;
this alias is removed in 0.3."""

from dask_classify.engine.onnx_export import (  # noqa: F401
    OPSET,
    TOLERANCE,
    cached_export,
    export_onnx,
    load_onnx_model,
    weights_hash,
)
from dask_classify.engine.onnx_runtime import (  # noqa: F401
    CACHE_ENV,
    EXPORT_INFO,
    EXPORT_VERSION,
    ONNX_NAME,
    FileTokenizer,
    OnnxFallbackWarning,
    OnnxModel,
    cache_root,
    shipped_graph,
)
from dask_classify.options import ENGINES  # noqa: F401
from dask_classify.weights import has_weights  # noqa: F401
