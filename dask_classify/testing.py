"""Tiny, real, offline checkpoints for tests, notebooks and benchmarks.

Every builder trains a real tokenizer on the texts given and saves a randomly initialised model
through the same code path the trainer uses, so a tiny checkpoint exercises exactly what a real
one does. Building a DeBERTa-v3-style (SentencePiece) tokenizer needs ``sentencepiece`` and
``protobuf`` (the ``[test]`` extra); loading a saved folder needs neither.

Examples
--------
>>> import tempfile
>>> from dask_classify.testing import build_tiny_deberta_checkpoint
>>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["a", "b"], tokenizer="bert",
...                                        texts=["a tiny corpus", "of two lines"])
>>> sorted(p.name for p in folder.iterdir())  # doctest: +NORMALIZE_WHITESPACE
['README.md', 'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json',
 'vocab.txt']
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from dask_classify.errors import UsageError

MODEL_MAX_LENGTH = 512
_FALLBACK_CORPUS = [
    "the movie was wonderful and moving",
    "a dull , lifeless and boring film",
    "stocks rose sharply after the earnings report",
    "the team won the championship game last night",
    "scientists discovered a new species of frog",
    "what is the capital city of france ?",
]


CORPUS_FILE = Path(__file__).resolve().parent / "data" / "sst2_sentences.txt"
"""2,000 real SST-2 training sentences shipped with the package (sources: ``tests/data/SOURCES.md``
of the repository): the default corpus of the builders below, the same wherever they run."""


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
    >>> len(default_corpus())
    2006
    """
    lines = CORPUS_FILE.read_text(encoding="utf-8").splitlines()[:limit]
    return [line for line in lines if line] + list(_FALLBACK_CORPUS)


