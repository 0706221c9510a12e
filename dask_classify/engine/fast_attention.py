"""A faster, equivalent inference forward for DeBERTa-v2/v3 disentangled attention.

transformers' :class:`~transformers.models.deberta_v2.modeling_deberta_v2.DisentangledSelfAttention`
scores every query against **all** ``2 * position_buckets`` relative-position embeddings (512
for DeBERTa-v3) in every layer and batch, copies those projected embeddings once per row
(``.repeat``), and divides the two ``(batch x heads x L x L)`` position scores by the scale. A
sequence of ``L`` tokens only ever looks up the ``<= 2L - 1`` buckets between its largest
negative and positive relative distance, so for mixed real text (a few dozen to a few hundred
tokens) most of that work is thrown away by the ``gather`` that follows.

:func:`speed_up_deberta` swaps each such attention module of a model, for inference only, to a
subclass whose forward

* projects only the relative-position embeddings the batch's width can use,
* scores queries and keys against them by broadcasting instead of copying per row,
* folds the scale into the small operands (keys and position embeddings) instead of the large
  score tensors,
* reads the p2c scores at their transposed positions instead of adding a transposed copy,
  with gather indexes built once per forward pass for all layers, and
* passes the position scores and the mask as an additive bias to PyTorch's fused
  ``scaled_dot_product_attention`` (query-key product, softmax and value product in one kernel).

Results equal the original to float32 rounding (``tests/engine/test_fast_attention.py``
compares them on padded batches and several configurations); labels are identical; the speed-up
is measured in ``benchmarks/README.md``. Training, ``output_attentions``, ``query_states`` and
any input this forward was not written for fall back to the original code. Set the environment
variable ``DASK_CLASSIFY_FAST_ATTENTION=0`` (read on the client when a classifier is built) to
keep transformers' forward.

The subclass relies on private details of transformers' class (its forward's parameters and a
few attributes). :func:`speed_up_deberta` checks them before swapping; when a transformers
release changes them, it keeps transformers' own forward and warns once
(:class:`FastAttentionWarning`), so a new transformers can only cost speed, never correctness.
"""
from __future__ import annotations

import inspect
import os
import threading
import warnings
import weakref
from typing import Any, NamedTuple

import torch

from dask_classify.engine.spec import FAST_ATTENTION_ENV

try:  # transformers >= 4.x; the classes only exist for DeBERTa-v2/v3
    from transformers.models.deberta_v2.modeling_deberta_v2 import (
        DebertaV2Encoder,
        DisentangledSelfAttention,
    )
except ImportError:  # pragma: no cover - transformers without DeBERTa-v2
    DebertaV2Encoder = DisentangledSelfAttention = None  # type: ignore[assignment,misc]

__all__ = ["FastAttentionWarning", "FastDebertaV2Encoder", "FastDisentangledSelfAttention",
           "fast_attention_enabled", "speed_up_deberta"]

ENV_VAR = FAST_ATTENTION_ENV
#: The parameters of transformers' ``DisentangledSelfAttention.forward`` this forward replaces.
FORWARD_PARAMETERS = ("self", "hidden_states", "attention_mask", "output_attentions",
                      "query_states", "relative_pos", "rel_embeddings")
#: The attributes of a ``DisentangledSelfAttention`` module this forward reads.
ATTRIBUTES = ("num_attention_heads", "query_proj", "key_proj", "value_proj",
              "transpose_for_scores", "pos_att_type", "relative_attention", "pos_ebd_size",
              "pos_dropout", "share_att_key")


class FastAttentionWarning(UserWarning):
    """transformers' DeBERTa attention no longer looks as expected: its own forward is kept."""


def fast_attention_enabled() -> bool:
    """Whether :func:`speed_up_deberta` swaps modules (``DASK_CLASSIFY_FAST_ATTENTION`` != ``0``).

    Examples
    --------
    >>> import os
    >>> from dask_classify.engine.fast_attention import ENV_VAR, fast_attention_enabled
    >>> saved = os.environ.pop(ENV_VAR, None)
    >>> fast_attention_enabled()
    True
    >>> os.environ[ENV_VAR] = "0"
    >>> fast_attention_enabled()
    False
    >>> _ = os.environ.pop(ENV_VAR) if saved is None else os.environ.update({ENV_VAR: saved})
    """
    return os.environ.get(ENV_VAR, "1").strip().lower() not in {"0", "false", "no", "off"}


