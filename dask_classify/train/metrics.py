"""Classification reports: precision, recall and F1 (micro, macro, weighted, per class) with
support, and the confusion matrix, computed with torchmetrics; text, JSON and PNG output.

The text table has the layout of NeMo's ``ClassificationReport`` (percentages, one row per
``label_id``, then the micro/macro/weighted averages), so NeMo users read it at a glance.

Examples
--------
>>> import torch
>>> from dask_classify.train.metrics import classification_report, format_report
>>> report = classification_report(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]),
...                                labels=["neg", "pos"])
>>> round(report["accuracy"], 2), report["per_class"]["neg"]["support"]
(0.75, 3)
>>> print(format_report(report))
label                  precision    recall        f1   support
neg (label_id: 0)         100.00     66.67     80.00         3
pos (label_id: 1)          50.00    100.00     66.67         1
--------------------------------------------------------------
micro avg                  75.00     75.00     75.00         4
macro avg                  75.00     83.33     73.33         4
weighted avg               87.50     75.00     76.67         4
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from dask_classify.errors import UsageError

__all__ = [
    "AVERAGES",
    "build_metrics",
    "classification_report",
    "flat_metrics",
    "format_confusion_matrix",
    "format_report",
    "report_from_metrics",
    "write_confusion_matrix_json",
    "write_confusion_matrix_png",
    "write_json",
]

AVERAGES = ("micro", "macro", "weighted")


def build_metrics(num_classes: int) -> MetricCollection:
    """A torchmetrics collection holding everything a report needs (states sync under DDP).

    Parameters
    ----------
    num_classes : int
        Number of classes (labels ``0 .. num_classes - 1``).

    Returns
    -------
    torchmetrics.MetricCollection
        ``confusion_matrix`` and ``{precision,recall,f1}_{micro,macro,weighted,per_class}``;
        feed it ``update(preds, target)`` with label ids, then pass ``compute()`` to
        :func:`report_from_metrics`.

    Raises
    ------
    ValueError
        When ``num_classes`` is below 2.

    Examples
    --------
    >>> import torch
    >>> metrics = build_metrics(2)
    >>> metrics.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    >>> sorted(metrics.compute())[:3]
    ['confusion_matrix', 'f1_macro', 'f1_micro']
    """
    if int(num_classes) < 2:
        raise UsageError(f"num_classes must be >= 2, not {num_classes}")
    metrics: dict[str, Any] = {"confusion_matrix": MulticlassConfusionMatrix(num_classes)}
    for average in (*AVERAGES, "none"):
        suffix = "per_class" if average == "none" else average
        metrics[f"precision_{suffix}"] = MulticlassPrecision(num_classes, average=average)
        metrics[f"recall_{suffix}"] = MulticlassRecall(num_classes, average=average)
        metrics[f"f1_{suffix}"] = MulticlassF1Score(num_classes, average=average)
    # compute_groups lets the precision/recall/F1 metrics share one set of stat-score states.
    return MetricCollection(metrics, compute_groups=True)


def _label_names(labels: Sequence[str] | dict[int, str] | None, num_classes: int) -> list[str]:
    if labels is None:
        return [str(i) for i in range(num_classes)]
    if isinstance(labels, dict):
        labels = [str(labels[i]) for i in range(num_classes)]
    names = [str(n) for n in labels]
    if len(names) != num_classes:
        raise UsageError(f"{len(names)} label names for {num_classes} classes")
    return names


def report_from_metrics(computed: dict[str, torch.Tensor],
                        labels: Sequence[str] | dict[int, str] | None = None) -> dict[str, Any]:
    """Turn :func:`build_metrics`' ``compute()`` output into a plain-Python report dict.

    Parameters
    ----------
    computed : dict of str to torch.Tensor
        ``build_metrics(n).compute()`` (on any device).
    labels : sequence of str or dict of int to str, optional
        Label names in id order (default ``"0"``, ``"1"``, ...).

    Returns
    -------
    dict
        ``accuracy``; ``micro``/``macro``/``weighted``: ``{precision, recall, f1, support}``;
        ``per_class``: ``{label_name: {label_id, precision, recall, f1, support}}`` in id order;
        ``labels`` (names in id order); ``num_samples``; ``confusion_matrix`` (rows: true label,
        columns: predicted label). Scores are fractions in ``[0, 1]``.

    Raises
    ------
    ValueError
        When the number of label names differs from the number of classes.

    Examples
    --------
    >>> import torch
    >>> metrics = build_metrics(2)
    >>> metrics.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    >>> report = report_from_metrics(metrics.compute(), ["neg", "pos"])
    >>> round(report["accuracy"], 4), report["confusion_matrix"]
    (0.6667, [[1, 1], [0, 1]])
    >>> {k: round(v, 4) for k, v in report["per_class"]["pos"].items()}
    {'label_id': 1, 'precision': 0.5, 'recall': 1.0, 'f1': 0.6667, 'support': 1}
    """
    matrix = computed["confusion_matrix"].detach().to("cpu", torch.long)
    num_classes = int(matrix.shape[0])
    names = _label_names(labels, num_classes)
    support = matrix.sum(dim=1).tolist()
    total = int(sum(support))
    correct = int(matrix.diag().sum())

    def value(key: str) -> float:
        return float(computed[key].detach().cpu())

    report: dict[str, Any] = {
        "accuracy": correct / total if total else 0.0,
        "num_samples": total,
    }
    for average in AVERAGES:
        report[average] = {
            "precision": value(f"precision_{average}"),
            "recall": value(f"recall_{average}"),
            "f1": value(f"f1_{average}"),
            "support": total,
        }
    per_class: dict[str, Any] = {}
    p = computed["precision_per_class"].detach().cpu().tolist()
    r = computed["recall_per_class"].detach().cpu().tolist()
    f = computed["f1_per_class"].detach().cpu().tolist()
    for i, name in enumerate(names):
        per_class[name] = {"label_id": i, "precision": float(p[i]), "recall": float(r[i]),
                           "f1": float(f[i]), "support": int(support[i])}
    report["per_class"] = per_class
    report["labels"] = names
    report["confusion_matrix"] = matrix.tolist()
    return report


def _as_long_tensor(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.long).reshape(-1)
    # A copy: numpy views of pandas columns may be read-only, which torch warns about.
    return torch.from_numpy(np.array(values, dtype=np.int64)).reshape(-1)


def classification_report(preds: Any, target: Any, num_classes: int | None = None,
                          labels: Sequence[str] | dict[int, str] | None = None) -> dict[str, Any]:
    """Precision, recall, F1 (micro/macro/weighted/per class), support and confusion matrix.

    Parameters
    ----------
    preds, target : array-like of int
        Predicted and true label ids (same length).
    num_classes : int, optional
        Default: ``len(labels)`` when labels are given, else ``max(preds, target) + 1`` (at
        least 2).
    labels : sequence of str or dict of int to str, optional
        Label names in id order (default ``"0"``, ``"1"``, ...).

    Returns
    -------
    dict
        See :func:`report_from_metrics`.

    Raises
    ------
    ValueError
        If the lengths differ, the inputs are empty, or a label id is outside
        ``0 .. num_classes - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.train.metrics import classification_report
    >>> report = classification_report(np.array([0, 2, 1, 1]), np.array([0, 1, 1, 2]))
    >>> report["labels"], report["num_samples"], round(report["macro"]["f1"], 4)
    (['0', '1', '2'], 4, 0.5)
    >>> report["confusion_matrix"]
    [[1, 0, 0], [0, 1, 1], [0, 1, 0]]
    """
    preds_t, target_t = _as_long_tensor(preds), _as_long_tensor(target)
    if preds_t.shape != target_t.shape:
        raise ValueError(f"preds ({preds_t.numel()}) and target ({target_t.numel()}) differ in "
                         "length")
    if preds_t.numel() == 0:
        raise ValueError("cannot report on zero examples")
    if num_classes is None:
        num_classes = len(labels) if labels is not None else max(
            2, int(max(preds_t.max(), target_t.max())) + 1)
    both = torch.cat([preds_t, target_t])
    if int(both.min()) < 0 or int(both.max()) >= num_classes:
        raise UsageError(f"label ids must be in 0..{num_classes - 1}")
    metrics = build_metrics(num_classes)
    metrics.update(preds_t, target_t)
    return report_from_metrics(metrics.compute(), labels)


def flat_metrics(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalars of a report for a logger: ``{prefix}accuracy``, ``{prefix}f1_macro``, ...,
    and per class ``{prefix}f1_class_{id}``.

    Parameters
    ----------
    report : dict
        From :func:`classification_report` or :func:`report_from_metrics`.
    prefix : str, default ""
        Put before every key (``"val_"``, ``"test_"``).

    Returns
    -------
    dict of str to float
        Accuracy, precision/recall/F1 for each average and for each class id.

    Examples
    --------
    >>> import torch
    >>> rep = classification_report(torch.tensor([0, 1]), torch.tensor([0, 1]))
    >>> flat_metrics(rep, "val_")["val_f1_macro"]
    1.0
    """
    out = {f"{prefix}accuracy": float(report["accuracy"])}
    for average in AVERAGES:
        for score in ("precision", "recall", "f1"):
            out[f"{prefix}{score}_{average}"] = float(report[average][score])
    for row in report["per_class"].values():
        for score in ("precision", "recall", "f1"):
            out[f"{prefix}{score}_class_{row['label_id']}"] = float(row[score])
    return out