def _major_transformers() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def build_tokenizer(folder: str | os.PathLike, kind: str = "deberta",
                    texts: Iterable[str] | None = None, vocab_size: int = 2000):
    """Train a tokenizer on ``texts`` and save it to ``folder``.

    Parameters
    ----------
    folder : str or path-like
        Where the tokenizer files are saved (created if missing).
    kind : {"deberta", "bert"}, default "deberta"
        ``"deberta"``: a SentencePiece unigram model wrapped as ``DebertaV2Tokenizer`` (needs
        ``sentencepiece``); ``"bert"``: a WordPiece vocabulary made from SentencePiece BPE pieces
        (deterministic), wrapped as ``BertTokenizer``.
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
    ValueError
        For an unknown ``kind``.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tokenizer
    >>> tok = build_tokenizer(tempfile.mkdtemp(), "bert", ["a tiny corpus", "of two lines"])
    >>> tok.convert_ids_to_tokens(tok("a tiny corpus")["input_ids"])
    ['[CLS]', 'a', 'tiny', 'corpus', '[SEP]']
    >>> tok.pad_token_id, tok.model_max_length
    (0, 512)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = list(texts) if texts is not None else default_corpus()
    if kind == "bert":
        import io

        import sentencepiece as spm
        from tokenizers.normalizers import BertNormalizer
        from tokenizers.pre_tokenizers import BertPreTokenizer
        from transformers import BertTokenizer

        # The tokenizers WordPiece trainer breaks ties between equally frequent merges in hash
        # order: the same corpus gave another vocabulary (other token ids, hence another "random"
        # model) on every run. SentencePiece's BPE trainer is deterministic; its pieces, learnt on
        # the text as BERT normalises and splits it, become WordPiece tokens ("\u2581the" -> "the",
        # "ing" -> "##ing") after every character in both forms.
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
        vocab = list(dict.fromkeys(vocab))[: max(vocab_size, 5 + 2 * len(chars))]
        (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
        # from_pretrained reads vocab.txt in transformers 4 and 5 (v5 ignores vocab_file=).
        tok = BertTokenizer.from_pretrained(str(folder), model_max_length=MODEL_MAX_LENGTH)
        if len(tok) < len(vocab):
            raise RuntimeError(f"the WordPiece vocabulary did not load ({len(tok)} tokens)")
        tok.save_pretrained(str(folder))
        return tok
    if kind != "deberta":
        raise UsageError(f"kind must be 'deberta' or 'bert', not {kind!r}")
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "spm"), model_type="unigram",
            vocab_size=vocab_size, pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]",
            eos_id=2, eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]",
            user_defined_symbols=["[MASK]"], hard_vocab_limit=False, character_coverage=1.0,
            minloglevel=2,
        )
        if _major_transformers() >= 5:
            from transformers import DebertaV2Tokenizer

            tok = DebertaV2Tokenizer.from_pretrained(tmp, model_max_length=MODEL_MAX_LENGTH)
        else:  # pragma: no cover - transformers 4
            from transformers import DebertaV2TokenizerFast

            tok = DebertaV2TokenizerFast(vocab_file=str(Path(tmp) / "spm.model"),
                                         model_max_length=MODEL_MAX_LENGTH)
        tok.save_pretrained(str(folder))
    return tok


def build_tiny_encoder(folder: str | os.PathLike, kind: str = "bert",
                       texts: Iterable[str] | None = None, seed: int = 0,
                       **overrides: Any) -> Path:
    """A tiny "pretrained" encoder folder (tokenizer + randomly initialised weights) to train from.

    ``kind`` is ``"bert"`` or ``"deberta"``; ``overrides`` change the backbone config (e.g.
    ``hidden_size=128``). The weights use the usual 0.02 initializer range, which trains well.

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    kind : {"bert", "deberta"}, default "bert"
        Tokenizer and backbone type (see :func:`build_tokenizer`).
    texts : iterable of str, optional
        Tokenizer training corpus; default :func:`default_corpus`.
    seed : int, default 0
        Torch seed for the random weights.
    **overrides
        Backbone config keys (see :func:`tiny_backbone_config`).

    Returns
    -------
    pathlib.Path
        ``folder``, holding the tokenizer and an ``AutoModel`` (``config.json``,
        ``model.safetensors``): pass it as ``model.language_model.pretrained_model_name``.

    Examples
    --------
    >>> import json, tempfile
    >>> from dask_classify.testing import build_tiny_encoder
    >>> folder = build_tiny_encoder(tempfile.mkdtemp(), "bert", texts=["a good film", "bad"],
    ...                             hidden_size=32)
    >>> json.loads((folder / "config.json").read_text())["hidden_size"]
    32
    """
    from transformers import AutoConfig, AutoModel

    folder = Path(folder)
    texts = list(texts) if texts is not None else default_corpus()
    tok = build_tokenizer(folder, kind, texts)
    model_type = "deberta-v2" if kind == "deberta" else "bert"
    overrides.setdefault("initializer_range", 0.02)
    cfg = tiny_backbone_config(model_type, len(tok), tok.pad_token_id, **overrides)
    cfg.pop("model_type")
    torch.manual_seed(seed)
    AutoModel.from_config(AutoConfig.for_model(model_type, **cfg)).save_pretrained(str(folder))
    return folder


def tiny_backbone_config(model_type: str = "deberta-v2", vocab_size: int = 2000,
                         pad_token_id: int = 0, **overrides: Any) -> dict[str, Any]:
    """A ~0.2M-parameter backbone config (hidden 64, 2 layers) as a plain dict.

    ``overrides`` replace any key (e.g. ``initializer_range``, ``num_hidden_layers``).

    Parameters
    ----------
    model_type : {"deberta-v2", "bert"} or str, default "deberta-v2"
        A transformers model type; ``"deberta-v2"`` gets DeBERTa-v3's relative attention
        settings.
    vocab_size : int, default 2000
        Size of the embedding table (use ``len(tokenizer)``).
    pad_token_id : int, default 0
        The tokenizer's padding id.
    **overrides
        Any other config key.

    Returns
    -------
    dict
        ``AutoConfig.for_model(...).to_dict()``, including ``model_type``; usable as a
        checkpoint's ``backbone_config``.

    Examples
    --------
    >>> from dask_classify.testing import tiny_backbone_config
    >>> cfg = tiny_backbone_config("bert", vocab_size=100, num_hidden_layers=1)
    >>> cfg["model_type"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    ('bert', 64, 1, 100)
    """
    from transformers import AutoConfig

    common = dict(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=128, pad_token_id=pad_token_id,
                  max_position_embeddings=MODEL_MAX_LENGTH,
                  # Wider than the usual 0.02, so a random encoder maps different texts to
                  # clearly different [CLS] vectors and the head needs no large gain (with a large
                  # gain float rounding would decide labels).
                  initializer_range=0.3)
    if model_type == "deberta-v2":
        common.update(relative_attention=True, position_buckets=256, pos_att_type=["p2c", "c2p"],
                      norm_rel_ebd="layer_norm", share_att_key=True,
                      position_biased_input=False, type_vocab_size=0)
    common.update(overrides)
    return AutoConfig.for_model(model_type, **common).to_dict()


def calibrate_head(model: torch.nn.Module, head: torch.nn.Linear, tokenizer: Any,
                   texts: Sequence[str], seed: int = 0, center: float = 0.0,
                   spread: float = 2.0, max_length: int = 64) -> None:
    """Re-draw ``head`` so its outputs on ``texts`` have mean ``center`` and std ``spread``.

    A randomly initialised encoder maps every text to nearly the same [CLS] vector, so a head
    drawn at std 0.02 gives near-uniform probabilities and one label for everything. Standardising
    a random projection over a sample of real texts gives varied labels with clear margins, like
    a trained model, so tests can tell a right answer from a wrong one.

    Examples
    --------
    >>> import tempfile, torch
    >>> from dask_classify.model import load_model, load_tokenizer
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint, calibrate_head
    >>> texts = ["good film", "bad film", "a fine day", "rain again", "so dull", "loved it",
    ...          "what a mess", "pure joy"]
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["a", "b"], tokenizer="bert",
    ...                                        texts=texts)
    >>> model, _ = load_model(folder)
    >>> tok = load_tokenizer(folder)
    >>> calibrate_head(model, model.fc, tok, texts, center=3.0, spread=1.0)
    >>> enc = tok(texts, padding=True, return_tensors="pt")
    >>> with torch.no_grad():
    ...     out = model.logits(enc["input_ids"], enc["attention_mask"])
    >>> round(float(out.mean()), 3)
    3.0
    """
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach()))
    sample = list(texts)[:256]
    if len(sample) < 8:
        sample += list(_FALLBACK_CORPUS)
    try:
        with torch.no_grad():
            enc = tokenizer(sample, padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt", return_token_type_ids=False)
            model.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    finally:
        hook.remove()
    x = feats[0].reshape(-1, head.in_features).double()
    gen = torch.Generator().manual_seed(seed)
    proj = torch.randn(head.out_features, head.in_features, generator=gen, dtype=torch.float64)
    raw = x @ proj.T
    mu, sd = raw.mean(0), raw.std(0).clamp_min(1e-12)
    with torch.no_grad():
        head.weight.copy_((proj * (spread / sd)[:, None]).to(head.weight.dtype))
        head.bias.copy_((center - mu * spread / sd).to(head.bias.dtype))


def build_tiny_deberta_checkpoint(folder: str | os.PathLike, labels: Sequence[str],
                                  tokenizer: str = "deberta", texts: Iterable[str] | None = None,
                                  seed: int = 0, num_output_layers: int = 1,
                                  vocab_size: int = 2000) -> Path:
    """A tiny NVIDIA-format checkpoint (``config.json`` with ``base_model``, ``fc.*`` keys).

    The head is calibrated on ``texts`` so that the random model gives varied labels with clear
    margins, like a trained one. The backbone's config is embedded (``backbone_config``), so the
    folder loads offline.

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    labels : sequence of str
        Label names in id order.
    tokenizer : {"deberta", "bert"}, default "deberta"
        Tokenizer kind (see :func:`build_tokenizer`); also picks a DeBERTa-v2 or BERT backbone.
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default ``default_corpus(2000)``.
    seed : int, default 0
        Seed of the weights and the head.
    num_output_layers : int, default 1
        Head layers (see :class:`dask_classify.Deberta`).
    vocab_size : int, default 2000
        Upper bound on the tokenizer's vocabulary.

    Returns
    -------
    pathlib.Path
        ``folder``, loadable with :func:`dask_classify.load_model` and
        :class:`dask_classify.DistributedDataClassifier`.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.model import model_info
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["High", "Medium", "Low"],
    ...                                        tokenizer="bert", texts=["a good text", "bad"])
    >>> info = model_info(folder)
    >>> info.kind, info.labels, info.config["base_model"]
    ('deberta', ['High', 'Medium', 'Low'], 'tiny-bert')
    """
    from dask_classify.model import Deberta, save_checkpoint

    folder = Path(folder)
    texts = list(texts) if texts is not None else default_corpus(2000)
    tok = build_tokenizer(folder, tokenizer, texts, vocab_size=vocab_size)
    model_type = "deberta-v2" if tokenizer == "deberta" else "bert"
    torch.manual_seed(seed)
    config = {
        "base_model": f"tiny-{model_type}",
        "fc_dropout": 0.2,
        "id2label": {str(i): str(lab) for i, lab in enumerate(labels)},
        "label2id": {str(lab): i for i, lab in enumerate(labels)},
        "num_output_layers": num_output_layers,
        "backbone_config": tiny_backbone_config(model_type, len(tok), tok.pad_token_id),
    }
    model = Deberta(config).eval()
    calibrate_head(model, model.fc, tok, texts[::7] if len(texts) >= 64 else texts, seed)
    save_checkpoint(model, tok, folder)
    return folder


def build_tiny_hf_checkpoint(folder: str | os.PathLike, labels: Sequence[str] | None = None,
                             regression: bool = False, tokenizer: str = "bert",
                             texts: Iterable[str] | None = None, seed: int = 0,
                             problem_type: str | None = None, **overrides: Any) -> Path:
    """A tiny plain ``AutoModelForSequenceClassification`` folder (classification or regression).

    With ``regression=True`` the head has one output and ``problem_type="regression"`` (the
    FineWeb-edu format), calibrated so scores spread around the middle of [0, 5].

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    labels : sequence of str, optional
        Label names in id order (default ``["LABEL_0", "LABEL_1"]``); ignored for regression.
    regression : bool, default False
        One regression output (label ``"score"``) instead of a classification head.
    tokenizer : {"bert", "deberta"}, default "bert"
        Tokenizer kind; also picks a BERT or DeBERTa-v2 model.
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default ``default_corpus(2000)``.
    seed : int, default 0
        Seed of the weights and the head.
    problem_type : str, optional
        ``config.problem_type`` of a classification head (e.g.
        ``"multi_label_classification"``); regression heads always say ``"regression"``.
    **overrides
        Backbone config keys (e.g. ``max_position_embeddings=32``).

    Returns
    -------
    pathlib.Path
        ``folder``, with ``config.json`` (``model_type``, ``architectures``), the weights and the
        tokenizer.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.model import model_info
    >>> from dask_classify.testing import build_tiny_hf_checkpoint
    >>> folder = build_tiny_hf_checkpoint(tempfile.mkdtemp(), regression=True,
    ...                                   texts=["a good text", "a bad one"])
    >>> info = model_info(folder)
    >>> info.kind, info.regression, info.labels
    ('hf', True, ['score'])
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = Path(folder)
    texts = list(texts) if texts is not None else default_corpus(2000)
    tok = build_tokenizer(folder, tokenizer, texts)
    model_type = "deberta-v2" if tokenizer == "deberta" else "bert"
    cfg = tiny_backbone_config(model_type, len(tok), tok.pad_token_id, **overrides)
    cfg.pop("model_type", None)
    if problem_type is not None and not regression:
        cfg["problem_type"] = problem_type
    if regression:
        cfg.update(num_labels=1, problem_type="regression", id2label={0: "score"},
                   label2id={"score": 0})
    else:
        labels = list(labels or ["LABEL_0", "LABEL_1"])
        cfg.update(id2label={i: lab for i, lab in enumerate(labels)},
                   label2id={lab: i for i, lab in enumerate(labels)})
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, **cfg))
    head = model.classifier if hasattr(model, "classifier") else model.score
    head = head if isinstance(head, torch.nn.Linear) else head.out_proj
    sample = texts[::7] if len(texts) >= 64 else texts
    length = min(64, int(cfg.get("max_position_embeddings", 64)))
    if regression:  # scores spread over [0, 5] around the 2.5 threshold
        calibrate_head(model, head, tok, sample, seed, center=2.5, spread=1.5, max_length=length)
    else:
        calibrate_head(model, head, tok, sample, seed, max_length=length)
    model.save_pretrained(str(folder))
    # Make sure the folder does not depend on the saving transformers' defaults for labels.
    config_path = folder / "config.json"
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    saved.setdefault("architectures", [type(model).__name__])
    config_path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    return folder


