"""Tokenizing the training data: the tokenizer, the token cache beside each TSV file, length stats.

:func:`load_training_tokenizer` loads the tokenizer a run trains with (``model_max_length`` always
set); :class:`TokenCache` keeps a file's token ids beside it, keyed by the file's SHA-256 and the
tokenizer's fingerprint (:func:`tokenizer_fingerprint`), so a rerun does not tokenize again;
:func:`truncated_mask` and :func:`length_stats` report how many rows the length limit cut.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dask_classify.atomic import file_mode
from dask_classify.train.config import ConfigError

__all__ = ["TokenCache", "length_stats", "load_training_tokenizer", "tokenizer_fingerprint",
           "truncated_mask"]

logger = logging.getLogger(__name__)


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

    Parameters
    ----------
    tokenizer : transformers tokenizer
        A fast tokenizer (its backend's state is hashed) or a slow one (its vocabulary and
        ``do_lower_case``).

    Returns
    -------
    str
        A SHA-256 hex digest.

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
    one DDP run may write it at once). A folder that cannot be written to only costs the cache
    (a warning).

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
        """Read the cache.

        Returns
        -------
        (list of list of int, numpy.ndarray of bool) or None
            The cached ``(ids, truncated)``; None when there is no cache file, it is unreadable
            (logged) or it was written for another file content, tokenizer, length or row count.
        """
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
        """Write the cache (atomically); a write error is logged, not raised.

        Parameters
        ----------
        ids : sequence of sequence of int
            Token ids of each row.
        truncated : numpy.ndarray of bool
            Which rows were truncated (:func:`truncated_mask`).
        """
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
