"""The training data: NeMo-format TSV files, validated up front, tokenized once, padded per batch.

Every configured file (train, validation, test) is read and validated with
:func:`dask_classify.train.data.read_tsv` before training starts, so a bad line in the test file
fails the run in seconds, not after hours of training. Texts are tokenized with the same function
the classifier uses at inference (:func:`dask_classify.tokenize.tokenize`), so a trained model sees
the same token ids in training and in :class:`~dask_classify.DistributedDataClassifier`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Sampler

from dask_classify.tokenize import pad_batch, tokenize
from dask_classify.train.config import ConfigError
from dask_classify.train.data import (
    DataFormatError,
    infer_num_classes,
    read_labels_file,
    read_tsv,
)
from dask_classify.train.tokens import (
    TokenCache,
    length_stats,
    load_training_tokenizer,
    tokenizer_fingerprint,
    truncated_mask,
)

# The tokenizer helpers live in train/tokens.py; they stay importable from here,
# where they were defined before.
__all__ = [
    "EncodedDataset",
    "LengthGroupedSampler",
    "PadCollator",
    "TextClassificationDataModule",
    "TokenCache",
    "class_weights",
    "length_stats",
    "load_training_tokenizer",
    "tokenizer_fingerprint",
    "truncated_mask",
]


logger = logging.getLogger(__name__)


SPLITS = ("train_ds", "validation_ds", "test_ds")


class EncodedDataset(Dataset):
    """Token ids (unpadded) and integer labels of one split; items are ``(ids, label, index)``.

    Parameters
    ----------
    input_ids : sequence of sequence of int
        Token ids of each example (from :func:`dask_classify.tokenize.tokenize`).
    labels : numpy.ndarray of int
        Label id of each example.

    Raises
    ------
    ValueError
        When ``input_ids`` and ``labels`` differ in length.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.train.datamodule import EncodedDataset
    >>> ds = EncodedDataset([[2, 5, 3], [2, 3]], np.array([1, 0]))
    >>> len(ds), ds[1]
    (2, ([2, 3], 0, 1))
    """

    def __init__(self, input_ids: Sequence[Sequence[int]], labels: np.ndarray) -> None:
        if len(input_ids) != len(labels):
            raise ValueError("input_ids and labels differ in length")
        self.input_ids = [list(ids) for ids in input_ids]
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[list[int], int, int]:
        return self.input_ids[index], int(self.labels[index]), int(index)


class PadCollator:
    """Collate ``(ids, label[, index])`` items into a padded batch (picklable, for workers).

    Called on a list of ``(ids, label)`` pairs or ``(ids, label, index)`` triples (what
    :class:`EncodedDataset` yields), returns a dict of ``input_ids`` and ``attention_mask``
    (int64, right-padded to the batch's longest row), ``labels`` and, for triples, ``index``
    (each example's row in its split: how training counts the examples every process saw).

    Parameters
    ----------
    pad_id : int
        The tokenizer's padding id.

    Examples
    --------
    >>> from dask_classify.train.datamodule import PadCollator
    >>> batch = PadCollator(pad_id=0)([([2, 5, 3], 1), ([2, 3], 0)])
    >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch["labels"].tolist()
    ([[2, 5, 3], [2, 3, 0]], [[1, 1, 1], [1, 1, 0]], [1, 0])
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, items: Sequence[tuple[Any, ...]]) -> dict[str, torch.Tensor]:
        ids, mask = pad_batch([item[0] for item in items], self.pad_id, "right")
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if items and len(items[0]) > 2:
            batch["index"] = torch.tensor([item[2] for item in items], dtype=torch.long)
        return batch


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> list[float]:
    """Class weights for ``class_balancing: weighted_loss``: ``n / (num_classes * n_c)``.

    The "balanced" heuristic (as in NeMo and scikit-learn): every class then contributes the same
    total weight to the loss. A class absent from the training data gets weight 0 (it never
    appears as a target, so its weight has no effect).

    Parameters
    ----------
    labels : sequence of int or numpy.ndarray
        Label id of each training example (ids ``0 .. num_classes - 1``).
    num_classes : int
        Number of classes.

    Returns
    -------
    list of float
        One weight per class, in id order.

    Examples
    --------
    >>> class_weights([0, 0, 0, 1], 2)
    [0.6666666666666666, 2.0]
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = float(counts.sum())
    return [total / (num_classes * c) if c else 0.0 for c in counts.tolist()]


class LengthGroupedSampler(Sampler[int]):
    """Random order in which neighbouring examples have similar lengths (less padding).

    Each epoch the examples are shuffled, cut into chunks of ``batch_size * chunk_batches``,
    each chunk is sorted by length (longest first) and cut into batches, and the batches are
    shuffled. Batches then hold examples of about one length, so padding (and compute) shrinks.
    The same idea as Hugging Face's ``group_by_length``. Randomness comes from torch's global
    generator, as for ``RandomSampler``, so seeding makes it reproducible.

    Parameters
    ----------
    lengths : sequence of int
        Number of tokens of each example.
    batch_size : int
        The loader's batch size.
    shuffle : bool, default True
        False: one deterministic pass, longest first (for evaluation).
    chunk_batches : int, default 50
        Batches per length-sorted chunk; larger means less padding but less randomness.

    Examples
    --------
    >>> sampler = LengthGroupedSampler([5, 1, 4, 2, 3, 6], batch_size=2, shuffle=False)
    >>> list(sampler)
    [5, 0, 2, 4, 3, 1]
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True,
                 chunk_batches: int = 50) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.chunk = max(1, int(chunk_batches)) * self.batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        n = len(self.lengths)
        if not self.shuffle:
            yield from np.argsort(-self.lengths, kind="stable").tolist()
            return
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen).numpy()
        batches: list[np.ndarray] = []
        for start in range(0, n, self.chunk):
            chunk = order[start:start + self.chunk]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size]
                           for i in range(0, len(chunk), self.batch_size))
        for b in torch.randperm(len(batches), generator=gen).tolist():
            yield from batches[b].tolist()


