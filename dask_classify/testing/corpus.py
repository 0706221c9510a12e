"""The default text corpus of the tiny builders: packaged SST-2 sentences and six other lines.

The lowest layer of :mod:`dask_classify.testing`: it imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CORPUS_FILE = Path(__file__).resolve().parent.parent / "data" / "sst2_sentences.txt"
"""2,000 real SST-2 training sentences shipped with the package (sources: ``tests/data/SOURCES.md``
of the repository): the default corpus of the builders, the same wherever they run."""

_FALLBACK_CORPUS = [
    "the movie was wonderful and moving",
    "a dull , lifeless and boring film",
    "stocks rose sharply after the earnings report",
    "the team won the championship game last night",
    "scientists discovered a new species of frog",
    "what is the capital city of france ?",
]


def default_corpus(limit: int = 2000) -> list[str]:
    """The packaged SST-2 sentences (:data:`CORPUS_FILE`) followed by six built-in lines.

    Parameters
    ----------
    limit : int, default 2000
        Most SST-2 sentences to take (the file holds 2,000; the built-in lines always follow).

    Returns
    -------
    list of str
        Up to ``limit`` SST-2 sentences, then six lines on other topics (news, science,
        questions), so a tokenizer trained on them knows more than film reviews.

    Examples
    --------
    >>> from dask_classify.testing import default_corpus
    >>> corpus = default_corpus(limit=10)
    >>> len(corpus), corpus[0], corpus[-1]
    (16, 'hide new secretions from the parental units', 'what is the capital city of france ?')
    """
    lines = CORPUS_FILE.read_text(encoding="utf-8").splitlines()[:limit]
    return [line for line in lines if line] + list(_FALLBACK_CORPUS)


def _texts_or_default(texts: Iterable[str] | None) -> list[str]:
    """``texts`` as a list, or :func:`default_corpus` when ``None``."""
    return list(texts) if texts is not None else default_corpus()


def _calibration_sample(texts: list[str]) -> list[str]:
    """Every 7th text of a corpus of 64 or more, else all of them: the head calibration sample."""
    return texts[::7] if len(texts) >= 64 else texts
