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

from dask_classify.engine.model import Deberta
from dask_classify.train.config import ConfigError, load_config, validate_config
from dask_classify.train.datamodule import TextClassificationDataModule
from dask_classify.train.export import (
    BestModelExport,
    export_checkpoint,
    export_folder,
    hold_best_weights,
)
from dask_classify.train.metrics import write_json
from dask_classify.train.module import TextClassificationModule
from dask_classify.train.nemo import ConfigWarning
from dask_classify.train.tokens import load_training_tokenizer

# BestModelExport, export_checkpoint and export_folder live in train/export.py; they stay
# importable from here, where they were defined before.
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
        (:func:`dask_classify.train.tokens.length_stats`).
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
    """The output folder of a run.

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        A training config (:func:`~dask_classify.train.config.load_config`).

    Returns
    -------
    pathlib.Path
        ``exp_manager.exp_dir`` (null: the packaged default; ``~`` expanded), plus
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
    exp_dir = experiment_dir(cfg)
    ckpt_path = _resume_path(cfg, exp_dir)
    if cfg.seed is not None:
        L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    tokenizer, data = _build_data(cfg)
    module = _build_module(cfg.model, data)
    run = _build_trainer(cfg, exp_dir, tokenizer, has_val="validation_ds" in data.datasets)
    _log_start(cfg, run, data, tokenizer, exp_dir)

    run.trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    run.trainer.strategy.barrier("dask_classify_best_model")

    hold_best_weights(run.exporter, run.trainer, module, exp_dir / BEST_MODEL_DIR)
    val_report, test_report = _reports(run, module, data)
    inferred, exported = _finish_model(cfg.model, run.trainer, module, tokenizer)
    result = _result(cfg, exp_dir, run, module, data, tokenizer, val_report, test_report,
                     inferred, exported)
    if run.trainer.is_global_zero:
        write_json(result.to_dict(), exp_dir / "train_result.json")
    return result


# ------------------------------------------------------------------------------ train()'s steps
@dataclass
class _Run:
    """The Lightning trainer of a run, with the callbacks and loggers :func:`train` reads."""

    trainer: L.Trainer
    monitor: str | None
    exporter: BestModelExport
    history: _TrainHistory
    checkpoint: ModelCheckpoint | None
    loggers: list[Any]


def _build_data(cfg: DictConfig) -> tuple[Any, TextClassificationDataModule]:
    """The training tokenizer and the loaded data (every file validated); sets
    ``model.dataset.num_classes`` in ``cfg`` to what the data holds."""
    m = cfg.model
    tokenizer = load_training_tokenizer(
        m.tokenizer.tokenizer_name or m.language_model.pretrained_model_name,
        int(m.dataset.max_seq_length), bool(m.dataset.do_lower_case))
    data = TextClassificationDataModule(m, tokenizer).load()  # validates every file first
    cfg.model.dataset.num_classes = int(data.num_classes)
    return tokenizer, data


def _build_module(m: DictConfig, data: TextClassificationDataModule) -> TextClassificationModule:
    """The encoder with its head (NVIDIA's checkpoint format) in the Lightning module."""
    from dask_classify.train.encoder import build_encoder

    pretrained = m.language_model.pretrained_model_name
    encoder = build_encoder(m.language_model)
    model = Deberta.from_backbone(str(pretrained or encoder.config.model_type), data.id2label,
                                  fc_dropout=float(m.classifier_head.fc_dropout),
                                  num_output_layers=int(m.classifier_head.num_output_layers),
                                  head_activation=str(m.classifier_head.activation),
                                  backbone=encoder)
    _check_lengths(model, int(m.dataset.max_seq_length))
    weights = data.class_weights() if m.dataset.class_balancing == "weighted_loss" else None
    optim = OmegaConf.to_container(m.optim, resolve=True)
    assert isinstance(optim, dict)
    return TextClassificationModule(model, optim, class_weights=weights)


def _build_trainer(cfg: DictConfig, exp_dir: Path, tokenizer: Any, has_val: bool) -> _Run:
    """The Lightning trainer with the run's callbacks (best-model export, epoch history,
    checkpoints, learning-rate monitor) and loggers."""
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
    trainer = L.Trainer(**_trainer_kwargs(cfg), callbacks=callbacks, logger=loggers or False,
                        enable_checkpointing=checkpoint is not None,
                        default_root_dir=str(exp_dir))
    return _Run(trainer, monitor, exporter, history, checkpoint, loggers)


def _log_start(cfg: DictConfig, run: _Run, data: TextClassificationDataModule, tokenizer: Any,
               exp_dir: Path) -> None:
    """On rank 0: create ``exp_dir``, save the resolved config there, log the run's start."""
    # Before fit() the trainer does not know its rank yet (DDP sets it up in fit); the
    # launcher's environment does (LOCAL_RANK/NODE_RANK of the processes it starts).
    from dask_classify.train.summary import log_start

    if _is_rank_zero():
        exp_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, exp_dir / "config.yaml", resolve=True)
        log_start(cfg, run.trainer, data, tokenizer, exp_dir, run.loggers)


def _reports(run: _Run, module: TextClassificationModule, data: TextClassificationDataModule
             ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(validation report of the best epoch, test report)``; runs the test split if any."""
    reports = [report for row, report in zip(module.val_history, module.val_reports, strict=True)
               if row["epoch"] == run.exporter.best_epoch]
    val_report = reports[-1] if reports else None  # the last validation of the best epoch
    test_report = None
    if "test_ds" in data.datasets:
        run.trainer.test(module, datamodule=data, verbose=False)
        test_report = module.test_report
    return val_report, test_report


def _finish_model(m: DictConfig, trainer: L.Trainer, module: TextClassificationModule,
                  tokenizer: Any) -> tuple[list[dict[str, Any]], Path | None]:
    """Move the model to the CPU (eval mode); on rank 0 predict ``model.infer_samples`` and
    export the model to ``model.nemo_path``. Returns ``(inferred, exported folder or None)``."""
    from dask_classify.train.summary import infer_samples

    module.model.cpu().eval()
    inferred: list[dict[str, Any]] = []
    exported: Path | None = None
    if trainer.is_global_zero:
        inferred = infer_samples(module.model, tokenizer, list(m.infer_samples or []),
                                 int(m.dataset.max_seq_length))
        if m.nemo_path:
            exported = export_checkpoint(module.model, tokenizer, export_folder(m.nemo_path))
            logger.info("model.nemo_path: the trained model is exported as %s", exported)
    return inferred, exported


def _result(cfg: DictConfig, exp_dir: Path, run: _Run, module: TextClassificationModule,
            data: TextClassificationDataModule, tokenizer: Any,
            val_report: dict[str, Any] | None, test_report: dict[str, Any] | None,
            inferred: list[dict[str, Any]], exported: Path | None) -> TrainResult:
    """The :class:`TrainResult` of a finished run."""
    best_model = exp_dir / BEST_MODEL_DIR
    checkpoint = run.checkpoint
    return TrainResult(
        exp_dir=exp_dir,
        best_model=best_model if best_model.is_dir() else None,
        best_checkpoint=(checkpoint.best_model_path or None) if checkpoint else None,
        last_checkpoint=(checkpoint.last_model_path or None) if checkpoint else None,
        monitor=run.monitor,
        best_score=run.exporter.best_score,
        best_epoch=run.exporter.best_epoch,
        history=_merge_history(run.history.rows, module.val_history, module.train_coverage),
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
