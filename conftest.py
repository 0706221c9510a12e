"""Root conftest: keep doctest collection away from modules that run on import."""

collect_ignore = ["dask_classify/__main__.py", "setup.py"]
