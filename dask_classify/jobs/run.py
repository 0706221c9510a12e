"""Running a job's tasks: read a unit, classify it, write its parts, record them as they finish.

:func:`run_units` is what each Dask task runs (in this process when there is no cluster);
:class:`_Recorder` puts finished units into the manifest and the summary.
"""

from __future__ import annotations

import posixpath
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NoReturn

from dask_classify.errors import UserError
from dask_classify.jobs.manifest import SUCCESS, Manifest, OutputFolder
from dask_classify.jobs.plan import JobSummary, _Task, group_tasks
from dask_classify.readers.discovery import Source

__all__ = ["job_tables", "run_unit", "run_units"]


def job_tables(tasks: Sequence[_Task], classifiers: Sequence[Any],
               client: Any = None) -> list[Any] | None:
    """``fold_duplicates="global"``: each such classifier's outputs by text hash over every
    unit of the job (:mod:`dask_classify.fold`), computed on ``client`` (or in this process);
    None when no classifier folds globally.

    The hash pass reads each unit once more (errors name the file); the representatives of
    the whole job are scored in partitions spread over the workers.
    """
    from dask_classify.fold import FIRSTS_META, global_groups, table_graph

    groups = global_groups(classifiers)
    if not groups or not tasks:
        return None
    import dask
    import dask.dataframe as dd

    threads = sum(client.nthreads().values()) if client is not None else 1
    lazy: list[Any] = [None] * len(classifiers)
    for group in groups:
        firsts = dd.from_map(_first_texts_of_task, list(tasks), clf=classifiers[group[0]],
                             meta=FIRSTS_META, enforce_metadata=False,
                             label="dask-classify-hash-pass")
        split_out = min(len(tasks), 4 * max(threads, 1))
        for i, table in zip(group, table_graph(firsts, [classifiers[i] for i in group],
                                                split_out), strict=True):
            lazy[i] = table
    if client is None:
        return list(dask.compute(lazy, scheduler="sync")[0])
    return client.gather(client.compute(lazy))


def _first_texts_of_task(task: _Task, clf: Any) -> Any:
    """The hash pass over one unit (every piece of a stream), one row per distinct text."""
    import pandas as pd

    from dask_classify.fold import FIRSTS_META, first_texts
    from dask_classify.readers import read_unit

    frames = []
    try:
        for frame, _ in read_unit(task.source, task.unit, task.meta, task.on_bad_lines):
            frames.append(first_texts(frame, clf))
    except UserError as exc:
        _raise_naming_file(exc, task)
    if not frames:
        return FIRSTS_META.copy()
    return pd.concat(frames, ignore_index=True).drop_duplicates(subset=["h1", "h2"],
                                                                ignore_index=True)


