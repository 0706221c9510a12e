"""NeMo 1.x text-classification configs and command lines, read as they were meant.

NVIDIA NeMo's ``examples/nlp/text_classification/conf/text_classification_config.yaml`` (NeMo 1.x)
targets PyTorch Lightning 1.x and Hydra. :func:`translate` turns one layer of such a config (a
YAML file or the overrides of one command line) into this package's config, key by key:

========================================  =====================================================
NeMo 1.x                                   here (Lightning 2)
========================================  =====================================================
``trainer.gpus: 0 | N | [0, 1] | -1``      ``trainer.accelerator`` cpu/gpu + ``trainer.devices``
                                           (no GPU on this machine: the CPU, one process, and a
                                           warning)
``trainer.accelerator: ddp`` (and          ``trainer.strategy: ddp`` (``ddp_cpu``: ddp on the
``distributed_backend``, ``ddp_spawn``,    CPU; ``dp``/``ddp2``, gone from Lightning 2: ddp,
``ddp_cpu``, ``dp``, ``ddp2``)             with a warning)
``trainer.precision: 16 | 32 | 64``,       ``trainer.precision: 16-mixed | 32-true | 64-true``;
``trainer.amp_level: O0..O3``              O1/O2 need precision 16 (as in NeMo), O3: 16-true
``trainer.resume_from_checkpoint``         ``exp_manager.resume_from_checkpoint``
``trainer.checkpoint_callback/logger:      dropped (``exp_manager`` provides them, as in NeMo);
false``                                    true is an error naming the ``exp_manager`` key
``trainer.max_steps: null``                ``-1``
``model.class_labels.class_labels_file``   ``model.dataset.labels_file``
``model.training_ds`` (NeMo's docs)        ``model.train_ds``, with a note
top-level ``optim.*`` (NeMo's docs)        ``model.optim.*``, with a note
``exp_manager: null``                      no checkpoints and no loggers (``best_model/`` still)
``exp_manager.explicit_log_dir``           ``exp_manager.exp_dir``
========================================  =====================================================

Other Lightning 1.x trainer arguments are translated where Lightning 2 has an equivalent
(``progress_bar_refresh_rate``, ``weights_summary``, ``replace_sampler_ddp``,
``num_processes``, ...). Keys that mean nothing here (``hydra``, ``amp_backend``,
``exp_manager.version``, ``model.tokenizer.special_tokens`` with a value, ...) are dropped; when
they hold anything but NeMo's own default, a :class:`ConfigWarning` names them, once. Every key
this module does not know is left alone, so a misspelt key still fails in
:func:`dask_classify.train.config.load_config` with the closest valid key.

Examples
--------
>>> from omegaconf import OmegaConf
>>> from dask_classify.train.nemo import translate
>>> layer = OmegaConf.create({"trainer": {"gpus": 0, "accelerator": "ddp", "precision": 32,
...                                       "amp_level": "O0", "checkpoint_callback": False},
...                           "optim": {"lr": 1e-4}})
>>> out, notes = translate(layer, "example")
>>> OmegaConf.to_container(out)["trainer"]
{'precision': '32-true', 'accelerator': 'cpu', 'devices': 1, 'strategy': 'ddp'}
>>> out.model.optim.lr
0.0001
>>> [n.key for n in notes]
['optim']
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["ConfigWarning", "Note", "emit", "translate"]


class ConfigWarning(UserWarning):
    """A config key that has no meaning here (it is ignored), or a setting that was adjusted."""


@dataclass(frozen=True)
class Note:
    """One message about a translated key: a warning (``warn=True``) or an informational note."""

    key: str
    message: str
    warn: bool = True


_MISSING = object()
#: NeMo's own ``hydra`` section (silently dropped; anything else warns).
_NEMO_HYDRA = {"run": {"dir": "."}, "job_logging": {"root": {"handlers": None}}}
#: Lightning 1.x strategies once passed as ``accelerator`` / ``distributed_backend``.
_PL1_BACKENDS = {"ddp": "ddp", "ddp_spawn": "ddp_spawn", "ddp_cpu": "ddp", "dp": "ddp",
                 "ddp2": "ddp", "ddp_sharded": "ddp", "ddp_sharded_spawn": "ddp_spawn"}
#: Lightning 1.x trainer arguments gone in Lightning 2, with the value that meant "off".
_PL1_NO_MEANING = {
    "amp_backend": "native", "flush_logs_every_n_steps": 100, "terminate_on_nan": False,
    "track_grad_norm": -1, "auto_select_gpus": False, "move_metrics_to_cpu": False,
    "prepare_data_per_node": True, "stochastic_weight_avg": False, "auto_lr_find": False,
    "auto_scale_batch_size": False, "truncated_bptt_steps": None, "log_gpu_memory": None,
    "multiple_trainloader_mode": "max_size_cycle", "process_position": 0,
    "weights_save_path": None, "tpu_cores": None, "ipus": None, "resume_from_checkpoint": None,
    "automatic_optimization": True, "distributed_backend": None, "amp_level": None,
}
#: NeMo exp_manager keys with no meaning here, and their NeMo defaults.
_EXP_MANAGER_NO_MEANING = {
    "version": None, "use_datetime_version": True, "create_wandb_logger": False,
    "wandb_logger_kwargs": None, "create_mlflow_logger": False, "mlflow_logger_kwargs": None,
    "create_dllogger_logger": False, "dllogger_logger_kwargs": None,
    "create_clearml_logger": False, "clearml_logger_kwargs": None, "files_to_copy": None,
    "log_step_timing": True, "step_timing_kwargs": None, "log_local_rank_0_only": False,
    "log_global_rank_0_only": False, "resume_past_end": False,
    "create_early_stopping_callback": False, "early_stopping_callback_params": None,
    "max_time_per_run": None, "seconds_to_sleep": 5, "disable_validation_on_resume": True,
    "ema": None, "create_preemption_callback": True, "root_dir": None,
}
_CHECKPOINT_NO_MEANING = {
    "save_best_model": False, "always_save_nemo": False, "save_nemo_on_train_end": True,
    "filename": None, "every_n_epochs": 1, "every_n_train_steps": None, "dirpath": None,
    "model_parallel_size": None, "train_time_interval": None, "save_on_train_epoch_end": False,
    "save_weights_only": False, "verbose": True, "auto_insert_metric_name": True,
}
_NEMO_NULL_ONLY = ("vocab_file", "tokenizer_model", "special_tokens")


def _plain(value: Any) -> Any:
    return value if not isinstance(value, dict) else {k: _plain(v) for k, v in value.items()}


def _is_off(value: Any, default: Any) -> bool:
    return value is None or value == default or (value is False and not default)


def _gpus(value: Any, notes: list[Note]) -> tuple[str, Any]:
    """``(accelerator, devices)`` for NeMo's ``trainer.gpus``."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "0", "null", "None"):
            value = 0
        elif text == "-1":
            value = -1
        elif "," in text:  # Lightning 1.x: "0,1" lists GPU indexes, "2" counts GPUs
            value = [int(v) for v in text.split(",") if v.strip()]
        else:
            value = int(text)
    if value in (None, 0) or value == []:
        return "cpu", 1
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a dependency
        has_gpu = False
    if not has_gpu:
        notes.append(Note("trainer.gpus", f"trainer.gpus={value}: there is no GPU here, so the "
                                          "model trains on the CPU in one process (for two CPU "
                                          "processes: trainer.accelerator=cpu trainer.devices=2 "
                                          "trainer.strategy=ddp)"))
        return "cpu", 1
    return "gpu", value


