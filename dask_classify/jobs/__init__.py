"""The job layer: ``classify_files`` over folders of shards, resumably, into an output folder.

============  ==============================================================================
``job``       :func:`classify_files`, the public entry point, as a short sequence of steps
``plan``      the job's tasks (one unit of one input each), their grouping, plan and summary
``run``       reading, classifying and writing a group of units; recording them as they finish
``manifest``  the output folder, the manifest, the job fingerprint and the one-writer lock
``writers``   Parquet / JSONL part files with one schema per output
============  ==============================================================================
"""

from __future__ import annotations

from dask_classify.jobs.job import classify_files
from dask_classify.jobs.plan import JobPlan, JobSummary, group_tasks
from dask_classify.jobs.run import run_unit, run_units

__all__ = ["JobPlan", "JobSummary", "classify_files", "group_tasks", "run_unit", "run_units"]