if DisentangledSelfAttention is not None:

    class FastDisentangledSelfAttention(DisentangledSelfAttention):  # type: ignore[misc,valid-type]
        """:class:`DisentangledSelfAttention` with the inference forward described in the module.

        Instances are made by :func:`speed_up_deberta` (it changes ``__class__`` of a loaded
        module; the weights stay where they are).
        """

        def forward(  # type: ignore[override]
            self,
            hidden_states: torch.Tensor,
            attention_mask: torch.Tensor,
            output_attentions: bool = False,
            query_states: torch.Tensor | None = None,
            relative_pos: torch.Tensor | None = None,
            rel_embeddings: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor | None]:
            if (self.training or output_attentions or query_states is not None
                    or not self.relative_attention or relative_pos is None
                    or rel_embeddings is None or not self._supported_rel_pos(relative_pos)):
                return super().forward(hidden_states, attention_mask, output_attentions,
                                       query_states, relative_pos, rel_embeddings)
            heads = self.num_attention_heads
            query = self.transpose_for_scores(self.query_proj(hidden_states), heads)
            key = self.transpose_for_scores(self.key_proj(hidden_states), heads)
            value = self.transpose_for_scores(self.value_proj(hidden_states), heads)
            c2p, p2c = "c2p" in self.pos_att_type, "p2c" in self.pos_att_type
            scale = _scale(query, 1 + c2p + p2c)
            rows, length, width = query.shape
            batch = rows // heads
            bias = self._position_scores(query, key, relative_pos, rel_embeddings, scale, c2p, p2c)
            # transformers sets masked scores to the dtype's minimum *after* adding q.k; here
            # the mask is added with the bias inside the fused kernel, so half the minimum
            # (no float16 overflow to -inf, still exp(...) == 0 for every real query row)
            mask = ~attention_mask.bool()
            fill = torch.finfo(query.dtype).min / 2
            if bias is None:
                bias = torch.zeros((), dtype=query.dtype, device=query.device).expand(
                    batch, heads, length, length)
                bias = bias.masked_fill(mask, fill)
            else:
                bias = bias.view(batch, heads, length, length).masked_fill_(mask, fill)
            context = torch.nn.functional.scaled_dot_product_attention(
                query.view(batch, heads, length, width), key.view(batch, heads, length, width),
                value.view(batch, heads, length, -1), attn_mask=bias, scale=float(1 / scale))
            context = context.permute(0, 2, 1, 3).contiguous()
            return context.view(context.size()[:-2] + (-1,)), None

        @staticmethod
        def _supported_rel_pos(relative_pos: torch.Tensor) -> bool:
            # the encoder passes one (1, L, L) table for every row; anything else -> original
            return relative_pos.dim() in (2, 3, 4) and all(
                s == 1 for s in relative_pos.shape[:-2])

        def _position_scores(self, query: torch.Tensor, key: torch.Tensor,
                             relative_pos: torch.Tensor, rel_embeddings: torch.Tensor,
                             scale: torch.Tensor, c2p: bool, p2c: bool) -> torch.Tensor | None:
            """c2p + p2c scores, (rows, L, L), already divided by the scale (or None)."""
            if not (c2p or p2c):
                return None
            rows, length = query.size(0), query.size(1)
            heads = self.num_attention_heads
            batch = rows // heads
            look = _bucket_lookup(relative_pos, self.pos_ebd_size, query.device)
            tables = self._projected_positions(rel_embeddings, scale, c2p, p2c)
            if look.windows is not None:
                return self._windowed_scores(query, key, look.windows, rel_embeddings, tables,
                                             scale, c2p, p2c)
            used = slice(look.low, look.low + look.n_used)
            scores = None
            if c2p:  # [i, j] = query_i . pos_key[c2p_bucket[i, j]]
                pos_key = (tables[0][:, used] if tables is not None
                           else self._project("key", rel_embeddings[used], scale))
                att = torch.matmul(query.view(batch, heads, length, -1),
                                   pos_key.transpose(-1, -2).unsqueeze(0))
                scores = torch.gather(att.view(rows, length, look.n_used), -1,
                                      look.c2p_index.expand(rows, length, length))
            if p2c:  # [i, j] = key_j . pos_query[p2c_bucket[j, i]]: read (j, bucket) directly
                pos_query = (tables[1][:, used] if tables is not None
                             else self._project("query", rel_embeddings[used], scale))
                att = torch.matmul(key.view(batch, heads, length, -1),
                                   pos_query.transpose(-1, -2).unsqueeze(0))
                p2c_att = torch.gather(att.view(rows, length * look.n_used), -1,
                                       look.p2c_index.expand(rows, length * length))
                p2c_att = p2c_att.view(rows, length, length)
                scores = p2c_att if scores is None else scores.add_(p2c_att)
            return scores

        def _windowed_scores(self, query: torch.Tensor, key: torch.Tensor,
                             windows: tuple[torch.Tensor, torch.Tensor],
                             rel_embeddings: torch.Tensor,
                             tables: tuple[torch.Tensor | None, torch.Tensor | None] | None,
                             scale: torch.Tensor, c2p: bool, p2c: bool) -> torch.Tensor:
            """The position scores of a Toeplitz relative-position table, without a gather.

            Query (key) ``i`` is scored against the position rows of the ``W = 2L - 1``
            relative distances ``L - 1 .. -(L - 1)`` (the c2p and p2c windows of
            :func:`_bucket_lookup`); the ``(i, j)`` score then sits at column ``L - 1 - i + j``
            of row ``i`` (c2p) or column ``L - 1 + i - j`` of row ``j`` (p2c) of that
            ``(L, W)`` product: a strided view, so both terms are read in one addition.
            """
            rows, length = query.size(0), query.size(1)
            heads = self.num_attention_heads
            batch, width = rows // heads, 2 * length - 1
            views = []
            for wanted, name, states, window, index in (
                    (c2p, "key", query, windows[0], 0), (p2c, "query", key, windows[1], 1)):
                if not wanted:
                    continue
                table = tables[index] if tables is not None else None
                pos = (table[:, window] if table is not None
                       else self._project(name, rel_embeddings[window], scale))
                att = torch.matmul(states.view(batch, heads, length, -1),
                                   pos.transpose(-1, -2).unsqueeze(0))  # (B, H, L, W)
                strides = (length * width, width - 1, 1) if index == 0 else (
                    length * width, 1, width - 1)
                views.append(att.as_strided((rows, length, length), strides,
                                            att.storage_offset() + length - 1))
            return views[0] + views[1] if len(views) == 2 else views[0].contiguous()

        def _project(self, name: str, embeddings: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
            """Position rows through the key (or query) projection, per head, over the scale."""
            if self.share_att_key:
                proj = self.key_proj if name == "key" else self.query_proj
            else:
                proj = self.pos_key_proj if name == "key" else self.pos_query_proj
            rows = self.pos_dropout(embeddings).unsqueeze(0)
            return self.transpose_for_scores(proj(rows), self.num_attention_heads) / scale

        def _projected_positions(self, rel_embeddings: torch.Tensor, scale: torch.Tensor,
                                 c2p: bool, p2c: bool
                                 ) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
            """Every position bucket through the key and query projections, ``(H, 2 span, d)``
            each (over the scale): work that depends only on the weights, done once per model.

            Kept on the module until a weight it reads changes (its version counter moves, or
            the model moves to another device or dtype) and rebuilt under another autocast
            state; only for the encoder's cached position table (:class:`FastDebertaV2Encoder`)
            and without autograd. None otherwise: the caller projects the rows it needs.
            """
            if torch.is_grad_enabled() or not getattr(rel_embeddings, _CACHED_FLAG, False):
                return None
            names = ("key",) * c2p + ("query",) * p2c
            projections = [self._projection(name) for name in names]
            stamp = (_weights_stamp(*(t for proj in projections for t in proj.parameters())),
                     float(scale), _autocast_state(rel_embeddings.device.type), c2p, p2c)
            slot = self.__dict__.get("_dask_classify_positions")
            if slot is not None and slot[0]() is rel_embeddings and slot[1] == stamp:
                return slot[2]
            table = rel_embeddings[: 2 * self.pos_ebd_size]
            tables = (self._project("key", table, scale) if c2p else None,
                      self._project("query", table, scale) if p2c else None)
            self.__dict__["_dask_classify_positions"] = (weakref.ref(rel_embeddings), stamp,
                                                         tables)
            return tables

        def __getstate__(self) -> dict[str, Any]:
            return _without_caches(super().__getstate__())

        def _projection(self, name: str) -> torch.nn.Module:
            if self.share_att_key:
                return self.key_proj if name == "key" else self.query_proj
            return self.pos_key_proj if name == "key" else self.pos_query_proj

else:  # pragma: no cover
    FastDisentangledSelfAttention = None  # type: ignore[assignment,misc]

#: Set on the position table :class:`FastDebertaV2Encoder` hands to its layers: a tensor that
#: stays the same object until a weight it depends on changes, so layers may cache work on it.
_CACHED_FLAG = "_dask_classify_weights_only"

if DebertaV2Encoder is not None:

    class FastDebertaV2Encoder(DebertaV2Encoder):  # type: ignore[misc,valid-type]
        """:class:`DebertaV2Encoder` whose (layer-normed) position table is computed once.

        transformers layer-norms the relative-position embeddings on every forward pass; they
        only depend on the weights, so for inference (no autograd, eval mode) the table is
        kept until ``rel_embeddings`` or the norm's weights change, and its layers can keep
        their projections of it (:meth:`FastDisentangledSelfAttention._projected_positions`).
        """

        def get_rel_embedding(self) -> torch.Tensor | None:
            if self.training or torch.is_grad_enabled() or not self.relative_attention:
                return super().get_rel_embedding()
            params = [self.rel_embeddings.weight]
            if "layer_norm" in self.norm_rel_ebd:
                params += list(self.LayerNorm.parameters())
            stamp = (_weights_stamp(*params), _autocast_state(params[0].device.type))
            slot = self.__dict__.get("_dask_classify_rel_embeddings")
            if slot is None or slot[0] != stamp:
                table = super().get_rel_embedding()
                setattr(table, _CACHED_FLAG, True)
                slot = (stamp, table)
                self.__dict__["_dask_classify_rel_embeddings"] = slot
            return slot[1]

        def __getstate__(self) -> dict[str, Any]:
            return _without_caches(super().__getstate__())

else:  # pragma: no cover
    FastDebertaV2Encoder = None  # type: ignore[assignment,misc]


def _without_caches(state: dict[str, Any]) -> dict[str, Any]:
    """A module's pickled state without the caches (weak references cannot be pickled, and the
    copy recomputes them on first use)."""
    return {k: v for k, v in state.items() if not k.startswith("_dask_classify_")}


def _weights_stamp(*tensors: torch.Tensor) -> tuple[Any, ...]:
    """Identity, version counter, device and dtype of each tensor: changes when any is
    modified in place (``load_state_dict``, an optimizer step) or replaced (``.to()``)."""
    return tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)


