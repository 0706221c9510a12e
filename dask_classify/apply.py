"""Classify a DataFrame with one or several classifiers: checks on the client, one
``map_partitions`` of :func:`dask_classify.pipeline.classify_partition`.

:func:`classify_many` sees the classifiers only through their hooks
(:class:`~dask_classify.hooks.ClassifierHooks` plus ``output_fields``, ``validate_frame`` and
``validate_model``); :meth:`DistributedDataClassifier.__call__` is ``classify_many(ddf, [self])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dask_classify.errors import UsageError

if TYPE_CHECKING:
    from dask_classify.hooks import ClassifierHooks

__all__ = ["classify_many"]


def classify_many(ddf: Any, classifiers: Sequence[ClassifierHooks]) -> Any:
    """Run several classifiers over ``ddf`` in one pass (one ``map_partitions``).

    Each classifier adds its own columns, in the order given; rows are kept only where every
    classifier with ``filter_by`` keeps them. Classifiers that share a tokenizer (same model
    folder or tokenizer files), text column, ``max_chars`` and token limit tokenize each
    partition once. Equivalent to ``c3(c2(c1(ddf)))``, but reads and tokenizes once (twice
    with ``fold_duplicates="global"``, whose hash pass reads the partitions first and runs the
    model on each distinct text of the frame once: :mod:`dask_classify.fold`).

    Parameters
    ----------
    ddf : dask DataFrame (or pandas/cudf DataFrame, classified at once)
    classifiers : sequence of DistributedDataClassifier

    Returns
    -------
    dask DataFrame (or pandas/cudf DataFrame)
        ``ddf`` with every classifier's columns added (lazy for a Dask DataFrame).

    Raises
    ------
    UsageError
        Two classifiers write the same column, no classifiers, ``ddf`` is not a (Dask)
        DataFrame, or any error a single classifier would raise.
    TextColumnError
        A text column cannot hold strings.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd, tempfile
    >>> from dask_classify import DistributedDataClassifier, classify_many
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert")
    >>> ddf = dd.from_pandas(pd.DataFrame({"text": ["good", "bad"]}), npartitions=1)
    >>> out = classify_many(ddf, [DistributedDataClassifier(folder, label_field="a"),
    ...                          DistributedDataClassifier(folder, label_field="b",
    ...                                                    max_chars=2)])
    >>> list(out.compute().columns)
    ['text', 'a', 'b']
    """
    from dask_classify.fold import FIRSTS_META, first_texts, global_groups, table_graph, tables_now
    from dask_classify.pipeline import classify_partition  # torch: on first use only

    classifiers = tuple(classifiers)
    if not classifiers:
        raise UsageError("classify_many needs at least one classifier")
    seen: dict[str, int] = {}
    for i, clf in enumerate(classifiers):
        for name in clf.output_fields:
            if name in seen:
                raise UsageError(f"classifiers {seen[name]} and {i} both write column {name!r}")
            seen[name] = i
    meta_source = getattr(ddf, "_meta", None)
    is_lazy = meta_source is not None and hasattr(ddf, "map_partitions")
    frame = meta_source if is_lazy else ddf
    if not hasattr(frame, "columns"):
        raise UsageError(f"expected a (Dask) DataFrame, got {type(ddf).__name__}")
    infos = []
    for clf in classifiers:
        clf.validate_frame(frame)
        info = clf.model_info()
        clf.validate_model(info)
        infos.append(info)
    if not is_lazy:
        return classify_partition(ddf, classifiers, infos, tables_now(ddf, classifiers))
    meta = classify_partition(meta_source.iloc[:0], classifiers, infos)
    groups = global_groups(classifiers)
    if not groups:
        return ddf.map_partitions(classify_partition, classifiers, infos, meta=meta)
    import dask

    # fold_duplicates="global": the hash pass, one representative per text, the model on those
    # (dask_classify.fold); the tables reach every partition as one shared task
    tables: list[Any] = [None] * len(classifiers)
    for group in groups:
        firsts = ddf.map_partitions(first_texts, classifiers[group[0]], meta=FIRSTS_META)
        for i, table in zip(group, table_graph(firsts, [classifiers[i] for i in group]),
                            strict=True):
            tables[i] = table
    return ddf.map_partitions(classify_partition, classifiers, infos,
                              dask.delayed(list, pure=True)(tables), meta=meta)
