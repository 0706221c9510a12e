"""The package's torch forward against ONNX Runtime and OpenVINO: same model, texts, batches.

For each model (``tiny``, ``default``, ``minilm``) and each thread count, in one process:

* ``torch``: what ``get_model`` runs (transformers' model with the package's DeBERTa attention:
  position rows projected once per model, strided windows where every distance has its bucket);
* ``torch_before`` (DeBERTa models): the package's attention as it was before those two
  changes (position rows projected per batch and layer, scores gathered), for the speed-up;
* ``ort``: ONNX Runtime 1.x, CPU execution provider, ``ORT_ENABLE_ALL``, on the graph
  ``dask_classify.engine.onnx_export.export_onnx``
  writes (transformers' attention; BERT-family encoders
  exported with eager attention and fused by ORT's transformer optimizer, its best setting
  here; it has no DeBERTa model type);
* ``ov_latency``: OpenVINO's CPU plugin on that same ``.onnx`` file, fp32
  (``INFERENCE_PRECISION_HINT=f32``), ``PERFORMANCE_HINT=LATENCY``, one stream, the thread
  count as ``INFERENCE_NUM_THREADS``; dynamic shapes (the graph's ``[?, ?]`` inputs, never
  reshaped), called batch by batch through ``run_model`` like ORT;
* ``ov_throughput``: the same graph compiled with ``PERFORMANCE_HINT=THROUGHPUT`` (OpenVINO
  picks the streams), the batches submitted all at once to an ``AsyncInferQueue`` with the
  compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests;
* with ``--int8`` (the default): ``ort_int8``, ORT's dynamic quantization
  (``quantize_dynamic``, int8 weights, activations quantized per batch at run time) of that
  graph, or of an unfused export where it fails on the fused one (the error is recorded);
  ``ov_int8``, NNCF's post-training quantization (``ModelType.TRANSFORMER``) of the OpenVINO
  model, calibrated on ``CALIBRATION_TEXTS`` real texts that are not among the measured ones,
  compiled like ``ov_latency``;

all fed the same token ids in the package's batches (``dask_classify.tokenize.plan_batches``:
length-sorted, at most ``--batch-size`` rows and ``--max-batch-tokens`` padded tokens; the
classifier's CPU defaults are 256 and 2048), interleaved ``--reps`` times (each round runs every
runtime once, in a rotating order). Ratios are medians of the per-round ratios: this VM's speed
drifts 20-40% within minutes and other jobs share its two cores. With one thread the ratios of
this process's CPU time are reported too: the work done, which other jobs disturb far less.
Every runtime's outputs are compared with torch fp32 (labels, largest and mean probability
difference); fp32 stays the reference for the int8 runtimes. For OpenVINO the json also has the
compile time of each compiled model and the cost of a batch shape it has not run before
(``ov_new_shape_ms``, first calls of never-seen ``(rows, width)`` shapes) against a repeat of
the same shape (``ov_repeat_shape_ms``). Without ``openvino`` installed the OpenVINO runtimes
(and ``ov_int8``) are left out; without ``nncf``, ``ov_int8`` is.

Usage::

    python benchmarks/bench_engines.py --models tiny,default,minilm --threads 1,2 --rows 1000 \\
        --reps 5 --out bench_results/engines
    python benchmarks/bench_engines.py --models default --no-int8 --out /tmp/engines  # fp32 only
    python benchmarks/bench_engines.py --quick --out /tmp/engines    # toy size (CI smoke test)

Writes ``<out>/engines.json`` and ``<out>/engines.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

#: Real texts (not among the measured ones) NNCF calibrates ``ov_int8`` on.
CALIBRATION_TEXTS = 64
#: Never-seen batch shapes timed per OpenVINO model (``ov_new_shape_ms``).
NEW_SHAPES = 5
#: The fp32 runtimes ``best_direct_runtime`` chooses from.
DIRECT_FP32 = ("ort", "ov_latency", "ov_throughput")


def _optional(name: str) -> ModuleType | None:
    """The module ``name``, or None where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _load_torch(folder: Path, before: bool = False) -> Any:
    """The model as ``get_model`` builds it (``before``: the attention before this change)."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Encoder

    from dask_classify.engine.fast_attention import FastDebertaV2Encoder, speed_up_deberta
    from dask_classify.engine.loading import load_model

    model, _ = load_model(folder)
    speed_up_deberta(model)
    if before:
        for module in model.modules():
            if type(module) is FastDebertaV2Encoder:
                module.__class__ = DebertaV2Encoder
    return model.eval()


def _is_deberta(model: Any) -> bool:
    from dask_classify.engine.fast_attention import FastDisentangledSelfAttention

    return any(type(m) is FastDisentangledSelfAttention for m in model.modules())


def profile_forward(model: Any, token_ids: list[list[int]], pad_id: int, batch_size: int,
                    max_tokens: int | None, top: int = 8) -> list[dict[str, Any]]:
    """Share of the forward's self CPU time per torch op (1 thread; the ``top`` largest)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from dask_classify.engine.run import run_model

    with C.torch_threads(1), profile(activities=[ProfilerActivity.CPU]) as prof:
        run_model(model, token_ids, pad_id=pad_id, device="cpu", batch_size=batch_size,
                  max_tokens=max_tokens)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    del torch
    return [{"op": e.key, "share": round(e.self_cpu_time_total / total, 4),
             "calls": e.count} for e in events[:top]]


