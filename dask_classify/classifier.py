"""``DistributedDataClassifier``: a text classifier run on every partition of a Dask DataFrame.

The class holds parameters, their validation and the output-columns hook; the per-partition
work (text -> tokens -> batches -> model -> columns) is :mod:`dask_classify.pipeline`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dask_classify.backend import string_dtype
from dask_classify.errors import MissingExtraError, TextColumnError, UsageError
from dask_classify.model import ModelInfo, model_info_for
from dask_classify.pipeline import classify_partition

_PADDING_SIDES = ("left", "right")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
#: Padded tokens per forward pass on the CPU when ``max_batch_tokens="auto"``: chosen by
#: measurement over three models and two corpora (``benchmarks/README.md``, ``--sweep``).
CPU_BATCH_TOKENS = 2048


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
        must be one of the model's labels, else :class:`~dask_classify.errors.UsageError` when
        the classifier is called.
    max_chars : int, optional
        Cut each text to its first ``max_chars`` characters before tokenizing.
    max_seq_length : int, optional
        Token limit (longer texts are truncated). Default: the tokenizer's ``model_max_length``,
        or the model's ``max_position_embeddings`` when that is unset or absurdly large.
    padding_side : {"right", "left"}, default "right"
        Where batches are padded. Both give the same predictions for NVIDIA-format models.
    sort_by_length : bool, default True
        Batch rows longest first so padding is minimal; results keep the input order.
    fold_duplicates : bool, default True
        Classify each distinct text (after ``max_chars``) once per chunk of a partition
        (:data:`dask_classify.pipeline.CHUNK_ROWS` rows) and copy its outputs to the rows that
        repeat it. Every copy is identical; outputs equal those of an unfolded run to float32
        rounding (rows are batched with other rows). False runs every row.
    model_inference_batch_size : int, default 256
        Most rows per forward pass (halved automatically on CUDA out-of-memory).
    max_batch_tokens : int, "auto" or None, default "auto"
        Most padded tokens (rows x the batch's longest row) per forward pass, on top of
        ``model_inference_batch_size``. ``"auto"``: :data:`CPU_BATCH_TOKENS` (2048) on the CPU,
        no token limit on a GPU. On CPUs small batches are faster (the attention tensors stay
        in cache; measured in ``benchmarks/README.md``); a GPU wants large batches. Results do
        not depend on it.
    autocast : bool, default True
        Mixed precision where it is faster: fp16/bf16 on CUDA, bf16 on CPUs with AMX. On other
        CPUs (including AVX512-BF16 ones, where bf16 is far slower) inference stays fp32.
    device : str, default "auto"
        ``"auto"`` uses the worker's GPU when it has one, else the CPU; or ``"cpu"``,
        ``"cuda"``, ``"cuda:<n>"``.
    quantize : {None, "int8"}, default None
        ``"int8"``: dynamic int8 quantization of the Linear layers (CPU only, opt-in).
    engine : {"torch", "onnx"}, default "torch"
        ``"onnx"``: run the model with ONNX Runtime on the CPU (the ``[onnx]`` extra), with the
        same batches; its graph is exported once per machine and cached by a hash of the
        weights (:mod:`dask_classify.onnx`). Labels equal torch's, probabilities agree to 1e-4;
        a model that cannot be exported runs on torch after one warning. Measured against
        torch in ``benchmarks/README.md``.
    trust_remote_code : bool, default False
        Allow a hub checkpoint's own Python code to run (off unless you ask).
    torch_threads : int, optional
        Torch intra-op threads. Default: ``OMP_NUM_THREADS`` when set, else every core of the
        worker process (forward passes in one process run one at a time).

    Raises
    ------
    UsageError
        A parameter out of its range (checked here, once, so that nothing fails later on a
        worker).

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
        fold_duplicates: bool = True,
        model_inference_batch_size: int = 256,
        max_batch_tokens: int | str | None = "auto",
        autocast: bool = True,
        device: str = "auto",
        quantize: str | None = None,
        engine: str = "torch",
        trust_remote_code: bool = False,
        torch_threads: int | None = None,
    ) -> None:
        model_identifier = model_identifier or self.default_model_identifier
        if model_identifier is None:
            raise UsageError("model_identifier is required (a checkpoint folder or hub id)")
        if padding_side not in _PADDING_SIDES:
            raise UsageError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        if isinstance(filter_by, str):
            filter_by = [filter_by]
        if not isinstance(device, str) or not _DEVICE.fullmatch(device):
            raise UsageError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', not {device!r}")
        if quantize not in (None, "int8"):
            raise UsageError(f"quantize must be None or 'int8', not {quantize!r}")
        if quantize == "int8" and device.startswith("cuda"):
            raise UsageError(f"quantize='int8' runs on the CPU only, not on device {device!r}")
        _check_engine(engine, device, quantize)
        self.model_identifier = os.fspath(model_identifier)
        self.cache_dir = cache_dir
        self.text_field = text_field
        self.label_field = label_field
        self.score_field = score_field
        self.filter_by = list(filter_by) if filter_by is not None else None
        self.max_chars = _positive("max_chars", max_chars, allow_none=True)
        self.max_seq_length = _positive("max_seq_length", max_seq_length, allow_none=True,
                                        minimum=2)
        self.padding_side = padding_side
        self.sort_by_length = bool(sort_by_length)
        if not isinstance(fold_duplicates, (bool, np.bool_)):
            raise UsageError(f"fold_duplicates must be True or False, not {fold_duplicates!r}")
        self.fold_duplicates = bool(fold_duplicates)
        self.model_inference_batch_size = _positive("model_inference_batch_size",
                                                    model_inference_batch_size)
        self.max_batch_tokens = (max_batch_tokens if max_batch_tokens in ("auto", None)
                                 else _positive("max_batch_tokens", max_batch_tokens,
                                                extra="'auto'", allow_none=True))
        self.autocast = bool(autocast)
        self.device = device
        self.quantize = quantize
        self.engine = engine
        self.trust_remote_code = bool(trust_remote_code)
        self.torch_threads = _positive("torch_threads", torch_threads, allow_none=True)
        outputs = self.output_fields
        if len(set(outputs)) != len(outputs):
            raise UsageError(f"output columns must differ from each other, got {outputs}")

    # ----------------------------------------------------------------- description
    @property
    def model_spec(self):
        """The :class:`~dask_classify.predict.ModelSpec` naming this classifier's model."""
        from dask_classify.predict import ModelSpec

        return ModelSpec(self.model_identifier, self.cache_dir, self.trust_remote_code,
                         self.device, self.quantize, self.engine)

    @property
    def output_fields(self) -> list[str]:
        """Names of the columns this classifier adds."""
        return [self.label_field] + ([self.score_field] if self.score_field else [])

    def arrow_types(self) -> dict[str, Any]:
        """pyarrow types of the added columns that Parquet cannot infer from an empty ``meta``."""
        import pyarrow as pa

        return {self.score_field: pa.list_(pa.float64())} if self.score_field else {}

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
    def validate_frame(self, frame: Any) -> None:
        """Check ``frame``'s columns (a DataFrame or a Dask DataFrame's ``_meta``).

        Raises
        ------
        UsageError
            The text column is missing, or an output column already exists.
        TextColumnError
            The text column's dtype cannot hold strings.
        """
        columns = list(frame.columns)
        if self.text_field not in columns:
            raise UsageError(
                f"text column {self.text_field!r} is not in the DataFrame; columns: {columns}"
            )
        clashes = [c for c in self.output_fields if c in columns]
        if clashes:
            raise UsageError(
                f"output column(s) {clashes} already exist in the DataFrame (columns: {columns});"
                " choose other label_field/score_field names or drop them first"
            )
        text_dtype = frame[self.text_field].dtype
        kind = getattr(text_dtype, "kind", "O")
        if kind in "biufcmMb":
            raise TextColumnError(
                f"text column {self.text_field!r} has dtype {text_dtype}; it must hold strings"
            )

    def validate_model(self, info: ModelInfo) -> None:
        """Check this classifier's options against its checkpoint (read on the client).

        Subclasses that need a kind of checkpoint (a regression head, ...) extend it.

        Raises
        ------
        UsageError
            ``filter_by`` names a label the model does not have, or left padding with a plain
            transformers classifier (its pooler reads the first position).
        """
        if self.filter_by is not None:
            allowed = self.filter_values(info)
            unknown = [lab for lab in self.filter_by if lab not in allowed]
            if unknown:
                raise UsageError(
                    f"filter_by labels {unknown} are not labels of {self.model_identifier!r}; "
                    f"its labels are {allowed}"
                )
        if self.padding_side == "left" and info.kind == "hf":
            raise UsageError(
                "padding_side='left' is not supported for plain transformers classifiers: "
                "their poolers read the first position, which left padding fills with [PAD]"
            )

    def filter_values(self, info: ModelInfo) -> list[str]:
        """The values ``filter_by`` may name: the labels of the label column."""
        return info.labels

    # ----------------------------------------------------------------- the output hook
    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]:
        """Turn the model's outputs into the columns this classifier adds.

        The hook a classifier with another head overrides (see :class:`FineWebEduClassifier`):
        it receives the outputs of the rows with text and returns every column of
        :attr:`output_fields`, one value per row of the partition.

        Parameters
        ----------
        outputs : numpy.ndarray of float32, shape ``(valid.sum(), outputs)``, or None
            What the model returned for the rows with text, in row order (None when there are
            none: empty or all-null partitions, and the ``meta`` of an empty frame).
        valid : numpy.ndarray of bool, shape ``(rows,)``
            Which rows of the partition have text.
        info : ModelInfo or None
            The checkpoint's description (None when ``outputs`` is None).

        Returns
        -------
        dict of str to pandas.Series
            Each output column, ``len(valid)`` long, with nulls where ``valid`` is False; the
            label column must be there when ``filter_by`` is used.
        """
        n = len(valid)
        labels = np.full(n, None, dtype=object)
        if outputs is not None and len(outputs):
            names = np.array(info.labels, dtype=object)
            labels[valid] = names[outputs.argmax(axis=1)]
        cols = {self.label_field: pd.Series(labels, dtype=string_dtype())}
        if self.score_field:
            scores = np.full(n, None, dtype=object)
            if outputs is not None and len(outputs):
                scores[np.flatnonzero(valid)] = [row.tolist() for row in outputs]
            cols[self.score_field] = pd.Series(scores, dtype=object)
        return cols

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

    # ----------------------------------------------------------------- running it
    def classify_partition(self, part: Any) -> Any:
        """Classify one pandas or cudf partition now (see :mod:`dask_classify.pipeline`)."""
        return classify_partition(part, [self])

    def __call__(self, ddf: Any) -> Any:
        """Classify ``ddf`` lazily; returns a Dask DataFrame with the output columns added.

        A pandas (or cudf) DataFrame is classified at once and returned as the same type.

        Raises
        ------
        UsageError
            Missing text column, output columns that already exist, or unknown ``filter_by``
            labels.
        TextColumnError
            A text column whose dtype cannot hold strings.
        CheckpointError
            A checkpoint whose ``config.json`` cannot be read.
        """
        return classify_many(ddf, [self])