def _autocast_state(device_type: str) -> Any:
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


# The encoder builds one relative-position table per forward pass and hands the same tensor to
# every layer; the gather indexes derived from it are the same for all layers, so the last one
# made in this thread is kept (for that tensor, bucket span and device) instead of being rebuilt
# per layer (8 ms per layer for a 512-token batch on this project's CPU).
_LOOKUP = threading.local()


class _Lookup(NamedTuple):
    """How the position scores of one relative-position table are read (see
    :func:`_bucket_lookup`)."""

    windows: tuple[torch.Tensor, torch.Tensor] | None
    c2p_index: torch.Tensor | None
    p2c_index: torch.Tensor | None
    low: int
    n_used: int


#: Read Toeplitz tables through strided windows (:meth:`_windowed_scores`) instead of gathers
#: when the window has at most ``WINDOW_SLACK`` times as many distances as there are distinct
#: buckets: windows are faster than gathers while every distance has a bucket of its own (rows
#: up to ``position_buckets / 2`` tokens) and slower once many distances share buckets
#: (measured per width in ``benchmarks/README.md``).
USE_WINDOWS = True
WINDOW_SLACK = 1.1


def _bucket_lookup(relative_pos: torch.Tensor, span: int, device: torch.device) -> _Lookup:
    """How to read the position buckets of a ``(1, L, L)`` relative-position table.

    The encoder's table is Toeplitz (``[i, j]`` depends on ``i - j`` only). For such a table
    whose distances (nearly) all have buckets of their own (see :data:`WINDOW_SLACK`), the
    lookup holds the two windows of :meth:`FastDisentangledSelfAttention._windowed_scores`: the c2p
    and p2c bucket of each relative distance ``L - 1, ..., -(L - 1)`` (``2L - 1`` long). Any
    other table gets gather indexes instead: the c2p index ``(L, L)`` (``[i, j]``: bucket of
    query ``i`` and key ``j``, counted from the first bucket used), the p2c index
    ``(1, L * L)`` into the flattened ``(L, W)`` key-by-bucket scores (``[i, j]`` reads key
    ``j`` at the bucket of pair ``(j, i)``), the first bucket used and the number ``W`` used.
    """
    slot = getattr(_LOOKUP, "slot", None)
    if slot is not None and slot[0]() is relative_pos and slot[1:3] == (span, device):
        return slot[3]
    length = relative_pos.size(-1)
    rel_pos = relative_pos.reshape(relative_pos.shape[-2:]).to(device, torch.long)
    last = span * 2 - 1
    # distance d = i - j for d = L-1 .. -(L-1): column 0 read upwards, then row 0
    by_distance = torch.cat([rel_pos[1:, 0].flip(0), rel_pos[0, :]])
    ar = torch.arange(length, device=device)
    c2p_window = torch.clamp(by_distance + span, 0, last)
    p2c_window = torch.clamp(-by_distance + span, 0, last)
    width = 2 * length - 1
    distinct = int(torch.maximum(c2p_window.max(), p2c_window.max())
                   - torch.minimum(c2p_window.min(), p2c_window.min())) + 1
    # Windows score every distance (2L - 1 columns), gathers only the distinct buckets: where
    # the log buckets (long rows) fold many distances into one, gathering does less work.
    if (USE_WINDOWS and distinct * WINDOW_SLACK >= width
            and torch.equal(by_distance[(length - 1) - ar[:, None] + ar[None, :]], rel_pos)):
        lookup = _Lookup((c2p_window, p2c_window), None, None, 0, 0)
    else:
        c2p_bucket = torch.clamp(rel_pos + span, 0, last)  # [i, j]: query i, key j
        p2c_bucket = torch.clamp(-rel_pos + span, 0, last)
        low = int(torch.minimum(c2p_bucket.min(), p2c_bucket.min()))
        high = int(torch.maximum(c2p_bucket.max(), p2c_bucket.max()))
        n_used = high + 1 - low
        key_row = ar * n_used
        p2c_index = (key_row[None, :] + p2c_bucket.T - low).reshape(1, length * length)
        lookup = _Lookup(None, c2p_bucket - low, p2c_index, low, n_used)
    _LOOKUP.slot = (weakref.ref(relative_pos), span, device, lookup)
    return lookup


