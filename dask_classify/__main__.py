"""``python -m dask_classify`` is the ``dask-classify`` command."""

import sys

from dask_classify.cli import main

sys.exit(main())
