"""Fixtures of the reader tests: small input files, and a sample small enough for later units.

The tests run with ``--import-mode=importlib``, so test modules cannot import helpers from each
other or from this file; the file writers reach them as the ``inputs`` fixture instead.
"""

from __future__ import annotations

from pathlib import Path

import dask
import pandas as pd
import pytest

import dask_classify.readers.base as readers_base
from dask_classify.readers import BadLines


class Inputs:
    """Write small JSONL/CSV/Parquet inputs; compute what :func:`read_input` returns."""

    @staticmethod
    def rows(n: int, width: int = 40) -> list[dict]:
        return [{"id": i, "text": f"row {i} " + "x" * width} for i in range(n)]

    @staticmethod
    def jsonl(path: Path, lines: list[str]) -> Path:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def csv_lines(n: int) -> list[str]:
        return [f'{i},"text {i}, with a comma",{i % 2}' for i in range(n)]

    @staticmethod
    def csv(path: Path, lines: list[str], header: str = "id,text,label") -> Path:
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def parquet(path: Path, n: int = 1000, row_group_size: int = 250) -> Path:
        frame = pd.DataFrame({"text": [f"t{i}" for i in range(n)]},
                             index=pd.RangeIndex(n, name="doc_id"))
        frame.to_parquet(path, row_group_size=row_group_size)
        return path

    @staticmethod
    def compute(source) -> tuple[pd.DataFrame, BadLines | None]:
        """The rows of an :class:`InputFrame` and its bad-line report, in one compute."""
        if source.bad_lines is None:
            return source.frame.compute(scheduler="sync"), None
        frame, report = dask.compute(source.frame, source.bad_lines, scheduler="sync")
        return frame, BadLines.from_frame(report)


@pytest.fixture
def inputs() -> type[Inputs]:
    return Inputs


@pytest.fixture
def small_sample(monkeypatch):
    """Fix the columns from the first 512 bytes, so later blocks are only read at compute time."""
    monkeypatch.setattr(readers_base, "SAMPLE_BYTES", 512)
