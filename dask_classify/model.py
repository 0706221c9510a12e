"""Models and checkpoints: the NVIDIA DeBERTa-style classifier and plain HF classifiers.

Checkpoint format (the format of NVIDIA's published quality/domain/content-type
classifiers): a folder with ``config.json`` (``base_model``, ``fc_dropout``, ``id2label``,
``label2id``; other keys tolerated), ``model.safetensors`` with keys ``model.<backbone keys>``,
``fc.weight`` and ``fc.bias``, and the tokenizer files.

Two extensions, both optional and ignored by NVIDIA's own loader:

* ``backbone_config``: the backbone's ``config.json`` as a dict, written by our trainer so that a
  checkpoint loads offline without the backbone's hub config;
* ``num_output_layers`` (default 1): ``> 1`` adds ``num_output_layers - 1`` hidden layers
  (``mlp.*`` keys, NeMo's ``classifier_head.num_output_layers``) before ``fc``;
  ``head_activation`` (``relu``, ``gelu`` or ``tanh``; default ``gelu``, what checkpoints written
  before the key existed used) is the activation after each hidden layer (NeMo's
  ``classifier_head.activation``).
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

# transformers 5's lazy imports are not thread-safe (several task threads importing at once raise
# ImportError): import what workers use eagerly, at module level.
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
)

from dask_classify.errors import CheckpointError

__all__ = [
    "CheckpointError",
    "Deberta",
    "HFSequenceClassifier",
    "ModelInfo",
    "load_model",
    "load_tokenizer",
    "model_info",
    "save_checkpoint",
]

SAFETENSORS_NAME = "model.safetensors"
PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "spm.model",
    "vocab.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
)
# Keys older transformers versions saved as buffers; harmless if present in a checkpoint.
_IGNORABLE_UNEXPECTED_SUFFIXES = ("position_ids",)


def _backbone_config(config: dict[str, Any], cache_dir: str | None = None) -> PretrainedConfig:
    embedded = config.get("backbone_config")
    if embedded:
        embedded = dict(embedded)
        model_type = embedded.pop("model_type", None)
        if model_type is None:
            raise CheckpointError("config.json 'backbone_config' has no 'model_type'")
        return AutoConfig.for_model(model_type, **embedded)
    base = config.get("base_model")
    if not base:
        raise CheckpointError("config.json has neither 'base_model' nor 'backbone_config'")
    try:
        return AutoConfig.from_pretrained(base, cache_dir=cache_dir)
    except Exception as exc:
        raise CheckpointError(
            f"config.json names base_model {base!r}, whose config could not be loaded "
            f"({type(exc).__name__}: {exc}). Make it available offline (cache_dir, a local "
            "folder) or add the backbone's config as 'backbone_config' to config.json."
        ) from exc


#: Activations of the head's hidden layers (``head_activation`` in config.json).
HEAD_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _head_layers(hidden: int, num_output_layers: int, dropout: float,
                 activation: str = "gelu") -> nn.Module:
    act = HEAD_ACTIVATIONS.get(str(activation).lower())
    if act is None:
        raise CheckpointError(f"config.json: head_activation must be one of "
                              f"{sorted(HEAD_ACTIVATIONS)}, not {activation!r}")
    layers: list[nn.Module] = []
    for _ in range(max(0, num_output_layers - 1)):
        layers += [nn.Linear(hidden, hidden), act(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class Deberta(nn.Module, PyTorchModelHubMixin):
    """NVIDIA's DeBERTa-style classifier: backbone -> dropout -> linear head on [CLS] -> softmax.

    Parameters
    ----------
    config : dict
        The checkpoint's ``config.json``: ``base_model`` (hub id or folder of the backbone),
        ``fc_dropout`` (float, default 0.2), ``id2label`` (``{"0": "High", ...}``), optionally
        ``backbone_config`` and ``num_output_layers`` (see the module docstring).

    Notes
    -----
    The backbone is built from its config (``AutoModel.from_config``) and never downloads
    pretrained weights: the checkpoint's weights overwrite them anyway. Any ``AutoModel``
    backbone works (DeBERTa, BERT, RoBERTa, DistilBERT). The [CLS] vector is taken at each row's
    first real token, so left- and right-padded batches give the same result.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify import Deberta
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = {"base_model": "tiny", "fc_dropout": 0.2, "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
    >>> model = Deberta(cfg).eval()
    >>> folder = tempfile.mkdtemp()
    >>> _ = model.save_pretrained(folder)
    >>> again = Deberta.from_pretrained(folder)
    >>> again.id2label
    {0: 'neg', 1: 'pos'}
    >>> import torch
    >>> ids = torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]])
    >>> probs = again(ids, attention_mask=(ids != 0).long())
    >>> tuple(probs.shape), torch.allclose(probs.sum(dim=-1), torch.ones(2))
    ((2, 2), True)
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(config, dict) or "id2label" not in config:
            raise CheckpointError("a Deberta config needs an 'id2label' mapping")
        self.config = dict(config)
        backbone = _backbone_config(self.config, self.config.get("_cache_dir"))
        self.model = AutoModel.from_config(backbone)
        hidden = int(backbone.hidden_size if hasattr(backbone, "hidden_size") else backbone.dim)
        dropout = float(self.config.get("fc_dropout", 0.2))
        self.dropout = nn.Dropout(dropout)
        self.mlp = _head_layers(hidden, int(self.config.get("num_output_layers", 1)), dropout,
                                str(self.config.get("head_activation", "gelu")))
        self.fc = nn.Linear(hidden, len(self.config["id2label"]))
        params = inspect.signature(self.model.forward).parameters
        self._pass_position_ids = "position_ids" in params

    @property
    def id2label(self) -> dict[int, str]:
        """The label names by class id, with integer keys (``config.json`` stores strings).

        Examples
        --------
        >>> from dask_classify import Deberta
        >>> from dask_classify.testing import tiny_backbone_config
        >>> cfg = {"base_model": "tiny", "id2label": {"1": "pos", "0": "neg"},
        ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
        >>> Deberta(cfg).id2label
        {1: 'pos', 0: 'neg'}
        """
        return {int(k): str(v) for k, v in self.config["id2label"].items()}

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores, shape ``(batch, num_labels)``.

        Parameters
        ----------
        input_ids : torch.Tensor of int64, shape ``(batch, seq_len)``
            Token ids, padded on either side.
        attention_mask : torch.Tensor of int, shape ``(batch, seq_len)``
            1 for real tokens, 0 for padding.

        Returns
        -------
        torch.Tensor, shape ``(batch, num_labels)``
            The head's output on each row's first real token ([CLS]), before the softmax.

        Examples
        --------
        >>> import torch
        >>> from dask_classify import Deberta
        >>> from dask_classify.testing import tiny_backbone_config
        >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
        ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
        >>> model = Deberta(cfg).eval()
        >>> right = model.logits(torch.tensor([[2, 7, 3, 0]]), torch.tensor([[1, 1, 1, 0]]))
        >>> left = model.logits(torch.tensor([[0, 2, 7, 3]]), torch.tensor([[0, 1, 1, 1]]))
        >>> tuple(right.shape), torch.allclose(right, left, atol=1e-5)  # padding side is moot
        ((1, 2), True)
        """
        kwargs: dict[str, torch.Tensor] = {}
        if self._pass_position_ids:
            # Positions count real tokens only, so left padding does not shift them.
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)[0]
        first = attention_mask.long().argmax(dim=1)  # first real token = [CLS], either padding
        cls = hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
        return self.fc(self.mlp(self.dropout(cls)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32 softmax), shape ``(batch, num_labels)``.

        Parameters
        ----------
        input_ids : torch.Tensor of int64, shape ``(batch, seq_len)``
            Token ids, padded on either side.
        attention_mask : torch.Tensor of int, shape ``(batch, seq_len)``
            1 for real tokens, 0 for padding.

        Returns
        -------
        torch.Tensor of float32, shape ``(batch, num_labels)``
            The softmax of :meth:`logits`; each row sums to 1.

        Examples
        --------
        >>> import torch
        >>> from dask_classify import Deberta
        >>> from dask_classify.testing import tiny_backbone_config
        >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
        ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
        >>> probs = Deberta(cfg).eval()(torch.tensor([[2, 7, 3]]), torch.tensor([[1, 1, 1]]))
        >>> probs.dtype, round(float(probs.detach().sum()), 4)
        (torch.float32, 1.0)
        """
        return torch.softmax(self.logits(input_ids, attention_mask).float(), dim=-1)

    @classmethod
    def from_backbone(cls, pretrained: str | os.PathLike, id2label: dict[int, str],
                      fc_dropout: float = 0.2, num_output_layers: int = 1,
                      cache_dir: str | None = None, head_activation: str = "gelu",
                      backbone: Any = None) -> Deberta:
        """A new classifier on a pretrained encoder's weights (the head is freshly initialised).

        The backbone's config is embedded as ``backbone_config`` so the saved checkpoint loads
        offline; ``base_model`` records where the encoder came from.

        Parameters
        ----------
        pretrained : str or path-like
            Folder or hub id of an ``AutoModel`` encoder (BERT, DeBERTa, RoBERTa, ...).
        id2label : dict of int to str
            Label names by class id (ids ``0 .. n - 1``).
        fc_dropout : float, default 0.2
            Dropout before the head (and between hidden head layers).
        num_output_layers : int, default 1
            Layers of the head; ``> 1`` adds ``num_output_layers - 1`` hidden layers.
        cache_dir : str, optional
            Hugging Face cache folder for a hub id.
        head_activation : {"gelu", "relu", "tanh"}, default "gelu"
            Activation after each hidden layer of the head (saved as ``head_activation``).
        backbone : transformers.PreTrainedModel, optional
            An encoder already built (e.g. from a config, with other weights); used instead of
            loading ``pretrained``, which is then only recorded as ``base_model``.

        Returns
        -------
        Deberta
            The classifier, in training mode.

        Examples
        --------
        >>> import tempfile
        >>> from transformers import AutoConfig, AutoModel
        >>> from dask_classify import Deberta
        >>> from dask_classify.testing import tiny_backbone_config
        >>> cfg = tiny_backbone_config("bert", vocab_size=100)
        >>> encoder = tempfile.mkdtemp()
        >>> AutoModel.from_config(AutoConfig.for_model(**cfg)).save_pretrained(encoder)
        >>> model = Deberta.from_backbone(encoder, {0: "neg", 1: "pos"}, num_output_layers=2,
        ...                               head_activation="relu")
        >>> model.config["backbone_config"]["model_type"], model.id2label
        ('bert', {0: 'neg', 1: 'pos'})
        >>> model.mlp
        Sequential(
          (0): Linear(in_features=64, out_features=64, bias=True)
          (1): ReLU()
          (2): Dropout(p=0.2, inplace=False)
        )
        """
        if backbone is None:
            backbone = AutoModel.from_pretrained(os.fspath(pretrained), cache_dir=cache_dir)
        backbone_config = backbone.config.to_dict()
        for key in ("_name_or_path", "architectures", "transformers_version"):
            backbone_config.pop(key, None)
        config = {
            "base_model": os.fspath(pretrained),
            "fc_dropout": float(fc_dropout),
            "id2label": {str(i): str(lab) for i, lab in sorted(id2label.items())},
            "label2id": {str(lab): int(i) for i, lab in sorted(id2label.items())},
            "num_output_layers": int(num_output_layers),
            "head_activation": str(head_activation).lower(),
            "backbone_config": backbone_config,
        }
        model = cls(config)
        model.model.load_state_dict(backbone.state_dict())
        return model

    @classmethod
    def _from_pretrained(cls, *, model_id: str, cache_dir=None, **kwargs: Any) -> Deberta:
        folder = resolve_model_dir(model_id, cache_dir=cache_dir)
        return load_deberta(folder, cache_dir=cache_dir)