def _check_engine(engine: Any, device: str, quantize: str | None) -> None:
    """``engine`` is one of :data:`dask_classify.onnx.ENGINES` and fits the other options."""
    from dask_classify.onnx import ENGINES

    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {list(ENGINES)}, not {engine!r}")
    if engine != "onnx":
        return
    if device.startswith("cuda"):
        raise UsageError(f"engine='onnx' runs on the CPU only, not on device {device!r}")
    if quantize is not None:
        raise UsageError("engine='onnx' runs the float32 graph; quantize must be None")
    import importlib.util

    for module in ("onnxruntime", "onnx"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError.for_module(module, "onnx", "engine='onnx'")


def _positive(name: str, value: Any, allow_none: bool = False, minimum: int = 1,
              extra: str | None = None) -> int | None:
    """``value`` as an int >= ``minimum`` (or None when allowed), else a :class:`UsageError`."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
    if not ok:
        allowed = ("a positive integer" if minimum == 1 else f"an integer >= {minimum}") + (
            f", {extra}" if extra else "") + (" or None" if allow_none else "")
        raise UsageError(f"{name} must be {allowed}, not {value!r}")
    return int(value)


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
    for clf in classifiers:
        clf.validate_frame(frame)
        clf.validate_model(clf.model_info())
    if not is_lazy:
        return classify_partition(ddf, classifiers)
    meta = classify_partition(meta_source.iloc[:0], classifiers)
    return ddf.map_partitions(classify_partition, classifiers, meta=meta)
