"""Moved to :mod:`dask_classify.jobs.manifest`; this alias is removed in 0.3."""

import sys

from dask_classify.jobs import manifest as _moved

sys.modules[__name__] = _moved