def _scale(query: torch.Tensor, factor: int) -> torch.Tensor:
    # transformers' scaled_size_sqrt, in the query's dtype
    return torch.sqrt(torch.tensor(query.size(-1), dtype=torch.float) * factor).to(query.dtype)


def incompatibility(module: Any) -> str | None:
    """Why ``module`` cannot take the faster forward (None when it can).

    Checks that transformers' ``DisentangledSelfAttention.forward`` still takes
    :data:`FORWARD_PARAMETERS` and that the module has every attribute the forward reads.

    Examples
    --------
    >>> import torch
    >>> from dask_classify.engine.fast_attention import incompatibility
    >>> print(incompatibility(torch.nn.Linear(2, 2)))  # doctest: +ELLIPSIS
    it has no attribute(s) num_attention_heads, ...
    """
    if DisentangledSelfAttention is not None:
        params = tuple(inspect.signature(DisentangledSelfAttention.forward).parameters)
        if params != FORWARD_PARAMETERS:
            return f"its forward takes {params}, not {FORWARD_PARAMETERS}"
    missing = [name for name in ATTRIBUTES if not hasattr(module, name)]
    if not missing and getattr(module, "relative_attention", False) and not module.share_att_key:
        pos_att_type = module.pos_att_type
        missing += [name for name, kind in (("pos_key_proj", "c2p"), ("pos_query_proj", "p2c"))
                    if kind in pos_att_type and not hasattr(module, name)]
    if missing:
        return f"it has no attribute(s) {', '.join(missing)}"
    return None


