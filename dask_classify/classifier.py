"""``DistributedDataClassifier``: a text classifier run on every partition of a Dask DataFrame."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dask_classify.backend import from_host, to_host
from dask_classify.model import ModelInfo, model_info_for

_PADDING_SIDES = ("left", "right")
#: Padded tokens per forward pass on the CPU when ``max_batch_tokens="auto"``: the best or within
#: 5% of the best rule for three models on two corpora (``benchmarks/README.md``, ``--sweep``).
CPU_BATCH_TOKENS = 2048
#: Rows tokenized and run together inside a partition (bounds a worker's memory; see
#: :func:`classify_partition_many`).
CHUNK_ROWS = 16_384


def _string_dtype() -> Any:
    """pandas' default dtype for a column of strings (``str`` in pandas 3, ``object`` before)."""
    return pd.Series(["x"]).dtype


class DistributedDataClassifier:
    """Classify the text column of a Dask DataFrame with a transformer classifier.

    Parameters
    ----------
    model_identifier : str or path-like
        A local checkpoint folder or a hub id. Both NVIDIA's format (``config.json`` with
        ``base_model``/``id2label``, ``fc.*`` weights; see :class:`dask_classify.Deberta`) and
        plain ``AutoModelForSequenceClassification`` folders load.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids (a pre-filled cache works offline).
    text_field : str, default "text"
        Column holding the text to classify.
    label_field : str, default "preds"
        Column to add with each row's label (a string from the checkpoint's ``id2label``).
    score_field : str, optional
        Column to add with each row's full probability vector (list of floats in label-id
        order). No probability column is added when None.
    filter_by : list of str, optional
        Keep only rows whose label is listed (rows with null text are dropped too). Every label
        must be one of the model's labels, else ``ValueError``.
    max_chars : int, optional
        Cut each text to its first ``max_chars`` characters before tokenizing.
    max_seq_length : int, optional
        Token limit (longer texts are truncated). Default: the tokenizer's ``model_max_length``,
        or the model's ``max_position_embeddings`` when that is unset or absurdly large.
    padding_side : {"right", "left"}, default "right"
        Where batches are padded. Both give the same predictions for NVIDIA-format models.
    sort_by_length : bool, default True
        Batch rows longest first so padding is minimal; results keep the input order.
    model_inference_batch_size : int, default 256
        Most rows per forward pass (halved automatically on CUDA out-of-memory).
    max_batch_tokens : int, "auto" or None, default "auto"
        Most padded tokens (rows x the batch's longest row) per forward pass, on top of
        ``model_inference_batch_size``. ``"auto"``: :data:`CPU_BATCH_TOKENS` (2048) on the CPU,
        no token limit on a GPU. On CPUs small batches are faster: the attention tensors stay
        in cache (measured 1.1-1.8x over 32-row batches and 2.7-9.6x over 256-row batches, see
        ``benchmarks/README.md``); a GPU wants large batches. Results do not depend on it.
    autocast : bool, default True
        Mixed precision where it is faster: fp16/bf16 on CUDA, bf16 on CPUs with AMX. On other
        CPUs (including AVX512-BF16 ones, where bf16 is far slower) inference stays fp32.
    device : str, default "auto"
        ``"auto"`` uses the worker's GPU when it has one, else the CPU; or ``"cpu"``/``"cuda"``.
    quantize : {None, "int8"}, default None
        ``"int8"``: dynamic int8 quantization of the Linear layers (CPU only, opt-in).
    trust_remote_code : bool, default False
        Allow a hub checkpoint's own Python code to run (off unless you ask).
    torch_threads : int, optional
        Torch intra-op threads. Default: ``OMP_NUM_THREADS`` when set, else every core of the
        worker process (forward passes in one process run one at a time).

    Notes
    -----
    Building a classifier only stores parameters: nothing is read, downloaded or put on a GPU.
    Calling it reads the checkpoint's ``config.json`` on the client (labels, validation) and
    returns a lazy Dask DataFrame; each worker process loads the tokenizer and model once.
    Rows keep their order, index and other columns; rows whose text is null get null outputs.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd, tempfile
    >>> from dask_classify import DistributedDataClassifier
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert")
    >>> ddf = dd.from_pandas(pd.DataFrame({"text": ["great film", "awful", None]}),
    ...                      npartitions=2)
    >>> clf = DistributedDataClassifier(folder, label_field="sentiment", score_field="probs")
    >>> out = clf(ddf).compute()
    >>> list(out.columns)
    ['text', 'sentiment', 'probs']
    >>> out["sentiment"].isin(["neg", "pos"]).tolist()
    [True, True, False]
    """

    #: Default checkpoint for subclasses that stand for a published model.
    default_model_identifier: str | None = None

    def __init__(
        self,
        model_identifier: str | os.PathLike | None = None,
        cache_dir: str | None = None,
        text_field: str = "text",
        label_field: str = "preds",
        score_field: str | None = None,
        filter_by: Sequence[str] | None = None,
        max_chars: int | None = None,
        max_seq_length: int | None = None,
        padding_side: str = "right",
        sort_by_length: bool = True,
        model_inference_batch_size: int = 256,
        max_batch_tokens: int | str | None = "auto",
        autocast: bool = True,
        device: str = "auto",
        quantize: str | None = None,
        trust_remote_code: bool = False,
        torch_threads: int | None = None,
    ) -> None:
        model_identifier = model_identifier or self.default_model_identifier
        if model_identifier is None:
            raise ValueError("model_identifier is required (a checkpoint folder or hub id)")
        if padding_side not in _PADDING_SIDES:
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        if int(model_inference_batch_size) < 1:
            raise ValueError("model_inference_batch_size must be >= 1")
        if max_batch_tokens not in ("auto", None):
            if isinstance(max_batch_tokens, str) or int(max_batch_tokens) < 1:
                raise ValueError(f"max_batch_tokens must be a positive integer, 'auto' or None, "
                                 f"not {max_batch_tokens!r}")
            max_batch_tokens = int(max_batch_tokens)
        if max_chars is not None and int(max_chars) < 1:
            raise ValueError(f"max_chars must be a positive integer or None, not {max_chars}")
        if max_seq_length is not None and int(max_seq_length) < 2:
            raise ValueError(f"max_seq_length must be >= 2 or None, not {max_seq_length}")
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', not {quantize!r}")
        if isinstance(filter_by, str):
            filter_by = [filter_by]
        self.model_identifier = os.fspath(model_identifier)
        self.cache_dir = cache_dir
        self.text_field = text_field
        self.label_field = label_field
        self.score_field = score_field
        self.filter_by = list(filter_by) if filter_by is not None else None
        self.max_chars = None if max_chars is None else int(max_chars)
        self.max_seq_length = None if max_seq_length is None else int(max_seq_length)
        self.padding_side = padding_side
        self.sort_by_length = bool(sort_by_length)
        self.model_inference_batch_size = int(model_inference_batch_size)
        self.max_batch_tokens = max_batch_tokens
        self.autocast = bool(autocast)
        self.device = device
        self.quantize = quantize
        self.trust_remote_code = bool(trust_remote_code)
        self.torch_threads = torch_threads
        outputs = self.output_fields
        if len(set(outputs)) != len(outputs):
            raise ValueError(f"output columns must differ from each other, got {outputs}")

    # ----------------------------------------------------------------- description
    @property
    def spec(self):
        """The :class:`~dask_classify.predict.ModelSpec` naming this classifier's model."""
        from dask_classify.predict import ModelSpec

        return ModelSpec(self.model_identifier, self.cache_dir, self.trust_remote_code,
                         self.device, self.quantize)

    @property
    def output_fields(self) -> list[str]:
        """Names of the columns this classifier adds."""
        return [self.label_field] + ([self.score_field] if self.score_field else [])

    def arrow_types(self) -> dict[str, Any]:
        """pyarrow types of the added columns that Parquet cannot infer from an empty ``meta``."""
        import pyarrow as pa

        return {self.score_field: pa.list_(pa.float64())} if self.score_field else {}

    @property
    def filter_field(self) -> str:
        """The column ``filter_by`` applies to."""
        return self.label_field

    def _params(self) -> dict[str, Any]:
        return {k: v for k, v in sorted(vars(self).items()) if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"

    def __dask_tokenize__(self):
        return (type(self).__qualname__, repr(self._params()))

    def model_info(self) -> ModelInfo:
        """Read the checkpoint's ``config.json`` (labels, kind) without loading the model."""
        return model_info_for(self.model_identifier, self.cache_dir)

    @property
    def labels(self) -> list[str]:
        """The model's labels in id order (reads ``config.json``)."""
        return self.model_info().labels

    # ----------------------------------------------------------------- validation
    def _validate_columns(self, frame: Any) -> None:
        columns = list(frame.columns)
        if self.text_field not in columns:
            raise ValueError(
                f"text column {self.text_field!r} is not in the DataFrame; columns: {columns}"
            )
        clashes = [c for c in self.output_fields if c in columns]
        if clashes:
            raise ValueError(
                f"output column(s) {clashes} already exist in the DataFrame (columns: {columns});"
                " choose other label_field/score_field names or drop them first"
            )
        text_dtype = frame[self.text_field].dtype
        kind = getattr(text_dtype, "kind", "O")
        if kind in "biufcmMb":
            raise TypeError(
                f"text column {self.text_field!r} has dtype {text_dtype}; it must hold strings"
            )

    def _validate_model(self, info: ModelInfo) -> None:
        if self.filter_by is not None:
            allowed = self._filter_values(info)
            unknown = [lab for lab in self.filter_by if lab not in allowed]
            if unknown:
                raise ValueError(
                    f"filter_by labels {unknown} are not labels of {self.model_identifier!r}; "
                    f"its labels are {allowed}"
                )

    def _filter_values(self, info: ModelInfo) -> list[str]:
        return info.labels

    # ----------------------------------------------------------------- per partition
    def _output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                        info: ModelInfo | None) -> dict[str, pd.Series]:
        """Turn model outputs for the valid rows into the added columns (length ``len(valid)``)."""
        n = len(valid)
        labels = np.full(n, None, dtype=object)
        if outputs is not None and len(outputs):
            names = np.array(info.labels, dtype=object)
            labels[valid] = names[outputs.argmax(axis=1)]
        cols = {self.label_field: pd.Series(labels, dtype=_string_dtype())}
        if self.score_field:
            scores = np.full(n, None, dtype=object)
            if outputs is not None and len(outputs):
                scores[np.flatnonzero(valid)] = [row.tolist() for row in outputs]
            cols[self.score_field] = pd.Series(scores, dtype=object)
        return cols

    def _predict(self, texts: list[str], token_cache: dict[Any, Any]) -> tuple[Any, ModelInfo]:
        """Model outputs for ``texts`` (already cut to ``max_chars``), in their order.

        ``token_cache`` holds token ids already computed in this partition by classifiers with
        the same tokenizer, text column, ``max_chars`` and token limit, so they tokenize once.
        """
        from dask_classify.predict import get_model, get_tokenizer, run_model, set_torch_threads
        from dask_classify.tokenize import resolve_max_length, tokenize

        set_torch_threads(self.torch_threads)
        spec = self.spec
        tokenizer = get_tokenizer(spec)
        model, info, device = get_model(spec)
        if self.padding_side == "left" and info.kind == "hf":
            raise ValueError(
                "padding_side='left' is not supported for plain transformers classifiers: "
                "their poolers read the first position, which left padding fills with [PAD]"
            )
        max_len = resolve_max_length(tokenizer, info.max_position_embeddings, self.max_seq_length)
        key = (spec.tokenizer_key, self.text_field, self.max_chars, max_len)
        ids = token_cache.get(key)
        if ids is None:
            ids = token_cache[key] = tokenize(tokenizer, texts, max_len)
        outputs = run_model(
            model, ids, pad_id=tokenizer.pad_token_id or 0, device=device,
            batch_size=self.model_inference_batch_size, padding_side=self.padding_side,
            sort_by_length=self.sort_by_length, autocast=self.autocast,
            max_tokens=self.batch_token_limit(device),
        )
        return outputs, info

    def batch_token_limit(self, device: str) -> int | None:
        """The padded-token limit per forward pass on ``device`` (``max_batch_tokens`` resolved).

        Examples
        --------
        >>> from dask_classify import DistributedDataClassifier
        >>> clf = DistributedDataClassifier("/models/quality")
        >>> clf.batch_token_limit("cpu"), clf.batch_token_limit("cuda:0")
        (2048, None)
        >>> DistributedDataClassifier("/m", max_batch_tokens=None).batch_token_limit("cpu") is None
        True
        """
        if self.max_batch_tokens != "auto":
            return self.max_batch_tokens
        return CPU_BATCH_TOKENS if device == "cpu" else None

    def classify_partition(self, part: Any) -> Any:
        """Classify one pandas or cudf partition (what ``map_partitions`` runs on each one)."""
        return classify_partition_many(part, [self])

    # ----------------------------------------------------------------- the Dask layer
    def __call__(self, ddf: Any) -> Any:
        """Classify ``ddf`` lazily; returns a Dask DataFrame with the output columns added.

        A pandas (or cudf) DataFrame is classified at once and returned as the same type.

        Raises
        ------
        ValueError
            Missing text column, output columns that already exist, unknown ``filter_by``
            labels, or a checkpoint that cannot be read.
        TypeError
            A text column whose dtype cannot hold strings.
        """
        return classify_many(ddf, [self])


