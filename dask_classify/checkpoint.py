"""Reading a checkpoint's description without loading it: light, no torch, no transformers.

What the client needs before any worker loads a model: where a checkpoint is
(:func:`resolve_model_dir`: a local folder, or a hub id downloaded once per machine), what it is
(:func:`model_info`: kind, labels, limits, from ``config.json`` alone) and a fingerprint of its
weights (:func:`weights_fingerprint`). The loaders live in :mod:`dask_classify.engine.loading`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dask_classify.errors import CheckpointError
from dask_classify.weights import weights_fingerprint

__all__ = ["MULTI_LABEL", "PROBLEM_TYPES", "REGRESSION", "SINGLE_LABEL", "ModelInfo",
           "config_for", "model_info", "model_info_for", "position_limit", "problem_type",
           "read_config", "resolve_model_dir", "weights_fingerprint"]


SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)

# Encoders with a learned table of absolute positions: more tokens than it has rows raise an
# IndexError on the CPU and a device-side assert (which poisons the process) on a GPU.
_ABSOLUTE_POSITIONS = frozenset({
    "bert", "distilbert", "electra", "albert", "mobilebert", "squeezebert", "megatron-bert",
    "ernie", "rembert", "xlm", "flaubert", "bart", "mbart",
})
# The RoBERTa family numbers positions from padding_idx + 1, so pad_token_id + 1 rows are unusable.
_OFFSET_POSITIONS = frozenset({
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
    "ibert", "mpnet", "roberta-prelayernorm",
})


def problem_type(config: dict[str, Any]) -> str:
    """What a transformers sequence classifier's outputs mean, from its ``config.json``.

    ``problem_type`` when the config states it; otherwise ``"regression"`` for one output and
    ``"single_label_classification"`` for more (transformers' own rule for its losses).

    Parameters
    ----------
    config : dict
        A transformers config (``problem_type``, ``num_labels`` or ``id2label``).

    Returns
    -------
    str
        ``"single_label_classification"``, ``"multi_label_classification"`` or
        ``"regression"``.

    Raises
    ------
    CheckpointError
        An unknown ``problem_type``, or a single-label head with one output (its softmax is
        always 1: every row would get the same label).

    Examples
    --------
    >>> from dask_classify.checkpoint import problem_type
    >>> problem_type({"id2label": {"0": "LABEL_0"}})
    'regression'
    >>> problem_type({"num_labels": 3, "problem_type": "multi_label_classification"})
    'multi_label_classification'
    >>> problem_type({"id2label": {"0": "neg", "1": "pos"}})
    'single_label_classification'
    """
    outputs = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    stated = config.get("problem_type")
    if stated is None:
        return REGRESSION if outputs == 1 else SINGLE_LABEL
    if stated not in PROBLEM_TYPES:
        raise CheckpointError(f"config.json problem_type {stated!r} is not one of "
                              f"{list(PROBLEM_TYPES)}")
    if stated == SINGLE_LABEL and outputs == 1:
        raise CheckpointError(
            "config.json says single_label_classification but the head has one output: its "
            "softmax is 1 for every text. Set problem_type to 'regression' (a score) or "
            "'multi_label_classification' (a sigmoid over a threshold)")
    return stated


def position_limit(config: dict[str, Any]) -> int | None:
    """The most tokens a backbone's table of absolute positions holds (None: no such table).

    Encoders with learned absolute positions (BERT, DistilBERT, ELECTRA, ..., DeBERTa with
    ``position_biased_input``) fail on longer inputs: an ``IndexError`` on the CPU, a device-side
    assert on a GPU. The RoBERTa family loses ``pad_token_id + 1`` rows to its position offset.
    DeBERTa-v2/v3 (relative buckets) and rotary models (Llama, ...) have no hard limit; unknown
    model types give None too.

    Parameters
    ----------
    config : dict
        A transformers backbone config (``model_type``, ``max_position_embeddings``, ...).

    Returns
    -------
    int or None
        The limit in tokens, special tokens included.

    Examples
    --------
    >>> from dask_classify.checkpoint import position_limit
    >>> position_limit({"model_type": "bert", "max_position_embeddings": 512})
    512
    >>> position_limit({"model_type": "roberta", "max_position_embeddings": 514,
    ...                 "pad_token_id": 1})
    512
    >>> print(position_limit({"model_type": "deberta-v2", "max_position_embeddings": 512,
    ...                       "position_biased_input": False}))
    None
    """
    rows = config.get("max_position_embeddings")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
        return None
    model_type = str(config.get("model_type", ""))
    if model_type in ("deberta", "deberta-v2"):
        return rows if config.get("position_biased_input", True) else None
    if config.get("position_embedding_type", "absolute") != "absolute":
        return None
    if model_type in _OFFSET_POSITIONS:
        return rows - int(config.get("pad_token_id") or 0) - 1
    return rows if model_type in _ABSOLUTE_POSITIONS else None


@dataclass(frozen=True)
class ModelInfo:
    """What the client needs to know about a checkpoint, read from its ``config.json`` alone.

    Parameters
    ----------
    kind : str
        ``"deberta"``: NVIDIA's format (:class:`Deberta`); ``"hf"``: a plain
        ``AutoModelForSequenceClassification``. Other kinds name models built by a classifier's
        own ``build_model`` (e.g. ``"prompt-task-complexity"``, ``"aegis"``).
    id2label : dict of int to str
        Label names by class id.
    regression : bool, default False
        True for a regression head (e.g. FineWeb-edu); same as
        ``problem_type == "regression"``.
    max_position_embeddings : int, optional
        The backbone's ``max_position_embeddings``, when the config states it.
    config : dict
        The whole ``config.json`` (not part of ``repr`` or equality).
    problem_type : str, default "single_label_classification"
        What the head's outputs mean: ``"single_label_classification"`` (one label, softmax),
        ``"multi_label_classification"`` (any number of labels, sigmoids) or ``"regression"``
        (scores).
    position_limit : int, optional
        The most tokens the model can take (its table of absolute positions, see
        :func:`position_limit`); None when it has no such table (relative or rotary positions)
        or it is not known.

    Examples
    --------
    >>> from dask_classify.checkpoint import ModelInfo
    >>> info = ModelInfo(kind="deberta", id2label={1: "pos", 0: "neg"})
    >>> info.labels
    ['neg', 'pos']
    >>> info  # doctest: +NORMALIZE_WHITESPACE
    ModelInfo(kind='deberta', id2label={1: 'pos', 0: 'neg'}, regression=False,
              max_position_embeddings=None, problem_type='single_label_classification',
              position_limit=None)
    >>> ModelInfo(kind="hf", id2label={0: "score"}, regression=True).problem_type
    'regression'
    """

    kind: str  # "deberta" (NVIDIA format), "hf" (AutoModelForSequenceClassification), ...
    id2label: dict[int, str]
    regression: bool = False
    max_position_embeddings: int | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    problem_type: str = SINGLE_LABEL
    position_limit: int | None = None

    def __post_init__(self) -> None:
        if self.problem_type not in PROBLEM_TYPES:
            raise CheckpointError(f"problem_type must be one of {list(PROBLEM_TYPES)}, "
                                  f"not {self.problem_type!r}")
        if self.regression and self.problem_type == SINGLE_LABEL:
            object.__setattr__(self, "problem_type", REGRESSION)
        object.__setattr__(self, "regression", self.problem_type == REGRESSION)

    @property
    def labels(self) -> list[str]:
        """The label names in class-id order."""
        return [self.id2label[i] for i in sorted(self.id2label)]


def resolve_model_dir(identifier: str | os.PathLike, cache_dir: str | None = None, *,
                      revision: str | None = None, token: str | bool | None = None,
                      local_files_only: bool = False) -> Path:
    """A local folder for a folder path or a hub id (downloaded or taken from the HF cache).

    A hub id is downloaded once per machine: processes that ask for the same id at once (the
    worker processes of one machine) wait on a file lock beside the Hugging Face cache, and all
    but the first find it cached.

    Parameters
    ----------
    identifier : str or path-like
        A model folder (``~`` is expanded) or a hub id (``"nvidia/quality-classifier-deberta"``).
        Paths that start with ``.``, ``/`` or ``~`` are never looked up on the hub.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids (a pre-filled cache works offline).
    revision, token, local_files_only
        Passed to ``huggingface_hub.snapshot_download``: a branch, tag or commit; a token for
        gated or private models; only the local cache.

    Returns
    -------
    pathlib.Path
        The folder itself, or the hub snapshot's folder in the cache.

    Raises
    ------
    CheckpointError
        When the path is a file, a local folder does not exist, or the hub id cannot be fetched.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.model import resolve_model_dir
    >>> folder = tempfile.mkdtemp()
    >>> resolve_model_dir(folder) == Path(folder)
    True
    >>> resolve_model_dir("./no/such/model")
    Traceback (most recent call last):
    ...
    dask_classify.errors.CheckpointError: model folder './no/such/model' does not exist
    >>> resolve_model_dir("nvidia/quality-classifier-deberta")  # doctest: +SKIP
    PosixPath('/root/.cache/huggingface/hub/models--nvidia--quality-classifier-deberta/...')
    """
    path = Path(identifier).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"model {str(identifier)!r} is a file, not a model folder")
    ident = str(identifier)
    if ident.startswith((".", "/", "~")) or ident.count("/") > 1:
        raise CheckpointError(f"model folder {ident!r} does not exist{_on_worker()}")
    try:
        from filelock import FileLock
        from huggingface_hub import constants, snapshot_download

        locks = Path(cache_dir or constants.HF_HUB_CACHE) / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"dask_classify--{ident.replace('/', '--')}.lock")):
            return Path(snapshot_download(ident, cache_dir=cache_dir, revision=revision,
                                          token=token, local_files_only=local_files_only))
    except Exception as exc:
        raise CheckpointError(
            f"model {ident!r} is not a local folder and could not be fetched from the hub"
            f"{_on_worker()} ({type(exc).__name__}: {exc}); pass a local folder as "
            "model_identifier, or a cache_dir that holds it"
        ) from exc


def _on_worker() -> str:
    """`` on worker tcp://...`` inside a Dask worker (errors then say where), else ``""``."""
    try:
        from distributed import get_worker

        return f" on worker {get_worker().address}"
    except (ImportError, ValueError):
        return ""


def read_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a model folder, as a dict.

    Parameters
    ----------
    folder : pathlib.Path
        A local model folder.

    Returns
    -------
    dict
        The parsed JSON object.

    Raises
    ------
    CheckpointError
        When ``config.json`` is missing (the message lists the files found), is not valid
        UTF-8 JSON, or does not hold a JSON object.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.model import CheckpointError, read_config
    >>> folder = Path(tempfile.mkdtemp())
    >>> try:
    ...     read_config(folder)
    ... except CheckpointError as err:
    ...     print(str(err).endswith("config.json is missing (found: [])"))
    True
    >>> _ = (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    >>> read_config(folder)
    {'model_type': 'bert'}
    """
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        present = sorted(p.name for p in folder.iterdir())[:20]
        raise CheckpointError(
            f"{folder} is not a model folder: config.json is missing (found: {present})"
        )
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object")
    return config


def _check_label_ids(folder: Path, id2label: dict[Any, Any]) -> None:
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        raise CheckpointError(f"{folder}/config.json id2label keys must be integers") from None
    if ids != list(range(len(ids))):
        raise CheckpointError(f"{folder}/config.json id2label keys must be 0..{len(ids) - 1}")


def model_info_for(identifier: str | os.PathLike, cache_dir: str | None = None, *,
                   revision: str | None = None, token: str | bool | None = None,
                   local_files_only: bool = False) -> ModelInfo:
    """:func:`model_info` for a folder or hub id, fetching only ``config.json`` from the hub.

    Parameters
    ----------
    identifier : str or path-like
        A model folder or a hub id.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.

    Returns
    -------
    ModelInfo
        The checkpoint's kind, labels and limits; the weights are not read or downloaded.

    Raises
    ------
    CheckpointError
        As :func:`resolve_model_dir` and :func:`model_info`.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.model import model_info_for
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps(
    ...     {"base_model": "microsoft/deberta-v3-base", "id2label": {"0": "Low", "1": "High"}}))
    >>> model_info_for(folder).labels
    ['Low', 'High']
    >>> sorted(model_info_for("nvidia/quality-classifier-deberta").labels)  # doctest: +SKIP
    ['High', 'Low', 'Medium']
    """
    return model_info(config_folder(identifier, cache_dir, revision=revision, token=token,
                                    local_files_only=local_files_only))


def model_info(folder: Path) -> ModelInfo:
    """Describe the checkpoint in ``folder`` (reads only ``config.json``).

    A config with ``base_model`` or ``backbone_config`` is NVIDIA's format (``kind="deberta"``);
    one with ``model_type`` or ``architectures`` is a plain transformers classifier
    (``kind="hf"``) whose outputs mean what :func:`problem_type` says (a regression model when
    ``problem_type`` is ``"regression"`` or it has one output and no ``problem_type``).

    Parameters
    ----------
    folder : pathlib.Path
        A local model folder.

    Returns
    -------
    ModelInfo
        Kind, labels (``LABEL_<i>`` when a transformers config names none), problem type and
        position limits.

    Raises
    ------
    CheckpointError
        A missing or invalid ``config.json``, a missing or empty ``id2label`` in NVIDIA's format,
        label ids that are not ``0 .. n - 1``, a ``problem_type`` :func:`problem_type` refuses,
        or a config of neither format.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.model import model_info
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps(
    ...     {"model_type": "bert", "problem_type": "regression", "id2label": {"0": "score"}}))
    >>> info = model_info(folder)
    >>> info.kind, info.regression, info.labels
    ('hf', True, ['score'])
    """
    config = read_config(folder)
    if "base_model" in config or "backbone_config" in config:
        if not isinstance(config.get("id2label"), dict) or not config["id2label"]:
            raise CheckpointError(f"{folder}/config.json has no 'id2label' mapping")
        _check_label_ids(folder, config["id2label"])
        backbone = config.get("backbone_config") or {}
        return ModelInfo(
            kind="deberta",
            id2label={int(k): str(v) for k, v in config["id2label"].items()},
            max_position_embeddings=backbone.get("max_position_embeddings"),
            config=config,
            position_limit=position_limit(backbone),
        )
    if "model_type" in config or "architectures" in config:
        num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
        if not id2label:
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        try:
            problem = problem_type(config)
        except CheckpointError as exc:
            raise CheckpointError(f"{folder}: {exc}") from None
        return ModelInfo(
            kind="hf",
            id2label=id2label,
            max_position_embeddings=config.get("max_position_embeddings"),
            config=config,
            problem_type=problem,
            position_limit=position_limit(config),
        )
    raise CheckpointError(
        f"{folder}/config.json is neither an NVIDIA-style classifier config (no 'base_model') "
        "nor a transformers config (no 'model_type')"
    )


def config_for(identifier: str | os.PathLike, cache_dir: str | None = None,
               **hub: Any) -> dict[str, Any]:
    """The ``config.json`` of a folder or hub id, fetching only that file from the hub.

    Parameters
    ----------
    identifier : str or path-like
        A model folder or a hub id.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.

    Returns
    -------
    dict
        The parsed ``config.json``.

    Raises
    ------
    CheckpointError
        As :func:`resolve_model_dir` and :func:`read_config`.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.model import config_for
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text(json.dumps({"target_sizes": {"a": 2}}))
    >>> config_for(folder)
    {'target_sizes': {'a': 2}}
    """
    return read_config(config_folder(identifier, cache_dir, **hub))


def config_folder(identifier: str | os.PathLike, cache_dir: str | None = None,
                  **hub: Any) -> Path:
    """A local folder holding ``identifier``'s ``config.json``, fetching only that file for a
    hub id (the whole model when only a snapshot download can find it).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify.checkpoint import config_folder
    >>> folder = tempfile.mkdtemp()
    >>> config_folder(folder) == Path(folder)
    True
    """
    path = Path(identifier).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(str(identifier), "config.json", cache_dir=cache_dir,
                                    **hub)).parent
    except Exception:
        # Same resolution (and the same error message) as the workers will use.
        return resolve_model_dir(identifier, cache_dir, **hub)
