"""The training data: NeMo-format TSV files, validated up front, tokenized once, padded per batch.

Every configured file (train, validation, test) is read and validated with
:func:`dask_classify.train.data.read_tsv` before training starts, so a bad line in the test file
fails the run in seconds, not after hours of training. Texts are tokenized with the same function
the classifier uses at inference (:func:`dask_classify.tokenize.tokenize`), so a trained model sees
the same token ids in training and in :class:`~dask_classify.DistributedDataClassifier`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Sampler

from dask_classify.atomic import file_mode
from dask_classify.tokenize import pad_batch, tokenize
from dask_classify.train.config import ConfigError
from dask_classify.train.data import (
    DataFormatError,
    infer_num_classes,
    read_labels_file,
    read_tsv,
)

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
# Tokenizers report a sentinel (int(1e30)) when no limit was saved.
_ABSURD_MAX_LENGTH = 100_000


def _lowercases(tokenizer: Any) -> bool:
    probe = "THE Quick BROWN Fox"
    return tokenizer(probe)["input_ids"] == tokenizer(probe.lower())["input_ids"]


def load_training_tokenizer(name: str | os.PathLike, max_seq_length: int,
                            do_lower_case: bool = False) -> Any:
    """The encoder's tokenizer, ready to be trained with and saved with the classifier.

    Parameters
    ----------
    name : str or path-like
        Folder or hub id of the tokenizer (usually the encoder's).
    max_seq_length : int
        Becomes the tokenizer's ``model_max_length`` when that is unset or absurdly large:
        transformers 5 saves a huge value otherwise, and truncation then never happens in the
        saved checkpoint.
    do_lower_case : bool, default False
        Make the tokenizer lower-case its input (through the tokenizer's own ``do_lower_case``
        setting, which is saved with it, so inference lower-cases too).

    Returns
    -------
    transformers tokenizer
        From ``AutoTokenizer.from_pretrained(name)`` (with ``do_lower_case=True`` when asked).

    Raises
    ------
    ConfigError
        When ``do_lower_case`` is asked of a tokenizer that cannot lower-case, or the tokenizer
        has no padding token.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tokenizer
    >>> from dask_classify.train.datamodule import load_training_tokenizer
    >>> folder = tempfile.mkdtemp()
    >>> _ = build_tokenizer(folder, "bert", ["a good film", "a bad film"])
    >>> tok = load_training_tokenizer(folder, max_seq_length=128, do_lower_case=True)
    >>> tok("A GOOD Film")["input_ids"] == tok("a good film")["input_ids"]
    True
    >>> tok.model_max_length  # the tokenizer's own limit is kept when it has one
    512
    """
    from transformers import AutoTokenizer

    name = os.fspath(name)
    tokenizer = AutoTokenizer.from_pretrained(name)
    if do_lower_case and not _lowercases(tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(name, do_lower_case=True)
        ok = _lowercases(tokenizer)
        if ok:  # the setting must survive a save/load round trip, or inference would differ
            with tempfile.TemporaryDirectory() as tmp:
                tokenizer.save_pretrained(tmp)
                ok = _lowercases(AutoTokenizer.from_pretrained(tmp))
        if not ok:
            raise ConfigError(
                f"model.dataset.do_lower_case: the tokenizer of {name!r} "
                f"({type(tokenizer).__name__}) has no lower-casing option; lower-case the data "
                "files instead and set do_lower_case: false"
            )
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > _ABSURD_MAX_LENGTH:
        tokenizer.model_max_length = int(max_seq_length)
    if tokenizer.pad_token_id is None:
        raise ConfigError(f"the tokenizer of {name!r} has no padding token")
    return tokenizer


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
    shuffled. Batches then hold examples of about one length, so padding (and compute) shrinks:
    on SST-2 about 3x fewer tokens than random batches. The same idea as Hugging Face's
    ``group_by_length``. Randomness comes from torch's global generator, as for
    ``RandomSampler``, so seeding makes it reproducible.

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


def truncated_mask(tokenizer: Any, texts: Sequence[str], ids: Sequence[Sequence[int]],
                   max_length: int) -> np.ndarray:
    """Which texts lost tokens to ``max_length`` (only those that reached it are re-tokenized).

    Parameters
    ----------
    tokenizer : transformers tokenizer
        The tokenizer that produced ``ids``.
    texts : sequence of str
        The texts.
    ids : sequence of sequence of int
        Their token ids, truncated to ``max_length`` (:func:`dask_classify.tokenize.tokenize`).
    max_length : int
        The limit.

    Returns
    -------
    numpy.ndarray of bool
        True for each truncated text.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tokenizer
    >>> from dask_classify.tokenize import tokenize
    >>> tok = build_tokenizer(tempfile.mkdtemp(), "bert", ["a good film", "a bad film"])
    >>> texts = ["a good film", "a bad film", "a film"]
    >>> truncated_mask(tok, texts, tokenize(tok, texts, 4), 4).tolist()  # 5, 5 and 4 tokens
    [True, True, False]
    """
    at_limit = [i for i, row in enumerate(ids) if len(row) >= max_length]
    out = np.zeros(len(ids), dtype=bool)
    if at_limit:
        full = tokenizer([texts[i] for i in at_limit], truncation=False, padding=False,
                         return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        for i, row in zip(at_limit, full, strict=True):
            out[i] = len(row) > max_length
    return out


def length_stats(lengths: Sequence[int], truncated: np.ndarray, max_length: int
                 ) -> dict[str, Any]:
    """Token-length statistics of one split, as training prints them.

    Parameters
    ----------
    lengths : sequence of int
        Tokens of each example after truncation.
    truncated : numpy.ndarray of bool
        Which examples were truncated (:func:`truncated_mask`).
    max_length : int
        ``model.dataset.max_seq_length``.

    Returns
    -------
    dict
        ``count``, ``min``, ``mean``, ``median``, ``p90``, ``p99``, ``max``, ``max_seq_length``,
        ``truncated`` (count) and ``truncated_share``.

    Examples
    --------
    >>> import numpy as np
    >>> s = length_stats([3, 5, 8, 8], np.array([False, False, True, False]), 8)
    >>> s["median"], s["max"], s["truncated"], s["truncated_share"]
    (6.5, 8, 1, 0.25)
    """
    arr = np.asarray(lengths, dtype=np.int64)
    n = int(arr.size)
    cut = int(np.count_nonzero(truncated))
    if n == 0:
        return {"count": 0, "max_seq_length": int(max_length), "truncated": 0,
                "truncated_share": 0.0}
    return {"count": n, "min": int(arr.min()), "mean": round(float(arr.mean()), 2),
            "median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": int(arr.max()),
            "max_seq_length": int(max_length), "truncated": cut,
            "truncated_share": round(cut / n, 4)}


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what decides a tokenizer's output: its class, vocabulary, normaliser (e.g.
    lower-casing), pre-tokenizer and special tokens.

    Two tokenizers with the same fingerprint produce the same ids for every text; any change of
    vocabulary or normalisation changes it.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tokenizer
    >>> texts = ["a good film", "a bad film"]
    >>> a = build_tokenizer(tempfile.mkdtemp(), "bert", texts)
    >>> b = build_tokenizer(tempfile.mkdtemp(), "bert", texts)
    >>> c = build_tokenizer(tempfile.mkdtemp(), "bert", texts + ["another word"])
    >>> tokenizer_fingerprint(a) == tokenizer_fingerprint(b) != tokenizer_fingerprint(c)
    True
    """
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        for key in ("truncation", "padding"):  # call settings, changed by every call
            state.pop(key, None)
        h.update(json.dumps(state, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
        h.update(repr(getattr(tokenizer, "do_lower_case", None)).encode())
    specials = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    h.update(json.dumps(specials, sort_keys=True).encode())
    return h.hexdigest()


class TokenCache:
    """The token ids of one TSV file, cached next to it (``model.dataset.use_cache``).

    The cache file is ``<tsv>.dask_classify-tokens-<max_seq_length>-<tokenizer hash>.npz`` in the
    TSV's folder. It stores the SHA-256 of the TSV's bytes, the number of rows tokenized and a
    format version; :meth:`load` serves it only when all of these match, so an edited file, a
    different tokenizer (vocabulary, lower-casing, ...) or another ``max_seq_length`` or
    ``num_samples`` tokenizes afresh (and rewrites the cache). Writes are atomic (so processes of
one DDP run may write it at once). A folder that
    cannot be written to only costs the cache (a warning).

    Parameters
    ----------
    tsv : str or path-like
        The data file.
    tokenizer : transformers tokenizer
        The tokenizer.
    max_length : int
        ``model.dataset.max_seq_length``.
    rows : int
        Rows tokenized (after ``num_samples``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from dask_classify.testing import build_tokenizer
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "train.tsv").write_text("a good film\\t1\\n", encoding="utf-8")
    >>> tok = build_tokenizer(tmp / "tok", "bert", ["a good film"])
    >>> cache = TokenCache(tmp / "train.tsv", tok, 16, rows=1)
    >>> cache.load() is None
    True
    >>> cache.save([[2, 5, 6, 7, 3]], np.array([False]))
    >>> ids, truncated = TokenCache(tmp / "train.tsv", tok, 16, rows=1).load()
    >>> ids, truncated.tolist()
    ([[2, 5, 6, 7, 3]], [False])
    """

    VERSION = 1

    def __init__(self, tsv: str | os.PathLike, tokenizer: Any, max_length: int,
                 rows: int) -> None:
        self.tsv = Path(tsv)
        self.max_length = int(max_length)
        self.rows = int(rows)
        fingerprint = tokenizer_fingerprint(tokenizer)
        self.path = self.tsv.with_name(f"{self.tsv.name}.dask_classify-tokens-"
                                       f"{self.max_length}-{fingerprint[:16]}.npz")
        self._meta = {"version": self.VERSION, "sha256": _file_sha256(self.tsv),
                      "rows": self.rows, "max_length": self.max_length,
                      "tokenizer": fingerprint}

    def load(self) -> tuple[list[list[int]], np.ndarray] | None:
        """The cached ``(ids, truncated)``, or None when there is no valid cache."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta != self._meta:
                    return None
                flat, offsets = data["ids"], data["offsets"]
                truncated = data["truncated"].astype(bool)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring the unreadable token cache %s (%s)", self.path, exc)
            return None
        ids = [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]
        return ids, truncated

    def save(self, ids: Sequence[Sequence[int]], truncated: np.ndarray) -> None:
        """Write the cache (atomically); a write error is logged, not raised."""
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.fromiter((t for row in ids for t in row), dtype=np.int64,
                           count=int(offsets[-1]))
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, ids=flat, offsets=offsets,
                         truncated=np.asarray(truncated, dtype=bool),
                         meta=np.array(json.dumps(self._meta)))
            os.chmod(temp, file_mode())
            os.replace(temp, self.path)  # atomic: readers see the old file or the new one
            temp = None
        except OSError as exc:
            logger.warning("could not write the token cache %s (%s); continuing without it",
                           self.path, exc)
        finally:
            if temp is not None and os.path.exists(temp):
                os.unlink(temp)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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

        Raises
        ------
        DataFormatError
            A missing file, a malformed line or a label ``>= num_classes`` (all reported as
            ``file:line``), or a labels file that does not match ``num_classes``.
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
        """:meth:`read` and tokenize every split (once); returns ``self``.

        With ``model.dataset.use_cache: true`` the token ids come from (or go to) a cache file
        next to each TSV file (:class:`TokenCache`).
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
        """:func:`class_weights` of the training labels (after ``num_samples``)."""
        self.load()
        return class_weights(self.datasets["train_ds"].labels, int(self.num_classes))

    def has(self, split: str) -> bool:
        """Whether ``split`` (``"train_ds"``, ``"validation_ds"``, ``"test_ds"``) has data.

        Before :meth:`load`: whether a file is configured for it; after: whether it was loaded.
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
