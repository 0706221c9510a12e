"""``classify_files``: classify folders of shards, on any filesystem, into an output folder.

One call is one job. Its inputs are discovered once (:mod:`dask_classify.readers.discovery`), every
file is cut into units (:mod:`dask_classify.readers`), and all units of all files become tasks
of one Dask graph: each reads its unit, runs the classifiers on it
(:func:`dask_classify.pipeline.classify_partition`) and writes it as one part file
(:mod:`dask_classify.writers`), so every worker stays busy however the rows are spread over
files. Small units (shards of a few hundred rows) are grouped: one task reads several, classifies
their rows as one frame (length-sorted batches over all of them, one pass through the model
code) and writes each unit's rows as its own part, so many small shards run as fast as one big
file (measured in ``benchmarks/README.md``). Parts are recorded in the output's manifest
(:mod:`dask_classify.manifest`) as they finish: a job killed mid-run redoes only the parts it
had not finished, and a rerun skips only what is truly done (same input, same model and
options).

Layout of the output folder::

    OUT/_manifest.json                 the job's record (fingerprints, parts, counts)
    OUT/_summary.json                  the last run's totals
    OUT/<input path>.<fmt>/part.NNNNN.<fmt>   one part per unit of the input, in input order
    OUT/<input path>.<fmt>/_SUCCESS    written when every part of the input is there

Names starting with ``_`` or ``.`` are skipped by pandas, pyarrow and Dask, so
``pd.read_parquet("OUT")`` or ``pd.read_parquet("OUT/<input>.parquet")`` read the rows back as
one data set (every Parquet part of an output has the same schema).
"""

from __future__ import annotations

import posixpath
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from dask_classify.errors import UsageError
from dask_classify.jobs.manifest import (
    SUMMARY,
    JobLock,
    Manifest,
    OutputFolder,
    job_fingerprint,
    what_changed,
)
from dask_classify.jobs.plan import JobPlan, JobSummary, _Task, group_tasks
from dask_classify.jobs.run import _Progress, _Recorder, _run_distributed, job_tables, run_units
from dask_classify.jobs.writers import OUTPUT_FORMATS
from dask_classify.options import positive_int
from dask_classify.readers import ON_BAD_LINES, SourceMeta, Unit, parse_blocksize
from dask_classify.readers.discovery import Source, discover, output_name

__all__ = ["JobPlan", "JobSummary", "classify_files"]


def _refuse_overlap(inputs: Sequence[str], sources: list[Source], out: OutputFolder,
                    storage_options: dict[str, Any]) -> None:
    import fsspec

    for pattern in inputs:
        fs, root = fsspec.core.url_to_fs(str(pattern), **storage_options)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if any(c in root for c in "*?["):
            continue  # a glob names files: only the check below applies
        root = root.rstrip("/")
        if protocol == out.protocol and (out.path == root or out.path.startswith(root + "/")):
            raise UsageError(f"the output folder {out.url} is, or lies inside, the input "
                             f"{pattern!r}: choose an output folder outside the inputs")
    inside = [s.url for s in sources
              if s.protocol == out.protocol and s.path.startswith(out.path.rstrip("/") + "/")]
    if inside:
        raise UsageError(f"input {inside[0]} lies inside the output folder {out.url}: choose an "
                         "output folder outside the inputs")


def _check_model_paths(client: Any, classifiers: Sequence[Any]) -> None:
    """Fail before any work when a worker cannot see a local model folder (naming it)."""
    import os

    for clf in classifiers:
        path = clf.model_identifier
        if not os.path.isabs(path):
            continue  # a hub id: each machine downloads it once
        seen = client.run(os.path.isdir, path)
        missing = sorted(worker for worker, ok in seen.items() if not ok)
        if missing:
            raise UsageError(
                f"model folder {path} is not visible on worker(s) {', '.join(missing)}: put it "
                "on a filesystem every worker sees (or copy it there), or pass a hub id")