def _translate_trainer(t: dict[str, Any], em: dict[str, Any], notes: list[Note]) -> None:
    backend = None
    for key in ("distributed_backend", "accelerator"):
        value = t.get(key)
        if isinstance(value, str) and value.lower() in _PL1_BACKENDS:
            backend = value.lower()
            del t[key]
    cpu_fallback = False
    if "gpus" in t:
        asked = t.pop("gpus")
        t["accelerator"], t["devices"] = _gpus(asked, notes)
        cpu_fallback = t["accelerator"] == "cpu" and asked not in (None, 0, "0", [])
    if "num_processes" in t:
        t["devices"] = t.pop("num_processes")
        t.setdefault("accelerator", "cpu")
    if backend is not None and not cpu_fallback:  # one CPU process needs no DDP
        t["strategy"] = _PL1_BACKENDS[backend]
        if backend == "ddp_cpu":
            t["accelerator"] = "cpu"
        if backend in ("dp", "ddp2", "ddp_sharded", "ddp_sharded_spawn"):
            notes.append(Note("trainer.accelerator",
                              f"trainer.accelerator={backend} does not exist in Lightning 2: "
                              f"training with strategy {_PL1_BACKENDS[backend]}"))

    precision = t.get("precision")
    amp = t.pop("amp_level", None)
    if amp is not None and str(amp).upper() != "O0":
        if str(precision) != "16":
            notes.append(Note("trainer.amp_level",
                              f"trainer.amp_level={amp} has no effect without trainer.precision="
                              "16 (as in NeMo): ignored"))
        elif str(amp).upper() == "O3":
            t["precision"] = precision = "16-true"
    if precision is not None:
        t["precision"] = {"16": "16-mixed", "32": "32-true", "64": "64-true",
                          "bf16": "bf16-mixed"}.get(str(precision), precision)

    for key in ("checkpoint_callback", "enable_checkpointing", "logger"):
        if key in t and not t[key]:
            del t[key]  # NeMo: "Provided by exp_manager"
        elif key == "checkpoint_callback" and key in t:
            from dask_classify.errors import ConfigError

            raise ConfigError("trainer.checkpoint_callback: exp_manager creates the checkpoint "
                            "callback here (exp_manager.create_checkpoint_callback); set "
                            "trainer.checkpoint_callback to false")
    if "resume_from_checkpoint" in t:
        path = t.pop("resume_from_checkpoint")
        if path is not None:
            em["resume_from_checkpoint"] = path
    if "max_steps" in t and t["max_steps"] is None:
        t["max_steps"] = -1
    if "progress_bar_refresh_rate" in t:
        rate = t.pop("progress_bar_refresh_rate")
        if rate is not None:
            t["enable_progress_bar"] = bool(rate)
    if "weights_summary" in t:
        t["enable_model_summary"] = t.pop("weights_summary") is not None
    if "replace_sampler_ddp" in t:
        t["use_distributed_sampler"] = t.pop("replace_sampler_ddp")
    if "reload_dataloaders_every_epoch" in t:
        t["reload_dataloaders_every_n_epochs"] = int(bool(t.pop("reload_dataloaders_every_epoch")))
    for key, default in _PL1_NO_MEANING.items():
        if key in t:
            value = t.pop(key)
            if not _is_off(value, default):
                notes.append(Note(f"trainer.{key}", f"trainer.{key}={value!r} is a Lightning 1.x "
                                                    "argument with no meaning here: ignored"))