#: Task types of the published prompt task and complexity classifier, in id order.
PROMPT_TASK_TYPES = ["Brainstorming", "Chatbot", "Classification", "Closed QA", "Code Generation",
                     "Extraction", "Open QA", "Other", "Rewrite", "Summarization",
                     "Text Generation", "Unknown"]


def prompt_complexity_config() -> dict[str, Any]:
    """A ``config.json`` shaped like ``nvidia/prompt-task-and-complexity-classifier``'s.

    The same keys, head order and sizes, task types, weights and divisors as the published
    checkpoint's model card describes; no ``base_model`` (the builder adds one).

    Examples
    --------
    >>> from dask_classify.testing import prompt_complexity_config
    >>> cfg = prompt_complexity_config()
    >>> list(cfg["target_sizes"].values()), cfg["task_type_map"]["4"]
    ([12, 3, 2, 2, 6, 4, 1, 2], 'Code Generation')
    """
    return {
        "target_sizes": {"task_type": 12, "creativity_scope": 3, "reasoning": 2,
                         "contextual_knowledge": 2, "number_of_few_shots": 6,
                         "domain_knowledge": 4, "no_label_reason": 1, "constraint_ct": 2},
        "task_type_map": {str(i): name for i, name in enumerate(PROMPT_TASK_TYPES)},
        "weights_map": {"creativity_scope": [2, 1, 0], "reasoning": [0, 1],
                        "contextual_knowledge": [0, 1], "number_of_few_shots": [0, 1, 2, 3, 4, 5],
                        "domain_knowledge": [3, 1, 2, 0], "no_label_reason": [0],
                        "constraint_ct": [1, 0]},
        "divisor_map": {"creativity_scope": 2, "reasoning": 1, "contextual_knowledge": 1,
                        "number_of_few_shots": 1, "domain_knowledge": 3, "no_label_reason": 1,
                        "constraint_ct": 1},
    }


