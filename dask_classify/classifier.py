"""``DistributedDataClassifier``: a text classifier run on every partition of a Dask DataFrame.

The class holds parameters, their validation and the hooks a model with its own pooling, heads
or output columns overrides (see "Adding a model" in the class docstring); the per-partition work
(text -> tokens -> batches -> model -> columns) is :mod:`dask_classify.pipeline`'s, which calls
the hooks and nothing else of the classifier.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from dask_classify.apply import classify_many
from dask_classify.checkpoint import MULTI_LABEL, REGRESSION, ModelInfo, model_info_for
from dask_classify.engine.spec import ModelSpec, Settings
from dask_classify.errors import TextColumnError, UsageError
from dask_classify.hooks import defined_by
from dask_classify.options import (
    CPU_BATCH_TOKENS,
    ENGINES,  # noqa: F401 - kept importable from here for one release
    OPTION_NAMES,
    ClassifierOptions,
    HubOptions,
)
from dask_classify.outputs import head_columns

# torch, transformers and the pipeline load on first use: a job that finds nothing to do, or
# a client that only builds the graph, never imports them.

if TYPE_CHECKING:
    import torch



class DistributedDataClassifier:
    """Classify the text column of a Dask DataFrame with a transformer classifier.

    Parameters
    ----------
    model_identifier : str or path-like
        A local checkpoint folder (made absolute here, so every worker gets the path the
        client sees) or a hub id. Both NVIDIA's format (``config.json`` with
        ``base_model``/``id2label``, ``fc.*`` weights; see :class:`dask_classify.Deberta`) and
        plain ``AutoModelForSequenceClassification`` folders load.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids (a pre-filled cache works offline).
    text_field : str, default "text"
        Column holding the text to classify.
    label_field : str, default "preds"
        Column to add with each row's prediction. What it holds follows the checkpoint's head
        (``config.problem_type`` of a transformers checkpoint, see
        :func:`dask_classify.model.problem_type`): single-label classification, the label (a
        string from ``id2label``); multi-label classification, the list of labels whose sigmoid
        is at least ``multi_label_threshold``; regression, the score (a float; a list of floats
        for several outputs).
    score_field : str, optional
        Column to add with each row's full output vector (list of floats in label-id order):
        the softmax probabilities, the sigmoids of a multi-label head, or the raw scores of a
        regression head. No such column is added when None.
    filter_by : list of str, optional
        Keep only rows whose label is listed (multi-label: rows with at least one of them; rows
        with null text are dropped too). Every label must be one of the model's labels, else
        :class:`~dask_classify.errors.UsageError` when the classifier is called; a regression
        checkpoint has no labels to filter by.
    max_chars : int, optional
        Cut each text to its first ``max_chars`` characters before tokenizing.
    max_seq_length : int, optional
        Token limit (longer texts are truncated). Default: the tokenizer's ``model_max_length``,
        or the model's ``max_position_embeddings`` when that is unset or absurdly large. Above
        what a model with a table of absolute positions can take
        (:func:`dask_classify.model.position_limit`: BERT's 512, ...), an explicit value is
        refused with a :class:`~dask_classify.errors.UsageError`; a default (the tokenizer's,
        or a published classifier's preset) is capped to the limit with one warning.
    padding_side : {"right", "left"}, default "right"
        Where batches are padded. Both give the same predictions for NVIDIA-format models.
    sort_by_length : bool, default True
        Batch rows longest first so padding is minimal; results keep the input order.
    fold_duplicates : bool or "global", default True
        Classify each distinct text (after ``max_chars``) once per chunk of a partition
        (:data:`dask_classify.pipeline.CHUNK_ROWS` rows) and copy its outputs to the rows that
        repeat it. Every copy is identical; outputs equal those of an unfolded run to float32
        rounding (rows are batched with other rows). False runs every row. ``"global"``: each
        distinct text of the whole Dask DataFrame (or of a :func:`classify_files` job, across
        its files) runs once: a first pass hashes every text on the workers and runs the model
        on one representative per hash, the second joins the outputs back by hash, keeping
        every row, its order and its index (:mod:`dask_classify.fold`). The source is read
        twice; the client holds a table of 16 bytes plus the outputs per distinct text.
    model_inference_batch_size : int, default 256
        Most rows per forward pass (halved automatically on CUDA out-of-memory).
    max_batch_tokens : int, "auto" or None, default "auto"
        Most padded tokens (rows x the batch's longest row) per forward pass, on top of
        ``model_inference_batch_size``. ``"auto"``: :data:`CPU_BATCH_TOKENS` (2048) on the CPU,
        no token limit on a GPU. On CPUs small batches are faster (the attention tensors stay
        in cache; measured in ``benchmarks/README.md``); a GPU wants large batches. Results do
        not depend on it.
    autocast : bool, default True
        Mixed precision on CUDA (bf16 where supported, else fp16). The CPU runs fp32, the same
        numbers on every CPU; on CPUs with AMX, ``DASK_CLASSIFY_CPU_BF16=1`` on the workers opts
        in to bf16 (faster there, probabilities move by up to a few hundredths).
    device : str, default "auto"
        ``"auto"`` uses the worker's GPU when it has one, else the CPU; or ``"cpu"``,
        ``"cuda"``, ``"cuda:<n>"``.
    quantize : {None, "int8"}, default None
        ``"int8"``: dynamic int8 quantization of the Linear layers (CPU only, opt-in).
    engine : {"auto", "torch", "onnx", "openvino"}, default "auto"
        ``"onnx"``: run the model with ONNX Runtime on the CPU (the ``[onnx]`` extra), with the
        same batches; its graph is exported once per machine and cached by a hash of the
        weights (:mod:`dask_classify.engine.onnx_export`). ``"openvino"``: the same graph
        compiled by OpenVINO for the CPU (the ``[openvino]`` extra; fp32, dynamic shapes,
        :mod:`dask_classify.engine.openvino_runtime`).
        Labels equal torch's, probabilities agree to 1e-4;
        a model that cannot be exported (or compiled) runs on torch after one warning. Measured
        against torch in ``benchmarks/README.md``. ``"auto"``: torch, except for a checkpoint folder
        that ships the graph of its own weights (``dask-classify export`` writes one; the
        bundled model has one), which runs on ONNX Runtime without importing torch or
        transformers, so a small job starts in about a second.
    trust_remote_code : bool, default False
        Allow a hub checkpoint's own Python code to run (off unless you ask).
    torch_threads : int, optional
        Torch intra-op threads. Default: ``OMP_NUM_THREADS`` when set, else every core of the
        worker process (forward passes in one process run one at a time).
    multi_label_threshold : float, default 0.5
        For a multi-label checkpoint: the sigmoid a label needs to be in ``label_field``.
    revision : str, optional
        A hub id's branch, tag or commit.
    token : str or bool, optional
        A Hugging Face token for gated or private hub models (never shown in the repr).
    local_files_only : bool, default False
        Use only the local Hugging Face cache for hub ids.

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

    **Adding a model** (its own pooling, head or columns): subclass, declare the new
    constructor parameters in :attr:`parameters`, and override the hook that changes:
    :meth:`build_model`, :meth:`build_tokenizer`, :meth:`format_texts`, :meth:`model_info`,
    :meth:`output_columns` or :meth:`filter_mask` (the pipeline's view of them is
    :class:`~dask_classify.hooks.ClassifierHooks`). Declared parameters enter the per-worker
    cache keys, the repr and the job fingerprint. The README's "Your own model" has a worked
    example; the published FineWeb, FineMath, prompt-complexity and LLM classifiers are built
    this way.

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
    #: A subclass's own constructor parameters beyond :class:`ClassifierOptions`, each stored
    #: as an attribute of the same name: they join the options in :meth:`params` (the repr,
    #: the Dask token and the job fingerprint). Declared per class; :meth:`params` walks the
    #: MRO.
    parameters: ClassVar[tuple[str, ...]] = ()
    #: The keyword a subclass takes a Hugging Face token under (the LLM classifiers take
    #: their gated base model's token as ``hf_token``).
    token_parameter: ClassVar[str] = "token"

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
        fold_duplicates: bool | str = True,
        model_inference_batch_size: int = 256,
        max_batch_tokens: int | str | None = "auto",
        autocast: bool = True,
        device: str = "auto",
        quantize: str | None = None,
        engine: str = "auto",
        trust_remote_code: bool = False,
        torch_threads: int | None = None,
        multi_label_threshold: float = 0.5,
        revision: str | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k in OPTION_NAMES}
        arguments["model_identifier"] = model_identifier or self.default_model_identifier
        self.options = ClassifierOptions(**arguments)
        # the environment switches that change numbers, read once here on the client (in the
        # model spec's key and the job fingerprint; workers use these, not their environment)
        self._settings = Settings.from_environ()
        # A value the caller chose is refused above the model's position limit; a default
        # (None, or a published classifier's preset) is capped with a warning.
        self._max_seq_length_explicit = self.max_seq_length is not None
        outputs = self.output_fields
        if len(set(outputs)) != len(outputs):
            raise UsageError(f"output columns must differ from each other, got {outputs}")

    # ----------------------------------------------------------------- description
    @property
    def model_spec(self):
        """The :class:`~dask_classify.engine.spec.ModelSpec` naming this classifier's model.

        Its keys cover the identifier, ``cache_dir``, ``trust_remote_code``, device,
        ``quantize``, the classes that define :meth:`build_model` / :meth:`build_tokenizer`
        and :meth:`model_options` / :meth:`tokenizer_options`: classifiers that would build the
        same model share one per worker process.

        Examples
        --------
        >>> from dask_classify import DistributedDataClassifier, QualityClassifier
        >>> plain = DistributedDataClassifier("/models/quality", label_field="a")
        >>> plain.model_spec.key == QualityClassifier("/models/quality").model_spec.key
        True
        >>> plain.model_spec.key == DistributedDataClassifier("/models/other").model_spec.key
        False
        """
        cls = type(self)
        return ModelSpec(
            self.model_identifier, self.cache_dir, self.trust_remote_code, self.device,
            self.quantize, self.hub,
            options=(defined_by(cls, "build_model"), *self.model_options()),
            tokenizer_options=(defined_by(cls, "build_tokenizer"), *self.tokenizer_options()),
            source=self, engine=self.engine,
            default_builder=cls.build_model is DistributedDataClassifier.build_model,
            settings=self.settings,
        )

    @property
    def settings(self) -> Settings:
        """The environment switches read when this classifier was built (on the client)."""
        return getattr(self, "_settings", None) or Settings.from_environ()

    @property
    def hub(self) -> HubOptions:
        """``revision``, ``token`` and ``local_files_only`` as one record."""
        return self.options.hub

    @property
    def output_fields(self) -> list[str]:
        """Names of the columns this classifier adds."""
        return [self.label_field] + ([self.score_field] if self.score_field else [])

    def arrow_types(self) -> dict[str, Any]:
        """pyarrow types of the added columns that Parquet cannot infer from an empty ``meta``.

        Reads :meth:`model_info` (a multi-label head's label column is a list of strings).
        """
        import pyarrow as pa

        types: dict[str, Any] = {}
        if self.score_field:
            types[self.score_field] = pa.list_(pa.float64())
        info = self.model_info()
        if info.problem_type == MULTI_LABEL:
            types[self.label_field] = pa.list_(pa.string())
        elif info.problem_type == REGRESSION and len(info.id2label) > 1:
            types[self.label_field] = pa.list_(pa.float64())
        return types

    def params(self) -> dict[str, Any]:
        """Every parameter by name: the options, then the subclasses' :attr:`parameters`.

        Examples
        --------
        >>> from dask_classify import FineMathClassifier
        >>> params = FineMathClassifier("/m").params()
        >>> params["max_seq_length"], params["center_crop_chars"]
        (512, 10000)
        """
        return {**self.options.as_dict(), **dict(self._declared())}

    def __repr__(self) -> str:
        params = self.params()
        if isinstance(params.get("token"), str):
            params["token"] = "***"  # never print a secret
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"

    def __dask_tokenize__(self):
        return (type(self).__qualname__, repr(self.params()))

    def model_info(self) -> ModelInfo:
        """What the client knows of the model before loading it (a hook).

        Default: read the checkpoint's ``config.json`` (labels, kind, problem type, position
        limit) without loading the weights. A classifier whose checkpoint has another config
        format, or none, returns its own :class:`~dask_classify.model.ModelInfo`.
        """
        return model_info_for(self.model_identifier, self.cache_dir, **self.hub_options())

    def hub_options(self) -> dict[str, Any]:
        """``revision``, ``token`` and ``local_files_only``, for the hub loaders."""
        return self.hub.as_kwargs()

    # ----------------------------------------------------------------- model hooks
    def build_model(self, device: str) -> tuple[torch.nn.Module, ModelInfo]:
        """Build this classifier's model on a worker (a hook; called once per process).

        Parameters
        ----------
        device : str
            The torch device the model will run on (``"cpu"``, ``"cuda"``, ``"cuda:1"``): the
            caller moves the module there and sets eval mode; use it to pick a dtype.

        Returns
        -------
        model : torch.nn.Module
            Called as ``model(input_ids, attention_mask)`` on padded batches; returns a
            ``(batch, k)`` tensor, ``k`` the same for every batch. Floating outputs reach
            :meth:`output_columns` as float32, integer ones (token ids) as they are.
        info : ModelInfo
            The model's description, passed to :meth:`output_columns`.

        Notes
        -----
        Default: :func:`dask_classify.model.load_model` (NVIDIA's format or a transformers
        sequence classifier). An override must list in :meth:`model_options` every parameter
        that changes what it builds.
        """
        from dask_classify.engine.loading import load_model

        return load_model(self.model_identifier, self.cache_dir, self.trust_remote_code,
                          **self.hub_options())

    def model_options(self) -> tuple:
        """What :meth:`build_model` depends on besides identifier, cache, device and quantize.

        Part of the per-process model cache key (hashable values with a stable ``repr``).
        Default: the declared :attr:`parameters` and their values.
        """
        return self._declared()

    def build_tokenizer(self) -> Any:
        """Load this classifier's tokenizer on a worker (a hook; called once per process).

        Default: the checkpoint's tokenizer (:func:`dask_classify.model.load_tokenizer`).
        """
        from dask_classify.engine.loading import load_tokenizer

        return load_tokenizer(self.model_identifier, self.cache_dir, self.trust_remote_code,
                              **self.hub_options())

    def tokenizer_options(self) -> tuple:
        """What :meth:`build_tokenizer` depends on besides identifier and cache (cache key).

        Default: the declared :attr:`parameters` and their values.
        """
        return self._declared()

    def _declared(self) -> tuple:
        """``(name, value)`` of the :attr:`parameters` declared along the MRO, base first."""
        names = dict.fromkeys(name for klass in reversed(type(self).__mro__)
                              for name in vars(klass).get("parameters", ()))
        return tuple((name, getattr(self, name)) for name in names)

    def format_texts(self, texts: list[str]) -> list[str]:
        """The strings the tokenizer sees, from the non-null texts of a chunk (a hook).

        Default: each text cut to its first ``max_chars`` characters. Classifiers that wrap
        texts in a prompt or crop them otherwise override it (with :meth:`format_options`).

        Examples
        --------
        >>> from dask_classify import DistributedDataClassifier
        >>> DistributedDataClassifier("/m", max_chars=4).format_texts(["a good film", "ok"])
        ['a go', 'ok']
        """
        if self.max_chars is None:
            return texts
        return [t[: self.max_chars] for t in texts]

    def format_options(self) -> tuple:
        """What :meth:`format_texts` depends on: classifiers with equal options (and the same
        ``format_texts``) share the tokens of a chunk."""
        return ("max_chars", self.max_chars)

    def token_limit(self, tokenizer: Any, info: ModelInfo) -> int:
        """The most tokens per text on a worker: ``max_seq_length`` or the tokenizer's limit,
        held to the model's :attr:`~dask_classify.model.ModelInfo.position_limit`.

        Raises
        ------
        UsageError
            An explicit ``max_seq_length`` above the position limit.

        Examples
        --------
        >>> import warnings
        >>> from types import SimpleNamespace
        >>> from dask_classify import DistributedDataClassifier
        >>> from dask_classify.model import ModelInfo
        >>> bert = ModelInfo("hf", {0: "a", 1: "b"}, max_position_embeddings=128,
        ...                  position_limit=128)
        >>> tok = SimpleNamespace(model_max_length=512)  # saved with a wrong limit
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     DistributedDataClassifier("/m").token_limit(tok, bert)
        128
        >>> "capped to 128" in str(caught[0].message)
        True
        >>> DistributedDataClassifier("/m", max_seq_length=64).token_limit(tok, bert)
        64
        """
        from dask_classify.tokenize import resolve_max_length

        wanted = resolve_max_length(tokenizer, info.max_position_embeddings, self.max_seq_length)
        return self._held_to(wanted, info.position_limit)

    def _held_to(self, wanted: int, limit: int | None) -> int:
        """``wanted`` tokens, or ``limit`` with one warning when ``wanted`` is a default above it.

        Raises :class:`UsageError` for an explicit ``max_seq_length`` above ``limit`` (the one
        rule of :meth:`token_limit` on a worker and :meth:`validate_model` on the client).
        """
        if limit is None or wanted <= limit:
            return wanted
        if self._max_seq_length_explicit:
            raise UsageError(f"max_seq_length={wanted} is more than {self.model_identifier!r} "
                             f"can take: its table of absolute positions holds {limit} tokens")
        where = ("the default max_seq_length" if self.max_seq_length is not None
                 else "the tokenizer's model_max_length")
        _warn_once(f"{type(self).__name__}: {where} ({wanted}) is more than "
                   f"{self.model_identifier!r} can take (its table of absolute positions holds "
                   f"{limit} tokens); capped to {limit} tokens, longer texts are truncated")
        return limit

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
            if not allowed:
                raise UsageError(
                    f"filter_by needs labels, and {self.model_identifier!r} has none: its head "
                    f"is a {info.problem_type} head (filter on the score column instead)")
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
        if self.max_seq_length is not None:
            self._held_to(self.max_seq_length, info.position_limit)

    def filter_values(self, info: ModelInfo) -> list[str]:
        """The values ``filter_by`` may name: the labels of the label column (none for a
        regression head)."""
        return [] if info.problem_type == REGRESSION else info.labels

    def filter_mask(self, columns: dict[str, pd.Series], info: ModelInfo) -> np.ndarray:
        """Which rows ``filter_by`` keeps, from this classifier's columns (a hook).

        Default: the label is one of ``filter_by`` (a multi-label row: any of its labels).
        """
        labels = columns[self.label_field]
        if info is not None and info.problem_type == MULTI_LABEL:
            wanted = set(self.filter_by or ())
            return np.fromiter((isinstance(row, list) and not wanted.isdisjoint(row)
                                for row in labels), dtype=bool, count=len(labels))
        return labels.isin(self.filter_by).to_numpy(dtype=bool)

    # ----------------------------------------------------------------- the output hook
    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]:
        """Turn the model's outputs into the columns this classifier adds.

        The hook a classifier with another head overrides (see :class:`FineWebEduClassifier`):
        it receives the outputs of the rows with text and returns every column of
        :attr:`output_fields`, one value per row of the partition. Column dtypes must not
        depend on the partition (an empty one gives the Dask ``meta``).

        Parameters
        ----------
        outputs : numpy.ndarray, shape ``(valid.sum(), k)``, or None
            What the model returned for the rows with text, in row order (float32, or the
            model's integer dtype; None when there are none: empty or all-null partitions, and
            the ``meta`` of an empty frame).
        valid : numpy.ndarray of bool, shape ``(rows,)``
            Which rows of the partition have text.
        info : ModelInfo
            The model's description (from the worker's model, or the client's
            :meth:`model_info` when no row had text).

        Returns
        -------
        dict of str to pandas.Series
            Each output column, ``len(valid)`` long, with nulls where ``valid`` is False; the
            label column must be there when ``filter_by`` is used.

        The default is :func:`dask_classify.outputs.head_columns` (labels, label lists or
        scores, by the kind of head).
        """
        return head_columns(outputs, valid, info, self.label_field, self.score_field,
                            self.multi_label_threshold)

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
        from dask_classify.pipeline import classify_partition

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


class _Option:
    """A classifier attribute read from its options (setting it re-checks the value)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.__doc__ = f"The ``{name}`` option (see :class:`DistributedDataClassifier`)."

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.options, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.options = obj.options.replace(**{self.name: value})


for _name in OPTION_NAMES:
    setattr(DistributedDataClassifier, _name, _Option(_name))
del _name


_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _warn_once(message: str) -> None:
    """``warnings.warn(message)`` the first time this process sees ``message``."""
    with _WARNED_LOCK:
        if message in _WARNED:
            return
        _WARNED.add(message)
    warnings.warn(message, UserWarning, stacklevel=3)