def _ov_compile(core: Any, model: Any, threads: int, hint: str) -> tuple[Any, float]:
    """``model`` compiled for the CPU in fp32 with the performance ``hint``, and the seconds
    that took (``LATENCY``: one stream)."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32",
                              "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint}
    if hint == "LATENCY":
        config["NUM_STREAMS"] = 1
    started = time.perf_counter()
    compiled = core.compile_model(model, "CPU", config)
    return compiled, time.perf_counter() - started


def _ov_compile_all(core: Any, models: dict[str, Any],
                    threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenVINO runtimes compiled for ``threads`` threads (``ov_latency``,
    ``ov_throughput`` from ``models["fp32"]``; ``ov_int8`` from ``models["int8"]`` when there
    is one), and a record: compile seconds, the streams and requests ``THROUGHPUT`` chose."""
    compiled, compile_s = {}, {}
    for name, key, hint in (("ov_latency", "fp32", "LATENCY"),
                            ("ov_throughput", "fp32", "THROUGHPUT"),
                            ("ov_int8", "int8", "LATENCY")):
        if key in models:
            compiled[name], seconds = _ov_compile(core, models[key], threads, hint)
            compile_s[name] = round(seconds, 3)
    throughput = compiled["ov_throughput"]
    return compiled, {
        "ov_compile_s": compile_s,
        "ov_throughput_streams": int(throughput.get_property("NUM_STREAMS")),
        "ov_throughput_requests": int(throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")),
    }


class _OvModel:
    """A compiled OpenVINO model called like the torch model, for ``run_model`` (``numpy_io``):
    one synchronous request, the first output copied out as float32."""

    numpy_io = True

    def __init__(self, compiled: Any) -> None:
        self.request = compiled.create_infer_request()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out = self.request.infer({"input_ids": input_ids.astype(np.int64, copy=False),
                                  "attention_mask": attention_mask.astype(np.int64, copy=False)})
        return np.array(out[0], dtype=np.float32)


def _ov_async_run(compiled: Any, token_ids: list[list[int]], batches: list[np.ndarray],
                  pad_id: int) -> np.ndarray:
    """Outputs of every row, the ``batches`` submitted concurrently to an ``AsyncInferQueue``
    of the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests."""
    import openvino

    from dask_classify.tokenize import pad_arrays

    width = compiled.output(0).get_partial_shape()[1].get_length()
    results = np.empty((len(token_ids), width), dtype=np.float32)

    def done(request: Any, rows: np.ndarray) -> None:
        results[rows] = request.get_output_tensor(0).data

    queue = openvino.AsyncInferQueue(
        compiled, jobs=compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue.set_callback(done)
    for rows in batches:
        ids, mask = pad_arrays([token_ids[i] for i in rows], pad_id, "right")
        queue.start_async({"input_ids": ids, "attention_mask": mask}, userdata=rows)
    queue.wait_all()
    return results


def _new_shape_cost(model: _OvModel, row: list[int], seen: set[tuple[int, int]],
                    repeats: int = 3) -> dict[str, Any]:
    """Milliseconds of the first call of ``NEW_SHAPES`` never-seen ``(rows, width)`` shapes
    against repeats of the same shapes (medians), on copies of the token ids ``row``.

    The gap is what a shape OpenVINO has not run before costs (its CPU plugin prepares kernels
    per input shape and caches them); the compile time is what a recompilation would cost.
    """
    rows = 4
    free = [w for w in range(16, 512) if (rows, w) not in seen]
    widths = free[:: max(1, len(free) // NEW_SHAPES)][:NEW_SHAPES]
    first, again = [], []
    for width in widths:
        ids = np.tile(np.resize(np.asarray(row, dtype=np.int64), width), (rows, 1))
        call = partial(model, ids, np.ones_like(ids))
        first.append(C.timed(call)[1])
        again.append(float(np.median([C.timed(call)[1] for _ in range(repeats)])))
    return {"ov_new_shape_ms": round(1e3 * float(np.median(first)), 3),
            "ov_repeat_shape_ms": round(1e3 * float(np.median(again)), 3),
            "ov_shape_probe": {"rows": rows, "widths": widths}}


def _calibration_texts(measured: list[str], count: int, mix: dict[str, float]) -> list[str]:
    """``count`` real texts of the same corpora, none of them among the ``measured`` ones."""
    pool, _ = C.mixed_corpus(len(measured) + 4 * count, mix, seed=1)
    seen = set(measured)
    return [t for t in dict.fromkeys(pool) if t not in seen][:count]


def _ort_int8(folder: Path, onnx_file: Path, fused: bool,
              out: Path) -> tuple[Path | None, dict[str, Any]]:
    """ORT's dynamic int8 quantization of ``onnx_file`` (written under ``out``), and a record.

    Where ``quantize_dynamic`` fails on a ``fused`` graph (ORT's ``com.microsoft`` ops), the
    error is recorded and an unfused export of ``folder`` is quantized instead. Returns None as
    the file when that fails too (or an unfused graph fails).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from dask_classify.engine.onnx_export import export_onnx

    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"errors": []}
    for source in ("export", "unfused") if fused else ("export",):
        if source == "unfused":
            onnx_file = export_onnx(folder, out / "unfused", optimize=False, overwrite=True,
                                    with_tokenizer=False) / onnx_file.name
        target = out / f"{source}.int8.onnx"
        started = time.perf_counter()
        try:
            quantize_dynamic(onnx_file, target, weight_type=QuantType.QInt8)
        except Exception as exc:  # noqa: BLE001 - recorded in the json, the run goes on
            info["errors"].append(f"{source}: {type(exc).__name__}: {exc}"[:500])
            continue
        info.update(source=source, quantize_s=round(time.perf_counter() - started, 2),
                    mb=round(target.stat().st_size / C.MB, 2))
        return target, info
    return None, info


def _calibration_items(token_ids: list[list[int]], pad_id: int, batch_size: int,
                       max_tokens: int | None) -> list[dict[str, np.ndarray]]:
    """NNCF calibration items: one feed dict (``input_ids``, ``attention_mask``) per batch of
    ``token_ids``, batched and padded as the measured rows are."""
    from dask_classify.tokenize import pad_arrays, plan_batches

    items = []
    for rows in plan_batches([len(t) for t in token_ids], batch_size, max_tokens):
        ids, mask = pad_arrays([token_ids[i] for i in rows], pad_id, "right")
        items.append({"input_ids": ids, "attention_mask": mask})
    return items


def _ov_int8(model: Any, items: list[dict[str, np.ndarray]]) -> tuple[Any, dict[str, Any]]:
    """NNCF's post-training int8 quantization of the OpenVINO ``model``, calibrated on
    ``items`` (:func:`_calibration_items`), and a record."""
    import nncf

    started = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items),
                              model_type=nncf.ModelType.TRANSFORMER)
    return quantized, {"quantize_s": round(time.perf_counter() - started, 2),
                       "calibration_batches": len(items),
                       "calibration_rows": sum(len(i["input_ids"]) for i in items)}


def _quality(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Agreement of ``out`` with the reference outputs ``ref`` (torch fp32)."""
    diff = np.abs(out - ref)
    return {"same_labels": float((out.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_prob_diff": float(diff.max()), "mean_abs_prob_diff": float(diff.mean())}


def _median_ratio(times: dict[str, list[float]], slower: str, faster: str) -> float:
    """Median over the rounds of ``slower``'s time over ``faster``'s (``faster``'s speed-up)."""
    return round(float(np.median(np.array(times[slower]) / np.array(times[faster]))), 3)


def bench_model(ck: C.Checkpoint, texts: list[str], threads_list: list[int], reps: int,
                batch_size: int, max_tokens: int | None, cache: Path, profile: bool,
                calibration: list[str] | None = None) -> dict[str, Any]:
    """Every runtime on ``texts`` with ``ck``, per thread count (see the module docstring).

    Parameters
    ----------
    ck : common.Checkpoint
        The model (its package-format folder is run).
    texts : list of str
        The measured texts.
    threads_list : list of int
        Thread counts; every runtime gets each in turn.
    reps : int
        Interleaved rounds per thread count.
    batch_size, max_tokens : int, int or None
        The batch rule (:func:`dask_classify.tokenize.plan_batches`).
    cache : Path
        Export cache (ONNX graphs, the int8 files).
    profile : bool
        Also profile each torch forward (1 thread).
    calibration : list of str, optional
        Texts to calibrate ``ov_int8`` on; None: no int8 runtimes.

    Returns
    -------
    dict
        The model's record: ``by_threads`` holds, per thread count, the times, ``docs_per_s``,
        ``quality_vs_torch`` and ``ratios``.
    """
    import torch

    from dask_classify.engine import fast_attention as FA
    from dask_classify.engine.loading import load_tokenizer
    from dask_classify.engine.onnx_export import cached_export
    from dask_classify.engine.onnx_runtime import OnnxModel
    from dask_classify.engine.run import run_model
    from dask_classify.tokenize import plan_batches, tokenize

    folder = ck.nvidia
    tok = load_tokenizer(folder)
    pad = tok.pad_token_id or 0
    ids = tokenize(tok, texts, 512)
    lengths = np.array([len(t) for t in ids])
    batches = plan_batches(lengths, batch_size, max_tokens)
    started = time.perf_counter()
    onnx_file = cached_export(folder, root=cache)
    export_s = time.perf_counter() - started
    export_info = {}
    info_file = onnx_file.parent / "onnx_export.json"
    if info_file.is_file():
        export_info = json.loads(info_file.read_text())
    models = {"torch": _load_torch(folder)}
    if _is_deberta(models["torch"]):
        models["torch_before"] = _load_torch(folder, before=True)

    def runner(name: str, model: Any):
        def run() -> np.ndarray:
            FA.USE_WINDOWS = name != "torch_before"
            try:
                return run_model(model, ids, pad_id=pad, device="cpu", batch_size=batch_size,
                                 max_tokens=max_tokens)
            finally:
                FA.USE_WINDOWS = True
        return run

    result: dict[str, Any] = {
        "model": ck.name, "description": ck.description, "texts": len(texts),
        "tokens": int(lengths.sum()), "batches": len(batches),
        "batch_rule": {"batch_size": batch_size, "max_batch_tokens": max_tokens},
        "onnx_export_s": round(export_s, 2),
        "ort_transformer_optimizer": export_info.get("ort_transformer_optimizer"),
        "by_threads": {},
    }
    openvino = _optional("openvino")
    ov_models: dict[str, Any] = {}
    if openvino is not None:
        core = openvino.Core()
        ov_models["fp32"] = core.read_model(str(onnx_file))
    ort_int8_file = None
    if calibration is not None:
        ort_int8_file, result["ort_int8"] = _ort_int8(
            folder, onnx_file, bool(result["ort_transformer_optimizer"]),
            cache / "int8" / onnx_file.parent.name)
        if openvino is None:
            result["ov_int8"] = {"skipped": "openvino is not installed"}
        elif _optional("nncf") is None:
            result["ov_int8"] = {"skipped": "nncf is not installed"}
        else:
            items = _calibration_items(tokenize(tok, calibration, 512), pad, batch_size,
                                       max_tokens)
            ov_models["int8"], result["ov_int8"] = _ov_int8(core.read_model(str(onnx_file)),
                                                            items)
    seen_shapes = {(len(rows), int(lengths[rows].max())) for rows in batches}
    for threads in threads_list:
        torch.set_num_threads(threads)
        runs = {name: runner(name, m) for name, m in models.items()}
        runs["ort"] = runner("ort", OnnxModel(onnx_file, threads=threads))
        compiled: dict[str, Any] = {}
        ov_info: dict[str, Any] = {}
        if ov_models:
            compiled, ov_info = _ov_compile_all(core, ov_models, threads)
            latency = _OvModel(compiled["ov_latency"])
            runs["ov_latency"] = runner("ov_latency", latency)
            runs["ov_throughput"] = partial(_ov_async_run, compiled["ov_throughput"], ids,
                                            batches, pad)
        if ort_int8_file is not None:
            runs["ort_int8"] = runner("ort_int8", OnnxModel(ort_int8_file, threads=threads))
        if "ov_int8" in compiled:
            runs["ov_int8"] = runner("ov_int8", _OvModel(compiled["ov_int8"]))
        outputs = {name: fn() for name, fn in runs.items()}  # warm-up, and the outputs
        if ov_models:
            ov_info.update(_new_shape_cost(latency, ids[int(lengths.argmax())], seen_shapes))
        ref = outputs["torch"]
        quality = {name: _quality(out, ref) for name, out in outputs.items() if name != "torch"}
        names = list(runs)
        times: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        load_before = C.other_cpu_load()
        for rep in range(reps):
            order = names[rep % len(names):] + names[: rep % len(names)]
            for name in order:
                _, seconds, used = C.timed_cpu(runs[name])
                times[name].append(seconds)
                cpu[name].append(used)
            C.log(f"{ck.name} {threads} thread(s) round {rep + 1}: " + ", ".join(
                f"{n} {times[n][-1]:.2f}s" for n in names))
        load_after = C.other_cpu_load()
        entry = {"median_s": {n: round(float(np.median(v)), 4) for n, v in times.items()},
                 "all_s": {n: [round(x, 4) for x in v] for n, v in times.items()},
                 "all_cpu_s": {n: [round(x, 4) for x in v] for n, v in cpu.items()},
                 "docs_per_s": {n: round(len(texts) / float(np.median(v)), 1)
                                for n, v in times.items()},
                 "quality_vs_torch": quality,
                 "load_before": load_before, "load_after": load_after, **ov_info}
        entry["ratios"] = _ratios(times, cpu)
        result["by_threads"][str(threads)] = entry
    if profile:
        result["profile_1_thread"] = {
            name: profile_forward(m, ids, pad, batch_size, max_tokens)
            for name, m in models.items()}
    return result


def _ratios(times: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, Any]:
    """The headline ratios of one thread count (medians of per-round ratios, see the module
    docstring), and the fastest runtimes by median time (``ov_best_hint``,
    ``best_direct_runtime``)."""
    ratios: dict[str, Any] = {
        "ort_over_torch_time": _median_ratio(times, "ort", "torch"),
        "torch_speedup_vs_ort": _median_ratio(times, "ort", "torch"),
        "torch_speedup_vs_ort_cpu_time": _median_ratio(cpu, "ort", "torch"),
    }
    if "torch_before" in times:
        ratios["torch_speedup_vs_before"] = _median_ratio(times, "torch_before", "torch")
        ratios["torch_speedup_vs_before_cpu_time"] = _median_ratio(cpu, "torch_before", "torch")
    if "ov_latency" in times:
        ratios["torch_speedup_vs_ov_latency"] = _median_ratio(times, "ov_latency", "torch")
        ratios["torch_speedup_vs_ov_throughput"] = _median_ratio(times, "ov_throughput", "torch")
        median = {n: float(np.median(times[n])) for n in DIRECT_FP32}
        best_ov = min(("ov_latency", "ov_throughput"), key=median.get)
        ratios["ov_best_hint"] = "LATENCY" if best_ov == "ov_latency" else "THROUGHPUT"
        ratios["ort_speedup_vs_ov_best"] = _median_ratio(times, best_ov, "ort")
        ratios["best_direct_runtime"] = min(DIRECT_FP32, key=median.get)
    if "ort_int8" in times:
        ratios["ort_int8_speedup_vs_ort"] = _median_ratio(times, "ort", "ort_int8")
    if "ov_int8" in times:
        ratios["ov_int8_speedup_vs_ov_latency"] = _median_ratio(times, "ov_latency", "ov_int8")
    return ratios


def _runtimes_table(results: list[dict[str, Any]]) -> list[str]:
    """The second table: every runtime's docs/s, the fastest fp32 one, int8 agreement."""
    columns = ("torch", "ort", "ov_latency", "ov_throughput", "ort_int8", "ov_int8")
    lines = ["| model | threads | torch | ORT | OV latency | OV throughput | ORT int8 | "
             "OV int8 (docs/s) | best fp32 runtime | "
             "int8 labels agreement / max prob diff (ORT, OV) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for res in results:
        for threads, e in res["by_threads"].items():
            d, r, q = e["docs_per_s"], e["ratios"], e["quality_vs_torch"]
            rates = " | ".join(f"{d[n]:.1f}" if n in d else "-" for n in columns)
            best = r.get("best_direct_runtime", "ort")
            int8 = ", ".join(
                f"{q[n]['same_labels']:.2%} / {q[n]['max_abs_prob_diff']:.2g}" if n in q else "-"
                for n in ("ort_int8", "ov_int8"))
            lines.append(f"| {res['model']} | {threads} | {rates} | {best} | {int8} |")
    return lines


def _openvino_notes(results: list[dict[str, Any]]) -> list[str]:
    """One line per model and thread count: the hint that won, the streams and requests
    ``THROUGHPUT`` chose, compile times and the cost of a new batch shape."""
    lines = []
    for res in results:
        for threads, e in res["by_threads"].items():
            if "ov_compile_s" not in e:
                continue
            compile_s = ", ".join(f"{n} {s:.2f}s" for n, s in e["ov_compile_s"].items())
            lines.append(
                f"{res['model']}, {threads} thread(s): OpenVINO {e['ratios']['ov_best_hint']} "
                f"hint faster; THROUGHPUT chose {e['ov_throughput_streams']} stream(s), "
                f"{e['ov_throughput_requests']} request(s); compile {compile_s}; "
                f"a new (rows, width) shape {e['ov_new_shape_ms']:.1f} ms on first call vs "
                f"{e['ov_repeat_shape_ms']:.1f} ms repeated.")
    return lines


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as markdown: torch against ORT, every runtime's throughput, OpenVINO notes
    and the torch profiles (with ``--profile``)."""
    lines = ["| model | threads | torch (docs/s) | torch before (docs/s) | ORT (docs/s) | "
             "torch vs ORT, wall / CPU time | torch vs before, wall / CPU time | "
             "ORT labels / max prob diff |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for res in results:
        for threads, e in res["by_threads"].items():
            d, r, q = e["docs_per_s"], e["ratios"], e["quality_vs_torch"]["ort"]
            before = d.get("torch_before")
            vs_before = "-" if before is None else (
                f"{r['torch_speedup_vs_before']:.2f}x / "
                f"{r['torch_speedup_vs_before_cpu_time']:.2f}x")
            lines.append(
                f"| {res['model']} | {threads} | {d['torch']:.1f} | "
                f"{'-' if before is None else f'{before:.1f}'} | {d['ort']:.1f} | "
                f"**{r['torch_speedup_vs_ort']:.2f}x / "
                f"{r['torch_speedup_vs_ort_cpu_time']:.2f}x** | {vs_before} | "
                f"{q['same_labels']:.2%} / {q['max_abs_prob_diff']:.1g} |")
    lines += ["", *_runtimes_table(results)]
    notes = _openvino_notes(results)
    if notes:
        lines += ["", *notes]
    for res in results:
        for name, ops in res.get("profile_1_thread", {}).items():
            lines.append("")
            lines.append(f"{res['model']} `{name}` forward, 1 thread: " + ", ".join(
                f"{o['op'].replace('aten::', '')} {o['share']:.0%}" for o in ops))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,default,minilm")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-batch-tokens", type=lambda s: None if s == "none" else int(s),
                        default=2048, help="padded tokens per batch ('none': rows only)")
    parser.add_argument("--mix", default=None, help="e.g. imdb=0.2,ag_news=0.4,sst2=0.4")
    parser.add_argument("--profile", action="store_true",
                        help="also profile each torch forward (1 thread)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the int8 runtimes (ort_int8, ov_int8)")
    parser.add_argument("--quick", action="store_true", help="toy size for the smoke test")
    parser.add_argument("--out", type=Path, default=Path("bench_results/engines"))
    parser.add_argument("--work-dir", type=Path, default=None)
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)
    if args.quick:
        args.models, args.threads, args.rows, args.reps = "tiny", "1", 40, 2
    work = args.work_dir or args.out / "work"
    mix = C.parse_mix(args.mix)
    texts, _ = C.mixed_corpus(args.rows, mix)
    calibration = _calibration_texts(texts, CALIBRATION_TEXTS, mix) if args.int8 else None
    checkpoints, skipped = C.prepare_checkpoints(args.models.split(","), work, texts[:64])
    threads = [int(t) for t in args.threads.split(",")]
    machine = C.machine_info()
    import onnxruntime

    machine["onnxruntime"] = onnxruntime.__version__
    openvino = _optional("openvino")
    machine["openvino"] = None if openvino is None else openvino.__version__
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = work / "onnx" if args.work_dir or not args.quick else Path(tmp)
        for ck in checkpoints:
            C.log(f"{ck.name}: {args.rows} texts, threads {threads}, {args.reps} rounds")
            results.append(bench_model(ck, texts, threads, args.reps, args.batch_size,
                                       args.max_batch_tokens, cache, args.profile,
                                       calibration))
    payload = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
               "skipped": skipped, "results": results}
    C.write_json(args.out / "engines.json", payload)
    (args.out / "engines.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
