"""NVIDIA's prompt task and complexity classifier: eight heads on a mean-pooled DeBERTa.

The checkpoint (``nvidia/prompt-task-and-complexity-classifier``) is a folder with
``config.json`` (``base_model``, ``target_sizes``, ``task_type_map``, ``weights_map``,
``divisor_map``), ``model.safetensors`` with keys ``backbone.*`` and ``head_<i>.fc.*`` and the
tokenizer files. The model mean-pools the backbone's last hidden states over the attention mask
and runs one linear head per entry of ``target_sizes``, in its order: task type, creativity
scope, reasoning, contextual knowledge, number of few shots, domain knowledge, no-label reason
and constraint count (the order NeMo Curator's post-processing reads them in).

The post-processing follows NeMo Curator 1.x (``nemo_curator/stages/text/classifiers/
prompt_task_complexity.py``): the two most likely task types (the second ``"NA"`` when its
softmax probability, rounded to 3 decimals, is under 0.1) and the first one's probability; each
complexity dimension the softmax-weighted sum of ``weights_map`` divided by ``divisor_map``,
rounded to 4 decimals (few shots under 0.05 become 0); and the complexity score
``0.35 creativity + 0.25 reasoning + 0.15 constraints + 0.15 domain knowledge + 0.05 contextual
knowledge + 0.05 few shots``, rounded to 5 decimals and stored as float32 as Curator stores it.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AutoModel

from dask_classify.backend import string_dtype
from dask_classify.checkpoint import (
    ModelInfo,
    config_for,
    position_limit,
    read_config,
    resolve_model_dir,
)
from dask_classify.classifiers._base import PublishedClassifier
from dask_classify.engine.model import backbone_config, load_weights
from dask_classify.errors import CheckpointError, UsageError

#: NeMo Curator's columns, in its order.
OUTPUT_FIELDS = [
    "prompt_complexity_score",
    "task_type_1",
    "task_type_2",
    "task_type_prob",
    "creativity_scope",
    "reasoning",
    "contextual_knowledge",
    "number_of_few_shots",
    "domain_knowledge",
    "no_label_reason",
    "constraint_ct",
]
#: The heads, in the order of ``target_sizes`` in the published ``config.json``.
TARGETS = [
    "task_type",
    "creativity_scope",
    "reasoning",
    "contextual_knowledge",
    "number_of_few_shots",
    "domain_knowledge",
    "no_label_reason",
    "constraint_ct",
]
#: The complexity score's weights (NeMo Curator's formula).
COMPLEXITY_WEIGHTS = {
    "creativity_scope": 0.35,
    "reasoning": 0.25,
    "constraint_ct": 0.15,
    "domain_knowledge": 0.15,
    "contextual_knowledge": 0.05,
    "number_of_few_shots": 0.05,
}


def check_config(config: dict[str, Any], where: str = "config.json") -> None:
    """Refuse a prompt-complexity config whose heads, maps and weights do not agree.

    Raises
    ------
    CheckpointError
        A missing key, heads not in the published order, a ``weights_map`` entry whose length
        is not its head's size, a missing divisor, or task-type ids without names.

    Examples
    --------
    >>> from dask_classify.classifiers.prompt_complexity import check_config
    >>> check_config({"target_sizes": {"task_type": 2}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dask_classify.errors.CheckpointError: config.json has no 'task_type_map' ...
    """
    for key in ("target_sizes", "task_type_map", "weights_map", "divisor_map"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{where} has no {key!r} mapping: it is not a prompt task "
                                  "and complexity checkpoint")
    sizes = config["target_sizes"]
    if list(sizes) != TARGETS:
        raise CheckpointError(f"{where} target_sizes must name the heads {TARGETS} in this "
                              f"order, not {list(sizes)}")
    for target in TARGETS[1:]:
        weights = config["weights_map"].get(target)
        if not isinstance(weights, list) or len(weights) != int(sizes[target]):
            raise CheckpointError(f"{where} weights_map[{target!r}] must list "
                                  f"{sizes[target]} weights, not {weights!r}")
        if not config["divisor_map"].get(target):
            raise CheckpointError(f"{where} divisor_map has no non-zero {target!r}")
    missing = [i for i in range(int(sizes["task_type"]))
               if str(i) not in config["task_type_map"]]
    if missing:
        raise CheckpointError(f"{where} task_type_map names no task type for ids {missing}")


class MulticlassHead(nn.Module):
    """One linear head (its weights are ``head_<i>.fc.*`` in the checkpoint)."""

    def __init__(self, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(input_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class PromptTaskComplexityModel(nn.Module):
    """Backbone -> mean pooling over the attention mask -> one linear head per target.

    Parameters
    ----------
    config : dict
        The checkpoint's ``config.json`` (see the module docstring); the backbone is built from
        ``base_model``'s config (or an embedded ``backbone_config``) without downloading
        pretrained weights: the checkpoint's overwrite them.
    cache_dir : str, optional
        Hugging Face cache folder for ``base_model``'s config.

    Examples
    --------
    >>> import torch
    >>> from dask_classify.classifiers.prompt_complexity import PromptTaskComplexityModel
    >>> from dask_classify.testing import prompt_complexity_config, tiny_backbone_config
    >>> cfg = prompt_complexity_config()
    >>> cfg["backbone_config"] = tiny_backbone_config("deberta-v2", vocab_size=100)
    >>> model = PromptTaskComplexityModel(cfg).eval()
    >>> sorted(k for k in model.state_dict() if k.startswith("head_0"))
    ['head_0.fc.bias', 'head_0.fc.weight']
    >>> ids = torch.tensor([[1, 7, 9, 2], [1, 5, 2, 0]])
    >>> tuple(model(ids, (ids != 0).long()).shape)  # 12 + 3 + 2 + 2 + 6 + 4 + 1 + 2 outputs
    (2, 32)
    """

    def __init__(self, config: dict[str, Any], cache_dir: str | None = None) -> None:
        super().__init__()
        check_config(config)
        self.backbone = AutoModel.from_config(backbone_config(config, cache_dir))
        hidden = int(self.backbone.config.hidden_size)
        self.sizes = [int(n) for n in config["target_sizes"].values()]
        for i, size in enumerate(self.sizes):
            self.add_module(f"head_{i}", MulticlassHead(hidden, size))
        params = inspect.signature(self.backbone.forward).parameters
        self._pass_position_ids = "position_ids" in params

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Every head's logits side by side, shape ``(batch, sum(target_sizes))``."""
        kwargs: dict[str, torch.Tensor] = {}
        if self._pass_position_ids:  # left padding must not shift absolute positions
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                               **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).expand(hidden.size()).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.cat([getattr(self, f"head_{i}")(pooled).float()
                          for i in range(len(self.sizes))], dim=1)


def complexity_columns(logits: np.ndarray, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """NeMo Curator's eleven columns from the heads' logits (one row per text).

    Parameters
    ----------
    logits : numpy.ndarray of float32, shape ``(n, sum(target_sizes))``
        :class:`PromptTaskComplexityModel`'s outputs.
    config : dict
        The checkpoint's ``config.json``.

    Returns
    -------
    dict of str to numpy.ndarray
        Each of :data:`OUTPUT_FIELDS`, ``n`` values: task types as objects (str), the
        complexity score float32, the others float64.

    Examples
    --------
    >>> import numpy as np
    >>> from dask_classify.classifiers.prompt_complexity import complexity_columns
    >>> from dask_classify.testing import prompt_complexity_config
    >>> cfg = prompt_complexity_config()
    >>> logits = np.zeros((1, 32), dtype=np.float32)
    >>> logits[0, 4] = 5.0  # task type 4 ("Code Generation") far ahead: the second is "NA"
    >>> cols = complexity_columns(logits, cfg)
    >>> cols["task_type_1"][0], cols["task_type_2"][0], float(cols["task_type_prob"][0])
    ('Code Generation', 'NA', 0.931)
    >>> cols["creativity_scope"].tolist(), cols["number_of_few_shots"].tolist()  # uniform
    ([0.5], [2.5])
    >>> cols["prompt_complexity_score"].dtype, round(float(cols["prompt_complexity_score"][0]), 5)
    (dtype('float32'), 0.6)
    """
    sizes = [int(n) for n in config["target_sizes"].values()]
    bounds = np.cumsum([0, *sizes])
    heads = {target: torch.from_numpy(np.ascontiguousarray(logits[:, bounds[i]:bounds[i + 1]],
                                                           dtype=np.float32))
             for i, target in enumerate(TARGETS)}
    out: dict[str, np.ndarray] = {}
    # task types: the two best logits; their softmax probabilities rounded to 3 decimals
    task = heads["task_type"]
    top2 = torch.topk(task, k=2, dim=1).indices
    probs = torch.softmax(task, dim=1).gather(1, top2).tolist()
    names = config["task_type_map"]
    first, second, prob = [], [], []
    for (i, j), (p1, p2) in zip(top2.tolist(), probs, strict=True):
        first.append(names[str(i)])
        second.append(names[str(j)] if round(p2, 3) >= 0.1 else "NA")
        prob.append(round(p1, 3))
    out["task_type_1"] = np.array(first, dtype=object)
    out["task_type_2"] = np.array(second, dtype=object)
    out["task_type_prob"] = np.array(prob, dtype=np.float64)
    # complexity dimensions: softmax-weighted sums of the published weights
    for target in TARGETS[1:]:
        soft = torch.softmax(heads[target], dim=1).numpy()
        scores = np.sum(soft * np.array(config["weights_map"][target]), axis=1)
        scores = np.round(scores / config["divisor_map"][target], 4)
        if target == "number_of_few_shots":
            scores = np.where(scores >= 0.05, scores, 0.0)
        out[target] = scores.astype(np.float64)
    total = (COMPLEXITY_WEIGHTS["creativity_scope"] * out["creativity_scope"]
             + COMPLEXITY_WEIGHTS["reasoning"] * out["reasoning"]
             + COMPLEXITY_WEIGHTS["constraint_ct"] * out["constraint_ct"]
             + COMPLEXITY_WEIGHTS["domain_knowledge"] * out["domain_knowledge"]
             + COMPLEXITY_WEIGHTS["contextual_knowledge"] * out["contextual_knowledge"]
             + COMPLEXITY_WEIGHTS["number_of_few_shots"] * out["number_of_few_shots"])
    out["prompt_complexity_score"] = np.round(total, 5).astype(np.float32)
    return {name: out[name] for name in OUTPUT_FIELDS}


class PromptTaskComplexityClassifier(PublishedClassifier):
    """``nvidia/prompt-task-and-complexity-classifier``: task type and complexity of prompts.

    Adds NeMo Curator's eleven columns (:data:`OUTPUT_FIELDS`): ``prompt_complexity_score``
    (float32, 0-1), ``task_type_1`` / ``task_type_2`` (str; the second ``"NA"`` when unlikely),
    ``task_type_prob`` and the six complexity dimensions plus ``no_label_reason`` (floats). Rows
    with null text get nulls. See the module docstring for the rules.

    Parameters
    ----------
    model_identifier : str, optional
        Checkpoint folder or hub id; default ``nvidia/prompt-task-and-complexity-classifier``.
    **kwargs
        Parameters of :class:`~dask_classify.DistributedDataClassifier` (``text_field``,
        ``max_chars``, ``model_inference_batch_size``, ``device``, ...). Defaults as in NeMo
        Curator: ``max_seq_length=512``, ``max_chars=None``, batch size 256, right padding.
        ``label_field``/``score_field`` do not apply (the columns are fixed).

    Raises
    ------
    dask_classify.errors.UsageError
        ``filter_by`` (NeMo Curator refuses it too: filter on the columns afterwards).

    Examples
    --------
    >>> from dask_classify import PromptTaskComplexityClassifier
    >>> clf = PromptTaskComplexityClassifier(model_identifier="/models/prompt-complexity")
    >>> clf.output_fields[:4]
    ['prompt_complexity_score', 'task_type_1', 'task_type_2', 'task_type_prob']
    >>> PromptTaskComplexityClassifier(filter_by=["Chatbot"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dask_classify.errors.UsageError: filter_by is not supported by PromptTaskComplexityClassifier...
    """

    default_model_identifier = "nvidia/prompt-task-and-complexity-classifier"
    defaults = {"max_seq_length": 512, "model_inference_batch_size": 256}

    def __init__(self, model_identifier: str | None = None, **kwargs: Any) -> None:
        if kwargs.get("filter_by"):
            raise UsageError("filter_by is not supported by PromptTaskComplexityClassifier (as "
                             "in NeMo Curator): filter on its columns after classifying")
        for name in ("label_field", "score_field"):
            if kwargs.get(name) is not None:
                raise UsageError(f"PromptTaskComplexityClassifier writes fixed columns "
                                 f"({', '.join(OUTPUT_FIELDS)}); {name} does not apply")
        kwargs.pop("filter_by", None)
        super().__init__(model_identifier, label_field=OUTPUT_FIELDS[1], **kwargs)

    @property
    def output_fields(self) -> list[str]:
        """NeMo Curator's eleven columns, in its order."""
        return list(OUTPUT_FIELDS)

    def arrow_types(self) -> dict[str, Any]:
        return {}

    def model_info(self) -> ModelInfo:
        """The checkpoint's ``config.json`` (heads, maps), checked; the weights are not read."""
        config = config_for(self.model_identifier, self.cache_dir)
        check_config(config, f"{self.model_identifier}/config.json")
        return _info(config)

    def build_model(self, device: str) -> tuple[nn.Module, ModelInfo]:
        folder = resolve_model_dir(self.model_identifier, self.cache_dir)
        config = read_config(folder)
        check_config(config, f"{folder}/config.json")
        model = load_weights(PromptTaskComplexityModel(config, self.cache_dir), folder)
        limit = position_limit(model.backbone.config.to_dict())
        return model.eval(), _info(config, limit)

    def filter_values(self, info: ModelInfo) -> list[str]:  # pragma: no cover - refused above
        return []

    def output_columns(self, outputs: np.ndarray | None, valid: np.ndarray,
                       info: ModelInfo | None) -> dict[str, pd.Series]:
        n = len(valid)
        rows = np.flatnonzero(valid)
        have = outputs is not None and len(outputs) > 0
        values = complexity_columns(outputs, info.config) if have else None
        cols: dict[str, pd.Series] = {}
        for name in OUTPUT_FIELDS:
            if name in ("task_type_1", "task_type_2"):
                col = np.full(n, None, dtype=object)
                dtype: Any = string_dtype()
            else:
                dtype = np.float32 if name == "prompt_complexity_score" else np.float64
                col = np.full(n, np.nan, dtype=dtype)
            if values is not None:
                col[rows] = values[name]
            cols[name] = pd.Series(col, dtype=dtype)
        return cols


def _info(config: dict[str, Any], limit: int | None = None) -> ModelInfo:
    names = config["task_type_map"]
    backbone = config.get("backbone_config") or {}
    return ModelInfo(kind="prompt-task-complexity",
                     id2label={int(k): str(v) for k, v in names.items()},
                     config=config,
                     position_limit=limit if limit is not None else position_limit(backbone))
