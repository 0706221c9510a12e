"""Moved to :mod:`dask_classify.readers.discovery`; this alias is removed in 0.3."""

import sys

from dask_classify.readers import discovery as _moved

sys.modules[__name__] = _moved