def classify_partition_many(part: Any, classifiers: Sequence[DistributedDataClassifier]) -> Any:
    """Run several classifiers over one partition; each adds its columns, filters are ANDed.

    Classifiers that share a tokenizer, text column, ``max_chars`` and token limit tokenize the
    partition once. This is what :func:`classify_many` maps over the partitions; it does no
    validation of its own (see :meth:`DistributedDataClassifier.__call__`).

    Parameters
    ----------
    part : pandas or cudf DataFrame
        One partition holding each classifier's text column.
    classifiers : sequence of DistributedDataClassifier
        Run in order; their output columns must differ from each other and from ``part``'s.

    Returns
    -------
    pandas or cudf DataFrame
        ``part`` (same type) with every classifier's columns appended, keeping its index; rows
        that a ``filter_by`` rejects (or whose text is null, when filtering) are dropped.

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> from dask_classify import DistributedDataClassifier
    >>> from dask_classify.classifier import classify_partition_many
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["great", "awful"])
    >>> part = pd.DataFrame({"text": ["great", None, "awful"]}, index=[10, 11, 12])
    >>> out = classify_partition_many(part, [
    ...     DistributedDataClassifier(folder, label_field="a", score_field="a_probs"),
    ...     DistributedDataClassifier(folder, label_field="b", max_chars=3)])
    >>> list(out.columns), out.index.tolist()
    (['text', 'a', 'a_probs', 'b'], [10, 11, 12])
    >>> out["a"].isna().tolist(), [len(p) for p in out["a_probs"].dropna()]
    ([False, True, False], [2, 2])
    """
    from dask_classify.tokenize import prepare_texts

    columns: dict[str, pd.Series] = {}
    keep: np.ndarray | None = None
    prepared: dict[tuple[str, int | None], tuple[list[str], np.ndarray]] = {}
    for clf in classifiers:
        key = (clf.text_field, clf.max_chars)
        if key not in prepared:
            text = to_host(part[clf.text_field])
            prepared[key] = prepare_texts(text.tolist(), clf.text_field, text.index,
                                          clf.max_chars)
    # Rows go through in chunks of CHUNK_ROWS: token ids and tokenizer state exist for one chunk
    # at a time, so a worker's memory does not grow with the partition (a 64 MiB Parquet block
    # of short texts is 200,000 rows). Length sorting is per chunk.
    inputs = [prepared[(clf.text_field, clf.max_chars)] for clf in classifiers]
    pieces: list[list[np.ndarray]] = [[] for _ in classifiers]
    infos: list[ModelInfo | None] = [None] * len(classifiers)
    for start in range(0, max((len(texts) for texts, _ in inputs), default=0), CHUNK_ROWS):
        token_cache: dict[Any, Any] = {}  # shared by the classifiers of this chunk
        for i, clf in enumerate(classifiers):
            chunk = inputs[i][0][start : start + CHUNK_ROWS]
            if chunk:
                out, infos[i] = clf._predict(chunk, token_cache)
                pieces[i].append(out)
    for i, clf in enumerate(classifiers):
        valid = inputs[i][1]
        outputs = np.concatenate(pieces[i]) if pieces[i] else None
        cols = clf._output_columns(outputs, valid, infos[i])
        if clf.filter_by is not None:
            mask = cols[clf.filter_field].isin(clf.filter_by).to_numpy(dtype=bool)
            keep = mask if keep is None else keep & mask
        columns.update(cols)
    return _assemble(part, columns, keep)


