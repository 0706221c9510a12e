"""The package's torch forward against ONNX Runtime on the same model, texts and batches.

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

all fed the same token ids in the package's batches (``dask_classify.tokenize.plan_batches``:
length-sorted, at most ``--batch-size`` rows and ``--max-batch-tokens`` padded tokens; the
classifier's CPU defaults are 256 and 2048), interleaved ``--reps`` times (each round runs every
runtime once, in a rotating order). Ratios are medians of the per-round ratios: this VM's speed
drifts 20-40% within minutes and other jobs share its two cores. With one thread the ratios of
this process's CPU time are reported too: the work done, which other jobs disturb far less.

Usage::

    python benchmarks/bench_engines.py --models tiny,default,minilm --threads 1,2 --rows 1000 \\
        --reps 5 --out bench_results/engines
    python benchmarks/bench_engines.py --quick --out /tmp/engines    # toy size (CI smoke test)

Writes ``<out>/engines.json`` and ``<out>/engines.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


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


def bench_model(ck: C.Checkpoint, texts: list[str], threads_list: list[int], reps: int,
                batch_size: int, max_tokens: int | None, cache: Path,
                profile: bool) -> dict[str, Any]:
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
    import json

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
    for threads in threads_list:
        torch.set_num_threads(threads)
        runs = {name: runner(name, m) for name, m in models.items()}
        session = OnnxModel(onnx_file, threads=threads)
        runs["ort"] = runner("ort", session)
        outputs = {name: fn() for name, fn in runs.items()}  # warm-up, and the outputs
        ref = outputs["torch"]
        quality = {name: {"same_labels": float((out.argmax(1) == ref.argmax(1)).mean()),
                          "max_abs_prob_diff": float(np.abs(out - ref).max())}
                   for name, out in outputs.items() if name != "torch"}
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
                 "load_before": load_before, "load_after": load_after}
        t = np.array(times["torch"])
        entry["ratios"] = {
            "ort_over_torch_time": round(float(np.median(np.array(times["ort"]) / t)), 3),
            "torch_speedup_vs_ort": round(float(np.median(np.array(times["ort"]) / t)), 3),
        }
        c = np.array(cpu["torch"])
        entry["ratios"]["torch_speedup_vs_ort_cpu_time"] = round(
            float(np.median(np.array(cpu["ort"]) / c)), 3)
        if "torch_before" in times:
            entry["ratios"]["torch_speedup_vs_before"] = round(
                float(np.median(np.array(times["torch_before"]) / t)), 3)
            entry["ratios"]["torch_speedup_vs_before_cpu_time"] = round(
                float(np.median(np.array(cpu["torch_before"]) / c)), 3)
        result["by_threads"][str(threads)] = entry
    if profile:
        result["profile_1_thread"] = {
            name: profile_forward(m, ids, pad, batch_size, max_tokens)
            for name, m in models.items()}
    return result


def markdown(results: list[dict[str, Any]]) -> str:
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
    parser.add_argument("--quick", action="store_true", help="toy size for the smoke test")
    parser.add_argument("--out", type=Path, default=Path("bench_results/engines"))
    parser.add_argument("--work-dir", type=Path, default=None)
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)
    if args.quick:
        args.models, args.threads, args.rows, args.reps = "tiny", "1", 40, 2
    work = args.work_dir or args.out / "work"
    texts, _ = C.mixed_corpus(args.rows, C.parse_mix(args.mix))
    checkpoints, skipped = C.prepare_checkpoints(args.models.split(","), work, texts[:64])
    threads = [int(t) for t in args.threads.split(",")]
    machine = C.machine_info()
    import onnxruntime

    machine["onnxruntime"] = onnxruntime.__version__
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = work / "onnx" if args.work_dir or not args.quick else Path(tmp)
        for ck in checkpoints:
            C.log(f"{ck.name}: {args.rows} texts, threads {threads}, {args.reps} rounds")
            results.append(bench_model(ck, texts, threads, args.reps, args.batch_size,
                                       args.max_batch_tokens, cache, args.profile))
    payload = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
               "skipped": skipped, "results": results}
    C.write_json(args.out / "engines.json", payload)
    (args.out / "engines.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
