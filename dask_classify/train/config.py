"""Training configuration: the packaged defaults, a user YAML and dotted overrides, validated.

The layout is NeMo's text-classification config (``trainer``, ``model.language_model``,
``model.dataset``, ``model.classifier_head``, ``model.{train,validation,test}_ds``, ``model.optim``,
``exp_manager``); the defaults live in ``dask_classify/conf/train.yaml``. Configs are merged in
OmegaConf *struct* mode, so a key the defaults do not define is an error that names the key (and
suggests the closest known one) instead of a setting that silently does nothing. The ``trainer``
section also accepts every other ``lightning.Trainer`` argument, except those ``exp_manager`` owns.

NeMo 1.x configs and command lines are read as they were meant: each layer (a YAML file, the
overrides) first goes through :func:`dask_classify.train.nemo.translate` (``trainer.gpus``,
``accelerator: ddp``, ``amp_level``, a ``hydra:`` section, top-level ``optim.*``, ...).
Overrides use Hydra's syntax: ``key=value``, ``+key=value``, ``++key=value``, ``~key`` and
``~key=value``.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from dask_classify.engine.model import HEAD_ACTIVATIONS
from dask_classify.errors import (
    ConfigError,  # noqa: F401 - its home before 0.2
    )

__all__ = ["ConfigError", "default_config", "load_config", "validate_config"]

#: ``lightning.Trainer`` arguments that ``exp_manager`` sets; the trainer section must not.
_RESERVED_TRAINER_KEYS = {
    "logger": "exp_manager.create_csv_logger / create_tensorboard_logger",
    "callbacks": "exp_manager.checkpoint_callback_params",
    "enable_checkpointing": "exp_manager.create_checkpoint_callback",
    "default_root_dir": "exp_manager.exp_dir",
}
_OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = {
    "warmupannealing": "linear",
    "linear": "linear",
    "cosineannealing": "cosine",
    "cosine": "cosine",
    "constant": "constant",
    "none": "constant",
}
_SPLITS = ("train_ds", "validation_ds", "test_ds")


def default_config() -> DictConfig:
    """The packaged default config (``dask_classify/conf/train.yaml``), in struct mode.

    Returns
    -------
    omegaconf.DictConfig
        A fresh copy (changing it changes nothing else); unresolved and not validated, see
        :func:`load_config` for the merged, validated config.

    Examples
    --------
    >>> from dask_classify.train.config import default_config
    >>> cfg = default_config()
    >>> cfg.trainer.precision, cfg.model.dataset.class_balancing
    ('32-true', None)
    """
    text = resources.files("dask_classify").joinpath("conf/train.yaml").read_text("utf-8")
    cfg = OmegaConf.create(text)
    OmegaConf.set_struct(cfg, True)
    return cfg


def _trainer_arguments() -> set[str]:
    import lightning

    params = inspect.signature(lightning.Trainer.__init__).parameters
    return {name for name in params if name != "self"}


def _all_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(cfg, DictConfig):
        for key in cfg.keys():
            full = f"{prefix}{key}"
            keys.append(full)
            keys.extend(_all_keys(cfg._get_node(key), full + "."))
    return keys


def _unknown_key_error(base: DictConfig, key: str, source: str) -> ConfigError:
    known = _all_keys(base)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {key!r} (from {source}){hint}")


def _check_keys(base: DictConfig, other: DictConfig, source: str, trainer_args: set[str],
                prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first key of ``other`` that ``base`` does not define.

    Trainer arguments missing from the defaults are added to ``base`` (they are valid keys).
    """
    for key in other.keys():
        full = f"{prefix}{key}"
        if full.startswith("trainer.") and full.count(".") == 1:
            if key in _RESERVED_TRAINER_KEYS:
                raise ConfigError(f"config key {full!r} cannot be set: it is managed by "
                                  f"{_RESERVED_TRAINER_KEYS[key]}")
            if key not in base:
                if key not in trainer_args:
                    close = difflib.get_close_matches(key, sorted(trainer_args), n=1)
                    hint = f"; did you mean 'trainer.{close[0]}'?" if close else ""
                    raise ConfigError(f"unknown config key {full!r} (from {source}): not a "
                                      f"lightning.Trainer argument{hint}")
                with _open(base):
                    base[key] = None
            continue
        if key not in base:
            raise _unknown_key_error(_root(base), full, source)
        sub_base, sub_other = base._get_node(key), other._get_node(key)
        if isinstance(sub_base, DictConfig) and isinstance(sub_other, DictConfig):
            _check_keys(sub_base, sub_other, source, trainer_args, full + ".")