def build_tiny_prompt_complexity_checkpoint(folder: str | os.PathLike,
                                            texts: Iterable[str] | None = None,
                                            seed: int = 0) -> Path:
    """A tiny checkpoint in the published prompt task and complexity format (untrained).

    ``config.json`` names ``base_model`` (here the absolute path of a tiny DeBERTa-v3-style
    config in ``folder/backbone``, where the published one names ``microsoft/DeBERTa-v3-base``),
    with :func:`prompt_complexity_config`'s heads; ``model.safetensors`` holds ``backbone.*``
    and ``head_<i>.fc.*``; the SentencePiece tokenizer sits beside them. Every head is
    calibrated on ``texts`` so the random model gives varied answers.

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default :func:`default_corpus`.
    seed : int, default 0
        Seed of the weights.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Examples
    --------
    >>> import json, tempfile
    >>> from dask_classify.testing import build_tiny_prompt_complexity_checkpoint
    >>> folder = build_tiny_prompt_complexity_checkpoint(
    ...     tempfile.mkdtemp(), texts=["write a poem about the sea", "what is two plus two ?"])
    >>> sorted(json.loads((folder / "config.json").read_text()))
    ['base_model', 'divisor_map', 'target_sizes', 'task_type_map', 'weights_map']
    """
    from safetensors.torch import save_file
    from transformers import AutoConfig

    from dask_classify.classifiers.prompt_complexity import PromptTaskComplexityModel

    folder = Path(folder)
    texts = list(texts) if texts is not None else default_corpus(2000)
    tok = build_tokenizer(folder, "deberta", texts)
    backbone = tiny_backbone_config("deberta-v2", len(tok), tok.pad_token_id)
    backbone_dir = (folder / "backbone").resolve()
    AutoConfig.for_model(**backbone).save_pretrained(str(backbone_dir))
    config = {"base_model": str(backbone_dir), **prompt_complexity_config()}
    torch.manual_seed(seed)
    model = PromptTaskComplexityModel(config).eval()
    sample = texts[::7] if len(texts) >= 64 else texts
    for i in range(len(config["target_sizes"])):
        calibrate_head(model, getattr(model, f"head_{i}").fc, tok, sample, seed + i)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def build_llama_tokenizer(folder: str | os.PathLike, texts: Iterable[str] | None = None,
                          vocab_size: int = 4000):
    """Train a LlamaGuard-style tokenizer (SentencePiece BPE, byte fallback) and save it.

    ``<unk>`` is 0, ``<s>`` 1 and ``</s>`` 2 as in Llama 2; no padding token (the classifiers set
    ``<unk>``, as NeMo Curator does). Needs ``sentencepiece`` and ``protobuf`` to build.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_llama_tokenizer
    >>> tok = build_llama_tokenizer(tempfile.mkdtemp(), ["is this prompt safe ?"] * 20)
    >>> ids = tok("is this safe ?")["input_ids"]
    >>> ids[0], tok.decode(ids, skip_special_tokens=True), tok.unk_token_id
    (1, 'is this safe ?', 0)
    """
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = list(texts) if texts is not None else default_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "tokenizer"), model_type="bpe",
            vocab_size=vocab_size, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, byte_fallback=True,
            hard_vocab_limit=False, character_coverage=1.0, split_digits=True,
            normalization_rule_name="identity", add_dummy_prefix=True,
            remove_extra_whitespaces=False, minloglevel=2,
        )
        tok = LlamaTokenizer.from_pretrained(tmp, model_max_length=4096, legacy=False,
                                             add_bos_token=True, add_eos_token=False)
        tok.padding_side = "left"
        tok.save_pretrained(str(folder))
    return tok


