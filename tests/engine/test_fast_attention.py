"""The faster DeBERTa-v2/v3 attention forward equals transformers' own (fast_attention.py)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModel
from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

from dask_classify.engine.cache import clear_cache, get_model
from dask_classify.engine.fast_attention import FastDisentangledSelfAttention, speed_up_deberta
from dask_classify.engine.spec import ModelSpec
from dask_classify.testing import tiny_backbone_config

VOCAB = 120


def _pair(**overrides):
    """A random DeBERTa-v2 encoder and a copy with the fast attention."""
    cfg = tiny_backbone_config("deberta-v2", vocab_size=VOCAB, initializer_range=0.1, **overrides)
    cfg.pop("model_type")
    torch.manual_seed(0)
    original = AutoModel.from_config(AutoConfig.for_model("deberta-v2", **cfg)).eval()
    fast = copy.deepcopy(original)
    assert speed_up_deberta(fast) == cfg["num_hidden_layers"]
    return original, fast


def _padded_batch(lengths, seed=1):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, VOCAB, (n,), generator=gen)
        mask[row, :n] = 1
    return ids, mask


# position_buckets 8 / max_relative_positions 12: rows of 40 tokens reach the log buckets and
# the clamped ends of the relative-position table, not only its linear middle
CONFIGS = {
    "deberta-v3 (shared keys, c2p|p2c, buckets)": dict(position_buckets=8),
    "separate position projections": dict(position_buckets=8, share_att_key=False),
    "c2p only": dict(position_buckets=8, pos_att_type=["c2p"]),
    "p2c only": dict(position_buckets=8, pos_att_type=["p2c"]),
    "no buckets, clamped table": dict(position_buckets=-1, max_relative_positions=12),
    "no position scores": dict(position_buckets=8, pos_att_type=[]),
    "conv layer, 3 layers": dict(position_buckets=8, conv_kernel_size=3, num_hidden_layers=3),
}


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_same_hidden_states_as_transformers_on_padded_rows(overrides):
    original, fast = _pair(**overrides)
    ids, mask = _padded_batch([40, 3, 17, 40, 1, 29])
    with torch.inference_mode():
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-5)
    # each row alone (no padding at all) gives the same real-token states as in the batch
    with torch.inference_mode():
        alone = fast(input_ids=ids[1:2, :3], attention_mask=mask[1:2, :3]).last_hidden_state
    torch.testing.assert_close(alone[0], got[1, :3], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reading", ["windows everywhere", "gathers everywhere"])
@pytest.mark.parametrize("overrides", [CONFIGS[k] for k in (
    "deberta-v3 (shared keys, c2p|p2c, buckets)", "c2p only", "p2c only",
    "no buckets, clamped table")], ids=["v3", "c2p", "p2c", "clamped"])
def test_both_ways_of_reading_position_scores_equal_transformers(overrides, reading,
                                                                  monkeypatch):
    """Strided windows (used for rows whose distances all have their own bucket) and gathers
    (used where log buckets fold distances) each give transformers' results on any width."""
    from dask_classify.engine import fast_attention

    if reading == "windows everywhere":
        monkeypatch.setattr(fast_attention, "WINDOW_SLACK", 1e9)
    else:
        monkeypatch.setattr(fast_attention, "USE_WINDOWS", False)
    original, fast = _pair(**overrides)
    ids, mask = _padded_batch([40, 3, 17, 40, 1, 29])
    with torch.inference_mode():
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-5)
    used_windows = fast_attention._LOOKUP.slot[3].windows is not None
    assert used_windows == (reading == "windows everywhere")