def _root(cfg: DictConfig) -> DictConfig:
    root = cfg
    while root._get_parent() is not None:
        root = root._get_parent()
    return root


class _open:
    """Context manager that lifts struct mode on one config node."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def __enter__(self) -> DictConfig:
        OmegaConf.set_struct(self.cfg, False)
        return self.cfg

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_struct(self.cfg, True)


def _as_config(source: Any, name: str) -> DictConfig:
    if isinstance(source, DictConfig):
        return source
    if isinstance(source, Mapping):
        return OmegaConf.create(dict(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            loaded = OmegaConf.load(path)
        except Exception as exc:  # yaml errors come in several types
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
        if loaded is None:
            return OmegaConf.create({})
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
        return loaded
    raise ConfigError(f"{name} must be a path, a mapping or a DictConfig, not "
                      f"{type(source).__name__}")


def _parse_overrides(overrides: Iterable[str]) -> tuple[DictConfig, list[tuple[str, Any]]]:
    """Hydra-style overrides: the layer they set and the keys they delete (``~key[=value]``).

    ``key=value`` sets, ``+key=value`` (Hydra: add) and ``++key=value`` (add or override) set
    too: every key must still be one this config knows, so a misspelt one stays an error.
    """
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    sets: list[str] = []
    deletes: list[tuple[str, Any]] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        if item.startswith("~"):
            key, eq, value = item[1:].partition("=")
            if not key.strip():
                raise ConfigError(f"override {item!r} must look like ~key.sub or ~key.sub=value")
            parsed = _MISSING
            if eq:
                parsed = OmegaConf.from_dotlist([f"v={value}"]).v if value else None
            deletes.append((key.strip(), parsed))
            continue
        body = item[2:] if item.startswith("++") else item[1:] if item.startswith("+") else item
        if "=" not in body or body.startswith("="):
            raise ConfigError(f"override {item!r} must look like key.sub=value (or +key=value, "
                              "~key)")
        sets.append(body)
    try:
        return OmegaConf.from_dotlist(sets), deletes
    except OmegaConfBaseException as exc:
        raise ConfigError(f"could not parse overrides {items}: {exc}") from exc


_MISSING = object()


def _delete(cfg: DictConfig, defaults: DictConfig, key: str, expected: Any) -> None:
    """Hydra's ``~key``: the key goes back to its packaged default (or away, for an extra
    trainer argument); ``~key=value`` only when it holds ``value``."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        raise _unknown_key_error(cfg, key, "overrides")
    if expected is not _MISSING:
        current = OmegaConf.select(cfg, key)
        current = OmegaConf.to_container(current) if isinstance(current, (DictConfig,
                                                                           ListConfig)) else current
        if current != expected:
            raise ConfigError(f"override ~{key}={expected}: {key} is {current!r}, not "
                              f"{expected!r}")
    default = OmegaConf.select(defaults, key, default=_MISSING)
    with _open(parent):
        if default is _MISSING:
            del parent[leaf]
        else:
            parent[leaf] = default