def build_tiny_llama_guard(folder: str | os.PathLike, texts: Iterable[str] | None = None,
                           seed: int = 0) -> dict[str, Path]:
    """Tiny, random stand-ins for LlamaGuard-7b, the two Aegis adapters and Instruction Data Guard.

    Four folders under ``folder``, in the published formats:

    * ``base``: a 2-layer ``LlamaForCausalLM`` (hidden size 32) and a LlamaGuard-style
      tokenizer (:func:`build_llama_tokenizer`) trained on ``texts`` and the Aegis prompt;
    * ``defensive`` and ``permissive``: LoRA adapters (``q_proj``/``v_proj``, random non-zero
      weights) saved with ``peft``;
    * ``guard``: an :class:`~dask_classify.classifiers.aegis.InstructionDataGuardNet` with the
      published layer names and sizes (``config.json`` with ``input_dim``), its last layer
      calibrated on ``texts`` so scores spread on both sides of 0.5.

    Nothing is trained: answers are random text (Aegis labels come out ``"unknown"``).

    Parameters
    ----------
    folder : str or path-like
        Output folder (created if missing).
    texts : iterable of str, optional
        Tokenizer corpus and calibration sample; default :func:`default_corpus`.
    seed : int, default 0
        Seed of the weights.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"base": ..., "defensive": ..., "permissive": ..., "guard": ...}``.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify.testing import build_tiny_llama_guard
    >>> paths = build_tiny_llama_guard(tempfile.mkdtemp(), ["write a poem", "how are you ?"])
    >>> sorted(p.name for p in paths["defensive"].iterdir())
    ['README.md', 'adapter_config.json', 'adapter_model.safetensors']
    """
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from dask_classify.classifiers.aegis import (
        InstructionDataGuardModel,
        InstructionDataGuardNet,
        format_aegis,
    )

    folder = Path(folder)
    texts = list(texts) if texts is not None else default_corpus(2000)
    paths = {name: folder / name for name in ("base", "defensive", "permissive", "guard")}
    # SentencePiece skips lines over 4,192 bytes: the prompt goes in line by line
    tok = build_llama_tokenizer(paths["base"], texts + format_aegis("").split("\n") * 5)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(paths["base"]))
    adapters = {}
    for i, name in enumerate(("defensive", "permissive")):
        torch.manual_seed(seed + 1 + i)
        base = LlamaForCausalLM.from_pretrained(str(paths["base"]))
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                          init_lora_weights=False, task_type="CAUSAL_LM")
        adapters[name] = get_peft_model(base, lora).eval()
        adapters[name].save_pretrained(str(paths[name]))
    torch.manual_seed(seed + 3)
    guard = InstructionDataGuardNet(config.hidden_size).eval()
    calibration = _padded_copy(tok)
    sample = texts[::7] if len(texts) >= 64 else texts
    calibrate_head(InstructionDataGuardModel(adapters["defensive"], guard),
                   guard.hidden_layer_2, calibration, sample, seed)
    paths["guard"].mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in guard.state_dict().items()},
              str(paths["guard"] / "model.safetensors"), metadata={"format": "pt"})
    (paths["guard"] / "config.json").write_text(
        json.dumps({"input_dim": config.hidden_size, "dropout": 0.7}, indent=2) + "\n",
        encoding="utf-8")
    return paths


def _padded_copy(tok: Any) -> Any:
    import copy

    tok = copy.deepcopy(tok)
    tok.pad_token = tok.unk_token
    tok.padding_side = "left"
    return tok