def format_report(report: dict[str, Any]) -> str:
    """The report as a text table (NeMo's layout: percentages, per class then averages).

    Parameters
    ----------
    report : dict
        From :func:`classification_report` or :func:`report_from_metrics`.

    Returns
    -------
    str
        One row per class (``name (label_id: i)``), a rule, then the micro, macro and weighted
        averages; precision, recall and F1 in percent (2 decimals) and the support.

    Examples
    --------
    >>> import torch
    >>> rep = classification_report(torch.tensor([1, 1]), torch.tensor([1, 0]), labels=["n", "p"])
    >>> print(format_report(rep).splitlines()[2])
    p (label_id: 1)            50.00    100.00     66.67         1
    """
    rows = [(f"{name} (label_id: {row['label_id']})", row)
            for name, row in report["per_class"].items()]
    rows_avg = [(f"{average} avg", report[average]) for average in AVERAGES]
    width = max(20, *(len(name) for name, _ in rows + rows_avg)) + 2
    header = f"{'label':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"

    def line(name: str, row: dict[str, Any]) -> str:
        return (f"{name:<{width}}{100 * row['precision']:>10.2f}{100 * row['recall']:>10.2f}"
                f"{100 * row['f1']:>10.2f}{int(row['support']):>10d}")

    out = [header] + [line(n, r) for n, r in rows] + ["-" * len(header)]
    out += [line(n, r) for n, r in rows_avg]
    return "\n".join(out)


