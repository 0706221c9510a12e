"""``evaluate(model_dir, data_path)``: run the distributed classifier over a labelled TSV file
and report precision/recall/F1 and the confusion matrix.

The predictions come from :class:`~dask_classify.DistributedDataClassifier` (the same code that
classifies millions of documents), not from the training code, so the numbers describe the
checkpoint as it will be used.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from dask_classify.errors import UsageError
from dask_classify.train.data import read_tsv
from dask_classify.train.metrics import (
    classification_report,
    format_confusion_matrix,
    format_report,
    write_confusion_matrix_json,
    write_confusion_matrix_png,
    write_json,
)

__all__ = ["evaluate"]

_PRED_COLUMN = "predicted_label"


def evaluate(model_dir: str | os.PathLike, data_path: str | os.PathLike,
             output_dir: str | os.PathLike | None = None, *, batch_size: int = 256,
             max_seq_length: int | None = None, partition_rows: int = 10_000,
             client: Any = None, verbose: bool = False, **classifier_options: Any
             ) -> dict[str, Any]:
    """Classify a labelled ``sentence<TAB>label`` file and report how well the model did.

    Parameters
    ----------
    model_dir : str or path-like
        A checkpoint folder (e.g. ``<exp_dir>/best_model``) or hub id.
    data_path : str or path-like
        Labelled TSV file (see :func:`dask_classify.train.data.read_tsv`); labels are ids
        ``0 .. num_labels - 1`` of the checkpoint's ``id2label``.
    output_dir : str or path-like, optional
        Where to write ``metrics.json`` (the report), ``confusion_matrix.json`` and
        ``confusion_matrix.png``. Nothing is written when None.
    batch_size : int, default 256
        Rows per forward pass (``model_inference_batch_size`` of the classifier).
    max_seq_length : int, optional
        Token limit; default: the checkpoint tokenizer's ``model_max_length``.
    partition_rows : int, default 10000
        Rows per Dask partition.
    client : distributed.Client, optional
        Compute on this cluster. Default: the active client if there is one, else Dask's
        local threaded scheduler.
    verbose : bool, default False
        Print the report table and the confusion matrix.
    **classifier_options
        Passed to :class:`~dask_classify.DistributedDataClassifier` (``device``, ``autocast``,
        ``cache_dir``, ...).

    Returns
    -------
    dict
        The report (see :func:`dask_classify.train.metrics.report_from_metrics`) plus ``model``,
        ``data``, ``table`` (text) and ``confusion_matrix_text``; with ``output_dir``, also
        ``files`` (the paths written).

    Raises
    ------
    DataFormatError
        A malformed data file, or a label outside the checkpoint's label ids (as ``file:line``).
    CheckpointError
        A model folder that cannot be read.
    ValueError
        A regression checkpoint (it has no classes to report on).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> model = build_tiny_deberta_checkpoint(tmp / "m", ["neg", "pos"], tokenizer="bert")
    >>> _ = (tmp / "dev.tsv").write_text("a fine film\\t1\\na dull film\\t0\\n")
    >>> report = evaluate(model, tmp / "dev.tsv", tmp / "eval")
    >>> report["num_samples"], sorted(p.name for p in (tmp / "eval").iterdir())
    (2, ['confusion_matrix.json', 'confusion_matrix.png', 'metrics.json'])
    """
    import dask.dataframe as dd

    from dask_classify.checkpoint import model_info_for
    from dask_classify.classifier import DistributedDataClassifier

    info = model_info_for(model_dir, classifier_options.get("cache_dir"))
    if info.regression:
        raise UsageError(f"{model_dir} is a regression model; evaluate() reports on classifiers")
    num_classes = len(info.id2label)
    frame = read_tsv(data_path, num_classes=num_classes)
    if int(partition_rows) < 1:
        raise UsageError(f"partition_rows must be >= 1, not {partition_rows}")
    ddf = dd.from_pandas(frame, npartitions=max(1, math.ceil(len(frame) / int(partition_rows))))
    classifier = DistributedDataClassifier(
        model_dir, text_field="sentence", label_field=_PRED_COLUMN,
        model_inference_batch_size=batch_size, max_seq_length=max_seq_length,
        **classifier_options,
    )
    labelled = classifier(ddf)
    out = client.compute(labelled).result() if client is not None else labelled.compute()
    predicted = out[_PRED_COLUMN].reindex(frame.index)
    label2id = {name: i for i, name in info.id2label.items()}
    if predicted.isna().any():
        raise RuntimeError(f"{int(predicted.isna().sum())} rows got no prediction")
    preds = np.asarray([label2id[name] for name in predicted.tolist()], dtype=np.int64)
    targets = frame["label"].to_numpy(dtype=np.int64)
    report = classification_report(preds, targets, num_classes=num_classes, labels=info.labels)
    report["model"] = os.fspath(model_dir)
    report["data"] = os.fspath(data_path)
    files: dict[str, str] = {}
    if output_dir is not None:
        out_dir = Path(output_dir)
        files["metrics"] = str(write_json(report, out_dir / "metrics.json"))
        files["confusion_matrix_json"] = str(
            write_confusion_matrix_json(report, out_dir / "confusion_matrix.json"))
        files["confusion_matrix_png"] = str(write_confusion_matrix_png(
            report, out_dir / "confusion_matrix.png",
            title=f"{Path(os.fspath(data_path)).name}: accuracy {100 * report['accuracy']:.2f}%"))
    report["table"] = format_report(report)
    report["confusion_matrix_text"] = format_confusion_matrix(report)
    if files:
        report["files"] = files
    if verbose:
        print(f"{report['data']}: {report['num_samples']} examples, accuracy "
              f"{100 * report['accuracy']:.2f}%\n{report['table']}\n\nconfusion matrix:\n"
              f"{report['confusion_matrix_text']}")
    return report