class HFSequenceClassifier(nn.Module):
    """Wraps an ``AutoModelForSequenceClassification`` to return probabilities (or raw scores).

    Classification heads return the float32 softmax; regression heads (``num_labels == 1`` or
    ``problem_type == "regression"``) return the raw scores, shape ``(batch, 1)``.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A sequence classifier whose output has ``.logits``.

    Attributes
    ----------
    regression : bool
        True for a regression head (outputs are returned without a softmax).

    Examples
    --------
    >>> import torch
    >>> from transformers import AutoConfig, AutoModelForSequenceClassification
    >>> from dask_classify import HFSequenceClassifier
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = tiny_backbone_config("bert", vocab_size=100)
    >>> cfg["id2label"] = {0: "a", 1: "b", 2: "c"}
    >>> hf = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(**cfg))
    >>> model = HFSequenceClassifier(hf).eval()
    >>> model.regression, model.id2label
    (False, {0: 'a', 1: 'b', 2: 'c'})
    >>> tuple(model(torch.tensor([[2, 7, 3]]), torch.tensor([[1, 1, 1]])).shape)
    (1, 3)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        self.regression = cfg.problem_type == "regression" or cfg.num_labels == 1

    @property
    def id2label(self) -> dict[int, str]:
        """The wrapped model's label names by class id (integer keys)."""
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Probabilities (float32 softmax), or the raw scores of a regression head.

        Parameters
        ----------
        input_ids : torch.Tensor of int64, shape ``(batch, seq_len)``
            Token ids, right-padded (plain transformers poolers read the first position).
        attention_mask : torch.Tensor of int, shape ``(batch, seq_len)``
            1 for real tokens, 0 for padding.

        Returns
        -------
        torch.Tensor of float32, shape ``(batch, num_labels)``
            Rows sum to 1 for classification; ``(batch, 1)`` raw scores for regression.
        """
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        return logits if self.regression else torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class ModelInfo:
    """What the client needs to know about a checkpoint, read from its ``config.json`` alone.

    Parameters
    ----------
    kind : {"deberta", "hf"}
        ``"deberta"``: NVIDIA's format (:class:`Deberta`); ``"hf"``: a plain
        ``AutoModelForSequenceClassification``.
    id2label : dict of int to str
        Label names by class id.
    regression : bool, default False
        True for a one-output regression head (e.g. FineWeb-edu).
    max_position_embeddings : int, optional
        The backbone's position limit, when the config states it.
    config : dict
        The whole ``config.json`` (not part of ``repr`` or equality).

    Examples
    --------
    >>> from dask_classify.model import ModelInfo
    >>> info = ModelInfo(kind="deberta", id2label={1: "pos", 0: "neg"})
    >>> info.labels
    ['neg', 'pos']
    >>> info  # doctest: +NORMALIZE_WHITESPACE
    ModelInfo(kind='deberta', id2label={1: 'pos', 0: 'neg'}, regression=False,
              max_position_embeddings=None)
    """

    kind: str  # "deberta" (NVIDIA format) or "hf" (AutoModelForSequenceClassification)
    id2label: dict[int, str]
    regression: bool = False
    max_position_embeddings: int | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def labels(self) -> list[str]:
        """The label names in class-id order."""
        return [self.id2label[i] for i in sorted(self.id2label)]


def resolve_model_dir(identifier: str | os.PathLike, cache_dir: str | None = None) -> Path:
    """A local folder for a folder path or a hub id (downloaded or taken from the HF cache).

    Parameters
    ----------
    identifier : str or path-like
        A model folder (``~`` is expanded) or a hub id (``"nvidia/quality-classifier-deberta"``).
        Paths that start with ``.``, ``/`` or ``~`` are never looked up on the hub.
    cache_dir : str, optional
        Hugging Face cache folder for hub ids (a pre-filled cache works offline).

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
        raise CheckpointError(f"model folder {ident!r} does not exist")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ident, cache_dir=cache_dir))
    except Exception as exc:
        raise CheckpointError(
            f"model {ident!r} is not a local folder and could not be fetched from the hub "
            f"({type(exc).__name__}: {exc}); pass a local folder as model_identifier, or a "
            "cache_dir that holds it"
        ) from exc


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


