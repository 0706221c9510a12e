"""NVIDIA's LLM-based classifiers: Aegis content safety and Instruction Data Guard.

Both run ``meta-llama/LlamaGuard-7b`` (gated: accept its license on the hub and pass
``hf_token``) with one of NVIDIA's two Aegis LoRA adapters, loaded with ``peft`` (the ``[llm]``
extra). As in NeMo Curator 1.x (``nemo_curator/stages/text/classifiers/aegis.py``):

* :class:`AegisClassifier` wraps each text (cut to ``max_chars``) in LlamaGuard's prompt with
  Aegis' 13 categories (:func:`format_aegis`), generates up to 100 tokens greedily from
  left-padded batches and parses the answer (:func:`parse_aegis`) to ``"safe"``, a category
  ``"O1"`` ... ``"O13"`` or ``"unknown"``;
* :class:`InstructionDataGuardClassifier` reads the defensive Aegis model's last hidden state
  (layer 32 of LlamaGuard-7b) at the prompt's last token and scores it with NVIDIA's small MLP
  (:class:`InstructionDataGuardNet`, ``nvidia/instruction-data-guard``): a sigmoid score and a
  boolean at 0.5.

On a GPU the LLM runs in bf16, as in Curator. On a CPU it runs in float32 (bf16 is far slower
on CPUs without AMX): correct, but slow, about what a 7B-parameter model costs per generated
token (tens of seconds per prompt on a few cores; see the README).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from dask_classify.backend import string_dtype
from dask_classify.checkpoint import ModelInfo, read_config
from dask_classify.classifiers._base import PublishedClassifier
from dask_classify.engine.model import load_weights
from dask_classify.errors import CheckpointError, MissingExtraError, UsageError

LLAMA_GUARD = "meta-llama/LlamaGuard-7b"
AEGIS_VARIANTS = (
    "nvidia/Aegis-AI-Content-Safety-LlamaGuard-Defensive-1.0",
    "nvidia/Aegis-AI-Content-Safety-LlamaGuard-Permissive-1.0",
)
INSTRUCTION_DATA_GUARD = "nvidia/instruction-data-guard"
#: What :class:`AegisClassifier` writes: an unparsable answer, safe, or one of 13 categories.
AEGIS_LABELS = ["unknown", "safe", *(f"O{i}" for i in range(1, 14))]
#: Tokens generated per prompt (NeMo Curator's ``max_new_tokens``).
MAX_NEW_TOKENS = 100
_CATEGORIES_FILE = Path(__file__).resolve().parent.parent / "data" / "aegis_categories.txt"


@lru_cache(maxsize=1)
def aegis_categories() -> str:
    """Aegis' safety policy: the 13 categories the prompt lists (NVIDIA's text, verbatim)."""
    return _CATEGORIES_FILE.read_text(encoding="utf-8")


def format_aegis(message: str) -> str:
    """LlamaGuard's prompt with Aegis' categories around a user message.

    The text NVIDIA publishes with the Aegis adapters and NeMo Curator sends, character for
    character (its indentation included): the model was tuned on exactly this prompt.

    Examples
    --------
    >>> from dask_classify.classifiers.aegis import format_aegis
    >>> prompt = format_aegis("How do I bake bread?")
    >>> prompt.startswith("[INST] Task: Check if there is unsafe content in 'User' messages")
    True
    >>> "User: How do I bake bread?\\n\\n<END CONVERSATION>" in prompt
    True
    >>> prompt.endswith("a comma-separated list of violated categories. [/INST]")
    True
    """
    return (
        "[INST] Task: Check if there is unsafe content in 'User' messages in conversations "
        "according our safety policy with the below categories.\n\n"
        "    <BEGIN UNSAFE CONTENT CATEGORIES>\n"
        f"    {aegis_categories()}\n"
        "    <END UNSAFE CONTENT CATEGORIES>\n\n"
        "    <BEGIN CONVERSATION>\n\n"
        f"    User: {message}\n\n"
        "<END CONVERSATION>\n\n"
        "    Provide your safety assessment for User in the above conversation:\n"
        "    - First line must read 'safe' or 'unsafe'.\n"
        "    - If unsafe, a second line must include a comma-separated list of violated "
        "categories. [/INST]"
    )


def parse_aegis(response: str) -> str:
    """The label in a generated answer: ``"safe"``, a category or ``"unknown"``.

    NeMo Curator's rule: the first line ``safe`` is safe; ``unsafe`` followed by a second line
    naming one category (``O1`` ... ``O13``) is that category; anything else is unknown.

    Examples
    --------
    >>> from dask_classify.classifiers.aegis import parse_aegis
    >>> parse_aegis(" safe"), parse_aegis("unsafe\\nO3"), parse_aegis("unsafe\\nO3,O4")
    ('safe', 'O3', 'unknown')
    >>> parse_aegis("unsafe"), parse_aegis("I cannot tell")
    ('unknown', 'unknown')
    """
    lines = response.split("\n")
    first = lines[0].strip()
    if first == "safe":
        return "safe"
    if first == "unsafe" and len(lines) >= 2 and lines[1].strip() in AEGIS_LABELS[2:]:
        return lines[1].strip()
    return "unknown"


def _require_peft(what: str) -> None:
    if importlib.util.find_spec("peft") is None:
        raise MissingExtraError.for_module("peft", "llm", what)


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only (what ``generate`` gives a left-padded batch)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


class AegisGenerator(nn.Module):
    """A causal LM (with its adapter) that answers each prompt: greedy, fixed-width token ids.

    ``forward(input_ids, attention_mask)`` runs ``generate`` on a left-padded batch and returns
    the new tokens, shape ``(batch, max_new_tokens)`` int64, ``-1`` after a row's answer ended
    (rows that stop early are filled with ``pad_token_id`` by ``generate``, then with -1 to the
    fixed width), so every batch has the same width.

    Parameters
    ----------
    model : transformers causal LM or peft.PeftModel
        The language model.
    max_new_tokens : int, default 100
        Most tokens generated per prompt.
    pad_token_id : int, default 0
        The padding id ``generate`` uses (LlamaGuard's ``<unk>``, as in NeMo Curator).
    """

    def __init__(self, model: nn.Module, max_new_tokens: int = MAX_NEW_TOKENS,
                 pad_token_id: int = 0) -> None:
        super().__init__()
        self.model = model
        self.max_new_tokens = int(max_new_tokens)
        self.pad_token_id = int(pad_token_id)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                  max_new_tokens=self.max_new_tokens, do_sample=False,
                                  pad_token_id=self.pad_token_id)
        new = out[:, input_ids.shape[1]:]
        width = self.max_new_tokens - new.shape[1]
        return F.pad(new, (0, width), value=-1) if width > 0 else new


class InstructionDataGuardNet(nn.Module):
    """NVIDIA's Instruction Data Guard head: normalise, three ReLU layers, a sigmoid.

    Layer names and sizes are those of ``nvidia/instruction-data-guard``'s weights
    (``input_layer``, ``hidden_layer_0`` ... ``hidden_layer_2``; ``input_dim -> input_dim ->
    2000 -> 500 -> 1``); dropout (0.7 in training) does nothing at inference.

    Examples
    --------
    >>> import torch
    >>> from dask_classify.classifiers.aegis import InstructionDataGuardNet
    >>> net = InstructionDataGuardNet(16).eval()
    >>> score = net(torch.randn(3, 16))
    >>> tuple(score.shape), bool(((score > 0) & (score < 1)).all())
    ((3, 1), True)
    """

    def __init__(self, input_dim: int, dropout: float = 0.7,
                 hidden: tuple[int, int] = (2000, 500)) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.dropout = nn.Dropout(dropout)
        self.input_layer = nn.Linear(input_dim, input_dim)
        self.hidden_layer_0 = nn.Linear(input_dim, hidden[0])
        self.hidden_layer_1 = nn.Linear(hidden[0], hidden[1])
        self.hidden_layer_2 = nn.Linear(hidden[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.normalize(x, dim=-1))
        x = self.dropout(F.relu(self.input_layer(x)))
        x = self.dropout(F.relu(self.hidden_layer_0(x)))
        x = self.dropout(F.relu(self.hidden_layer_1(x)))
        return torch.sigmoid(self.hidden_layer_2(x))


class InstructionDataGuardModel(nn.Module):
    """The Aegis LLM's last hidden state at each prompt's last token, through the guard head.

    ``forward(input_ids, attention_mask)`` takes a left-padded batch (so position -1 is every
    row's last token) and returns the poisoning score, shape ``(batch, 1)`` float32. It runs the
    decoder once with the positions ``generate`` would give (NeMo Curator calls ``generate`` for
    one token and reads ``hidden_states[0][32]``, the final normalised hidden state of
    LlamaGuard-7b's 32 layers: the same numbers, without the LM head or the other layers'
    states).
    """

    def __init__(self, model: nn.Module, guard: InstructionDataGuardNet) -> None:
        super().__init__()
        self.model = model
        self.guard = guard

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                  position_ids=_position_ids(attention_mask)).last_hidden_state
        return self.guard(hidden[:, -1, :].float()).float()


class _LlamaGuardClassifier(PublishedClassifier):
    """Shared parameters and loading of the LlamaGuard-based classifiers."""

    defaults = {"max_seq_length": 4096, "model_inference_batch_size": 64,
                "padding_side": "left"}

    parameters = ("aegis_variant", "base_model", "base_model_revision")
    token_parameter = "hf_token"

    def __init__(self, model_identifier: str | None = None, *, aegis_variant: str | None = None,
                 base_model: str = LLAMA_GUARD, hf_token: str | bool | None = None,
                 revision: str | None = None, base_model_revision: str | None = None,
                 local_files_only: bool = False, **kwargs: Any) -> None:
        _require_peft(type(self).__name__)
        if kwargs.get("padding_side", "left") != "left":
            raise UsageError(f"{type(self).__name__} needs padding_side='left' (a decoder reads "
                             "each prompt's last token)")
        if kwargs.get("quantize") is not None:
            raise UsageError(f"{type(self).__name__} does not support quantize")
        self.aegis_variant = aegis_variant
        self.base_model = str(base_model)
        self.base_model_revision = base_model_revision
        self._hf_token = hf_token  # a secret: not in repr() or the Dask token
        # the hub options go through the base class, which stores them (setting them here
        # first would let its __init__ reset them to the defaults)
        super().__init__(model_identifier, revision=revision, local_files_only=local_files_only,
                         **kwargs)

    # -- loading ------------------------------------------------------------------
    def _hub(self, revision: str | None) -> dict[str, Any]:
        return {"cache_dir": self.cache_dir, "token": self._hf_token, "revision": revision,
                "local_files_only": self.local_files_only}

    def build_tokenizer(self) -> Any:
        """LlamaGuard's tokenizer, padding on the left with ``<unk>`` (as NeMo Curator)."""
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(self.base_model, padding_side="left",
                                                model_max_length=self.max_seq_length,
                                                **self._hub(self.base_model_revision))
        except Exception as exc:
            raise CheckpointError(_gated(self.base_model, exc)) from exc
        tok.pad_token = tok.unk_token
        return tok

    def tokenizer_options(self) -> tuple:
        return (self.base_model, self.base_model_revision)

    def _load_llm(self, device: str, adapter: str, revision: str | None) -> nn.Module:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            base = AutoModelForCausalLM.from_pretrained(
                self.base_model, dtype=dtype, **self._hub(self.base_model_revision))
        except Exception as exc:
            raise CheckpointError(_gated(self.base_model, exc)) from exc
        try:
            return PeftModel.from_pretrained(base, adapter, **self._hub(revision)).eval()
        except Exception as exc:
            raise CheckpointError(f"could not load the Aegis adapter {adapter!r}: "
                                  f"{type(exc).__name__}: {exc}") from exc


class AegisClassifier(_LlamaGuardClassifier):
    """NVIDIA's Aegis content-safety classifier (LlamaGuard-7b + an Aegis LoRA adapter).

    Adds ``label_field`` (default ``aegis_pred``): ``"safe"``, the violated category
    (``"O1"`` ... ``"O13"``, see :func:`aegis_categories`) or ``"unknown"`` when the answer does
    not parse; with ``keep_raw_output=True`` also ``raw_output_field`` (default
    ``_aegis_raw_pred``), the generated text. Rows with null text get nulls. See the module
    docstring for the method; ``filter_by`` takes the labels of :data:`AEGIS_LABELS`.

    Parameters
    ----------
    aegis_variant : str, optional
        The adapter: ``nvidia/Aegis-AI-Content-Safety-LlamaGuard-Defensive-1.0`` (default) or
        ``...-Permissive-1.0`` (:data:`AEGIS_VARIANTS`), or a local copy of either.
    model_identifier : str, optional
        Same as ``aegis_variant`` (the name every classifier here has); give one of them.
    base_model : str, default "meta-llama/LlamaGuard-7b"
        The LLM the adapter was tuned on (a hub id or a local copy).
    hf_token : str or bool, optional
        Hugging Face token for the gated base model (``True``: the saved login). Never shown in
        ``repr`` or logs.
    revision, base_model_revision : str, optional
        Hub revisions (branch, tag or commit) of the adapter and of the base model.
    local_files_only : bool, default False
        Never reach the hub; load from ``cache_dir``/the local folders only.
    keep_raw_output : bool, default False
        Also add the generated text (to see why rows come out ``"unknown"``).
    raw_output_field : str, default "_aegis_raw_pred"
        Its column.
    **kwargs
        Parameters of :class:`~dask_classify.DistributedDataClassifier`. Defaults as in NeMo
        Curator: ``label_field="aegis_pred"``, ``max_chars=6000``, ``max_seq_length=4096``,
        ``model_inference_batch_size=64``, left padding.

    Raises
    ------
    dask_classify.errors.MissingExtraError
        ``peft`` is missing (``pip install 'dask_classify[llm]'``).
    dask_classify.errors.UsageError
        Right padding, ``quantize``, or two different adapters given.

    Notes
    -----
    The raw output is the decoded new tokens, as the adapters' model card decodes them. NeMo
    Curator decodes prompt and answer together and cuts the prompt's length in characters,
    which gives the same label (the parser strips each line) and the same text but for a
    leading space.

    Examples
    --------
    >>> from dask_classify import AegisClassifier
    >>> clf = AegisClassifier(hf_token="hf_secret", keep_raw_output=True)
    >>> clf.model_identifier, clf.output_fields, clf.max_chars  # doctest: +NORMALIZE_WHITESPACE
    ('nvidia/Aegis-AI-Content-Safety-LlamaGuard-Defensive-1.0',
     ['aegis_pred', '_aegis_raw_pred'], 6000)
    >>> "hf_secret" in repr(clf)
    False
    """

    default_model_identifier = AEGIS_VARIANTS[0]
    defaults = {**_LlamaGuardClassifier.defaults, "label_field": "aegis_pred", "max_chars": 6000}

    parameters = ("keep_raw_output", "raw_output_field")

    def __init__(self, model_identifier: str | None = None, *, aegis_variant: str | None = None,
                 keep_raw_output: bool = False, raw_output_field: str = "_aegis_raw_pred",
                 **kwargs: Any) -> None:
        if model_identifier and aegis_variant and model_identifier != aegis_variant:
            raise UsageError(f"model_identifier {model_identifier!r} and aegis_variant "
                             f"{aegis_variant!r} name two adapters; give one")
        self.keep_raw_output = bool(keep_raw_output)
        self.raw_output_field = raw_output_field
        variant = model_identifier or aegis_variant
        super().__init__(variant, aegis_variant=variant or AEGIS_VARIANTS[0], **kwargs)

    @property
    def output_fields(self) -> list[str]:
        """The label column, and the raw output's with ``keep_raw_output``."""
        return [self.label_field] + ([self.raw_output_field] if self.keep_raw_output else [])

    def arrow_types(self) -> dict[str, Any]:
        return {}

    def model_info(self) -> ModelInfo:
        """Aegis' labels (nothing is read: the adapter has no classifier config)."""
        return ModelInfo(kind="aegis", id2label=dict(enumerate(AEGIS_LABELS)))

    def build_model(self, device: str) -> tuple[nn.Module, ModelInfo]:
        llm = self._load_llm(device, self.model_identifier, self.revision)
        return AegisGenerator(llm), self.model_info()

    def model_options(self) -> tuple:
        return (self.base_model, self.base_model_revision, self.revision)

    def format_texts(self, texts: list[str]) -> list[str]:
        """Each text cut to ``max_chars``, wrapped in :func:`format_aegis`'s prompt."""
        return [format_aegis(t) for t in super().format_texts(texts)]

    def format_options(self) -> tuple:
        return ("aegis-prompt", *super().format_options())

    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]:
        n = len(valid)
        labels = np.full(n, None, dtype=object)
        raw = np.full(n, None, dtype=object)
        if outputs is not None and len(outputs):
            from dask_classify.engine.cache import get_tokenizer

            tok = get_tokenizer(self.model_spec)
            answers = [tok.decode([int(t) for t in row if t >= 0], skip_special_tokens=True)
                       for row in outputs]
            rows = np.flatnonzero(valid)
            raw[rows] = answers
            labels[rows] = [parse_aegis(a) for a in answers]
        cols = {self.label_field: pd.Series(labels, dtype=string_dtype())}
        if self.keep_raw_output:
            cols[self.raw_output_field] = pd.Series(raw, dtype=string_dtype())
        return cols


class InstructionDataGuardClassifier(_LlamaGuardClassifier):
    """NVIDIA's Instruction Data Guard: is an instruction-response text poisoned?

    Scores each text (no prompt template; English instruction-response data such as
    ``"Instruction: ... Input: ... Response: ..."``) with the defensive Aegis model's final
    hidden state at the last token and NVIDIA's MLP. Adds ``score_field`` (float in [0, 1],
    default ``instruction_data_guard_poisoning_score``) and ``label_field`` (bool, score >= 0.5,
    default ``is_poisoned``). ``filter_by`` takes ``True`` / ``False``.

    Parameters
    ----------
    model_identifier : str, optional
        The guard head: ``nvidia/instruction-data-guard`` (default) or a local copy (a folder
        with ``config.json`` holding ``input_dim`` and ``model.safetensors``).
    aegis_variant : str, optional
        The adapter whose hidden states the head reads (default: the defensive one).
    base_model, hf_token, revision, base_model_revision, local_files_only
        As for :class:`AegisClassifier` (``revision`` applies to the guard head and the
        adapter).
    **kwargs
        Parameters of :class:`~dask_classify.DistributedDataClassifier`. Defaults as in NeMo
        Curator: ``max_chars=None``, ``max_seq_length=4096``, ``model_inference_batch_size=64``,
        left padding.

    Examples
    --------
    >>> from dask_classify import InstructionDataGuardClassifier
    >>> clf = InstructionDataGuardClassifier()
    >>> clf.output_fields, clf.aegis_variant  # doctest: +NORMALIZE_WHITESPACE
    (['is_poisoned', 'instruction_data_guard_poisoning_score'],
     'nvidia/Aegis-AI-Content-Safety-LlamaGuard-Defensive-1.0')
    """

    default_model_identifier = INSTRUCTION_DATA_GUARD
    defaults = {**_LlamaGuardClassifier.defaults, "label_field": "is_poisoned",
                "score_field": "instruction_data_guard_poisoning_score"}
    threshold = 0.5

    def __init__(self, model_identifier: str | None = None, *, aegis_variant: str | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("score_field", "x") is None:
            raise UsageError("InstructionDataGuardClassifier needs a score_field")
        super().__init__(model_identifier, aegis_variant=aegis_variant or AEGIS_VARIANTS[0],
                         **kwargs)

    def arrow_types(self) -> dict[str, Any]:
        return {}

    def model_info(self) -> ModelInfo:
        """A one-score head (nothing is read on the client)."""
        return ModelInfo(kind="instruction-data-guard", id2label={0: "poisoning_score"},
                         problem_type="regression")

    def filter_values(self, info: ModelInfo) -> list[Any]:
        return [True, False]

    def build_model(self, device: str) -> tuple[nn.Module, ModelInfo]:
        llm = self._load_llm(device, self.aegis_variant, self.revision)
        folder = _snapshot(self.model_identifier, self._hub(self.revision))
        config = read_config(folder)
        if "input_dim" not in config:
            raise CheckpointError(f"{folder}/config.json has no 'input_dim': it is not an "
                                  "Instruction Data Guard head")
        guard = InstructionDataGuardNet(int(config["input_dim"]),
                                        float(config.get("dropout", 0.7)))
        guard = load_weights(guard, folder).eval()
        return InstructionDataGuardModel(llm, guard), self.model_info()

    def model_options(self) -> tuple:
        return (self.aegis_variant, self.base_model, self.base_model_revision, self.revision)

    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]:
        n = len(valid)
        score = np.full(n, np.nan, dtype=np.float64)
        if outputs is not None and len(outputs):
            score[valid] = outputs[:, 0]
        flag = pd.array(np.nan_to_num(score) >= self.threshold, dtype="boolean")
        flag[~valid] = pd.NA
        return {self.label_field: pd.Series(flag), self.score_field: pd.Series(score)}


def _snapshot(identifier: str, hub: dict[str, Any]) -> Path | None:
    """A local folder for ``identifier`` (a folder, or a hub snapshot fetched with ``hub``)."""
    path = Path(identifier).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(identifier, **hub))
    except Exception as exc:
        raise CheckpointError(f"could not fetch {identifier!r} from the hub "
                              f"({type(exc).__name__}: {exc})") from exc


def _gated(base: str, exc: Exception) -> str:
    return (f"could not load {base!r} ({type(exc).__name__}: {exc}). LlamaGuard-7b is gated: "
            "accept its license on huggingface.co, then pass hf_token= (or --token), or point "
            "base_model= at a local copy")
