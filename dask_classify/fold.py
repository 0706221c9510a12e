"""Duplicates folded across a whole collection or job: ``fold_duplicates="global"``.

Crawled data repeats texts across shards, so per-chunk folding (``fold_duplicates=True``,
:func:`dask_classify.pipeline.fold_duplicates`) misses most of them. Global folding runs in two
passes over the data:

1. **Hash pass** (:func:`first_texts`, on the workers): every row's text, as the tokenizer would
   see it (after ``max_chars`` and the classifier's :meth:`format_texts`), is hashed to 128 bits
   (:func:`dask_classify.hashing.hash_texts`); each partition keeps one ``(h1, h2, text)`` row
   per hash. A shuffle on the hash (``drop_duplicates``) leaves one *representative* per
   distinct text in the collection.
2. **Model pass** (:func:`score_texts`): the model runs on the representatives only, in chunks
   of :data:`~dask_classify.pipeline.CHUNK_ROWS` length-sorted rows; their outputs by hash form
   one :class:`~dask_classify.hashing.OutputTable` per classifier (:func:`table_graph`).

Then the usual per-partition pipeline runs with the tables
(:func:`dask_classify.pipeline.classify_partition` ``tables=``): each row looks its outputs up by
its hash instead of running the model, so rows keep their order, index and every column, and
each output is the one the model gave for that text. The source is read twice (once per pass);
a Dask DataFrame that is expensive to compute is best persisted first.

Classifiers that see the same strings (:func:`dask_classify.pipeline._text_key`) share one hash
pass and one shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dask_classify.backend import to_host
from dask_classify.hashing import OutputTable, hash_texts
from dask_classify.pipeline import _PROFILES, CHUNK_ROWS, _run_classifier, _text_key
from dask_classify.tokenize import prepare_texts

if TYPE_CHECKING:
    from dask_classify.hooks import ClassifierHooks

__all__ = ["FIRSTS_META", "first_texts", "global_groups", "score_texts", "table_graph",
           "tables_now"]

#: The frame of the hash pass: one row per distinct text of a partition.
FIRSTS_META = pd.DataFrame({"h1": pd.Series(dtype="uint64"), "h2": pd.Series(dtype="uint64"),
                            "text": pd.Series(dtype=object)})


def global_groups(classifiers: Sequence[ClassifierHooks]) -> list[list[int]]:
    """The positions of the classifiers with ``fold_duplicates="global"``, grouped by the
    strings they see (one hash pass per group), in order."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, clf in enumerate(classifiers):
        if clf.fold_duplicates == "global":
            groups.setdefault(_text_key(clf), []).append(i)
    return list(groups.values())


def first_texts(part: Any, clf: ClassifierHooks) -> pd.DataFrame:
    """The hash pass on one partition: each distinct string ``clf`` would tokenize, with its
    128-bit hash (:data:`FIRSTS_META`; null rows have no text and are left out).

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> from dask_classify import DistributedDataClassifier
    >>> from dask_classify.fold import first_texts
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert")
    >>> clf = DistributedDataClassifier(folder, max_chars=4, fold_duplicates="global")
    >>> first_texts(pd.DataFrame({"text": ["spam!", None, "spam?", "ham"]}), clf)["text"].tolist()
    ['spam', 'ham']
    """
    text = to_host(part[clf.text_field])
    texts, _ = prepare_texts(text.tolist(), clf.text_field, text.index, None)
    texts = clf.format_texts(texts)
    h1, h2 = hash_texts(texts)
    frame = pd.DataFrame({"h1": h1, "h2": h2, "text": pd.Series(texts, dtype=object)})
    return frame.drop_duplicates(subset=["h1", "h2"], ignore_index=True)


def score_texts(firsts: pd.DataFrame, classifiers: Sequence[ClassifierHooks]
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The model pass on one partition of representatives: ``(h1, h2, outputs)`` for each
    classifier (all see the same strings; those sharing a tokenizer share its tokens)."""
    prof = _PROFILES[-1] if _PROFILES else None
    texts = [str(t) for t in firsts["text"].tolist()]
    h1 = firsts["h1"].to_numpy(dtype=np.uint64)
    h2 = firsts["h2"].to_numpy(dtype=np.uint64)
    pieces: list[list[np.ndarray]] = [[] for _ in classifiers]
    for start in range(0, len(texts), CHUNK_ROWS):
        token_cache: dict[Any, list[list[int]]] = {}
        chunk = texts[start: start + CHUNK_ROWS]
        for i, clf in enumerate(classifiers):
            out, _ = _run_classifier(clf, chunk, (_text_key(clf), "global"), token_cache, prof)
            pieces[i].append(out)
    return [(h1, h2, np.concatenate(p) if p else np.zeros((0, 0), dtype=np.float32))
            for p in pieces]


def _build(scored: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]],
           which: int) -> OutputTable:
    return OutputTable.build([parts[which] for parts in scored])


def table_graph(firsts: Any, classifiers: Sequence[ClassifierHooks],
                split_out: int | None = None) -> list[Any]:
    """Lazy tables of one group of classifiers from the hash pass's Dask DataFrame ``firsts``
    (:data:`FIRSTS_META` partitions): a shuffle on the hash leaves one representative per
    distinct text, each partition of representatives is scored on a worker, and the parts are
    joined into one :class:`~dask_classify.hashing.OutputTable` per classifier (a
    ``dask.delayed`` each, sharing the scoring tasks). ``split_out``: partitions of
    representatives (default: as many as ``firsts`` has)."""
    import dask

    representatives = firsts.drop_duplicates(
        subset=["h1", "h2"], split_out=max(split_out or firsts.npartitions, 1))
    scored = [dask.delayed(score_texts, pure=True)(part, list(classifiers))
              for part in representatives.to_delayed()]
    return [dask.delayed(_build, pure=True)(scored, j) for j in range(len(classifiers))]


def tables_now(frame: Any, classifiers: Sequence[ClassifierHooks]
               ) -> list[OutputTable | None] | None:
    """The tables of an in-memory (pandas or cudf) frame, built now in this process; None when
    no classifier folds globally."""
    groups = global_groups(classifiers)
    if not groups:
        return None
    tables: list[OutputTable | None] = [None] * len(classifiers)
    for group in groups:
        firsts = first_texts(frame, classifiers[group[0]])
        scored = score_texts(firsts, [classifiers[i] for i in group])
        for i, part in zip(group, scored, strict=True):
            tables[i] = OutputTable.build([part])
    return tables