def test_the_fast_forward_is_used_and_really_skips_position_work():
    """The speed-up is real work avoided: the 512 position rows are projected once per model
    (they depend only on the weights), not once per batch and layer as transformers does; with
    autograd on, a 10-token batch projects only the 19 rows of distances -9..9."""
    original, fast = _pair()  # DeBERTa-v3's 256 buckets -> 512 position embeddings
    rows_seen = {"original": [], "fast": []}

    def count(name):
        def hook(module, args):
            rows_seen[name].append(args[0].shape[-2])
        return hook

    original.encoder.layer[0].attention.self.key_proj.register_forward_pre_hook(count("original"))
    fast.encoder.layer[0].attention.self.key_proj.register_forward_pre_hook(count("fast"))
    ids, mask = _padded_batch([10, 4])
    with torch.inference_mode():
        for _ in range(2):
            original(input_ids=ids, attention_mask=mask)
            fast(input_ids=ids, attention_mask=mask)
        fast(input_ids=ids[:, :6], attention_mask=mask[:, :6])
    assert type(fast.encoder.layer[0].attention.self) is FastDisentangledSelfAttention
    assert type(fast.encoder).__name__ == "FastDebertaV2Encoder"
    assert rows_seen["original"] == [10, 512, 10, 512]  # the tokens, then all position rows
    assert rows_seen["fast"] == [10, 512, 10, 6]  # the position rows once, for every width
    rows_seen["fast"].clear()
    with torch.enable_grad():  # no caching when autograd could need the projections
        fast(input_ids=ids, attention_mask=mask)
    assert rows_seen["fast"] == [10, 19]


def test_weights_only_work_is_redone_when_weights_change():
    """The cached position table and projections follow load_state_dict and dtype changes."""
    original, fast = _pair(position_buckets=8)
    ids, mask = _padded_batch([30, 9, 17])
    with torch.inference_mode():
        fast(input_ids=ids, attention_mask=mask)  # fills the caches
    gen = torch.Generator().manual_seed(11)
    changed = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
               for k, v in original.state_dict().items()}
    for module in (original, fast):
        module.load_state_dict(changed)
    with torch.inference_mode():
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=1e-5)
    # the caches are not part of the module's state: it still pickles and copies
    import io
    import pickle

    again = pickle.loads(pickle.dumps(fast))
    torch.save(copy.deepcopy(fast), io.BytesIO())
    with torch.inference_mode():
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask).last_hidden_state,
                                   got)
    original.double()
    fast.double()
    with torch.inference_mode():
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    assert got.dtype == torch.float64
    torch.testing.assert_close(got[real], want[real], rtol=1e-9, atol=1e-10)


def test_falls_back_to_transformers_for_attentions_and_training():
    original, fast = _pair(position_buckets=8)
    ids, mask = _padded_batch([12, 7])
    with torch.inference_mode():
        want = original(input_ids=ids, attention_mask=mask, output_attentions=True)
        got = fast(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert len(got.attentions) == 2
    for a, b in zip(got.attentions, want.attentions, strict=True):
        torch.testing.assert_close(a, b)
    original.train()
    fast.train()
    torch.manual_seed(5)
    want = original(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.manual_seed(5)
    got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, want)  # same dropout draws: the original code ran
    want.sum().backward()
    assert original.encoder.layer[0].attention.self.query_proj.weight.grad is not None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_padded_batches_finite(dtype):
    """Under reduced-precision autocast (the GPU path) no -inf/NaN from the mask reaches a row."""
    original, fast = _pair(position_buckets=8)
    ids, mask = _padded_batch([40, 2, 33])
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype):
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got[real].float(), want[real].float(), rtol=0.05, atol=0.05)


def test_env_switch_and_other_modules_left_alone(monkeypatch):
    cfg = tiny_backbone_config("bert", vocab_size=VOCAB)
    cfg.pop("model_type")
    bert = AutoModel.from_config(AutoConfig.for_model("bert", **cfg))
    assert speed_up_deberta(bert) == 0
    original, _ = _pair()
    monkeypatch.setenv("DASK_CLASSIFY_FAST_ATTENTION", "0")
    assert speed_up_deberta(original) == 0
    assert all(type(m) is not FastDisentangledSelfAttention for m in original.modules())


def test_inference_models_get_the_fast_attention(deberta_ckpt, monkeypatch):
    clear_cache()
    try:
        model, _, _ = get_model(ModelSpec(str(deberta_ckpt), device="cpu"))
        kinds = {type(m) for m in model.modules()
                 if isinstance(m, DisentangledSelfAttention)}
        assert kinds == {FastDisentangledSelfAttention}
        clear_cache()
        monkeypatch.setenv("DASK_CLASSIFY_FAST_ATTENTION", "0")
        model, _, _ = get_model(ModelSpec(str(deberta_ckpt), device="cpu"))
        kinds = {type(m) for m in model.modules()
                 if isinstance(m, DisentangledSelfAttention)}
        assert kinds == {DisentangledSelfAttention}
    finally:
        clear_cache()