def run_units(tasks: Sequence[_Task], classifiers: Sequence[Any],
              infos: Sequence[Any] | None = None,
              tables: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Classify a group of units (:func:`group_tasks`) as one frame; each unit's counts.

    Every unit is read, the rows of all are classified together and each unit's rows are
    written as its own part, in its own order. An error about the input names its file: when
    classifying the joined rows fails on the input, the units are redone one by one, so that
    the error names the unit's file. ``tables``: see :func:`job_tables`.
    """
    if len(tasks) == 1:
        return [run_unit(tasks[0], classifiers, infos, tables)]
    import numpy as np
    import pandas as pd

    from dask_classify.pipeline import classify_partition
    from dask_classify.readers import read_unit

    frames: list[Any] = []
    stats: list[tuple] = []
    for task in tasks:
        try:
            [(frame, stat)] = list(read_unit(task.source, task.unit, task.meta,
                                             task.on_bad_lines))
        except UserError as exc:
            _raise_naming_file(exc, task)
        frames.append(frame)
        stats.append(stat)
    lengths = [len(f) for f in frames]
    rows = [f for f in frames if len(f)]  # empty units add no rows (nor dtypes)
    joined = pd.concat(rows, ignore_index=True) if rows else frames[0]
    try:
        result = classify_partition(joined, classifiers, infos, tables)
    except UserError:  # say which file: the units one by one
        return [run_unit(task, classifiers, infos, tables) for task in tasks]
    # the result's index: the joined frame's row positions (a subset, in order, with filter_by)
    positions = result.index.to_numpy().astype(np.int64, copy=False)
    owner = np.repeat(np.arange(len(tasks)), lengths)[positions]
    out = OutputFolder(tasks[0].out_url, tasks[0].out_options)
    return [_write_unit(task, out, [(frames[i], result[owner == i], stats[i])])
            for i, task in enumerate(tasks)]



def _raise_naming_file(exc: UserError, task: _Task) -> NoReturn:
    """Raise ``exc`` (being handled), its message led by the unit's file unless it names it."""
    if task.source.url in str(exc):
        raise exc
    raise type(exc)(f"{task.source.url}: {exc}") from exc



def run_unit(task: _Task, classifiers: Sequence[Any],
             infos: Sequence[Any] | None = None,
             tables: Sequence[Any] | None = None) -> dict[str, Any]:
    """Read, classify and write one unit; its counts (what the manifest records).

    A unit of a compressed file yields several pieces, each written as its own part, so the
    stream is never held whole. An error about the input names the file.
    """
    from dask_classify.pipeline import classify_partition
    from dask_classify.readers import read_unit

    def classified() -> Iterator[tuple[Any, Any, tuple]]:
        for frame, stats in read_unit(task.source, task.unit, task.meta, task.on_bad_lines):
            yield frame, classify_partition(frame, classifiers, infos, tables), stats

    try:
        return _write_unit(task, OutputFolder(task.out_url, task.out_options), classified())
    except UserError as exc:  # a column or value of this file: say which file
        _raise_naming_file(exc, task)



def _write_unit(task: _Task, out: OutputFolder,
                pieces: Iterable[tuple[Any, Any, tuple]]) -> dict[str, Any]:
    """Write a unit's classified pieces, ``(input rows, result, bad stats)`` each, as its parts
    and count them."""
    from dask_classify.jobs.writers import label_counts, write_part

    parts: list[str] = []
    rows_in = rows_out = nulls = 0
    labels: Counter[str] = Counter()
    bad: list[tuple] = []
    drop = [k for k, _ in task.source.partition_values] if task.fmt == "parquet" else []
    for piece, (source_rows, result, stats) in enumerate(pieces):
        number = piece if task.unit.stream else task.unit.index
        rows_in += len(source_rows)
        nulls += int(source_rows[task.text_field].isna().sum())
        name = f"part.{number:05d}.{task.fmt}"
        write_part(result.drop(columns=drop) if drop else result, out.fs, task.folder, name,
                   task.fmt, task.schema, where=task.source.url)
        labels.update(label_counts(result[task.count_field]))
        rows_out += len(result)
        bad.append(stats)
        parts.append(name)
    return {"input": task.source.url, "unit": task.unit.index, "parts": parts,
            "rows_in": rows_in, "rows_out": rows_out, "null_text": nulls,
            "labels": dict(labels), "bad": bad}



class _Progress:
    """A bar on a terminal; on a pipe or in a log, one line per 10% of the parts."""

    def __init__(self, total: int, stream: Any):
        self.total, self.stream = max(total, 1), stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.done = 0
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.last_step = -1

    def update(self, rows: int = 0) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        fraction = self.done / self.total
        if self.tty:
            now = time.perf_counter()
            if now - self.last_draw >= 0.1 or self.done == self.total:
                self.last_draw = now
                bar = "#" * int(40 * fraction)
                self.stream.write(f"\r[{bar:<40}] {fraction:4.0%} {self.done}/{self.total} parts "
                                  f"{elapsed:5.1f}s")
                if self.done == self.total:
                    self.stream.write("\n")
                self.stream.flush()
            return
        step = int(fraction * 10)
        if step > self.last_step and (step > 0 or self.done == self.total):
            self.last_step = step
            self.stream.write(f"progress: {self.done}/{self.total} parts ({fraction:.0%}) in "
                              f"{elapsed:.1f} s\n")
            self.stream.flush()



def _run_distributed(client: Any, tasks: list[_Task], classifiers: list[Any],
                     infos: list[Any], recorder: _Recorder,
                     tables: list[Any] | None = None) -> None:
    """All units as one batch of tasks; recorded as they finish (any order)."""
    import dask
    from distributed import as_completed

    token = dask.base.tokenize(tasks[0].out_url, time.time())
    groups = group_tasks(tasks, sum(client.nthreads().values()) or 1)
    [remote] = client.scatter([(classifiers, infos, tables)], broadcast=True, hash=False)
    futures = client.map(_run_scattered, groups, shared=remote, pure=False,
                         key=[f"classify-units-{token}-{i}" for i in range(len(groups))])
    try:
        for future in as_completed(futures):
            for result in future.result():
                recorder.record(result)
    except BaseException:
        client.cancel(futures)
        raise



def _run_scattered(group: list[_Task],
                   shared: tuple[list[Any], list[Any], list[Any] | None]
                   ) -> list[dict[str, Any]]:
    return run_units(group, *shared)



class _Recorder:
    """Puts finished units into the manifest (saved every few seconds) and the summary."""

    def __init__(self, out: OutputFolder, manifest: Manifest, summary: JobSummary,
                 sources: dict[str, Source], progress: _Progress | None,
                 report_bad_lines: bool):
        self.out, self.manifest, self.summary = out, manifest, summary
        self.sources, self.progress = sources, progress
        self.report_bad_lines = report_bad_lines
        self.saved = time.perf_counter()
        self.bad: dict[str, list[tuple]] = {}

    def record(self, result: dict[str, Any]) -> None:
        url = result["input"]
        entry = self.manifest.inputs[url]
        entry["parts"][str(result["unit"])] = {
            k: result[k] for k in ("parts", "rows_in", "rows_out", "null_text", "labels")}
        self.bad.setdefault(url, []).extend(result["bad"])
        s = self.summary
        s.rows_in += result["rows_in"]
        s.rows_out += result["rows_out"]
        s.null_text += result["null_text"]
        counts = s.counts.setdefault(url, [0, 0])
        counts[0] += result["rows_in"]
        counts[1] += result["rows_out"]
        s.bad_lines_skipped += sum(n for n, _ in result["bad"])
        for label, count in result["labels"].items():
            s.labels[label] = s.labels.get(label, 0) + count
        if self.progress is not None:
            self.progress.update(result["rows_in"])
        self.finish_if_complete(url)
        if time.perf_counter() - self.saved > 1.0:
            self.manifest.save(self.out)
            self.saved = time.perf_counter()

    def finish_if_complete(self, url: str) -> None:
        from dask_classify.readers import summarize_bad_lines

        entry = self.manifest.inputs[url]
        if entry.get("complete") or len(entry["parts"]) < entry.get("units", 1 << 62):
            return
        self.out.fs.touch(posixpath.join(self.out.join(entry["output"]), SUCCESS))
        entry["complete"] = True
        if url in self.bad and self.report_bad_lines:
            report = summarize_bad_lines(self.sources[url], self.bad[url])
            entry["bad_lines_skipped"] = report.count
            self.summary.bad_lines.append(report)
