"""``train(config)``: fine-tune an encoder on TSV files and export the best model.

Output folder (``exp_manager.exp_dir``)::

    best_model/          the best model, in the checkpoint format DistributedDataClassifier loads
    checkpoints/         Lightning .ckpt files (the best one and last.ckpt, for resuming)
    logs/version_N/      CSV logs (metrics.csv, hparams.yaml)
    config.yaml          the resolved config of the run
    train_result.json    best score, per-epoch metrics, the validation and test reports
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from dask_classify.atomic import atomic_folder
from dask_classify.engine.loading import save_checkpoint
from dask_classify.engine.model import Deberta
from dask_classify.train.config import ConfigError, load_config, validate_config
from dask_classify.train.datamodule import TextClassificationDataModule, load_training_tokenizer
from dask_classify.train.metrics import write_json
from dask_classify.train.module import TextClassificationModule
from dask_classify.train.nemo import ConfigWarning

__all__ = ["BestModelExport", "TrainResult", "experiment_dir", "export_checkpoint",
           "export_folder", "train"]

logger = logging.getLogger(__name__)

BEST_MODEL_DIR = "best_model"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    exp_dir : Path
        The output folder.
    best_model : Path or None
        ``<exp_dir>/best_model``: load it with ``DistributedDataClassifier(best_model)``.
    best_checkpoint, last_checkpoint : str or None
        The Lightning ``.ckpt`` files (resume with ``exp_manager.resume_from_checkpoint``).
    monitor : str or None
        The metric that chose the best model (None: the last epoch's model is the best).
    best_score : float or None
        Its best value; ``best_epoch`` the epoch it was reached in.
    history : list of dict
        One entry per epoch trained in this run: ``epoch``, ``step``, ``train_loss`` and, when
        validation ran, ``val_loss``, ``val_accuracy``, ``val_f1_macro``, ... (see
        :func:`dask_classify.train.metrics.flat_metrics`), and
        ``train_examples_per_process`` (training examples each process saw that epoch) with
        ``train_examples_distinct`` (distinct examples all processes saw together).
    val_report, test_report : dict or None
        Full reports of the best model on the validation set and of the test set.
    config : DictConfig
        The resolved config.
    model : Deberta
        The trained model in memory (CPU, eval mode), holding the best model's weights.
    tokenizer
        Its tokenizer.
    learning_rate : float or None
        The learning rate used (``model.optim.lr``, or the one chosen for ``lr: null``).
    optimizer_steps : int or None
        Optimizer steps the schedule was planned for.
    data_stats : dict
        Per split: token-length statistics and truncation counts
        (:func:`dask_classify.train.datamodule.length_stats`).
    inferred : list of dict
        ``model.infer_samples`` with their predicted ``label`` and ``probability``.
    exported_model : Path or None
        The ``model.nemo_path`` folder, when one was exported.

    Examples
    --------
    >>> from pathlib import Path
    >>> from dask_classify.train import TrainResult, default_config
    >>> result = TrainResult(exp_dir=Path("runs/sst2"), best_model=Path("runs/sst2/best_model"),
    ...                      best_checkpoint=None, last_checkpoint=None, monitor="val_f1_macro",
    ...                      best_score=0.91, best_epoch=2, history=[], val_report=None,
    ...                      test_report=None, config=default_config())
    >>> summary = result.to_dict()
    >>> summary["best_model"], summary["monitor"], summary["best_score"]
    ('runs/sst2/best_model', 'val_f1_macro', 0.91)
    """

    exp_dir: Path
    best_model: Path | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    monitor: str | None
    best_score: float | None
    best_epoch: int | None
    history: list[dict[str, Any]]
    val_report: dict[str, Any] | None
    test_report: dict[str, Any] | None
    config: DictConfig = field(repr=False)
    model: Deberta | None = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)
    learning_rate: float | None = None
    optimizer_steps: int | None = None
    data_stats: dict[str, Any] = field(default_factory=dict)
    inferred: list[dict[str, Any]] = field(default_factory=list)
    exported_model: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (no model, no tokenizer, no config).

        Returns
        -------
        dict
            The fields as written to ``<exp_dir>/train_result.json`` (paths as strings).
        """
        return {
            "exp_dir": str(self.exp_dir),
            "best_model": None if self.best_model is None else str(self.best_model),
            "best_checkpoint": self.best_checkpoint,
            "last_checkpoint": self.last_checkpoint,
            "monitor": self.monitor,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "val_report": self.val_report,
            "test_report": self.test_report,
            "learning_rate": self.learning_rate,
            "optimizer_steps": self.optimizer_steps,
            "data_stats": self.data_stats,
            "infer_samples": self.inferred,
            "exported_model": None if self.exported_model is None else str(self.exported_model),
        }


def export_checkpoint(model: Deberta, tokenizer: Any, folder: str | os.PathLike) -> Path:
    """Save ``model`` and ``tokenizer`` as ``folder`` atomically (NVIDIA's checkpoint format, see
    :mod:`dask_classify.model`).

    The checkpoint is written into a hidden temporary folder beside ``folder`` and renamed into
    place, so an interrupted run leaves the previous complete ``folder`` (or none), never a
    half-written one.

    Parameters
    ----------
    model : Deberta
        The classifier to save.
    tokenizer : transformers tokenizer
        Saved with it.
    folder : str or path-like
        The checkpoint folder; an existing one is replaced. Its parent is created if missing.

    Returns
    -------
    pathlib.Path
        ``folder``, loadable with :func:`dask_classify.load_model`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from dask_classify.model import load_model, load_tokenizer
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> src = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["a", "b"], tokenizer="bert")
    >>> model, _ = load_model(src)
    >>> out = export_checkpoint(model, load_tokenizer(src), pathlib.Path(tempfile.mkdtemp()) / "m")
    >>> {"config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    True
    """
    folder = Path(folder)
    with atomic_folder(folder, overwrite=True) as tmp:
        save_checkpoint(model, tokenizer, tmp)
    return folder


class BestModelExport(Callback):
    """Export the best model (by ``monitor``) as ``<exp_dir>/best_model`` after validation.

    With ``monitor=None`` the model is exported at the end of every training epoch. The best
    score travels in Lightning checkpoints, so a resumed run keeps comparing against it. Only
    the global rank 0 writes.

    Parameters
    ----------
    folder : str or path-like
        Where the best model is exported (see :func:`export_checkpoint`).
    tokenizer : transformers tokenizer
        Saved with the model.
    monitor : str or None
        A logged validation metric (``"val_f1_macro"``, ``"val_loss"``); None exports after
        every training epoch.
    mode : {"max", "min"}, default "max"
        Whether a larger or a smaller ``monitor`` value is better.

    Attributes
    ----------
    best_score : float or None
        The best ``monitor`` value so far.
    best_epoch : int or None
        The epoch it was reached in (the last exported epoch when ``monitor`` is None).
    export_step : int or None
        The global step of the last export in this run.

    Examples
    --------
    >>> from dask_classify.train.trainer import BestModelExport
    >>> export = BestModelExport("runs/sst2/best_model", tokenizer=None, monitor="val_loss",
    ...                          mode="min")
    >>> export.load_state_dict({"best_score": 0.35, "best_epoch": 3})  # as when resuming
    >>> export.state_dict()
    {'best_score': 0.35, 'best_epoch': 3}
    >>> import lightning as L  # doctest: +SKIP
    >>> L.Trainer(callbacks=[export]).fit(module, datamodule=data)  # doctest: +SKIP
    """

    def __init__(self, folder: str | os.PathLike, tokenizer: Any, monitor: str | None,
                 mode: str = "max") -> None:
        super().__init__()
        self.folder = Path(folder)
        self.tokenizer = tokenizer
        self.monitor = monitor
        self.mode = mode
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.export_step: int | None = None

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_score is None:
            return True
        return value > self.best_score if self.mode == "max" else value < self.best_score

    def _export(self, trainer: L.Trainer, pl_module: TextClassificationModule) -> None:
        if trainer.is_global_zero:
            export_checkpoint(pl_module.model, self.tokenizer, self.folder)
        self.export_step = int(trainer.global_step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: TextClassificationModule) -> None:
        """Export the model when ``monitor`` improved (skipped in the sanity check).

        Raises
        ------
        ConfigError
            When ``monitor`` was not logged; the message lists the validation metrics that were.
        """
        if self.monitor is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            known = sorted(k for k in trainer.callback_metrics if k.startswith("val_"))
            raise ConfigError(
                f"exp_manager.checkpoint_callback_params.monitor: metric {self.monitor!r} was "
                f"not logged; logged validation metrics: {known}"
            )
        value = float(value)
        if self._improved(value):
            self.best_score, self.best_epoch = value, int(trainer.current_epoch)
            self._export(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: TextClassificationModule) -> None:
        """Export the model after every training epoch when ``monitor`` is None."""
        if self.monitor is None:
            self.best_epoch = int(trainer.current_epoch)
            self._export(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        """``best_score`` and ``best_epoch``, saved in Lightning checkpoints."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``best_score`` and ``best_epoch`` from a checkpoint (resuming a run)."""
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")


class _TrainHistory(Callback):
    """Training loss (and step) of each epoch, in this run."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("train_loss_epoch")
        self.rows.append({"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
                          "train_loss": None if loss is None else float(loss)})


def _on_cpu(trainer_cfg: dict[str, Any]) -> bool:
    accelerator = str(trainer_cfg.get("accelerator") or "auto").lower()
    if accelerator == "cpu":
        return True
    return accelerator == "auto" and not torch.cuda.is_available()


def _trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(kwargs, dict)
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k in ("max_time",)}
    accelerator = str(kwargs.get("accelerator") or "auto").lower()
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}, but this machine has no CUDA GPU "
                          "torch can use; set trainer.accelerator=cpu (or auto)")
    precision = str(kwargs.get("precision", "32-true"))
    if precision in ("16", "16-mixed", "16-true") and _on_cpu(kwargs):
        # Lightning refuses fp16 AMP on a CPU; NeMo configs often ask for it (precision: 16).
        logger.warning("trainer.precision=%s is not available on a CPU; training with "
                       "precision 32-true", precision)
        kwargs["precision"] = "32-true"
    if precision.startswith("bf16") and _on_cpu(kwargs):
        from dask_classify.backend import cpu_has_native_bf16

        if not cpu_has_native_bf16():
            # Never bf16 on a CPU without AMX: it runs ~200x slower than fp32 there.
            logger.warning("trainer.precision=%s on a CPU without native bf16 (AMX) would be "
                           "far slower than fp32; training with precision 32-true", precision)
            kwargs["precision"] = "32-true"
    return kwargs


def _resume_path(cfg: DictConfig, exp_dir: Path) -> str | None:
    em = cfg.exp_manager
    if em.resume_from_checkpoint:
        path = Path(em.resume_from_checkpoint).expanduser()
        if not path.is_file():
            raise ConfigError(f"exp_manager.resume_from_checkpoint: {str(path)!r} is not a file")
        return str(path)
    if em.resume_if_exists:
        last = exp_dir / CHECKPOINT_DIR / "last.ckpt"
        if last.is_file():
            logger.info("resuming from %s", last)
            return str(last)
        if not em.resume_ignore_no_checkpoint:
            raise ConfigError(f"exp_manager.resume_if_exists: no checkpoint {str(last)!r} to "
                              "resume from (set resume_ignore_no_checkpoint: true to start "
                              "afresh)")
    return None


def _loggers(cfg: DictConfig, exp_dir: Path) -> list[Any]:
    em = cfg.exp_manager
    loggers: list[Any] = []
    if em.create_csv_logger:
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(str(exp_dir), name="logs"))
    if em.create_tensorboard_logger:
        from lightning.pytorch.loggers import TensorBoardLogger

        try:
            loggers.append(TensorBoardLogger(str(exp_dir), name="tb_logs"))
        except ModuleNotFoundError:
            if _is_rank_zero():
                warnings.warn("exp_manager.create_tensorboard_logger: the tensorboard package "
                              "is not installed; logging without it (pip install tensorboard)",
                              ConfigWarning, stacklevel=3)
    return loggers


def _is_rank_zero() -> bool:
    from dask_classify.train.nemo import _is_secondary_rank

    return not _is_secondary_rank()


def experiment_dir(cfg: DictConfig) -> Path:
    """The output folder: ``exp_manager.exp_dir`` (null: the packaged default), plus
    ``exp_manager.name`` as a subfolder when set (NeMo's ``<exp_dir>/<name>``).

    Examples
    --------
    >>> from dask_classify.train import load_config
    >>> experiment_dir(load_config(overrides=["exp_manager.exp_dir=runs"])).as_posix()
    'runs'
    >>> experiment_dir(load_config(overrides=["exp_manager.exp_dir=null",
    ...                                       "exp_manager.name=sst2"])).as_posix()
    'dask_classify_experiments/sst2'
    """
    from dask_classify.train.config import default_config

    base = cfg.exp_manager.exp_dir or default_config().exp_manager.exp_dir
    folder = Path(str(base)).expanduser()
    name = cfg.exp_manager.get("name")
    return folder / str(name) if name else folder


def export_folder(nemo_path: str | os.PathLike) -> Path:
    """Where ``model.nemo_path`` exports the final model: a checkpoint folder of that name,
    without NeMo's ``.nemo`` suffix (relative paths are relative to the working directory,
    as in NeMo with its ``hydra.run.dir: .``).

    Examples
    --------
    >>> export_folder("text_classification_model.nemo").as_posix()
    'text_classification_model'
    >>> export_folder("models/sst2").as_posix()
    'models/sst2'
    """
    path = Path(os.fspath(nemo_path)).expanduser()
    return path.with_suffix("") if path.suffix == ".nemo" else path


def _check_lengths(model: Deberta, max_seq_length: int) -> None:
    backbone = model.config.get("backbone_config") or {}
    limit = backbone.get("max_position_embeddings")
    relative = backbone.get("relative_attention") and not backbone.get("position_biased_input",
                                                                       True)
    if limit and not relative and max_seq_length > int(limit):
        raise ConfigError(f"model.dataset.max_seq_length={max_seq_length} is longer than the "
                          f"encoder's max_position_embeddings ({limit})")


def _merge_history(train_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]],
                   coverage: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in train_rows:
        by_epoch.setdefault(row["epoch"], {}).update(row)
    for row in coverage:
        by_epoch.setdefault(row["epoch"], {"epoch": row["epoch"]}).update(
            {k: v for k, v in row.items() if k != "train_size"})
    for row in val_rows:  # the last validation of an epoch wins
        merged = by_epoch.setdefault(row["epoch"], {"epoch": row["epoch"]})
        step = merged.get("step")
        merged.update(row)
        if step is not None:
            merged["step"] = step
    return [by_epoch[e] for e in sorted(by_epoch)]


def train(config: DictConfig | Mapping[str, Any] | str | os.PathLike | None = None,
          overrides: Sequence[str] = ()) -> TrainResult:
    """Fine-tune a BERT-family encoder as a text classifier; export the best model.

    Parameters
    ----------
    config : DictConfig, mapping, or path of a YAML file
        The run's settings (see ``dask_classify/conf/train.yaml``); merged over the defaults.
    overrides : sequence of str, default ()
        Dotted overrides, ``"trainer.max_epochs=2"``, applied last.

    Returns
    -------
    TrainResult
        Paths (``best_model``, checkpoints), per-epoch metrics, the validation and test reports
        and the trained model. ``<exp_dir>/best_model`` loads with
        ``DistributedDataClassifier(model_identifier=...)``.

    Raises
    ------
    ConfigError
        Unknown keys, invalid or missing values (before anything is read or trained).
    DataFormatError
        A bad line in any data file (train, validation or test), reported as ``file:line``
        before training starts.

    Examples
    --------
    >>> from dask_classify.train import train  # doctest: +SKIP
    >>> result = train("conf.yaml", ["trainer.max_epochs=2"])  # doctest: +SKIP
    >>> result.best_model  # doctest: +SKIP
    PosixPath('experiments/best_model')
    """
    cfg = load_config(config, overrides)
    validate_config(cfg, for_training=True)
    m = cfg.model
    exp_dir = experiment_dir(cfg)
    ckpt_path = _resume_path(cfg, exp_dir)
    if cfg.seed is not None:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    pretrained = m.language_model.pretrained_model_name
    max_len = int(m.dataset.max_seq_length)
    tokenizer = load_training_tokenizer(m.tokenizer.tokenizer_name or pretrained, max_len,
                                        bool(m.dataset.do_lower_case))
    data = TextClassificationDataModule(m, tokenizer).load()  # validates every file first
    cfg.model.dataset.num_classes = int(data.num_classes)

    module = _build_module(m, data, pretrained, max_len)
    monitor, exporter, history, checkpoint, callbacks, loggers = _callbacks(
        cfg, exp_dir, tokenizer, has_val="validation_ds" in data.datasets)

    trainer = L.Trainer(**_trainer_kwargs(cfg), callbacks=callbacks, logger=loggers or False,
                        enable_checkpointing=checkpoint is not None,
                        default_root_dir=str(exp_dir))
    # Before fit() the trainer does not know its rank yet (DDP sets it up in fit); the
    # launcher's environment does (LOCAL_RANK/NODE_RANK of the processes it starts).
    from dask_classify.train.summary import infer_samples, log_start

    if _is_rank_zero():
        exp_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, exp_dir / "config.yaml", resolve=True)
        log_start(cfg, trainer, data, tokenizer, exp_dir, loggers)

    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    trainer.strategy.barrier("dask_classify_best_model")

    best_model = exp_dir / BEST_MODEL_DIR
    _hold_best_weights(exporter, trainer, module, best_model)
    reports = [report for row, report in zip(module.val_history, module.val_reports, strict=True)
               if row["epoch"] == exporter.best_epoch]
    val_report = reports[-1] if reports else None  # the last validation of the best epoch
    test_report = None
    if "test_ds" in data.datasets:
        trainer.test(module, datamodule=data, verbose=False)
        test_report = module.test_report

    module.model.cpu().eval()
    inferred: list[dict[str, Any]] = []
    exported: Path | None = None
    if trainer.is_global_zero:
        inferred = infer_samples(module.model, tokenizer, list(m.infer_samples or []), max_len)
        if m.nemo_path:
            exported = export_checkpoint(module.model, tokenizer, export_folder(m.nemo_path))
            logger.info("model.nemo_path: the trained model is exported as %s", exported)
    result = TrainResult(
        exp_dir=exp_dir,
        best_model=best_model if best_model.is_dir() else None,
        best_checkpoint=(checkpoint.best_model_path or None) if checkpoint else None,
        last_checkpoint=(checkpoint.last_model_path or None) if checkpoint else None,
        monitor=monitor,
        best_score=exporter.best_score,
        best_epoch=exporter.best_epoch,
        history=_merge_history(history.rows, module.val_history, module.train_coverage),
        val_report=val_report,
        test_report=test_report,
        config=cfg,
        model=module.model,
        tokenizer=tokenizer,
        learning_rate=module.learning_rate,
        optimizer_steps=module.total_steps,
        data_stats=dict(data.stats),
        inferred=inferred,
        exported_model=exported,
    )
    if trainer.is_global_zero:
        write_json(result.to_dict(), exp_dir / "train_result.json")
    return result


def _build_module(m: DictConfig, data: TextClassificationDataModule, pretrained: str | None,
                  max_len: int) -> TextClassificationModule:
    """The encoder with its head (NVIDIA's checkpoint format) in the Lightning module."""
    from dask_classify.train.encoder import build_encoder

    encoder = build_encoder(m.language_model)
    model = Deberta.from_backbone(str(pretrained or encoder.config.model_type), data.id2label,
                                  fc_dropout=float(m.classifier_head.fc_dropout),
                                  num_output_layers=int(m.classifier_head.num_output_layers),
                                  head_activation=str(m.classifier_head.activation),
                                  backbone=encoder)
    _check_lengths(model, max_len)
    weights = data.class_weights() if m.dataset.class_balancing == "weighted_loss" else None
    optim = OmegaConf.to_container(m.optim, resolve=True)
    assert isinstance(optim, dict)
    return TextClassificationModule(model, optim, class_weights=weights)


def _callbacks(cfg: DictConfig, exp_dir: Path, tokenizer: Any, has_val: bool) -> tuple:
    """``(monitor, exporter, history, checkpoint or None, callbacks, loggers)`` of a run."""
    params = cfg.exp_manager.checkpoint_callback_params
    monitor = params.monitor if has_val else None
    if params.monitor and not has_val:
        logger.info("no validation_ds: the last epoch's model is exported as the best model")
    exporter = BestModelExport(exp_dir / BEST_MODEL_DIR, tokenizer, monitor, params.mode)
    history = _TrainHistory()
    callbacks: list[Callback] = [exporter, history]
    checkpoint: ModelCheckpoint | None = None
    if cfg.exp_manager.create_checkpoint_callback:
        name = "{epoch}-{step}" + (f"-{{{monitor}:.4f}}" if monitor else "")
        checkpoint = ModelCheckpoint(dirpath=str(exp_dir / CHECKPOINT_DIR), filename=name,
                                     monitor=monitor, mode=params.mode,
                                     save_top_k=int(params.save_top_k),
                                     save_last=bool(params.save_last),
                                     auto_insert_metric_name=False)
        callbacks.append(checkpoint)
    loggers = _loggers(cfg, exp_dir)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return monitor, exporter, history, checkpoint, callbacks, loggers


def _hold_best_weights(exporter: BestModelExport, trainer: L.Trainer,
                       module: TextClassificationModule, best_model: Path) -> None:
    """Export the best model if no epoch did, and put its weights back into ``module``."""
    if exporter.export_step is None and not best_model.is_dir():
        exporter._export(trainer, module)  # e.g. a resumed run that trained no further epoch
        trainer.strategy.barrier("dask_classify_best_model_final")
    if exporter.export_step != trainer.global_step and best_model.is_dir():
        # The last epoch was not the best: hold the best weights in memory too.
        from safetensors.torch import load_file

        state = load_file(str(best_model / "model.safetensors"))
        module.model.load_state_dict(state)
