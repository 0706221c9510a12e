"""128-bit hashes of texts, and the table of model outputs by hash that global folding joins.

``fold_duplicates="global"`` classifies each distinct text of a whole collection or job once
(:mod:`dask_classify.fold`): every row's text is hashed (:func:`hash_texts`, two independent
64-bit hashes of pandas' vectorised SipHash), the model runs on one representative per hash, and
each row finds its outputs in an :class:`OutputTable` by its hash. The table holds 16 bytes of
hash plus the outputs for each *distinct* text, never the texts: its size is
:meth:`OutputTable.nbytes`. Two different texts share a 128-bit hash with a probability of about
``n**2 / 2**129`` (1e-25 for ten million distinct texts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["OutputTable", "hash_texts"]

_KEYS = ("dask_classify.h1", "dask_classify.h2")  # 16 bytes each: SipHash keys


def hash_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent uint64 hashes of each text (equal texts, equal hashes; any process).

    Examples
    --------
    >>> from dask_classify.hashing import hash_texts
    >>> h1, h2 = hash_texts(["spam", "ham", "spam"])
    >>> h1.dtype, bool(h1[0] == h1[2] and h2[0] == h2[2]), bool(h1[0] == h1[1])
    (dtype('uint64'), True, False)
    """
    values = np.asarray(list(texts) if not isinstance(texts, np.ndarray) else texts,
                        dtype=object)
    if len(values) == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty.copy()
    return tuple(pd.util.hash_array(values, hash_key=key, categorize=True) for key in _KEYS)


@dataclass
class OutputTable:
    """Model outputs by text hash: ``outputs[i]`` belongs to the text hashed ``(h1[i], h2[i])``.

    Rows are sorted by ``(h1, h2)`` and each hash appears once.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.hashing import OutputTable, hash_texts
    >>> table = OutputTable.build([(*hash_texts(["b", "a"]), np.array([[0.2], [0.1]]))])
    >>> table.lookup(*hash_texts(["a", "b", "a"])).ravel().tolist()
    [0.1, 0.2, 0.1]
    >>> len(table), table.nbytes
    (2, 48)
    """

    h1: np.ndarray
    h2: np.ndarray
    outputs: np.ndarray

    @classmethod
    def build(cls, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> OutputTable:
        """One table from ``(h1, h2, outputs)`` parts (a hash in several parts is kept once:
        equal texts have equal outputs)."""
        parts = [p for p in parts if len(p[0])]
        if not parts:
            empty = np.zeros(0, dtype=np.uint64)
            return cls(empty, empty.copy(), np.zeros((0, 0), dtype=np.float32))
        h1 = np.concatenate([p[0] for p in parts])
        h2 = np.concatenate([p[1] for p in parts])
        outputs = np.concatenate([p[2] for p in parts])
        order = np.lexsort((h2, h1))
        h1, h2, outputs = h1[order], h2[order], outputs[order]
        first = np.ones(len(h1), dtype=bool)
        first[1:] = (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])
        return cls(h1[first], h2[first], outputs[first])

    def __len__(self) -> int:
        return len(self.h1)

    @property
    def nbytes(self) -> int:
        """Bytes the table holds (hashes and outputs)."""
        return int(self.h1.nbytes + self.h2.nbytes + self.outputs.nbytes)

    def lookup(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        """The outputs of each ``(h1, h2)``, in order.

        Raises
        ------
        KeyError
            A hash the table does not hold (the table was built from other texts).
        """
        if len(h1) == 0:
            return self.outputs[:0]
        at = np.searchsorted(self.h1, h1, side="left")
        at_clipped = np.minimum(at, max(len(self.h1) - 1, 0))
        found = (at < len(self.h1)) & (self.h1[at_clipped] == h1) & (self.h2[at_clipped] == h2)
        for i in np.flatnonzero(~found):  # h1 shared by several hashes (rare): scan its run
            stop = np.searchsorted(self.h1, h1[i], side="right")
            match = np.flatnonzero(self.h2[at[i]:stop] == h2[i])
            if not len(match):
                raise KeyError(f"text hash ({h1[i]}, {h2[i]}) is not in the output table")
            at_clipped[i] = at[i] + match[0]
        return self.outputs[at_clipped]