def _classify_many(part: Any, classifiers: tuple[DistributedDataClassifier, ...]) -> Any:
    return classify_partition_many(part, classifiers)


def classify_many(ddf: Any, classifiers: Sequence[DistributedDataClassifier]) -> Any:
    """Run several classifiers over ``ddf`` in one pass (one ``map_partitions``).

    Each classifier adds its own columns, in the order given; rows are kept only where every
    classifier with ``filter_by`` keeps them. Classifiers that share a tokenizer (same model
    folder or tokenizer files), text column, ``max_chars`` and token limit tokenize each
    partition once. Equivalent to ``c3(c2(c1(ddf)))``, but reads and tokenizes once.

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
    ValueError
        Two classifiers write the same column, no classifiers, or any error a single classifier
        would raise.
    TypeError
        ``ddf`` is not a (Dask) DataFrame, or a text column cannot hold strings.

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
    classifiers = tuple(classifiers)
    if not classifiers:
        raise ValueError("classify_many needs at least one classifier")
    seen: dict[str, int] = {}
    for i, clf in enumerate(classifiers):
        for name in clf.output_fields:
            if name in seen:
                raise ValueError(f"classifiers {seen[name]} and {i} both write column {name!r}")
            seen[name] = i
    meta_source = getattr(ddf, "_meta", None)
    is_lazy = meta_source is not None and hasattr(ddf, "map_partitions")
    frame = meta_source if is_lazy else ddf
    if not hasattr(frame, "columns"):
        raise TypeError(f"expected a (Dask) DataFrame, got {type(ddf).__name__}")
    for clf in classifiers:
        clf._validate_columns(frame)
        clf._validate_model(clf.model_info())
    if not is_lazy:
        return classify_partition_many(ddf, classifiers)
    meta = classify_partition_many(meta_source.iloc[:0], classifiers)
    return ddf.map_partitions(_classify_many, classifiers, meta=meta)


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
