"""Exporting trained models: the atomic checkpoint write, the best-model callback, the final copy.

:func:`export_checkpoint` writes a model in NVIDIA's checkpoint format (what
:class:`~dask_classify.DistributedDataClassifier` loads) atomically; :class:`BestModelExport`
calls it during training whenever the monitored metric improves; :func:`hold_best_weights`
makes sure a finished run has a best model on disk and in memory; :func:`export_folder` names
the folder ``model.nemo_path`` exports to.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from dask_classify.atomic import atomic_folder
from dask_classify.engine.loading import save_checkpoint
from dask_classify.engine.model import Deberta
from dask_classify.errors import ConfigError
from dask_classify.train.module import TextClassificationModule

__all__ = ["BestModelExport", "export_checkpoint", "export_folder", "hold_best_weights"]


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


def export_folder(nemo_path: str | os.PathLike) -> Path:
    """Where ``model.nemo_path`` exports the final model.

    A checkpoint folder of that name, without NeMo's ``.nemo`` suffix; a relative path is
    relative to the working directory, as in NeMo with its ``hydra.run.dir: .``.

    Parameters
    ----------
    nemo_path : str or path-like
        The configured ``model.nemo_path`` (``~`` is expanded).

    Returns
    -------
    pathlib.Path
        The folder the model is exported as.

    Examples
    --------
    >>> export_folder("text_classification_model.nemo").as_posix()
    'text_classification_model'
    >>> export_folder("models/sst2").as_posix()
    'models/sst2'
    """
    path = Path(os.fspath(nemo_path)).expanduser()
    return path.with_suffix("") if path.suffix == ".nemo" else path


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
    >>> from dask_classify.train.export import BestModelExport
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

        Parameters
        ----------
        trainer : lightning.Trainer
            The running trainer (its ``callback_metrics`` hold the logged metrics).
        pl_module : TextClassificationModule
            The module whose ``model`` is exported.

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
        """Export the model after every training epoch when ``monitor`` is None.

        Parameters
        ----------
        trainer : lightning.Trainer
            The running trainer.
        pl_module : TextClassificationModule
            The module whose ``model`` is exported.
        """
        if self.monitor is None:
            self.best_epoch = int(trainer.current_epoch)
            self._export(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        """What Lightning checkpoints save of this callback.

        Returns
        -------
        dict
            ``best_score`` and ``best_epoch``.
        """
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore ``best_score`` and ``best_epoch`` from a checkpoint (resuming a run).

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned; missing keys become None.
        """
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")


def hold_best_weights(exporter: BestModelExport, trainer: L.Trainer,
                      module: TextClassificationModule, best_model: Path) -> None:
    """After ``fit``: export the best model if no epoch did, and put its weights back into
    ``module``.

    Parameters
    ----------
    exporter : BestModelExport
        The run's callback (its ``export_step`` tells whether and when it exported).
    trainer : lightning.Trainer
        The trainer that ran ``fit``.
    module : TextClassificationModule
        The trained module; its ``model`` ends up holding the best weights.
    best_model : pathlib.Path
        ``exporter``'s folder (``<exp_dir>/best_model``).
    """
    if exporter.export_step is None and not best_model.is_dir():
        exporter._export(trainer, module)  # e.g. a resumed run that trained no further epoch
        trainer.strategy.barrier("dask_classify_best_model_final")
    if exporter.export_step != trainer.global_step and best_model.is_dir():
        # The last epoch was not the best: hold the best weights in memory too.
        from safetensors.torch import load_file

        state = load_file(str(best_model / "model.safetensors"))
        module.model.load_state_dict(state)
