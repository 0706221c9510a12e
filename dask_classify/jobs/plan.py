"""What a job is made of: its tasks (one unit of one input each), their grouping, its plan and
its summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dask_classify.readers import SourceMeta, Unit
from dask_classify.readers.discovery import Source

__all__ = ["GROUP_BYTES", "JobPlan", "JobSummary", "group_tasks"]


@dataclass(frozen=True)
class _Task:
    """One unit of one input: what one Dask task reads, classifies and writes."""

    source: Source
    unit: Unit
    meta: SourceMeta
    folder: str
    out_url: str
    out_options: dict[str, Any]
    fmt: str
    schema: Any
    on_bad_lines: str
    count_field: str
    text_field: str
    est_bytes: int = 0  # the unit's share of its file (for grouping small units)

    def group_key(self) -> tuple:
        """Units with equal keys can be classified as one frame."""
        return (tuple(map(str, self.meta.frame.columns)),
                tuple(map(str, self.meta.frame.dtypes)),
                tuple(k for k, _ in self.source.partition_values), self.fmt)



#: Units below this size are grouped into tasks of about this many bytes (fewer with few units
#: per worker thread: every thread gets about ``GROUP_TASKS_PER_THREAD`` tasks or more).
GROUP_BYTES = 8 << 20



GROUP_TASKS_PER_THREAD = 4



def group_tasks(tasks: Sequence[_Task], threads: int = 1) -> list[list[_Task]]:
    """Consecutive small units of one kind, in groups of about :data:`GROUP_BYTES`.

    Stream units (compressed files, read piece by piece) and units of at least the target size
    stay alone. The target shrinks so that ``threads`` threads get at least
    :data:`GROUP_TASKS_PER_THREAD` tasks each where there are enough units.

    Examples
    --------
    >>> from dask_classify.jobs.plan import group_tasks
    >>> group_tasks([])
    []
    """
    total = sum(t.est_bytes for t in tasks)
    target = max(1, min(GROUP_BYTES, total // max(1, threads * GROUP_TASKS_PER_THREAD)))
    groups: list[list[_Task]] = []
    open_group: list[_Task] | None = None  # the group small units of its kind may still join
    size = 0
    for task in tasks:
        small = not task.unit.stream and task.est_bytes < target
        if (small and open_group is not None and size < target
                and open_group[0].group_key() == task.group_key()):
            open_group.append(task)
            size += task.est_bytes
        else:
            groups.append([task])
            open_group = groups[-1] if small else None
            size = task.est_bytes
    return groups



@dataclass(frozen=True)
class JobPlan:
    """What a job is about to do, given to a ``client`` callable to choose where it runs.

    Attributes
    ----------
    tasks : int
        Units to classify (small ones are grouped into fewer Dask tasks, :func:`group_tasks`).
    bytes : int
        Size of the inputs with units to classify (compressed size for compressed files).
    inputs : int
        Inputs with work to do.
    """

    tasks: int
    bytes: int
    inputs: int


@dataclass
class JobSummary:
    """What :func:`classify_files` did.

    Attributes
    ----------
    output : str
        The output folder.
    inputs : int
        Input files found.
    classified, skipped : int
        Inputs classified (fully or their missing parts) in this run / skipped as done.
    redone : list of (str, str)
        Inputs whose earlier output was redone, with the reason.
    resumed : list of str
        Inputs whose missing parts were classified (an interrupted earlier run).
    outputs : dict of str to str
        Each input's output folder.
    rows_in, rows_out, null_text, bad_lines_skipped : int
        Totals over the parts classified in this run.
    counts : dict of str to [int, int]
        Rows in and out per input classified in this run.
    labels : dict of str to int
        Rows per value of the counted column (the first classifier's label column).
    bad_lines : list of dask_classify.readers.BadLines
        Per input with ``on_bad_lines="skip"``.
    lock_taken_over : str or None
        The dead job whose lock this job took over.
    seconds, docs_per_second : float
        Wall time of the classification and its rate.
    tasks : int
        Units run in this job; ``where`` says where (``"in-process"`` or the scheduler).
    distinct_texts, table_bytes : int or None
        With ``fold_duplicates="global"``: the distinct texts of the job the model ran on (the
        most of any classifier) and the bytes of its output tables (16 bytes of hash plus the
        outputs per distinct text); None otherwise.
    """

    output: str
    inputs: int = 0
    classified: int = 0
    skipped: int = 0
    redone: list[tuple[str, str]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    rows_in: int = 0
    rows_out: int = 0
    null_text: int = 0
    bad_lines_skipped: int = 0
    counts: dict[str, list[int]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    bad_lines: list[Any] = field(default_factory=list)
    lock_taken_over: str | None = None
    seconds: float = 0.0
    docs_per_second: float | None = None
    tasks: int = 0
    where: str = "in-process"
    distinct_texts: int | None = None
    table_bytes: int | None = None

    def finish(self, classified: int, seconds: float) -> None:
        """Close the summary: inputs classified, wall time, throughput, labels sorted."""
        self.classified = classified
        self.seconds = round(seconds, 3)
        self.docs_per_second = round(self.rows_in / self.seconds, 1) if self.seconds else None
        self.labels = dict(sorted(self.labels.items()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (what ``_summary.json`` holds)."""
        out = dict(vars(self))
        out["bad_lines"] = [str(b) for b in self.bad_lines]
        out["redone"] = [list(r) for r in self.redone]
        return out