def model_info_for(identifier: str | os.PathLike, cache_dir: str | None = None) -> ModelInfo:
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
    path = Path(identifier).expanduser()
    if path.is_dir():
        return model_info(path)
    try:
        from huggingface_hub import hf_hub_download

        cfg = Path(hf_hub_download(str(identifier), "config.json", cache_dir=cache_dir))
    except Exception:
        # Same resolution (and the same error message) as the workers will use.
        return model_info(resolve_model_dir(identifier, cache_dir))
    return model_info(cfg.parent)


def model_info(folder: Path) -> ModelInfo:
    """Describe the checkpoint in ``folder`` (reads only ``config.json``).

    A config with ``base_model`` or ``backbone_config`` is NVIDIA's format (``kind="deberta"``);
    one with ``model_type`` or ``architectures`` is a plain transformers classifier
    (``kind="hf"``), a regression model when ``problem_type`` is ``"regression"`` or it has one
    label.

    Parameters
    ----------
    folder : pathlib.Path
        A local model folder.

    Returns
    -------
    ModelInfo
        Kind, labels (``LABEL_<i>`` when a transformers config names none), regression flag and
        position limit.

    Raises
    ------
    CheckpointError
        A missing or invalid ``config.json``, a missing or empty ``id2label`` in NVIDIA's format,
        label ids that are not ``0 .. n - 1``, or a config of neither format.

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
        )
    if "model_type" in config or "architectures" in config:
        num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
        if not id2label:
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        return ModelInfo(
            kind="hf",
            id2label=id2label,
            regression=config.get("problem_type") == "regression" or num_labels == 1,
            max_position_embeddings=config.get("max_position_embeddings"),
            config=config,
        )
    raise CheckpointError(
        f"{folder}/config.json is neither an NVIDIA-style classifier config (no 'base_model') "
        "nor a transformers config (no 'model_type')"
    )


def _load_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    st = folder / SAFETENSORS_NAME
    if st.is_file():
        from safetensors.torch import load_file

        try:
            return load_file(str(st))
        except Exception as exc:
            raise CheckpointError(f"{st} is not a readable safetensors file: {exc}") from exc
    for name in PICKLE_NAMES:
        pkl = folder / name
        if pkl.is_file():
            try:
                # weights_only=True refuses pickles that would import or call arbitrary code.
                return torch.load(str(pkl), map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(
                    f"refused to load {pkl}: it is not a plain weights file that "
                    f"torch.load(weights_only=True) accepts ({type(exc).__name__}: {exc})"
                ) from exc
    raise CheckpointError(
        f"{folder} has no weights: expected {SAFETENSORS_NAME} (or one of {list(PICKLE_NAMES)})"
    )


def load_deberta(folder: Path, cache_dir: str | None = None) -> Deberta:
    """Build a :class:`Deberta` from ``folder`` and load its weights strictly.

    Parameters
    ----------
    folder : pathlib.Path
        A checkpoint folder in NVIDIA's format (``config.json`` and ``model.safetensors``, or a
        plain weights pickle that ``torch.load(weights_only=True)`` accepts).
    cache_dir : str, optional
        Hugging Face cache folder for the ``base_model`` config (not needed when the config
        embeds ``backbone_config``).

    Returns
    -------
    Deberta
        The model, in eval mode.

    Raises
    ------
    CheckpointError
        No weights, weights that do not match the config (missing, unexpected or mis-shaped
        keys), a pickle that is not plain weights, or a backbone config that cannot be found.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify import Deberta
    >>> from dask_classify.model import load_deberta
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = Deberta(cfg).save_pretrained(folder)
    >>> model = load_deberta(folder)
    >>> model.training, model.id2label
    (False, {0: 'neg', 1: 'pos'})
    """
    config = read_config(folder)
    if cache_dir is not None:
        config["_cache_dir"] = cache_dir
    model = Deberta(config)
    model.config.pop("_cache_dir", None)
    state = _load_state_dict(folder)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"weights in {folder} do not match its config: {exc}") from exc
    unexpected = [k for k in unexpected if not k.endswith(_IGNORABLE_UNEXPECTED_SUFFIXES)]
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {folder} do not match its config: missing keys {missing[:8]}, "
            f"unexpected keys {unexpected[:8]}"
        )
    return model.eval()


def load_model(
    identifier: str | os.PathLike,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[nn.Module, ModelInfo]:
    """Load an NVIDIA-format or plain HF classifier; returns the module (eval mode) and its info.

    Parameters
    ----------
    identifier : str or path-like
        A checkpoint folder or a hub id (see :func:`resolve_model_dir`).
    cache_dir : str, optional
        Hugging Face cache folder for hub ids.
    trust_remote_code : bool, default False
        Let a plain transformers checkpoint run its own Python code.

    Returns
    -------
    model : torch.nn.Module
        A :class:`Deberta` (NVIDIA format) or an :class:`HFSequenceClassifier`, in eval mode on
        the CPU. Both are called as ``model(input_ids, attention_mask)``.
    info : ModelInfo
        What :func:`model_info` reads from ``config.json``.

    Raises
    ------
    CheckpointError
        The folder or hub id cannot be resolved, or its config or weights cannot be loaded.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify import load_model
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert", texts=["a good film", "a bad one"])
    >>> model, info = load_model(folder)
    >>> type(model).__name__, info.kind, info.labels, model.training
    ('Deberta', 'deberta', ['neg', 'pos'], False)
    >>> model, info = load_model("nvidia/quality-classifier-deberta")  # doctest: +SKIP
    """
    folder = resolve_model_dir(identifier, cache_dir)
    info = model_info(folder)
    if info.kind == "deberta":
        return load_deberta(folder, cache_dir=cache_dir), info
    weight_files = [SAFETENSORS_NAME, "model.safetensors.index.json", *PICKLE_NAMES]
    has_weights = any((folder / n).is_file() for n in weight_files) or any(
        folder.glob("model-*.safetensors"))
    if not has_weights:
        raise CheckpointError(f"{folder} has no weights: expected {SAFETENSORS_NAME}")
    try:
        hf = AutoModelForSequenceClassification.from_pretrained(
            str(folder), trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise CheckpointError(f"could not load {folder} as a sequence classifier: {exc}") from exc
    return HFSequenceClassifier(hf).eval(), info


def load_tokenizer(
    identifier: str | os.PathLike,
    cache_dir: str | None = None,
    trust_remote_code: bool = False,
):
    """The checkpoint's tokenizer, or its ``base_model``'s when the folder holds none.

    Parameters
    ----------
    identifier : str or path-like
        A checkpoint folder or a hub id (see :func:`resolve_model_dir`).
    cache_dir : str, optional
        Hugging Face cache folder for hub ids (also used for ``base_model``).
    trust_remote_code : bool, default False
        Let the tokenizer's own Python code run.

    Returns
    -------
    transformers.PreTrainedTokenizerBase
        The tokenizer from ``AutoTokenizer.from_pretrained``.

    Raises
    ------
    CheckpointError
        The folder holds no tokenizer files and its config names no ``base_model``, or the
        tokenizer cannot be loaded.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dask_classify.model import load_tokenizer
    >>> from dask_classify.testing import build_tokenizer
    >>> tok_dir = tempfile.mkdtemp()
    >>> _ = build_tokenizer(tok_dir, "bert", ["a good film", "a bad film"])
    >>> tok = load_tokenizer(tok_dir)
    >>> tok.convert_ids_to_tokens(tok("a good film")["input_ids"])
    ['[CLS]', 'a', 'good', 'film', '[SEP]']

    A checkpoint without tokenizer files falls back to its ``base_model``:

    >>> ckpt = Path(tempfile.mkdtemp())
    >>> _ = (ckpt / "config.json").write_text(json.dumps({"base_model": tok_dir}))
    >>> load_tokenizer(ckpt)("a good film")["input_ids"] == tok("a good film")["input_ids"]
    True
    """
    folder = resolve_model_dir(identifier, cache_dir)
    if any((folder / name).is_file() for name in TOKENIZER_FILES):
        source: str = str(folder)
    else:
        base = read_config(folder).get("base_model")
        if not base:
            raise CheckpointError(f"{folder} holds no tokenizer files ({list(TOKENIZER_FILES)})")
        source = str(base)
    try:
        return AutoTokenizer.from_pretrained(
            source, cache_dir=cache_dir, trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise CheckpointError(f"could not load the tokenizer from {source}: {exc}") from exc


def save_checkpoint(model: Deberta, tokenizer: Any, folder: str | os.PathLike) -> Path:
    """Save ``model`` and ``tokenizer`` as one folder in the NVIDIA checkpoint format.

    Parameters
    ----------
    model : Deberta
        The classifier; its ``config`` (with ``id2label``/``label2id`` rewritten from the model)
        becomes ``config.json`` and its weights ``model.safetensors``.
    tokenizer : transformers tokenizer
        Saved into the same folder, so the checkpoint loads without its ``base_model``.
    folder : str or path-like
        Output folder (created, with its parents, if missing; files in it are overwritten).

    Returns
    -------
    pathlib.Path
        ``folder``. For an atomic write, see :func:`dask_classify.train.trainer.export_checkpoint`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dask_classify import Deberta, load_model, save_checkpoint
    >>> from dask_classify.testing import build_tokenizer, tiny_backbone_config
    >>> tok = build_tokenizer(tempfile.mkdtemp(), "bert", ["a good film", "a bad film"])
    >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=len(tok))}
    >>> folder = save_checkpoint(Deberta(cfg), tok, Path(tempfile.mkdtemp()) / "ckpt")
    >>> sorted(p.name for p in folder.glob("*.json"))
    ['config.json', 'tokenizer.json', 'tokenizer_config.json']
    >>> load_model(folder)[1].labels
    ['neg', 'pos']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    # save_pretrained writes the config given at construction; keep ours authoritative.
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    config["id2label"] = {str(k): v for k, v in model.id2label.items()}
    config["label2id"] = {v: int(k) for k, v in model.id2label.items()}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tokenizer.save_pretrained(str(folder))
    return folder