class TextClassificationDataModule(L.LightningDataModule):
    """Train/validation/test splits from NeMo-format TSV files (``sentence<TAB>label``).

    Parameters
    ----------
    cfg : omegaconf.DictConfig
        The ``model`` section of a training config (``dataset``, ``train_ds``,
        ``validation_ds``, ``test_ds``).
    tokenizer : transformers tokenizer
        From :func:`load_training_tokenizer`.

    Notes
    -----
    :meth:`load` reads, validates and tokenizes every configured file; it runs once (``setup``
    calls it if the caller did not). ``num_samples`` keeps the first N rows of a file (after the
    whole file was validated). ``group_by_length: true`` batches examples of similar length
    together (:class:`LengthGroupedSampler`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from omegaconf import OmegaConf
    >>> from dask_classify.train.config import load_config
    >>> from dask_classify.testing import build_tokenizer
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "train.tsv").write_text("a good film\\t1\\na bad film\\t0\\nfine\\t1\\n")
    >>> tok = build_tokenizer(tmp / "tok", "bert", ["a good film", "a bad film", "fine"])
    >>> cfg = load_config(overrides=[f"model.train_ds.file_path={tmp / 'train.tsv'}",
    ...                              "model.train_ds.num_samples=2"])
    >>> dm = TextClassificationDataModule(cfg.model, tok).load()
    >>> dm.num_classes, len(dm.datasets["train_ds"])
    (2, 2)
    >>> dm.has("train_ds"), dm.has("test_ds")
    (True, False)
    >>> batch = next(iter(dm.train_dataloader()))
    >>> sorted(batch), batch["labels"].shape[0] <= 2
    (['attention_mask', 'index', 'input_ids', 'labels'], True)
    >>> dm.stats["train_ds"]["truncated"], dm.stats["train_ds"]["max"]
    (0, 5)
    """

    def __init__(self, cfg: DictConfig, tokenizer: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.frames: dict[str, pd.DataFrame] = {}
        self.datasets: dict[str, EncodedDataset] = {}
        self.num_classes: int | None = None
        self.id2label: dict[int, str] = {}
        #: Per split: token-length statistics and how many examples were truncated.
        self.stats: dict[str, dict[str, Any]] = {}
        #: Per split: True when its tokens came from the ``use_cache`` file.
        self.from_cache: dict[str, bool] = {}
        self._loaded = False

    # ------------------------------------------------------------------ reading
    def _file(self, split: str) -> str | None:
        path = self.cfg[split].file_path
        return None if path is None else os.fspath(path)

    def read(self) -> dict[str, pd.DataFrame]:
        """Read and validate every configured file; set ``num_classes`` and ``id2label``.

        Returns
        -------
        dict of str to pandas.DataFrame
            Per configured split, its examples (:func:`~dask_classify.train.data.read_tsv`),
            cut to ``num_samples`` rows when that is set.

        Raises
        ------
        DataFormatError
            A missing file, a malformed line or a label ``>= num_classes`` (all reported as
            ``file:line``), or a labels file that does not match ``num_classes``; with several
            bad files, one error listing them all.
        ConfigError
            When no ``model.train_ds.file_path`` is configured.
        """
        num_classes = self.cfg.dataset.num_classes
        names = None
        if self.cfg.dataset.labels_file is not None:
            names = read_labels_file(self.cfg.dataset.labels_file)
            if num_classes is not None and len(names) != num_classes:
                raise DataFormatError(self.cfg.dataset.labels_file, [(
                    None, f"{len(names)} label names, but model.dataset.num_classes is "
                          f"{num_classes}")])
            num_classes = num_classes or len(names)
        frames: dict[str, pd.DataFrame] = {}
        errors: list[DataFormatError] = []
        for split in SPLITS:
            path = self._file(split)
            if path is None:
                continue
            try:
                frames[split] = read_tsv(path, num_classes=num_classes)
            except DataFormatError as exc:  # report every bad file at once
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            # One error for every bad file; it is the first file's error, with all the messages.
            first = errors[0]
            combined = DataFormatError(first.path, first.problems, first.total)
            combined.message = "\n".join(str(e) for e in errors)
            combined.args = (combined.message,)
            combined.errors = errors
            raise combined
        if "train_ds" not in frames:
            raise ConfigError("model.train_ds.file_path is required")
        if num_classes is None:
            num_classes = max(2, infer_num_classes(*frames.values()))
            logger.info("model.dataset.num_classes inferred from the data: %d", num_classes)
        for split, frame in frames.items():
            limit = self.cfg[split].num_samples
            if limit is not None and limit > 0:
                frames[split] = frame.iloc[: int(limit)]
        self.frames = frames
        self.num_classes = int(num_classes)
        self.id2label = names or {i: str(i) for i in range(self.num_classes)}
        return frames

    def _tokenize(self, split: str, frame: pd.DataFrame) -> tuple[list[list[int]], np.ndarray]:
        """Token ids and truncation flags of one split, from the cache when allowed and valid."""
        max_len = int(self.cfg.dataset.max_seq_length)
        texts = frame["sentence"].tolist()
        cache = None
        if self.cfg.dataset.get("use_cache"):
            cache = TokenCache(self._file(split), self.tokenizer, max_len, len(texts))
            hit = cache.load()
            self.from_cache[split] = hit is not None
            if hit is not None:
                logger.info("%s: %d examples read from the token cache %s", split, len(texts),
                            cache.path)
                return hit
        ids = tokenize(self.tokenizer, texts, max_len)
        truncated = truncated_mask(self.tokenizer, texts, ids, max_len)
        if cache is not None:
            cache.save(ids, truncated)
        return ids, truncated

    def load(self) -> TextClassificationDataModule:
        """:meth:`read` and tokenize every split (once).

        With ``model.dataset.use_cache: true`` the token ids come from (or go to) a cache file
        next to each TSV file (:class:`TokenCache`).

        Returns
        -------
        TextClassificationDataModule
            ``self``, with ``datasets`` and ``stats`` filled in.

        Raises
        ------
        DataFormatError, ConfigError
            As :meth:`read`.
        """
        if self._loaded:
            return self
        frames = self.read()
        max_len = int(self.cfg.dataset.max_seq_length)
        for split, frame in frames.items():
            ids, truncated = self._tokenize(split, frame)
            self.datasets[split] = EncodedDataset(ids, frame["label"].to_numpy())
            self.stats[split] = length_stats([len(row) for row in ids], truncated, max_len)
        # Lightning reads a hook that is None as "this split does not exist", which skips the
        # loop quietly (an empty loader would warn on every run without validation data).
        if "validation_ds" not in self.datasets:
            self.val_dataloader = None  # type: ignore[method-assign,assignment]
        if "test_ds" not in self.datasets:
            self.test_dataloader = None  # type: ignore[method-assign,assignment]
        self._loaded = True
        return self

    def setup(self, stage: str | None = None) -> None:
        """Lightning hook: :meth:`load` (a no-op after the first call)."""
        self.load()

    # ------------------------------------------------------------------ derived values
    def class_weights(self) -> list[float]:
        """The class weights of ``class_balancing: weighted_loss``.

        Returns
        -------
        list of float
            :func:`class_weights` of the training labels (after ``num_samples``).
        """
        self.load()
        return class_weights(self.datasets["train_ds"].labels, int(self.num_classes))

    def has(self, split: str) -> bool:
        """Whether a split has data.

        Parameters
        ----------
        split : {"train_ds", "validation_ds", "test_ds"}
            The split.

        Returns
        -------
        bool
            Before :meth:`load`: whether a file is configured for it; after: whether it was
            loaded.
        """
        return split in self.datasets or (not self._loaded and self._file(split) is not None)

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str) -> DataLoader:
        self.load()
        d = self.cfg[split]
        workers = int(d.num_workers)
        dataset = self.datasets[split]
        sampler: Any = None
        if d.group_by_length:
            sampler = LengthGroupedSampler([len(ids) for ids in dataset.input_ids],
                                           int(d.batch_size), shuffle=bool(d.shuffle))
        world = int(getattr(self.trainer, "world_size", 1) or 1) if self.trainer else 1
        if split != "train_ds" and world > 1 and len(dataset) >= world:
            # Each process evaluates every world-th example, none twice: Lightning's default
            # sampler pads the last batch with repeated examples, which the metrics would
            # count twice. The metrics are then summed over the processes (torchmetrics).
            from lightning.pytorch.overrides.distributed import (
                UnrepeatedDistributedSamplerWrapper,
            )

            base = sampler if sampler is not None else range(len(dataset))
            sampler = UnrepeatedDistributedSamplerWrapper(
                base, num_replicas=world, rank=int(self.trainer.global_rank), shuffle=False)
        return DataLoader(
            dataset,
            batch_size=int(d.batch_size),
            shuffle=bool(d.shuffle) if sampler is None else None,  # (a sampler shuffles itself)
            sampler=sampler,
            num_workers=workers,
            drop_last=bool(d.drop_last),
            pin_memory=bool(d.pin_memory),
            collate_fn=PadCollator(self.tokenizer.pad_token_id),
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Loader of the training split, as ``model.train_ds`` configures it (padded batches)."""
        return self._loader("train_ds")

    def val_dataloader(self) -> DataLoader:
        """Loader of the validation split (``model.validation_ds``).

        Without a validation file, :meth:`load` replaces this hook with None on the instance,
        which Lightning reads as "no validation".
        """
        return self._loader("validation_ds")

    def test_dataloader(self) -> DataLoader:
        """Loader of the test split (``model.test_ds``).

        Without a test file, :meth:`load` replaces this hook with None on the instance.
        """
        return self._loader("test_ds")