def load_config(path: str | os.PathLike | Mapping[str, Any] | DictConfig | None = None,
                overrides: Sequence[str] = ()) -> DictConfig:
    """The training config: packaged defaults <- ``path`` <- dotted ``overrides``, validated.

    Parameters
    ----------
    path : str, path-like, mapping or DictConfig, optional
        A YAML file (or an already loaded mapping) with the user's settings; only the keys it
        sets change. None: the defaults alone.
    overrides : sequence of str, default ()
        Command-line style overrides, ``"model.train_ds.batch_size=16"``; values are parsed as
        YAML (``null``, numbers, booleans, ``[a, b]``). Hydra's ``+key=value`` and
        ``++key=value`` set a key too (it must still be a known key), ``~key`` puts it back to
        its packaged default (or removes an extra trainer argument), ``~key=value`` does so only
        when it holds ``value``.

    Returns
    -------
    omegaconf.DictConfig
        The merged config, interpolations resolved, in struct mode (reading or setting an unknown
        key raises).

    Raises
    ------
    ConfigError
        A missing or unparsable file, an unknown key (named, with the closest known key), a
        ``trainer`` key that ``exp_manager`` owns, a ``~key=value`` whose key holds another
        value, or an invalid value (see
        :func:`validate_config`). Required values (``pretrained_model_name``,
        ``train_ds.file_path``) are checked by :func:`validate_config` with ``for_training=True``,
        which :func:`dask_classify.train.train` calls.

    Examples
    --------
    >>> from dask_classify.train import load_config
    >>> cfg = load_config(overrides=["model.optim.lr=1e-4", "trainer.max_epochs=2"])
    >>> cfg.model.optim.lr, cfg.trainer.max_epochs
    (0.0001, 2)
    >>> cfg = load_config(overrides=["trainer.gpus=0", "optim.lr=3e-4", "~trainer.max_epochs"])
    >>> cfg.trainer.accelerator, cfg.model.optim.lr, cfg.trainer.max_epochs  # NeMo's spellings
    ('cpu', 0.0003, 3)
    >>> try:
    ...     load_config(overrides=["model.datset.num_classes=3"])
    ... except ValueError as err:
    ...     print(err)
    unknown config key 'model.datset' (from overrides); did you mean 'model.dataset'?
    """
    from dask_classify.train.nemo import emit, translate

    base = default_config()
    trainer_args = _trainer_arguments()
    layers: list[tuple[DictConfig, str]] = []
    deletes: list[tuple[str, Any]] = []
    if path is not None:
        source = str(path) if isinstance(path, (str, os.PathLike)) else "the given config"
        layers.append((_as_config(path, "path"), source))
    if overrides:
        sets, deletes = _parse_overrides(overrides)
        layers.append((sets, "overrides"))
    notes = []
    for raw, source in layers:
        layer, layer_notes = translate(raw, source)
        notes.extend(layer_notes)
        _check_keys(base, layer, source, trainer_args)
        try:
            base = OmegaConf.merge(base, layer)
        except ConfigKeyError as exc:  # pragma: no cover - _check_keys catches these first
            raise ConfigError(f"unknown config key {exc.full_key!r} (from {source})") from exc
        except OmegaConfBaseException as exc:
            raise ConfigError(f"invalid value for {getattr(exc, 'full_key', '?')!r} "
                              f"(from {source}): {exc.msg if hasattr(exc, 'msg') else exc}"
                              ) from exc
    for key, expected in deletes:
        _delete(base, default_config(), key, expected)
    missing = sorted(OmegaConf.missing_keys(base))
    if missing:
        raise ConfigError("invalid training config:\n  " + "\n  ".join(
            f"{key}: required (the config says ???)" for key in missing))
    try:
        OmegaConf.resolve(base)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"could not resolve the config: {exc}") from exc
    OmegaConf.set_struct(base, True)
    validate_config(base, for_training=False)
    emit(notes)
    return base


