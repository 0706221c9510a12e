"""The encoder of a training run, as NeMo's ``model.language_model`` section describes it.

* ``pretrained_model_name`` alone: the pretrained encoder (``AutoModel.from_pretrained``);
* ``config_file`` (a ``config.json``) or ``config`` (a mapping): an encoder of that architecture
  with *random* weights, as in NeMo (``config_file`` wins when both are given); the model type
  comes from the config's ``model_type`` or else from ``pretrained_model_name``;
* ``lm_checkpoint``: a weights file loaded into that encoder afterwards: ``.safetensors``,
  a PyTorch state dict (``.bin``/``.pt``) or a Lightning ``.ckpt`` (its ``state_dict``). Keys
  may carry a wrapper's prefix (``model.`` of this package's checkpoints, ``model.model.`` of its
  Lightning checkpoints, ``bert.``, ``module.``, ...): the prefix that matches most keys is
  stripped.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dask_classify.train.config import ConfigError
from dask_classify.train.nemo import ConfigWarning

__all__ = ["build_encoder", "load_encoder_weights"]

logger = logging.getLogger(__name__)

_PREFIXES = ("", "model.model.", "model.", "module.", "encoder.", "bert.", "roberta.",
             "deberta.", "distilbert.", "model.bert.", "bert_model.")


def _config_dict(lm: Any) -> dict[str, Any] | None:
    config_file, config = lm.get("config_file"), lm.get("config")
    if config_file and config:
        warnings.warn("model.language_model: both config_file and config are given; "
                      "config_file is used (as in NeMo)", ConfigWarning, stacklevel=3)
    if config_file:
        path = Path(os.fspath(config_file)).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.language_model.config_file: {str(path)!r} is not a file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"model.language_model.config_file: {str(path)!r} is not JSON "
                              f"({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"model.language_model.config_file: {str(path)!r} must hold a "
                              "JSON object")
        return data
    if config:
        data = OmegaConf.to_container(config, resolve=True) if isinstance(
            config, DictConfig) else dict(config)
        if not isinstance(data, dict):
            raise ConfigError("model.language_model.config must be a mapping")
        return data
    return None


def build_encoder(lm: Any) -> Any:
    """The encoder ``model.language_model`` describes (see the module docstring).

    Parameters
    ----------
    lm : DictConfig or mapping
        The ``model.language_model`` section.

    Returns
    -------
    transformers.PreTrainedModel
        The encoder, on the CPU.

    Raises
    ------
    ConfigError
        A missing or unreadable ``config_file``, an unknown model type, or an ``lm_checkpoint``
        that is missing, a ``.nemo`` archive, or whose weights do not fit the encoder.

    Examples
    --------
    >>> from dask_classify.testing import tiny_backbone_config
    >>> lm = {"pretrained_model_name": None, "config": tiny_backbone_config("bert", vocab_size=100),
    ...       "config_file": None, "lm_checkpoint": None}
    >>> encoder = build_encoder(lm)  # random weights of that architecture
    >>> encoder.config.model_type, encoder.config.hidden_size
    ('bert', 64)
    """
    from transformers import AutoConfig, AutoModel

    name = lm.get("pretrained_model_name")
    data = _config_dict(lm)
    if data is not None:
        data = dict(data)
        model_type = data.pop("model_type", None)
        for key in ("_name_or_path", "architectures", "transformers_version"):
            data.pop(key, None)
        try:
            if model_type is None:
                if not name:
                    raise ConfigError("model.language_model.config needs a model_type (or a "
                                      "pretrained_model_name to take it from)")
                model_type = AutoConfig.from_pretrained(os.fspath(name)).model_type
            hf_config = AutoConfig.for_model(model_type, **data)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"model.language_model.config: {exc}") from exc
        encoder = AutoModel.from_config(hf_config)
        logger.info("encoder: %s built from its config with random weights", model_type)
    else:
        encoder = AutoModel.from_pretrained(os.fspath(name))
    checkpoint = lm.get("lm_checkpoint")
    if checkpoint:
        load_encoder_weights(encoder, checkpoint)
    return encoder


def _read_state(path: Path) -> dict[str, Any]:
    if path.suffix == ".nemo":
        raise ConfigError(f"model.language_model.lm_checkpoint: {str(path)!r} is a .nemo "
                          "archive; extract its weights first (tar -xf FILE.nemo "
                          "./model_weights.ckpt) and give that file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ConfigError(f"model.language_model.lm_checkpoint: {str(path)!r} is not a "
                          f"weights file torch can load safely ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"model.language_model.lm_checkpoint: {str(path)!r} holds no state "
                          "dict")
    return state


def load_encoder_weights(encoder: Any, path: str | os.PathLike) -> list[str]:
    """Load a weights file into ``encoder`` (prefix-tolerant, see the module docstring).

    Parameters
    ----------
    encoder : torch.nn.Module
        The encoder.
    path : str or path-like
        ``.safetensors``, ``.bin``/``.pt`` state dict or Lightning ``.ckpt``.

    Returns
    -------
    list of str
        Encoder keys the file did not hold (left as they were; logged as a warning).

    Raises
    ------
    ConfigError
        A missing file, a ``.nemo`` archive, a file without a state dict, fewer than half of
        the encoder's weights found, or a weight of another shape.

    Examples
    --------
    >>> import tempfile, torch
    >>> from transformers import AutoConfig, AutoModel
    >>> from dask_classify.testing import tiny_backbone_config
    >>> make = lambda: AutoModel.from_config(AutoConfig.for_model(
    ...     **tiny_backbone_config("bert", vocab_size=100)))
    >>> source, target = make(), make()
    >>> path = tempfile.mkdtemp() + "/weights.pt"
    >>> torch.save({"bert." + k: v for k, v in source.state_dict().items()}, path)
    >>> load_encoder_weights(target, path)
    []
    >>> torch.equal(source.embeddings.word_embeddings.weight,
    ...             target.embeddings.word_embeddings.weight)
    True
    """
    path = Path(os.fspath(path)).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.language_model.lm_checkpoint: {str(path)!r} is not a file")
    state = _read_state(path)
    own = encoder.state_dict()
    best: dict[str, Any] = {}
    for prefix in _PREFIXES:
        candidate = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        candidate = {k: v for k, v in candidate.items() if k in own}
        if len(candidate) > len(best):
            best = candidate
    weights = [k for k, v in own.items() if v.is_floating_point()]
    found = [k for k in weights if k in best]
    if len(found) < max(1, len(weights) // 2):
        raise ConfigError(f"model.language_model.lm_checkpoint: {str(path)!r} holds "
                          f"{len(found)} of the encoder's {len(weights)} weights; is it a "
                          f"checkpoint of this architecture ({type(encoder).__name__})?")
    for key, value in best.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ConfigError(f"model.language_model.lm_checkpoint: {key} has shape "
                              f"{tuple(value.shape)} in {str(path)!r}, the encoder "
                              f"{tuple(own[key].shape)}")
    encoder.load_state_dict(best, strict=False)
    missing = [k for k in weights if k not in best]
    if missing:
        logger.warning("model.language_model.lm_checkpoint: %d encoder weights not in %s, "
                       "kept as they were: %s", len(missing), path, ", ".join(missing[:5]))
    return missing