def _resolve_client(client: Any, plan: JobPlan) -> Any:
    if callable(client) and not hasattr(client, "submit"):
        return client(plan)
    if client is not None:
        return client
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def classify_files(
    inputs: str | Sequence[str],
    output: str,
    classifiers: Any,
    client: Any = None,
    *,
    input_format: str | None = None,
    output_format: str = "parquet",
    storage_options: dict[str, Any] | None = None,
    blocksize: str | int | None = "64MiB",
    partition_rows: int | None = 20_000,
    on_bad_lines: str = "error",
    overwrite: bool = False,
    progress: bool | Any = False,
    on_start: Callable[[JobSummary, JobPlan], None] | None = None,
) -> JobSummary:
    """Classify every row of the input files into ``output``, resumably; returns a summary.

    Parameters
    ----------
    inputs : str or sequence of str
        Files, folders (recursive; ``_*``/``.*`` names and ``.crc`` files ignored; hive
        ``key=value/`` folders become columns) and globs, as local paths or fsspec URLs
        (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``memory://``, ``file://``).
    output : str
        The output folder (local path or fsspec URL); created if missing.
    classifiers : DistributedDataClassifier or sequence of them
        Run in one pass over each unit (see :func:`dask_classify.classify_many`).
    client : distributed.Client or callable, optional
        Where the tasks run. None: the current default client if there is one, else this
        process, one unit after the other. A callable gets the :class:`JobPlan` and returns a
        client or None (the command line starts a cluster only for work larger than one unit).
    input_format : {"jsonl", "parquet", "csv", "tsv"}, optional
        The format of every input; default: from each file's extension.
    output_format : {"parquet", "jsonl"}, default "parquet"
    storage_options : dict, optional
        fsspec options of the filesystems (credentials, ``client_kwargs``/``endpoint_url``).
    blocksize, partition_rows
        How inputs are cut into units (see :func:`dask_classify.readers.plan_units`).
    on_bad_lines : {"error", "skip"}, default "error"
        A line that cannot be read stops the job with an error naming ``file:line`` (parts
        already written are kept and recorded), or is skipped and counted.
    overwrite : bool, default False
        Redo every input, whatever the manifest says.
    progress : bool or file-like, default False
        Report progress (True: on stdout): a bar on a terminal, else a line per 10% of parts.
    on_start : callable, optional
        Called with the summary so far (skips, redos) and the plan before the work starts (the
        command line prints the skips there).

    Returns
    -------
    JobSummary
        Also written to ``<output>/_summary.json``.

    Raises
    ------
    UsageError
        Another live job holds the output folder's lock (named: host, pid, start time), the
        output folder is or lies inside an input, two inputs would write one output, an output
        folder exists that this job's manifest does not know (without ``overwrite``), a model
        folder a worker cannot see, or an invalid option.
    InputError
        An input that cannot be read, or a bad line (``on_bad_lines="error"``).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from pathlib import Path
    >>> from dask_classify import DistributedDataClassifier, classify_files
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> work = Path(tempfile.mkdtemp())
    >>> model = build_tiny_deberta_checkpoint(work / "model", ["neg", "pos"], tokenizer="bert",
    ...                                       texts=["a good film", "a bad film"])
    >>> _ = (work / "in").mkdir()
    >>> _ = (work / "in" / "a.jsonl").write_text('{"text": "a good film"}\\n{"text": null}\\n')
    >>> clf = DistributedDataClassifier(model, label_field="sentiment")
    >>> summary = classify_files(str(work / "in"), str(work / "out"), clf)
    >>> summary.rows_in, summary.rows_out, summary.null_text, summary.outputs  # doctest: +ELLIPSIS
    (2, 2, 1, {'.../in/a.jsonl': '.../out/a.parquet'})
    >>> list(pd.read_parquet(work / "out").columns)
    ['text', 'sentiment']
    >>> classify_files(str(work / "in"), str(work / "out"), clf).skipped  # done: nothing redone
    1
    """
    from dask_classify.classifier import DistributedDataClassifier

    classifiers = [classifiers] if isinstance(classifiers, DistributedDataClassifier) \
        else list(classifiers)
    _check_options(classifiers, output_format, on_bad_lines, partition_rows)
    size = parse_blocksize(blocksize)  # a bad size fails here, before any input is listed
    inputs = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs]
    options = dict(storage_options or {})
    sources = discover(inputs, options, input_format)
    out = OutputFolder(output, options)
    _refuse_overlap(inputs, sources, out, options)
    job = _Job(classifiers, out, options, _targets(sources, output_format), output_format,
               on_bad_lines, size, partition_rows)
    summary = JobSummary(output=out.url, inputs=len(sources),
                         outputs={s.url: out.url_of(job.targets[s.url]) for s in sources})
    fingerprint = job_fingerprint(classifiers, {
        "input_format": input_format, "output_format": output_format,
        "on_bad_lines": on_bad_lines})
    with JobLock(out) as lock:
        summary.lock_taken_over = lock.taken_over
        for temp in out.stale_temporaries():  # a killed writer's leftovers; we hold the lock
            out.fs.rm(temp)
        manifest = job.open_manifest(*fingerprint, overwrite, summary)
        todo = job.inputs_to_do(sources, manifest, overwrite, summary)
        tasks = job.plan_tasks(todo, manifest)
        job_plan = JobPlan(len(tasks), sum(t.source.size for t in tasks if t.unit.index == 0),
                           len(todo))
        infos = [clf.model_info() for clf in classifiers] if tasks else []  # on the client
        if on_start is not None:
            on_start(summary, job_plan)
        manifest.save(out)
        started = time.perf_counter()
        stream = sys.stdout if progress is True else (progress or None)
        job.run(tasks, infos, todo, manifest, summary, client, job_plan, stream)
        summary.finish(len(todo), time.perf_counter() - started)
        out.write_json(SUMMARY, summary.to_dict())
    return summary


