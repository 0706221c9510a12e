"""The bundled model: a small SST-2 sentiment classifier shipped inside the package.

Examples
--------
>>> from dask_classify.bundled import default_model_dir
>>> default_model_dir().name, (default_model_dir() / "config.json").is_file()
('sst2-sentiment', True)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_model_dir"]


def default_model_dir() -> Path:
    """The folder of the bundled default model (``dask_classify/models/sst2-sentiment``)."""
    return Path(__file__).resolve().parent / "models" / "sst2-sentiment"