def format_confusion_matrix(report: dict[str, Any]) -> str:
    """The confusion matrix as text: rows are true labels, columns predicted labels.

    Parameters
    ----------
    report : dict
        From :func:`classification_report` or :func:`report_from_metrics`.

    Returns
    -------
    str
        A header of label names, then one line of counts per true label.

    Examples
    --------
    >>> import torch
    >>> rep = classification_report(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]),
    ...                              labels=["neg", "pos"])
    >>> print(format_confusion_matrix(rep))
    true \\ predicted  neg  pos
    neg                 1    1
    pos                 0    1
    """
    names = report["labels"]
    matrix = report["confusion_matrix"]
    corner = "true \\ predicted"
    first = max(len(corner), *(len(n) for n in names))
    cols = [max(len(n), *(len(str(matrix[r][c])) for r in range(len(names))))
            for c, n in enumerate(names)]
    head = f"{corner:<{first}}" + "".join(f"  {n:>{w}}" for n, w in zip(names, cols, strict=True))
    body = [f"{name:<{first}}" + "".join(f"  {v:>{w}}" for v, w in zip(row, cols, strict=True))
            for name, row in zip(names, matrix, strict=True)]
    return "\n".join([head, *body])


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON (creating the folder); returns the path.

    Parameters
    ----------
    obj : object
        Anything ``json.dumps`` accepts.
    path : str or path-like
        Output file (its parent folders are created; an existing file is overwritten).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.train.metrics import write_json
    >>> path = write_json({"f1": 0.5}, Path(tempfile.mkdtemp()) / "out" / "report.json")
    >>> json.loads(path.read_text())
    {'f1': 0.5}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return path


def write_confusion_matrix_json(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``{"labels", "matrix", "rows": "true", "columns": "predicted"}`` as JSON.

    Parameters
    ----------
    report : dict
        From :func:`classification_report` or :func:`report_from_metrics`.
    path : str or path-like
        Output file (parent folders are created).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import json, tempfile, torch
    >>> from pathlib import Path
    >>> rep = classification_report(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]),
    ...                             labels=["neg", "pos"])
    >>> path = write_confusion_matrix_json(rep, Path(tempfile.mkdtemp()) / "cm.json")
    >>> json.loads(path.read_text())
    {'labels': ['neg', 'pos'], 'matrix': [[1, 1], [0, 1]], 'rows': 'true', 'columns': 'predicted'}
    """
    return write_json({"labels": report["labels"], "matrix": report["confusion_matrix"],
                       "rows": "true", "columns": "predicted"}, path)


def write_confusion_matrix_png(report: dict[str, Any], path: str | os.PathLike,
                               title: str = "Confusion matrix") -> Path:
    """Draw the confusion matrix (counts in each cell) to a PNG with matplotlib's Agg backend.

    Parameters
    ----------
    report : dict
        From :func:`classification_report` or :func:`report_from_metrics`.
    path : str or path-like
        Output file (parent folders are created).
    title : str, default "Confusion matrix"
        The figure's title.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ImportError
        If matplotlib (part of the ``[train]`` extra) is not installed.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> rep = classification_report(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]),
    ...                             labels=["neg", "pos"])
    >>> path = write_confusion_matrix_png(rep, Path(tempfile.mkdtemp()) / "cm.png")
    >>> path.read_bytes()[:4]
    b'\x89PNG'
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is in the [train] extra
        raise ImportError("writing the confusion matrix PNG needs matplotlib: "
                          "pip install 'dask_classify[train]'") from exc
    names = report["labels"]
    matrix = torch.tensor(report["confusion_matrix"], dtype=torch.float64)
    n = len(names)
    size = max(4.0, 0.6 * n + 2.5)
    # A Figure (not pyplot) keeps no global state and needs no GUI backend.
    fig = Figure(figsize=(size, size), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(matrix.numpy(), cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    peak = float(matrix.max()) if matrix.numel() else 0.0
    for r in range(n):
        for c in range(n):
            count = int(matrix[r, c])
            ax.text(c, r, str(count), ha="center", va="center",
                    color="white" if peak and count > peak / 2 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