@pytest.mark.gpu
@pytest.mark.parametrize("pos_att_type", [["p2c", "c2p"], []], ids=["position scores", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_same_results_on_cuda(dtype, pos_att_type):
    """On a GPU: every tensor on the device (no CPU mask or scale) and results as transformers'."""
    original, fast = _pair(position_buckets=8, pos_att_type=pos_att_type)
    original, fast = original.cuda(), fast.cuda()
    ids, mask = _padded_batch([40, 2, 33])
    ids, mask = ids.cuda(), mask.cuda()
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype,
                                                enabled=dtype != torch.float32):
        want = original(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.isfinite(got).all()
    tol = 1e-4 if dtype == torch.float32 else 0.05
    torch.testing.assert_close(got[real].float(), want[real].float(), rtol=tol, atol=tol)


def test_position_lookup_is_built_once_per_forward_pass(monkeypatch):
    """All layers share the encoder's relative-position table: its gather indexes are built once."""
    import threading

    from dask_classify.engine import fast_attention

    class CountingSlot(threading.local):
        builds = 0

        def __setattr__(self, name, value):
            type(self).builds += 1
            super().__setattr__(name, value)

    monkeypatch.setattr(fast_attention, "_LOOKUP", CountingSlot())
    original, fast = _pair(position_buckets=8, num_hidden_layers=3)
    for lengths in ([40, 3], [12, 12, 5]):  # two forward passes, three layers each
        ids, mask = _padded_batch(lengths)
        with torch.inference_mode():
            want = original(input_ids=ids, attention_mask=mask).last_hidden_state
            got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(got[mask.bool()], want[mask.bool()], rtol=1e-4, atol=1e-5)
    assert CountingSlot.builds == 2


# --------------------------------------------------------------------- a changed transformers
def _fresh_flag(monkeypatch):
    import dask_classify.engine.fast_attention as fa

    monkeypatch.setattr(fa, "_WARNED", False)  # one warning per process: reset for the test


def test_changed_forward_signature_keeps_transformers_forward_with_one_warning(monkeypatch):
    from dask_classify.engine.fast_attention import FastAttentionWarning

    _fresh_flag(monkeypatch)
    original = DisentangledSelfAttention.forward

    def renamed(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                relative_pos=None, rel_embeddings=None, cache_position=None):  # a new parameter
        return original(self, hidden_states, attention_mask, output_attentions, query_states,
                        relative_pos, rel_embeddings)

    monkeypatch.setattr(DisentangledSelfAttention, "forward", renamed)
    cfg = tiny_backbone_config("deberta-v2", vocab_size=VOCAB, position_buckets=8)
    cfg.pop("model_type")
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.for_model("deberta-v2", **cfg)).eval()
    reference = copy.deepcopy(model)
    with pytest.warns(FastAttentionWarning, match="cache_position"):
        assert speed_up_deberta(model) == 0
    assert not any(isinstance(m, FastDisentangledSelfAttention) for m in model.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastAttentionWarning)  # only once per process
        assert speed_up_deberta(copy.deepcopy(reference)) == 0
    ids, mask = _padded_batch([12, 5, 9])
    with torch.inference_mode():  # transformers' forward runs, so the outputs are its own
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state,
                                   reference(input_ids=ids, attention_mask=mask).last_hidden_state,
                                   rtol=0, atol=0)


def test_missing_attribute_keeps_transformers_forward(monkeypatch):
    from dask_classify.engine.fast_attention import FastAttentionWarning, incompatibility

    _fresh_flag(monkeypatch)
    original, fast = _pair(position_buckets=8, share_att_key=False)
    layer = next(m for m in original.modules() if type(m) is DisentangledSelfAttention)
    assert incompatibility(layer) is None
    del layer.pos_key_proj  # a transformers that renamed the separate position projection
    assert "pos_key_proj" in incompatibility(layer)
    with pytest.warns(FastAttentionWarning, match="pos_key_proj"):
        assert speed_up_deberta(original) == 0