def _translate_model(m: dict[str, Any], notes: list[Note]) -> None:
    if "training_ds" in m:
        notes.append(Note("model.training_ds", "model.training_ds (as in NeMo's documented "
                                               "command) read as model.train_ds", warn=False))
        train = m.setdefault("train_ds", {}) or {}
        train.update(m.pop("training_ds") or {})
        m["train_ds"] = train
    labels = m.pop("class_labels", None)
    if isinstance(labels, dict) and labels.get("class_labels_file") is not None:
        m.setdefault("dataset", {})["labels_file"] = labels["class_labels_file"]
    tok = m.get("tokenizer")
    if isinstance(tok, dict):
        for key in _NEMO_NULL_ONLY:
            if tok.get(key) is not None:
                notes.append(Note(f"model.tokenizer.{key}",
                                  f"model.tokenizer.{key} has no meaning here: the tokenizer of "
                                  "model.tokenizer.tokenizer_name (or of the encoder) is used as "
                                  "it was saved; ignored"))
                tok[key] = None
    sched = (m.get("optim") or {}).get("sched") if isinstance(m.get("optim"), dict) else None
    if isinstance(sched, dict):
        if sched.get("last_epoch") not in (None, -1):
            notes.append(Note("model.optim.sched.last_epoch",
                              "model.optim.sched.last_epoch has no meaning here (resume with "
                              "exp_manager.resume_from_checkpoint): ignored"))
            sched["last_epoch"] = -1
        if sched.get("reduce_on_plateau"):
            notes.append(Note("model.optim.sched.reduce_on_plateau",
                              "model.optim.sched.reduce_on_plateau is not supported here: the "
                              "schedule is model.optim.sched.name; ignored"))
            sched["reduce_on_plateau"] = False