# ------------------------------------------------------------------------------ validation
#: How a check reports a problem: ``bad(key, message)``.
_Bad = Callable[[str, str], None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_config(cfg: DictConfig, for_training: bool = True) -> None:
    """Check the values of a merged config; raise one :class:`ConfigError` listing every problem.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        A config from :func:`load_config`.
    for_training : bool, default True
        Also require what a training run needs: ``model.language_model.pretrained_model_name``
        and ``model.train_ds.file_path``.

    Raises
    ------
    ConfigError
        Listing each bad key and why: ``num_classes`` below 2, ``lr`` not positive,
        ``class_balancing`` not ``null``/``weighted_loss``, batch sizes below 1, ``num_samples``
        of 0, dropout outside ``[0, 1)``, an unknown optimizer or schedule, and so on.

    Examples
    --------
    >>> from dask_classify.train.config import load_config, validate_config
    >>> cfg = load_config()
    >>> try:
    ...     validate_config(cfg)
    ... except ValueError as err:
    ...     print(err)
    invalid training config:
      model.language_model.pretrained_model_name: required (a folder or hub id of an encoder)
      model.train_ds.file_path: required (a sentence<TAB>label TSV file)
    """
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{key}: {message}")

    for check in (_check_model, _check_dataset, _check_head, _check_splits, _check_optim,
                  _check_exp_manager, _check_trainer):
        check(cfg, bad, for_training)
    if problems:
        raise ConfigError("invalid training config:\n  " + "\n  ".join(problems))


def _check_model(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """The encoder, tokenizer and paths of ``model``."""
    m = cfg.model
    lm = m.language_model
    if cfg.seed is not None and not _is_int(cfg.seed):
        bad("seed", f"must be an integer or null, not {cfg.seed!r}")
    name = m.language_model.pretrained_model_name
    if name is not None and (not isinstance(name, str) or not name.strip()):
        bad("model.language_model.pretrained_model_name", f"must be a non-empty string, not "
                                                           f"{name!r}")
    if for_training and name is None and not (lm.config_file or lm.config):
        bad("model.language_model.pretrained_model_name",
            "required (a folder or hub id of an encoder)")
    if for_training and name is None and m.tokenizer.tokenizer_name is None:
        if lm.config_file or lm.config:
            bad("model.tokenizer.tokenizer_name", "required when the encoder comes from "
                                                  "model.language_model.config(_file)")
    if lm.config is not None and not isinstance(lm.config, DictConfig):
        bad("model.language_model.config", f"must be a mapping or null, not {lm.config!r}")
    for key in ("config_file", "lm_checkpoint"):
        if lm[key] is not None and (not isinstance(lm[key], str) or not lm[key].strip()):
            bad(f"model.language_model.{key}", f"must be a path or null, not {lm[key]!r}")
    if m.nemo_path is not None and (not isinstance(m.nemo_path, str) or not m.nemo_path.strip()):
        bad("model.nemo_path", f"must be a path or null, not {m.nemo_path!r}")
    samples = m.infer_samples
    if samples is not None and (not isinstance(samples, ListConfig)
                                or not all(isinstance(t, str) for t in samples)):
        bad("model.infer_samples", f"must be a list of texts, not {samples!r}")
    if not isinstance(m.dataset.use_cache, bool):
        bad("model.dataset.use_cache", f"must be true or false, not {m.dataset.use_cache!r}")
    tok = m.tokenizer.tokenizer_name
    if tok is not None and (not isinstance(tok, str) or not tok.strip()):
        bad("model.tokenizer.tokenizer_name", f"must be a non-empty string or null, not {tok!r}")


def _check_dataset(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """``model.dataset``."""
    m = cfg.model
    ds = m.dataset
    if ds.num_classes is not None and (not _is_int(ds.num_classes) or ds.num_classes < 2):
        bad("model.dataset.num_classes", f"must be an integer >= 2 or null, not "
                                         f"{ds.num_classes!r}")
    if not _is_int(ds.max_seq_length) or ds.max_seq_length < 2:
        bad("model.dataset.max_seq_length", f"must be an integer >= 2, not "
                                            f"{ds.max_seq_length!r}")
    if ds.class_balancing not in (None, "weighted_loss"):
        bad("model.dataset.class_balancing", f"must be null or 'weighted_loss', not "
                                             f"{ds.class_balancing!r}")
    if not isinstance(ds.do_lower_case, bool):
        bad("model.dataset.do_lower_case", f"must be true or false, not {ds.do_lower_case!r}")
    if ds.labels_file is not None and not isinstance(ds.labels_file, str):
        bad("model.dataset.labels_file", f"must be a path or null, not {ds.labels_file!r}")


def _check_head(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """``model.classifier_head``."""
    m = cfg.model
    head = m.classifier_head
    if not _is_int(head.num_output_layers) or head.num_output_layers < 1:
        bad("model.classifier_head.num_output_layers",
            f"must be an integer >= 1, not {head.num_output_layers!r}")
    if not isinstance(head.activation, str) or head.activation.lower() not in HEAD_ACTIVATIONS:
        bad("model.classifier_head.activation", f"must be one of {sorted(HEAD_ACTIVATIONS)}, "
                                                f"not {head.activation!r}")
    if not _is_number(head.fc_dropout) or not 0 <= head.fc_dropout < 1:
        bad("model.classifier_head.fc_dropout", f"must be a number in [0, 1), not "
                                                f"{head.fc_dropout!r}")


def _check_splits(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """``model.train_ds``, ``validation_ds`` and ``test_ds``."""
    m = cfg.model
    for split in _SPLITS:
        d = m[split]
        key = f"model.{split}"
        if d.file_path is not None and (not isinstance(d.file_path, str) or not d.file_path):
            bad(f"{key}.file_path", f"must be a path or null, not {d.file_path!r}")
        if not _is_int(d.batch_size) or d.batch_size < 1:
            bad(f"{key}.batch_size", f"must be an integer >= 1, not {d.batch_size!r}")
        if d.num_samples is not None and (not _is_int(d.num_samples) or d.num_samples == 0
                                          or d.num_samples < -1):
            bad(f"{key}.num_samples", f"must be -1 or null (all rows) or an integer >= 1, not "
                                      f"{d.num_samples!r}")
        if not _is_int(d.num_workers) or d.num_workers < 0:
            bad(f"{key}.num_workers", f"must be an integer >= 0, not {d.num_workers!r}")
        for flag in ("shuffle", "drop_last", "pin_memory", "group_by_length"):
            if not isinstance(d[flag], bool):
                bad(f"{key}.{flag}", f"must be true or false, not {d[flag]!r}")
    if for_training and m.train_ds.file_path is None:
        bad("model.train_ds.file_path", "required (a sentence<TAB>label TSV file)")


def _check_optim(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """``model.optim`` and its schedule."""
    m = cfg.model
    opt = m.optim
    if not isinstance(opt.name, str) or opt.name.lower() not in _OPTIMIZERS:
        bad("model.optim.name", f"must be one of {list(_OPTIMIZERS)}, not {opt.name!r}")
    if opt.lr is not None and (not _is_number(opt.lr) or not opt.lr > 0
                               or not math.isfinite(opt.lr)):
        bad("model.optim.lr", f"must be a number > 0 or null (chosen for you), not {opt.lr!r}")
    if not _is_number(opt.weight_decay) or opt.weight_decay < 0:
        bad("model.optim.weight_decay", f"must be a number >= 0, not {opt.weight_decay!r}")
    betas = opt.betas
    if (not isinstance(betas, (ListConfig, list, tuple)) or len(betas) != 2
            or not all(_is_number(b) and 0 <= b < 1 for b in betas)):
        bad("model.optim.betas", f"must be two numbers in [0, 1), not {betas!r}")
    if not _is_number(opt.momentum) or opt.momentum < 0:
        bad("model.optim.momentum", f"must be a number >= 0, not {opt.momentum!r}")
    sched = opt.sched
    if not isinstance(sched.name, str) or sched.name.lower() not in SCHEDULES:
        bad("model.optim.sched.name", "must be one of WarmupAnnealing, CosineAnnealing, "
                                      f"constant, not {sched.name!r}")
    if sched.warmup_steps is not None and (not _is_int(sched.warmup_steps)
                                           or sched.warmup_steps < 0):
        bad("model.optim.sched.warmup_steps", f"must be an integer >= 0 or null, not "
                                              f"{sched.warmup_steps!r}")
    if sched.warmup_ratio is not None and (not _is_number(sched.warmup_ratio)
                                           or not 0 <= sched.warmup_ratio < 1):
        bad("model.optim.sched.warmup_ratio", f"must be a number in [0, 1) or null, not "
                                              f"{sched.warmup_ratio!r}")


def _check_exp_manager(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """``exp_manager``: folders, checkpoints, loggers."""
    em = cfg.exp_manager
    if em.exp_dir is not None and (not isinstance(em.exp_dir, str) or not em.exp_dir.strip()):
        bad("exp_manager.exp_dir", f"must be a non-empty path or null, not {em.exp_dir!r}")
    if em.name is not None and (not isinstance(em.name, str) or not em.name.strip()
                                or "/" in em.name or em.name in (".", "..")):
        bad("exp_manager.name", f"must be a folder name or null, not {em.name!r}")
    params = em.checkpoint_callback_params
    if params.mode not in ("max", "min"):
        bad("exp_manager.checkpoint_callback_params.mode", f"must be 'max' or 'min', not "
                                                           f"{params.mode!r}")
    if params.monitor is not None and not isinstance(params.monitor, str):
        bad("exp_manager.checkpoint_callback_params.monitor",
            f"must be a metric name or null, not {params.monitor!r}")
    if not _is_int(params.save_top_k) or params.save_top_k < -1:
        bad("exp_manager.checkpoint_callback_params.save_top_k",
            f"must be an integer >= -1, not {params.save_top_k!r}")
    if em.resume_from_checkpoint is not None and not isinstance(em.resume_from_checkpoint, str):
        bad("exp_manager.resume_from_checkpoint", f"must be a path or null, not "
                                                  f"{em.resume_from_checkpoint!r}")
    for flag in ("create_checkpoint_callback", "resume_if_exists", "resume_ignore_no_checkpoint",
                 "create_csv_logger", "create_tensorboard_logger"):
        if not isinstance(em[flag], bool):
            bad(f"exp_manager.{flag}", f"must be true or false, not {em[flag]!r}")


def _check_trainer(cfg: DictConfig, bad: _Bad, for_training: bool) -> None:
    """``trainer.precision`` (the other ``trainer`` keys go to Lightning as they are)."""
    precision = cfg.trainer.get("precision")
    if precision is not None and str(precision) not in _PRECISIONS:
        bad("trainer.precision", f"must be one of {sorted(_PRECISIONS)}, not {precision!r}")


_PRECISIONS = {"64", "32", "16", "bf16", "64-true", "32-true", "16-true", "bf16-true", "16-mixed",
               "bf16-mixed", "transformer-engine", "transformer-engine-float16"}