_WARNED = False


def speed_up_deberta(model: Any, enabled: bool | None = None) -> int:
    """Give ``model``'s DeBERTa-v2/v3 attention modules the faster inference forward, in place.

    Only modules whose class is exactly transformers' ``DisentangledSelfAttention`` change
    (subclasses and other architectures are left alone). Does nothing when
    ``DASK_CLASSIFY_FAST_ATTENTION=0``, and nothing (with one :class:`FastAttentionWarning` per
    process) when a module fails :func:`incompatibility`.

    Parameters
    ----------
    model : torch.nn.Module
        Any model; typically what :func:`dask_classify.load_model` returned.
    enabled : bool, optional
        Whether to swap (the classifier decides once on the client,
        :class:`dask_classify.engine.spec.Settings`); None: :func:`fast_attention_enabled`.

    Returns
    -------
    int
        How many modules were changed.

    Examples
    --------
    >>> import tempfile
    >>> from dask_classify import load_model
    >>> from dask_classify.engine.fast_attention import speed_up_deberta
    >>> from dask_classify.testing import build_tiny_deberta_checkpoint
    >>> folder = build_tiny_deberta_checkpoint(tempfile.mkdtemp(), ["neg", "pos"],
    ...                                        tokenizer="deberta", texts=["a good film", "bad"])
    >>> model, _ = load_model(folder)
    >>> speed_up_deberta(model), speed_up_deberta(model)  # two layers; the second call: none left
    (2, 0)
    """
    global _WARNED
    if enabled is None:
        enabled = fast_attention_enabled()
    if FastDisentangledSelfAttention is None or not enabled:
        return 0
    modules = [m for m in model.modules() if type(m) is DisentangledSelfAttention]
    problems = [p for p in map(incompatibility, modules) if p is not None]
    if problems:
        if not _WARNED:
            import transformers

            _WARNED = True
            warnings.warn(
                f"transformers {transformers.__version__}'s DeBERTa attention changed "
                f"({problems[0]}); dask_classify keeps transformers' own (slower) forward",
                FastAttentionWarning, stacklevel=2)
        return 0
    for module in modules:
        module.__class__ = FastDisentangledSelfAttention
    if FastDebertaV2Encoder is not None:
        for encoder in model.modules():
            if type(encoder) is DebertaV2Encoder and _encoder_compatible(encoder):
                encoder.__class__ = FastDebertaV2Encoder
    return len(modules)


def _encoder_compatible(encoder: Any) -> bool:
    """The encoder still builds its position table as :class:`FastDebertaV2Encoder` expects
    (else it is left alone: its layers then project the position rows per batch)."""
    if not all(hasattr(encoder, n) for n in ("relative_attention", "norm_rel_ebd",
                                             "get_rel_embedding")):
        return False
    if not encoder.relative_attention:
        return True
    return hasattr(encoder, "rel_embeddings") and (
        "layer_norm" not in encoder.norm_rel_ebd or hasattr(encoder, "LayerNorm"))