def _check_options(classifiers: list[Any], output_format: str, on_bad_lines: str,
                   partition_rows: int | None) -> None:
    if not classifiers:
        raise UsageError("classify_files needs at least one classifier")
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(f"output_format must be one of {OUTPUT_FORMATS}, not {output_format!r}")
    if on_bad_lines not in ON_BAD_LINES:
        raise UsageError(f"on_bad_lines must be one of {ON_BAD_LINES}, not {on_bad_lines!r}")
    positive_int("partition_rows", partition_rows, allow_none=True)


def _targets(sources: list[Source], output_format: str) -> dict[str, str]:
    """Each input's output folder name; refuses two inputs that would write one output."""
    targets = {s.url: output_name(s.relative, output_format) for s in sources}
    clashes = sorted({t for t in targets.values() if list(targets.values()).count(t) > 1})
    if clashes:
        raise UsageError(f"several inputs would write the same output {clashes}; classify "
                         "them into different output folders")
    return targets


@dataclass
class _Job:
    """One ``classify_files`` call's fixed parts, and its steps in the order they run."""

    classifiers: list[Any]
    out: OutputFolder
    options: dict[str, Any]
    targets: dict[str, str]
    output_format: str
    on_bad_lines: str
    size: int | None  # bytes per unit (parsed; None: whole files)
    partition_rows: int | None

    def __post_init__(self) -> None:
        self.plan_key = {"blocksize": self.size, "partition_rows": self.partition_rows}
        first = self.classifiers[0]
        self.count_field = first.label_field if first.label_field in first.output_fields \
            else first.output_fields[0]

    def open_manifest(self, job: str, description: dict[str, Any], overwrite: bool,
                      summary: JobSummary) -> Manifest:
        """The output's manifest, or a new one (with the reason) when the job changed."""
        manifest = Manifest.load(self.out) or Manifest()
        if overwrite or manifest.job != job:
            if manifest.job is not None and manifest.job != job and not overwrite:
                reason = what_changed(manifest.job_description, description)
                summary.redone += [(url, reason)
                                   for url in manifest.inputs if url in self.targets]
            manifest = Manifest(job, description, {})
        return manifest

    def inputs_to_do(self, sources: list[Source], manifest: Manifest, overwrite: bool,
                     summary: JobSummary) -> list[Source]:
        """The inputs not done yet; a changed or unknown one gets a fresh manifest entry."""
        known = manifest.inputs
        todo: list[Source] = []
        for source in sources:
            entry = known.get(source.url)
            target = self.targets[source.url]
            if entry is not None and entry.get("output") != target:
                entry = None
            if entry is not None and (entry.get("fingerprint") != source.fingerprint
                                      or entry.get("plan") != self.plan_key):
                summary.redone.append((source.url, "the input changed"))
                entry = None
            if entry is not None and entry.get("complete"):
                summary.skipped += 1
                continue
            if entry is None:
                if self.out.exists(target):
                    if not (overwrite or any(source.url == u for u, _ in summary.redone)):
                        raise UsageError(
                            f"{self.out.url_of(target)} exists but this output folder's "
                            "manifest does not record it; remove it, choose another output "
                            "folder, or use --overwrite")
                    self.out.remove(target)
                known[source.url] = {"output": target, "fingerprint": source.fingerprint,
                                     "plan": self.plan_key, "format": source.fmt, "parts": {},
                                     "complete": False}
            else:
                summary.resumed.append(source.url)
            todo.append(source)
        return todo

    def plan_tasks(self, todo: list[Source], manifest: Manifest) -> list[_Task]:
        """Every unit of ``todo`` not recorded as done, as a task (schemas checked once)."""
        from dask_classify.readers import plan_units, read_meta

        def prepare(source: Source) -> tuple[SourceMeta, list[Unit]]:
            meta = read_meta(source, self.on_bad_lines, self.size)
            return meta, plan_units(source, self.size, self.partition_rows)

        with ThreadPoolExecutor(max_workers=16) as pool:  # object stores: requests overlap
            prepared = list(pool.map(prepare, todo))
        tasks: list[_Task] = []
        checked: dict[tuple, Any] = {}
        for source, (meta, units) in zip(todo, prepared, strict=True):
            entry = manifest.inputs[source.url]
            entry["units"] = len(units)
            target = self.targets[source.url]
            if self.out.exists(target):  # resuming: parts finished after the last save
                _recover_parts(self.out, target, entry, units, self.output_format)
            done = set(entry["parts"])
            schema = self._schema(source, meta, checked)
            # the sample served the schema; tasks carry only what reading needs (1,000 rows
            # per task made a 37 MiB graph of 1,000 shards)
            meta = replace(meta, sample=meta.sample.iloc[:0])
            share = source.size // max(1, len(units))
            tasks += [_Task(source, unit, meta, self.out.join(target), self.out.url,
                            self.options, self.output_format, schema, self.on_bad_lines,
                            self.count_field, self.classifiers[0].text_field, share)
                      for unit in units if str(unit.index) not in done]
        return tasks

    def _schema(self, source: Source, meta: SourceMeta, checked: dict[tuple, Any]) -> Any:
        """The input's Parquet output schema (None for JSONL); validates the classifiers
        against each distinct set of columns once."""
        from dask_classify.apply import classify_many
        from dask_classify.jobs.writers import output_schema

        signature = (tuple(map(str, meta.frame.columns)), tuple(map(str, meta.frame.dtypes)))
        if signature not in checked:
            checked[signature] = classify_many(meta.frame, self.classifiers)
        if self.output_format != "parquet":
            return None
        drop = tuple(k for k, _ in source.partition_values)
        return output_schema(checked[signature], meta.sample, _arrow_types(self.classifiers),
                             drop, where=source.url)

    def run(self, tasks: list[_Task], infos: list[Any], todo: list[Source], manifest: Manifest,
            summary: JobSummary, client: Any, job_plan: JobPlan, stream: Any) -> None:
        """Run the tasks here or on the cluster, recording each part as it finishes."""
        classifiers = self.classifiers
        summary.tasks = len(tasks)
        recorder = _Recorder(self.out, manifest, summary, {s.url: s for s in todo},
                             _Progress(len(tasks), stream)
                             if stream is not None and tasks else None,
                             report_bad_lines=self.on_bad_lines == "skip")
        try:
            if tasks:
                runner = _resolve_client(client, job_plan)
                if runner is not None:
                    summary.where = runner.scheduler.address
                    _check_model_paths(runner, classifiers)
                tables = job_tables(tasks, classifiers, runner)  # fold_duplicates="global"
                if tables is not None:
                    built = [t for t in tables if t is not None]
                    summary.distinct_texts = max(len(t) for t in built)
                    summary.table_bytes = sum(t.nbytes for t in built)
                if runner is None:
                    for group in group_tasks(tasks):
                        for result in run_units(group, classifiers, infos, tables):
                            recorder.record(result)
                else:
                    _run_distributed(runner, tasks, classifiers, infos, recorder, tables)
            for source in todo:  # inputs whose every unit was already recorded
                recorder.finish_if_complete(source.url)
        finally:
            manifest.save(self.out)

def _recover_parts(out: OutputFolder, target: str, entry: dict[str, Any], units: list[Unit],
                   fmt: str) -> None:
    """Count as done the parts a killed run finished after its manifest was last saved.

    A part file exists under its final name only once it is complete (renamed into place, or
    one finished upload), and a changed input or job clears the folder first, so an existing
    part of a one-part unit is this job's finished work. Stream units (several parts) are
    redone unless the manifest recorded them.
    """
    folder = out.join(target)
    present = {posixpath.basename(p) for p in out.fs.ls(folder, detail=False)}
    for unit in units:
        name = f"part.{unit.index:05d}.{fmt}"
        if not unit.stream and name in present and str(unit.index) not in entry["parts"]:
            entry["parts"][str(unit.index)] = {"parts": [name], "recovered": True}


def _arrow_types(classifiers: Sequence[Any]) -> dict[str, Any]:
    types: dict[str, Any] = {}
    for clf in classifiers:
        types.update(clf.arrow_types())
    return types


