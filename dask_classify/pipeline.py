"""The per-partition pipeline, in one place: text -> tokens -> batches -> model -> columns.

:func:`classify_partition` is what :func:`dask_classify.classify_many` (and a classifier's
``__call__``) maps over the partitions. For each classifier it

1. takes the text column, keeps the non-null rows (:func:`dask_classify.tokenize.prepare_texts`)
   and asks the classifier for the strings its tokenizer sees
   (:meth:`DistributedDataClassifier.format_texts`: cut to ``max_chars`` by default, a prompt
   or a crop for some published classifiers), and, one chunk of rows at a time, folds exact
   duplicate strings into one (:func:`fold_duplicates`: crawled data is full of them) or, with
   ``fold_duplicates="global"``, looks each string's outputs up in the table built over the
   whole collection (:mod:`dask_classify.fold`) instead of steps 2-3;
2. tokenizes the distinct strings with the worker's cached tokenizer (once per chunk for all
   classifiers that share the tokenizer, text column, text format and token limit,
   :meth:`DistributedDataClassifier.token_limit`);
3. runs the worker's cached model (the classifier's
   :meth:`~DistributedDataClassifier.build_model`, cached under its
   :attr:`~DistributedDataClassifier.model_spec`) over length-sorted, padding-clipped batches
   (:func:`dask_classify.engine.run.run_model`) and copies each distinct string's outputs back to
   every row that holds it;
4. asks the classifier for its columns (:meth:`DistributedDataClassifier.output_columns`, the
   hook published classifiers and new heads override), applies ``filter_by``
   (:meth:`~DistributedDataClassifier.filter_mask`) and puts the columns back beside the
   partition's rows by position, keeping the caller's index.

The pipeline sees a classifier only through :class:`dask_classify.hooks.ClassifierHooks` (it
sits below :mod:`dask_classify.classifier`); the classifiers hold parameters, validation and
those hooks, and none of them calls back into this module.
:func:`profile` is the explicit hook the benchmarks time the stages with.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dask_classify.backend import from_host, set_torch_threads, to_host
from dask_classify.engine.cache import get_model, get_tokenizer
from dask_classify.engine.run import run_model
from dask_classify.hashing import OutputTable, hash_texts
from dask_classify.hooks import defined_by
from dask_classify.tokenize import prepare_texts, tokenize

if TYPE_CHECKING:
    from dask_classify.checkpoint import ModelInfo
    from dask_classify.hooks import ClassifierHooks

__all__ = ["CHUNK_ROWS", "PipelineProfile", "classify_partition", "fold_duplicates", "profile"]

#: Rows tokenized and run together inside a partition: token ids and tokenizer state exist for
#: one chunk at a time, so a worker's memory does not grow with the partition (a 64 MiB Parquet
#: block of short texts is 200,000 rows). Length sorting is per chunk.
CHUNK_ROWS = 16_384


@dataclass
class PipelineProfile:
    """Where :func:`classify_partition` spent its time while :func:`profile` was active.

    Attributes
    ----------
    tokenize_s, model_s : float
        Seconds in the tokenizer and in the forward passes (model loading excluded).
    calls : int
        Model runs (one per classifier and chunk).
    tokenized : list of int
        Rows of each tokenizer call (classifiers sharing a tokenizer share one call per chunk;
        distinct texts only).
    folded : int
        Rows not tokenized nor run because an earlier row of their chunk holds the same text
        (counted once per chunk and text column, not per classifier).
    lengths : list of numpy.ndarray
        Token count of every row of each model run.
    batches : list of (int, int)
        ``(rows, padded width)`` of every forward pass, in the order they ran.
    """

    tokenize_s: float = 0.0
    model_s: float = 0.0
    calls: int = 0
    tokenized: list[int] = field(default_factory=list)
    folded: int = 0
    lengths: list[np.ndarray] = field(default_factory=list)
    batches: list[tuple[int, int]] = field(default_factory=list)

    def add_batch(self, rows: int, width: int) -> None:
        self.batches.append((int(rows), int(width)))


_PROFILES: list[PipelineProfile] = []


@contextlib.contextmanager
def profile() -> Iterator[PipelineProfile]:
    """Record the stages of every :func:`classify_partition` call in this process.

    Meant for sequential, in-process calls (timings of concurrent threads would add up to more
    than the wall time).

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> from dask_classify import DistributedDataClassifier
    >>> from dask_classify.pipeline import classify_partition, profile
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["great", "awful"])
    >>> clf = DistributedDataClassifier(folder, model_inference_batch_size=2)
    >>> with profile() as prof:
    ...     _ = classify_partition(pd.DataFrame({"text": ["great", "awful", "ok"]}), [clf])
    >>> prof.calls, [rows for rows, _ in prof.batches]
    (1, [2, 1])
    """
    prof = PipelineProfile()
    _PROFILES.append(prof)
    try:
        yield prof
    finally:
        _PROFILES.remove(prof)


def classify_partition(part: Any, classifiers: Sequence[ClassifierHooks],
                       infos: Sequence[ModelInfo | None] | None = None,
                       tables: Sequence[OutputTable | None] | None = None) -> Any:
    """Run several classifiers over one partition; each adds its columns, filters are ANDed.

    Classifiers that share a tokenizer, text column, text format and token limit tokenize the
    partition once. Does no validation of its own: :func:`dask_classify.classify_many`
    validates the classifiers against the frame before mapping this over it.

    Parameters
    ----------
    part : pandas or cudf DataFrame
        One partition holding each classifier's text column.
    classifiers : sequence of DistributedDataClassifier
        Run in order; their output columns must differ from each other and from ``part``'s.
    infos : sequence of ModelInfo, optional
        Each classifier's :meth:`~DistributedDataClassifier.model_info` as read on the client,
        for partitions where the model did not run (no row has text, and the ``meta``), so that
        their columns get the same dtypes. Read here when needed and not given.
    tables : sequence of OutputTable or None, optional
        ``fold_duplicates="global"``: each classifier's outputs by text hash, built over the
        whole collection (:mod:`dask_classify.fold`); a classifier with a table looks its rows'
        outputs up by hash and runs no model (every row's text must be in it). Without a
        table, a classifier folds per chunk.

    Returns
    -------
    pandas or cudf DataFrame
        ``part`` (same type) with every classifier's columns appended, keeping its index; rows
        that a ``filter_by`` rejects (or whose text is null, when filtering) are dropped.

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> from dask_classify import DistributedDataClassifier
    >>> from dask_classify.pipeline import classify_partition
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["great", "awful"])
    >>> part = pd.DataFrame({"text": ["great", None, "awful"]}, index=[10, 11, 12])
    >>> out = classify_partition(part, [
    ...     DistributedDataClassifier(folder, label_field="a", score_field="a_probs"),
    ...     DistributedDataClassifier(folder, label_field="b", max_chars=3)])
    >>> list(out.columns), out.index.tolist()
    (['text', 'a', 'a_probs', 'b'], [10, 11, 12])
    >>> out["a"].isna().tolist(), [len(p) for p in out["a_probs"].dropna()]
    ([False, True, False], [2, 2])
    """
    prof = _PROFILES[-1] if _PROFILES else None
    # 1. text: the non-null rows of each text column, formatted for the tokenizer
    prepared: dict[tuple[Any, ...], tuple[list[str], np.ndarray]] = {}
    text_keys = [_text_key(clf) for clf in classifiers]
    for clf, key in zip(classifiers, text_keys, strict=True):
        if key not in prepared:
            text = to_host(part[clf.text_field])
            texts, valid = prepare_texts(text.tolist(), clf.text_field, text.index, None)
            prepared[key] = (clf.format_texts(texts), valid)
    inputs = [prepared[key] for key in text_keys]
    # 2-3 with fold_duplicates="global": the collection's outputs of each row's text, by hash
    pieces: list[list[np.ndarray]] = [[] for _ in classifiers]
    looked_up = [tables is not None and tables[i] is not None for i in range(len(classifiers))]
    hashes: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
    for i, key in enumerate(text_keys):
        if looked_up[i] and inputs[i][0]:
            if key not in hashes:
                hashes[key] = hash_texts(inputs[i][0])
            pieces[i].append(tables[i].lookup(*hashes[key]))
    # 2-3. tokens, batches and model, one chunk of rows at a time, each distinct string once
    ran: list[ModelInfo | None] = [None] * len(classifiers)  # from the worker's models
    for start in range(0, max((len(texts) for texts, _ in inputs), default=0), CHUNK_ROWS):
        token_cache: dict[Any, list[list[int]]] = {}  # shared by the classifiers of this chunk
        distinct: dict[tuple[Any, ...], tuple[list[str], np.ndarray | None]] = {}
        for i, clf in enumerate(classifiers):
            if looked_up[i]:
                continue
            key = (text_keys[i], bool(clf.fold_duplicates))
            if key not in distinct:
                chunk = inputs[i][0][start : start + CHUNK_ROWS]
                distinct[key] = fold_duplicates(chunk) if clf.fold_duplicates else (chunk, None)
                if prof is not None and distinct[key][1] is not None:
                    prof.folded += len(chunk) - len(distinct[key][0])
            texts, inverse = distinct[key]
            if texts:
                out, ran[i] = _run_classifier(clf, texts, key, token_cache, prof)
                pieces[i].append(out if inverse is None else out[inverse])
    # 4. columns, filters, and the rows put back by position
    columns: dict[str, pd.Series] = {}
    keep: np.ndarray | None = None
    for i, clf in enumerate(classifiers):
        outputs = np.concatenate(pieces[i]) if pieces[i] else None
        info = ran[i] or (infos[i] if infos is not None else None) or clf.model_info()
        cols = clf.output_columns(outputs, inputs[i][1], info)
        if clf.filter_by is not None:
            mask = clf.filter_mask(cols, info)
            keep = mask if keep is None else keep & mask
        columns.update(cols)
    return _assemble(part, columns, keep)


def _text_key(clf: ClassifierHooks) -> tuple[Any, ...]:
    """What decides the strings a classifier's tokenizer sees (classifiers with equal keys share
    them): the text column, the code of ``format_texts`` and its options."""
    return (clf.text_field, defined_by(type(clf), "format_texts"), clf.format_options())


def fold_duplicates(texts: list[str]) -> tuple[list[str], np.ndarray | None]:
    """The distinct texts of ``texts`` (first occurrences, in order) and where each row's is.

    Parameters
    ----------
    texts : list of str
        One chunk's texts (already cut to ``max_chars``).

    Returns
    -------
    distinct : list of str
        Each text once, in order of first occurrence (``texts`` itself when nothing repeats).
    inverse : numpy.ndarray of int64 or None
        ``distinct[inverse[i]] == texts[i]`` for every row ``i``; None when ``texts`` has no
        duplicates (nothing to copy back).

    Examples
    --------
    >>> from dask_classify.pipeline import fold_duplicates
    >>> distinct, inverse = fold_duplicates(["spam", "ham", "spam", "", "ham"])
    >>> distinct, inverse.tolist()
    (['spam', 'ham', ''], [0, 1, 0, 2, 1])
    >>> fold_duplicates(["a", "b"])
    (['a', 'b'], None)
    """
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64,
                          count=len(texts))
    if len(first) == len(texts):
        return texts, None
    return list(first), inverse


def _run_classifier(clf: ClassifierHooks, texts: list[str], text_key: tuple[Any, ...],
                    token_cache: dict[Any, list[list[int]]],
                    prof: PipelineProfile | None) -> tuple[np.ndarray, ModelInfo]:
    """Tokens -> batches -> model outputs for one classifier on one chunk of texts."""
    spec = clf.model_spec
    tokenizer = get_tokenizer(spec)
    model, info, device = get_model(spec)
    if not getattr(model, "numpy_io", False):  # ONNX Runtime sets its threads per session
        set_torch_threads(clf.torch_threads)
    max_len = clf.token_limit(tokenizer, info)
    key = (spec.tokenizer_key, text_key, max_len)
    ids = token_cache.get(key)
    if ids is None:
        started = time.perf_counter()
        ids = token_cache[key] = tokenize(tokenizer, texts, max_len)
        if prof is not None:
            prof.tokenize_s += time.perf_counter() - started
            prof.tokenized.append(len(texts))
    started = time.perf_counter()
    outputs = run_model(
        model, ids, pad_id=tokenizer.pad_token_id or 0, device=device,
        batch_size=clf.model_inference_batch_size, padding_side=clf.padding_side,
        sort_by_length=clf.sort_by_length,
        # int8 Linear layers take fp32 inputs: never autocast a quantized model
        autocast=clf.autocast and clf.quantize is None,
        max_tokens=clf.batch_token_limit(device),
        cpu_bf16=spec.settings.cpu_bf16,
        on_batch=None if prof is None else prof.add_batch,
    )
    if prof is not None:
        prof.model_s += time.perf_counter() - started
        prof.calls += 1
        prof.lengths.append(np.fromiter((len(t) for t in ids), dtype=np.int64, count=len(ids)))
    return outputs, info


def _assemble(part: Any, cols: dict[str, pd.Series], keep: np.ndarray | None) -> Any:
    """Append ``cols`` to ``part`` by position (never by index: indexes may repeat), keep the
    rows in ``keep`` and restore the caller's index."""
    index = part.index
    out = part.reset_index(drop=True)
    for name, series in cols.items():
        out[name] = from_host(series, like=part)
    if keep is not None:
        positions = np.flatnonzero(keep)
        out = out.iloc[positions]
        index = index.take(positions)
    out.index = index
    return out
