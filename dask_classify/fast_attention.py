"""Moved to :mod:`dask_classify.engine.fast_attention`; this alias is removed in 0.3."""

import sys

from dask_classify.engine import fast_attention as _moved

sys.modules[__name__] = _moved