def _translate_exp_manager(em: dict[str, Any], notes: list[Note]) -> None:
    for key, default in _EXP_MANAGER_NO_MEANING.items():
        if key in em:
            value = em.pop(key)
            if not _is_off(value, default):
                notes.append(Note(f"exp_manager.{key}", f"exp_manager.{key} has no meaning here: "
                                                        "ignored"))
    if "explicit_log_dir" in em:
        value = em.pop("explicit_log_dir")
        if value is not None:
            em["exp_dir"], em["name"] = value, None
    params = em.get("checkpoint_callback_params")
    if isinstance(params, dict):
        for key, default in _CHECKPOINT_NO_MEANING.items():
            if key in params:
                value = params.pop(key)
                if not _is_off(value, default) and key not in ("save_best_model",
                                                               "always_save_nemo"):
                    notes.append(Note(f"exp_manager.checkpoint_callback_params.{key}",
                                      f"exp_manager.checkpoint_callback_params.{key} has no "
                                      "meaning here: ignored"))


def translate(layer: DictConfig, source: str = "config") -> tuple[DictConfig, list[Note]]:
    """One config layer with NeMo 1.x / Lightning 1.x keys turned into this package's keys.

    Parameters
    ----------
    layer : omegaconf.DictConfig
        A user config or the overrides of one command line (not changed).
    source : str, default "config"
        Where it came from (unused in the result; for the caller's messages).

    Returns
    -------
    (DictConfig, list of Note)
        The translated layer (interpolations kept) and the notes and warnings about it, to
        pass to :func:`emit`.

    Raises
    ------
    dask_classify.train.config.ConfigError
        ``trainer.checkpoint_callback: true`` (exp_manager provides the callback).
    """
    data = OmegaConf.to_container(layer, resolve=False)
    assert isinstance(data, dict)
    notes: list[Note] = []
    if "hydra" in data:
        hydra = data.pop("hydra")
        if _plain(hydra) != _NEMO_HYDRA:
            notes.append(Note("hydra", "hydra: Hydra's own settings have no meaning here (the "
                                       "working directory stays, logs go to exp_manager.exp_dir):"
                                       " ignored"))
    if "pl" in data and isinstance(data["pl"], dict) and "trainer" in data["pl"]:
        data.setdefault("trainer", {}).update(data.pop("pl")["trainer"] or {})
    if "optim" in data:
        optim = data.pop("optim")
        names = ", ".join(f"optim.{k}" for k in (optim or {}))
        notes.append(Note("optim", f"{names} read as model.optim.* (the top-level optim of "
                                   "NeMo's documented command)", warn=False))
        model = data.setdefault("model", {}) or {}
        data["model"] = model
        merged = dict(model.get("optim") or {})
        merged.update(optim or {})
        model["optim"] = merged
    if "exp_manager" in data and data["exp_manager"] is None:
        notes.append(Note("exp_manager", "exp_manager=null: no checkpoints and no loggers "
                                         "(best_model/ is still written)", warn=False))
        data["exp_manager"] = {"create_checkpoint_callback": False, "create_csv_logger": False,
                               "create_tensorboard_logger": False}
    em = data.get("exp_manager") if isinstance(data.get("exp_manager"), dict) else {}
    if isinstance(data.get("trainer"), dict):
        _translate_trainer(data["trainer"], em, notes)
        if em and "exp_manager" not in data:
            data["exp_manager"] = em
    if em:
        _translate_exp_manager(em, notes)
        data["exp_manager"] = em
    if isinstance(data.get("model"), dict):
        _translate_model(data["model"], notes)
    return OmegaConf.create(data), notes


def _is_secondary_rank() -> bool:
    for var in ("LOCAL_RANK", "NODE_RANK", "RANK"):
        try:
            if int(os.environ.get(var, "0")) > 0:
                return True
        except ValueError:
            continue
    return False


def emit(notes: Iterable[Note], logger: Any = None) -> None:
    """Warn (:class:`ConfigWarning`) or log (``logger.info``) each note once, on rank 0 only.

    Parameters
    ----------
    notes : iterable of Note
        From :func:`translate`.
    logger : logging.Logger, optional
        Where informational notes go (default: this module's logger).
    """
    if _is_secondary_rank():
        return
    import logging

    log = logger or logging.getLogger(__name__)
    seen: set[str] = set()
    for note in notes:
        if note.message in seen:
            continue
        seen.add(note.message)
        if note.warn:
            warnings.warn(note.message, ConfigWarning, stacklevel=3)
        else:
            log.info(note.message)
