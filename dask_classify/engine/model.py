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
import os
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
    PretrainedConfig,
)

from dask_classify.checkpoint import (
    problem_type,
    read_config,
    resolve_model_dir,
)
from dask_classify.errors import CheckpointError
from dask_classify.weights import PICKLE_NAMES, SAFETENSORS_NAME

__all__ = ["Deberta", "HFSequenceClassifier", "TOKENIZER_FILES", "backbone_config", "load_deberta",
           "load_weights"]

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

def backbone_config(config: dict[str, Any], cache_dir: str | None = None) -> PretrainedConfig:
    """The backbone's transformers config named by a checkpoint's ``config.json``.

    ``backbone_config`` (the backbone's config embedded as a dict, written by our trainer) when
    present, else the config of ``base_model`` (a hub id or a folder; nothing but its
    ``config.json`` is read). NVIDIA's published checkpoints name ``base_model``.

    Raises
    ------
    CheckpointError
        Neither key, an embedded config without ``model_type``, or a ``base_model`` whose config
        cannot be loaded.

    Examples
    --------
    >>> from dask_classify.engine.model import backbone_config
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = backbone_config({"backbone_config": tiny_backbone_config("bert", vocab_size=100)})
    >>> cfg.model_type, cfg.vocab_size
    ('bert', 100)
    """
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
        backbone = backbone_config(self.config, self.config.get("_cache_dir"))
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
    """Wraps an ``AutoModelForSequenceClassification`` to return what its head means.

    The output follows the checkpoint's ``config.problem_type`` (see :func:`problem_type`):
    the float32 softmax for ``single_label_classification``, per-label sigmoids for
    ``multi_label_classification``, and the raw scores for ``regression`` (which is also what a
    one-output head without a ``problem_type`` is).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A sequence classifier whose output has ``.logits``.

    Attributes
    ----------
    problem_type : str
        ``"single_label_classification"``, ``"multi_label_classification"`` or ``"regression"``.
    regression : bool
        True for a regression head (outputs are returned as they are).

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
    >>> model.problem_type, model.id2label
    ('single_label_classification', {0: 'a', 1: 'b', 2: 'c'})
    >>> tuple(model(torch.tensor([[2, 7, 3]]), torch.tensor([[1, 1, 1]])).shape)
    (1, 3)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.problem_type = problem_type(model.config.to_dict())
        self.regression = self.problem_type == "regression"

    @property
    def id2label(self) -> dict[int, str]:
        """The wrapped model's label names by class id (integer keys)."""
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Probabilities (softmax or sigmoids), or the raw scores of a regression head.

        Parameters
        ----------
        input_ids : torch.Tensor of int64, shape ``(batch, seq_len)``
            Token ids, right-padded (plain transformers poolers read the first position).
        attention_mask : torch.Tensor of int, shape ``(batch, seq_len)``
            1 for real tokens, 0 for padding.

        Returns
        -------
        torch.Tensor of float32, shape ``(batch, num_labels)``
            Single-label: rows sum to 1; multi-label: each value in [0, 1]; regression: the raw
            scores.
        """
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        if self.problem_type == "regression":
            return logits
        if self.problem_type == "multi_label_classification":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)


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
    >>> from dask_classify.engine.model import load_deberta
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
    return load_weights(model, folder).eval()


def load_weights(model: nn.Module, folder: str | os.PathLike) -> nn.Module:
    """Load the weights in ``folder`` into ``model``, every key matching (strict).

    For classifiers that build their own module (see
    :meth:`dask_classify.DistributedDataClassifier.build_model`): the keys of
    ``model.safetensors`` (or a plain weights pickle) must be exactly ``model``'s.

    Parameters
    ----------
    model : torch.nn.Module
        The module, built from the checkpoint's config.
    folder : str or path-like
        A local checkpoint folder.

    Returns
    -------
    torch.nn.Module
        ``model``, its weights loaded.

    Raises
    ------
    CheckpointError
        No weights, or weights that do not match (missing, unexpected or mis-shaped keys).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from safetensors.torch import save_file
    >>> from dask_classify.engine.model import CheckpointError, load_weights
    >>> folder = Path(tempfile.mkdtemp())
    >>> save_file({"weight": torch.ones(2, 3), "bias": torch.zeros(2)},
    ...           str(folder / "model.safetensors"))
    >>> float(load_weights(torch.nn.Linear(3, 2), folder).weight.detach().sum())
    6.0
    >>> try:
    ...     load_weights(torch.nn.Linear(3, 4), folder)
    ... except CheckpointError:
    ...     print("refused")
    refused
    """
    folder = Path(folder)
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
    return model
