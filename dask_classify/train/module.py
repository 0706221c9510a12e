"""The Lightning module: a :class:`~dask_classify.Deberta` classifier, its loss, optimiser and
validation/test reports.

The module trains exactly the network that :class:`~dask_classify.DistributedDataClassifier`
loads (``self.model`` is a :class:`~dask_classify.Deberta`), so the exported checkpoint needs no
conversion and gives the same predictions as the model in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric

from dask_classify.engine.model import Deberta
from dask_classify.errors import UsageError
from dask_classify.tokenize import pad_batch, tokenize
from dask_classify.train.config import SCHEDULES, ConfigError
from dask_classify.train.metrics import (
    build_metrics,
    flat_metrics,
    format_report,
    report_from_metrics,
)

__all__ = ["TextClassificationModule", "auto_learning_rate", "freeze_unused_parameters",
           "predict_probabilities"]

#: ``auto_learning_rate``'s constants (chosen by benchmarks/train_lr_defaults.py, see README):
#: the rate of a 384-wide encoder trained for ``_REFERENCE_STEPS`` optimizer steps or more ...
_REFERENCE_LR = 1e-4
_REFERENCE_HIDDEN = 384
_REFERENCE_STEPS = 1000
#: ... and the most it is raised for a short run.
_MAX_STEP_FACTOR = 2.0


def auto_learning_rate(hidden_size: int, total_steps: int) -> float:
    """The default learning rate (``model.optim.lr: null``) of an encoder and a run length.

    ``1e-4 * (384 / hidden_size) * sqrt(1000 / total_steps)``, the step factor kept within
    ``[1, 2]``: wider encoders take smaller steps (the usual 1/width rule for Adam: 5e-5 for
    a BERT-base-sized 768), and a short run (a small data set) takes up to twice the rate of a
    long one, so that a few dozen optimizer steps still move the weights. The constants come
    from a sweep with all-MiniLM-L6-v2 on SST-2 (``benchmarks/train_lr_defaults.py --sweep``;
    results in ``benchmarks/README.md``).

    Parameters
    ----------
    hidden_size : int
        The encoder's hidden size.
    total_steps : int
        Optimizer steps of the whole run (after gradient accumulation).

    Returns
    -------
    float
        The learning rate.

    Examples
    --------
    >>> from dask_classify.train.module import auto_learning_rate
    >>> f"{auto_learning_rate(384, 1250):.2e}", f"{auto_learning_rate(768, 5000):.2e}"
    ('1.00e-04', '5.00e-05')
    >>> f"{auto_learning_rate(384, 94):.2e}"  # 1,500 rows, batch 32, 2 epochs
    '2.00e-04'
    >>> f"{auto_learning_rate(384, 500):.2e}"
    '1.41e-04'
    """
    width = _REFERENCE_HIDDEN / max(1, int(hidden_size))
    steps = min(_MAX_STEP_FACTOR, max(1.0, math.sqrt(_REFERENCE_STEPS / max(1, int(total_steps)))))
    return _REFERENCE_LR * width * steps


def _hidden_size(model: Deberta) -> int:
    backbone = model.model.config
    return int(getattr(backbone, "hidden_size", None) or getattr(backbone, "dim", 768))


def freeze_unused_parameters(model: Deberta) -> list[str]:
    """Turn off gradients for parameters the classifier never uses (e.g. BERT's pooler).

    :meth:`Deberta.logits` reads the encoder's last hidden state, so a backbone's pooler gets no
    gradient; DDP would then fail ("parameters that were not used in producing loss") unless
    told to search for unused parameters on every step. One tiny forward/backward pass finds
    them; freezing them changes nothing numerically (they never get a gradient). Their weights
    are still saved with the checkpoint.

    Parameters
    ----------
    model : Deberta
        The classifier; changed in place (``requires_grad`` off for unused parameters). Its
        training/eval mode is restored and its gradients are cleared.

    Returns
    -------
    list of str
        The names of the frozen parameters.

    Examples
    --------
    >>> from dask_classify import Deberta
    >>> from dask_classify.testing import tiny_backbone_config
    >>> from dask_classify.train.module import freeze_unused_parameters
    >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
    >>> model = Deberta(cfg)
    >>> freeze_unused_parameters(model)  # BERT's pooler is never used
    ['model.pooler.dense.weight', 'model.pooler.dense.bias']
    >>> model.model.pooler.dense.weight.requires_grad, model.fc.weight.requires_grad
    (False, True)
    """
    was_training = model.training
    model.train()
    ids = torch.ones((1, 2), dtype=torch.long)
    mask = torch.ones((1, 2), dtype=torch.long)
    try:
        model.zero_grad(set_to_none=True)
        model.logits(ids, mask).sum().backward()
        unused = [name for name, p in model.named_parameters()
                  if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    for name, param in model.named_parameters():
        if name in unused:
            param.requires_grad_(False)
    return unused


@torch.inference_mode()
def predict_probabilities(model: Deberta, tokenizer: Any, texts: Sequence[str],
                          max_seq_length: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities of ``texts`` with an in-memory model (float32, ``(n, num_labels)``).

    Tokenizes like the classifier does at inference (same truncation, right padding per batch).

    Parameters
    ----------
    model : Deberta
        The classifier, on any device; evaluated in eval mode, its mode is restored afterwards.
    tokenizer : transformers tokenizer
        The model's tokenizer.
    texts : sequence of str
        The texts to classify.
    max_seq_length : int
        Token limit per text.
    batch_size : int, default 64
        Texts per forward pass.

    Returns
    -------
    numpy.ndarray of float32, shape ``(len(texts), num_labels)``
        Each row sums to 1.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.model import load_model, load_tokenizer
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="bert")
    >>> model, _ = load_model(folder)
    >>> predict_probabilities(model, load_tokenizer(folder), ["a fine film"], 64).shape
    (1, 2)
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = tokenize(tokenizer, list(texts), int(max_seq_length))
    out: list[np.ndarray] = []
    try:
        for start in range(0, len(ids), batch_size):
            input_ids, mask = pad_batch(ids[start:start + batch_size],
                                        tokenizer.pad_token_id or 0, "right")
            probs = model(input_ids.to(device), mask.to(device))
            out.append(probs.float().cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, len(model.id2label)), dtype=np.float32)
    return np.concatenate(out)


class TextClassificationModule(L.LightningModule):
    """Fine-tunes a :class:`~dask_classify.Deberta` classifier with cross-entropy.

    Parameters
    ----------
    model : Deberta
        The classifier (usually from :meth:`Deberta.from_backbone`).
    optim : dict
        The ``model.optim`` section: ``name`` (adamw/adam/sgd), ``lr`` (None: chosen by
        :func:`auto_learning_rate` when training starts), ``betas``, ``momentum``,
        ``weight_decay`` and ``sched`` (``name``, ``warmup_steps``, ``warmup_ratio``).
    class_weights : sequence of float, optional
        Per-class weights of the training loss (``class_balancing: weighted_loss``). Validation
        and test losses are never weighted, so they compare across runs.
    print_reports : bool, default True
        Print the precision/recall/F1 table after every validation and test epoch (rank 0).

    Attributes
    ----------
    val_history : list of dict
        One entry per validation run: ``epoch``, ``step``, ``val_loss`` and the flat metrics.
    val_reports : list of dict
        The full report of each validation run (same order as ``val_history``).
    last_val_report, test_report : dict or None
        The latest full reports (see :func:`dask_classify.train.metrics.report_from_metrics`).
    frozen_parameters : list of str
        Parameters excluded from training (see :func:`freeze_unused_parameters`).
    learning_rate, total_steps : float, int or None
        The rate used and the optimizer steps planned (set by :meth:`configure_optimizers`).
    train_coverage : list of dict
        Per training epoch: ``train_examples_per_process`` (examples each process trained on)
        and ``train_examples_distinct`` (distinct examples all processes trained on together).

    Raises
    ------
    ValueError
        When the number of class weights differs from the number of labels.

    Examples
    --------
    >>> import torch
    >>> from dask_classify import Deberta
    >>> from dask_classify.testing import tiny_backbone_config
    >>> from dask_classify.train.module import TextClassificationModule
    >>> cfg = {"base_model": "tiny", "id2label": {"0": "neg", "1": "pos"},
    ...        "backbone_config": tiny_backbone_config("bert", vocab_size=100)}
    >>> optim = {"name": "adamw", "lr": 2e-5, "betas": [0.9, 0.999], "momentum": 0.9,
    ...          "weight_decay": 0.01, "sched": {"name": "WarmupAnnealing", "warmup_ratio": 0.1}}
    >>> module = TextClassificationModule(Deberta(cfg), optim, class_weights=[1.0, 3.0])
    >>> module.label_names, module.class_weights.tolist()
    (['neg', 'pos'], [1.0, 3.0])
    >>> ids = torch.tensor([[2, 7, 3]])
    >>> tuple(module(ids, torch.ones_like(ids)).shape)  # logits
    (1, 2)

    Training goes through Lightning (see :func:`dask_classify.train.train`):

    >>> import lightning as L  # doctest: +SKIP
    >>> L.Trainer(max_epochs=1).fit(module, datamodule=data)  # doctest: +SKIP
    """

    def __init__(self, model: Deberta, optim: dict[str, Any],
                 class_weights: Sequence[float] | None = None, print_reports: bool = True) -> None:
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        self.print_reports = print_reports
        self.label_names = [model.id2label[i] for i in range(len(model.id2label))]
        num_classes = len(self.label_names)
        self.save_hyperparameters({"optim": self.optim, "class_weights": class_weights,
                                   "labels": self.label_names})
        weights = None if class_weights is None else torch.tensor(list(class_weights),
                                                                   dtype=torch.float32)
        if weights is not None and weights.numel() != num_classes:
            raise UsageError(f"{weights.numel()} class weights for {num_classes} classes")
        # Not persistent: the weights are derived from the data, not learned.
        self.register_buffer("class_weights", weights, persistent=False)
        self.val_metrics = build_metrics(num_classes)
        self.test_metrics = build_metrics(num_classes)
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.val_history: list[dict[str, Any]] = []
        self.val_reports: list[dict[str, Any]] = []
        self.last_val_report: dict[str, Any] | None = None
        self.test_report: dict[str, Any] | None = None
        self.frozen_parameters = freeze_unused_parameters(model)
        self.learning_rate: float | None = None
        self.total_steps: int | None = None
        self.train_coverage: list[dict[str, Any]] = []
        self._seen: list[torch.Tensor] = []

    # ------------------------------------------------------------------ steps
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The classifier's logits, shape ``(batch, num_labels)`` (see :meth:`Deberta.logits`)."""
        return self.model.logits(input_ids, attention_mask)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Cross-entropy (class-weighted when configured) of one batch; logs ``train_loss``."""
        if "index" in batch:
            self._seen.append(batch["index"].detach().cpu())
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits.float(), batch["labels"], weight=self.class_weights)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(batch["labels"]), sync_dist=True)
        return loss

    def on_train_epoch_start(self) -> None:
        """Start counting the training examples this process sees."""
        self._seen = []

    def on_train_epoch_end(self) -> None:
        """Record how many training examples each process saw this epoch, and how many
        distinct ones all processes saw together (``train_coverage``; under DDP each process
        should see its own ~1/N share and together every example)."""
        dm = getattr(self.trainer, "datamodule", None)
        datasets = getattr(dm, "datasets", None) or {}
        if "train_ds" not in datasets:
            return
        size = len(datasets["train_ds"])
        seen = torch.cat(self._seen) if self._seen else torch.zeros(0, dtype=torch.long)
        mask = torch.zeros(size, dtype=torch.float32, device=self.device)
        mask[seen.to(self.device)] = 1.0
        counts = self.all_gather(torch.tensor(float(len(seen)), device=self.device))
        union = self.trainer.strategy.reduce(mask, reduce_op="sum")
        per_process = [int(c) for c in counts.reshape(-1).tolist()]
        self.train_coverage.append({
            "epoch": int(self.current_epoch),
            "train_examples_per_process": per_process,
            "train_examples_distinct": int((union > 0).sum().item()),
            "train_size": size,
        })
        self._seen = []

    def _eval_step(self, batch: dict[str, torch.Tensor], metrics: Any, mean: MeanMetric) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"]).float()
        loss = F.cross_entropy(logits, batch["labels"], reduction="sum")
        mean.update(loss / len(batch["labels"]), weight=len(batch["labels"]))
        metrics.update(logits.argmax(dim=-1), batch["labels"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulate the unweighted loss and the metrics of one validation batch."""
        self._eval_step(batch, self.val_metrics, self.val_loss)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulate the unweighted loss and the metrics of one test batch."""
        self._eval_step(batch, self.test_metrics, self.test_loss)

    def _epoch_report(self, metrics: Any, mean: MeanMetric, prefix: str) -> dict[str, Any] | None:
        # torchmetrics syncs the states across processes (DDP) in compute().
        computed = metrics.compute()
        loss = float(mean.compute())
        metrics.reset()
        mean.reset()
        if self.trainer.sanity_checking:
            return None
        report = report_from_metrics(computed, self.label_names)
        report["loss"] = loss
        scalars = flat_metrics(report, prefix)
        scalars[f"{prefix}loss"] = loss
        progress = {f"{prefix}loss", f"{prefix}accuracy", f"{prefix}f1_macro"}
        # Already reduced over processes by torchmetrics; sync_dist only averages equal values
        # (and keeps Lightning from warning about epoch-level logging under DDP).
        self.log_dict({k: v for k, v in scalars.items() if k in progress}, prog_bar=True,
                      sync_dist=True)
        self.log_dict({k: v for k, v in scalars.items() if k not in progress}, sync_dist=True)
        if self.print_reports:
            title = "validation" if prefix == "val_" else "test"
            self.print(f"\n{title} report (epoch {self.current_epoch}, step {self.global_step}, "
                       f"loss {loss:.4f}):\n{format_report(report)}")
        return report

    def on_validation_epoch_end(self) -> None:
        """Compute, log and (optionally) print the validation report; append to the history."""
        report = self._epoch_report(self.val_metrics, self.val_loss, "val_")
        if report is None:
            return
        self.last_val_report = report
        entry = {"epoch": int(self.current_epoch), "step": int(self.global_step)}
        entry.update(flat_metrics(report, "val_"))
        entry["val_loss"] = report["loss"]
        self.val_history.append(entry)
        self.val_reports.append(report)

    def on_test_epoch_end(self) -> None:
        """Compute, log and (optionally) print the test report; keep it as ``test_report``."""
        self.test_report = self._epoch_report(self.test_metrics, self.test_loss, "test_")

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        """The optimizer (no weight decay on biases and norms) and a per-step warmup schedule.

        Raises
        ------
        ConfigError
            An unknown optimizer, or a run without ``max_epochs``/``max_steps`` (the schedule
            needs the number of steps).
        """
        from transformers import (
            get_constant_schedule_with_warmup,
            get_cosine_schedule_with_warmup,
            get_linear_schedule_with_warmup,
        )

        o = self.optim
        decay, no_decay = [], []
        for param in self.model.parameters():
            if param.requires_grad:
                # Biases and normalisation weights (1-D) are not decayed, as in BERT.
                (no_decay if param.ndim < 2 else decay).append(param)
        groups = [{"params": decay, "weight_decay": float(o["weight_decay"])},
                  {"params": no_decay, "weight_decay": 0.0}]
        name = str(o["name"]).lower()
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("set trainer.max_epochs or trainer.max_steps: the learning-rate "
                              "schedule needs the number of training steps")
        total = max(1, int(total))
        if o.get("lr") is None:
            lr = auto_learning_rate(_hidden_size(self.model), total)
            rank_zero_info(f"model.optim.lr: null -> {lr:.3g} (chosen for a "
                           f"{_hidden_size(self.model)}-wide encoder and {total} optimizer "
                           "steps; set model.optim.lr to choose it yourself)")
        else:
            lr = float(o["lr"])
        self.learning_rate, self.total_steps = lr, total
        if name == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(o["betas"]))
        elif name == "adam":
            optimizer = torch.optim.Adam(groups, lr=lr, betas=tuple(o["betas"]))
        elif name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=float(o["momentum"]))
        else:  # validate_config rejects these first
            raise ConfigError(f"model.optim.name: unknown optimizer {o['name']!r}")
        sched = o["sched"]
        if sched.get("warmup_steps") is not None:
            warmup = int(sched["warmup_steps"])
        else:
            warmup = math.ceil(float(sched.get("warmup_ratio") or 0.0) * total)
        kind = SCHEDULES[str(sched["name"]).lower()]
        if kind == "linear":
            scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        elif kind == "cosine":
            scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total)
        else:
            scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
