"""Tokenizers trained on a few texts: BERT (WordPiece), DeBERTa-v3 (SentencePiece) and LlamaGuard.

Building needs ``sentencepiece`` and ``protobuf`` (the ``[test]`` extra); loading a saved folder
needs neither. Imports only :mod:`dask_classify.errors` and :mod:`.corpus`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dask_classify.errors import UsageError
from dask_classify.testing.corpus import _texts_or_default

MODEL_MAX_LENGTH = 512
"""``model_max_length`` of the BERT and DeBERTa tokenizers, and the backbones' position limit."""


def build_tokenizer(folder: str | os.PathLike, kind: str = "deberta",
                    texts: Iterable[str] | None = None, vocab_size: int = 2000):
    """Train a tokenizer on ``texts`` and save it to ``folder``.

    Parameters
    ----------
    folder : str or path-like
        Where the tokenizer files are saved (created if missing).
    kind : {"deberta", "bert"}, default "deberta"
        ``"deberta"``: a SentencePiece unigram model wrapped as ``DebertaV2Tokenizer``;
        ``"bert"``: a WordPiece vocabulary made from SentencePiece BPE pieces (deterministic),
        wrapped as ``BertTokenizer``.
    texts : iterable of str, optional
        Training corpus; default :func:`default_corpus`.
    vocab_size : int, default 2000
        Upper bound on the vocabulary (small corpora give fewer pieces).

    Returns
    -------
    transformers tokenizer
        The trained tokenizer (``model_max_length`` 512), as saved in ``folder``.

    Raises
    ------
    UsageError
        For an unknown ``kind`` (a ``ValueError``).

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tokenizer
    >>> tok = build_tokenizer(tempfile.mkdtemp(), "bert", ["a tiny corpus", "of two lines"])
    >>> tok.convert_ids_to_tokens(tok("a tiny corpus")["input_ids"]), tok.pad_token_id
    (['[CLS]', 'a', 'tiny', 'corpus', '[SEP]'], 0)
    """
    if kind not in ("deberta", "bert"):
        raise UsageError(f"kind must be 'deberta' or 'bert', not {kind!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = _texts_or_default(texts)
    if kind == "bert":
        return _build_wordpiece(folder, texts, vocab_size)
    return _build_unigram(folder, texts, vocab_size)


def _wordpiece_vocab(texts: Sequence[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary: special tokens, every character in both forms, then BPE pieces.

    The tokenizers WordPiece trainer breaks ties between equally frequent merges in hash order
    (another vocabulary on every run); SentencePiece's BPE trainer is deterministic. Its pieces,
    learnt on the text as BERT normalises and splits it, become WordPiece tokens
    (``"\u2581the"`` -> ``"the"``, ``"ing"`` -> ``"##ing"``).
    """
    import sentencepiece as spm
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    lines = [" ".join(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t))) for t in texts]
    chars = sorted({c for line in lines for c in line if not c.isspace()})
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe",
        vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
        normalization_rule_name="identity", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = (sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_control(i)
              and not sp.is_unknown(i))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)]
    vocab += [p[1:] if p.startswith("\u2581") else "##" + p for p in pieces if p != "\u2581"]
    return list(dict.fromkeys(vocab))[: max(vocab_size, 5 + 2 * len(chars))]


def _build_wordpiece(folder: Path, texts: Sequence[str], vocab_size: int):
    """Save :func:`_wordpiece_vocab` as ``vocab.txt`` and a ``BertTokenizer`` in ``folder``."""
    from transformers import BertTokenizer

    vocab = _wordpiece_vocab(texts, vocab_size)
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    # from_pretrained reads vocab.txt in transformers 4 and 5 (v5 ignores vocab_file=).
    tok = BertTokenizer.from_pretrained(str(folder), model_max_length=MODEL_MAX_LENGTH)
    if len(tok) < len(vocab):
        raise RuntimeError(f"the WordPiece vocabulary did not load ({len(tok)} tokens)")
    tok.save_pretrained(str(folder))
    return tok


def _train_sentencepiece(texts: Iterable[str], prefix: Path, **options: Any) -> None:
    """Train SentencePiece on ``texts`` (one line each) into ``prefix.model``/``prefix.vocab``."""
    import sentencepiece as spm

    corpus = prefix.with_name(prefix.name + ".corpus.txt")
    corpus.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix),
                                   hard_vocab_limit=False, character_coverage=1.0,
                                   minloglevel=2, **options)


def _major_transformers() -> int:
    """The installed transformers' major version."""
    import transformers

    return int(transformers.__version__.split(".")[0])


def _build_unigram(folder: Path, texts: Sequence[str], vocab_size: int):
    """Train a DeBERTa-v3-style SentencePiece unigram tokenizer and save it in ``folder``."""
    with tempfile.TemporaryDirectory() as tmp:
        _train_sentencepiece(
            texts, Path(tmp) / "spm", model_type="unigram", vocab_size=vocab_size,
            pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2,
            eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]", user_defined_symbols=["[MASK]"])
        if _major_transformers() >= 5:
            from transformers import DebertaV2Tokenizer

            tok = DebertaV2Tokenizer.from_pretrained(tmp, model_max_length=MODEL_MAX_LENGTH)
        else:  # pragma: no cover - transformers 4
            from transformers import DebertaV2TokenizerFast

            tok = DebertaV2TokenizerFast(vocab_file=str(Path(tmp) / "spm.model"),
                                         model_max_length=MODEL_MAX_LENGTH)
        tok.save_pretrained(str(folder))
    return tok


def build_llama_tokenizer(folder: str | os.PathLike, texts: Iterable[str] | None = None,
                          vocab_size: int = 4000):
    """Train a LlamaGuard-style tokenizer (SentencePiece BPE, byte fallback) and save it.

    ``<unk>`` is 0, ``<s>`` 1 and ``</s>`` 2 as in Llama 2; ``<s>`` starts every encoding; there
    is no padding token (the classifiers pad with ``<unk>``, as NeMo Curator does).

    Parameters
    ----------
    folder : str or path-like
        Where the tokenizer files are saved (created if missing).
    texts : iterable of str, optional
        Training corpus; default :func:`default_corpus`. SentencePiece skips lines longer
        than its ``max_sentence_length`` (4,192 bytes): give long texts line by line.
    vocab_size : int, default 4000
        Upper bound on the vocabulary (small corpora give fewer pieces).

    Returns
    -------
    transformers.LlamaTokenizer
        The trained tokenizer (``model_max_length`` 4096, left padding), as saved in ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_llama_tokenizer
    >>> tok = build_llama_tokenizer(tempfile.mkdtemp(), ["is this prompt safe ?"] * 20)
    >>> ids = tok("is this safe ?")["input_ids"]
    >>> ids[0], tok.decode(ids, skip_special_tokens=True), tok.unk_token_id
    (1, 'is this safe ?', 0)
    """
    from transformers import LlamaTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = _texts_or_default(texts)
    with tempfile.TemporaryDirectory() as tmp:
        _train_sentencepiece(
            texts, Path(tmp) / "tokenizer", model_type="bpe", vocab_size=vocab_size, unk_id=0,
            bos_id=1, eos_id=2, pad_id=-1, byte_fallback=True, split_digits=True,
            normalization_rule_name="identity", add_dummy_prefix=True,
            remove_extra_whitespaces=False)
        tok = LlamaTokenizer.from_pretrained(tmp, model_max_length=4096, legacy=False,
                                             add_bos_token=True, add_eos_token=False)
        tok.padding_side = "left"
        tok.save_pretrained(str(folder))
    return tok
