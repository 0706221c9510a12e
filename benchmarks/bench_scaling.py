"""Benchmark: how throughput, wall time and worker memory grow with rows and workers.

Each size runs in a fresh Python process (so peak memory is that size's own), on a Dask
cluster started by :func:`dask_classify.get_client` (default: distributed's split of the cores
into worker processes; ``--workers 1``: one in-process worker, whose memory is that process's).
Partitions are built *on the worker* from a pool of real mixed-length texts (IMDB, AG News,
SST-2; at most 20,000 distinct texts, repeated to the size asked), and only the label counts
come back, so nothing but the classifier itself can make memory grow with rows. Targets: time
linear in rows, worker memory flat.

Usage::

    .venv/bin/python benchmarks/bench_scaling.py --model tiny --rows 10000,100000
    .venv/bin/python benchmarks/bench_scaling.py --model tiny --large        # adds 1,000,000
    .venv/bin/python benchmarks/bench_scaling.py --model /path/to/checkpoint --workers 2
    .venv/bin/python benchmarks/bench_scaling.py --rows 10000,30000,100000 --workers 1,2

Writes ``<out>/scaling.json`` and ``<out>/scaling.png`` (documents/s against rows, one line per
worker layout; wall time against rows with the linear extrapolation; peak RSS per worker).
``--workers 1`` is one in-process worker with a thread per core, ``--workers N`` (N > 1) is N
process workers with cores / N threads each (:func:`dask_classify.get_client`).

``bench_classify.py`` runs the same measurement for its tiny model unless given ``--no-scaling``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

DEFAULT_ROWS = (10_000, 100_000)
LARGE_ROWS = 1_000_000
POOL_ROWS = 20_000
_RESULT_TAG = "SCALING_RESULT "


@functools.lru_cache(maxsize=2)
def _pool(rows: int, mix_items: tuple[tuple[str, float], ...], seed: int) -> tuple[str, ...]:
    """The distinct texts partitions are cut from (read once per worker process)."""
    return tuple(C.mixed_corpus(rows, dict(mix_items), seed)[0])


def _make_partition(spec: tuple[int, int, int, tuple[tuple[str, float], ...], int]) -> Any:
    """Rows ``start .. start + n`` of the repeated pool as a pandas partition (on a worker)."""
    import pandas as pd

    start, n, pool_rows, mix_items, seed = spec
    pool = _pool(pool_rows, mix_items, seed)
    texts = [pool[(start + j) % len(pool)] for j in range(n)]
    return pd.DataFrame({"text": texts}, index=pd.RangeIndex(start, start + n))


def _preload(spec: Any) -> int:
    """Load the tokenizer and model into this worker's cache; returns the worker's pid."""
    from dask_classify.engine.cache import get_model, get_tokenizer

    get_tokenizer(spec)
    get_model(spec)
    return os.getpid()


def measure_one(rows: int, model: str, *, batch_size: int = 32, partition_rows: int = 5000,
                mix: dict[str, float] | None = None, seed: int = 0, backend: str = "cpu",
                n_workers: int | None = None, processes: bool | None = None,
                max_seq_length: int | None = None) -> dict[str, Any]:
    """Classify ``rows`` texts once in *this* process's cluster; time and memory of that run.

    Call it in a fresh process (``run_scaling`` does): peak memory is measured from the
    process's (and its worker processes') resident memory while the classification runs.
    """
    import dask.dataframe as dd
    import pandas as pd
    from transformers.utils import logging as hf_logging

    from dask_classify import DistributedDataClassifier, get_client

    hf_logging.disable_progress_bar()
    mix = mix or dict(C.DEFAULT_MIX)
    mix_items = tuple(sorted(mix.items()))
    pool_rows = min(rows, POOL_ROWS)
    client = get_client(backend=backend, reuse_existing=False, dashboard_address=None,
                        n_workers=n_workers, processes=processes)
    try:
        clf = DistributedDataClassifier(model, model_inference_batch_size=batch_size,
                                        max_seq_length=max_seq_length)
        worker_pids = sorted(set(client.run(_preload, clf.model_spec).values()))
        meta = pd.DataFrame({"text": pd.Series([], dtype=C.string_dtype())})
        # Warm-up (first forward passes, thread pools) on a few rows, not timed.
        warm = dd.from_map(_make_partition, [(0, min(256, rows), pool_rows, mix_items, seed)],
                           meta=meta)
        clf(warm)[clf.label_field].value_counts().compute()
        specs = [(start, min(partition_rows, rows - start), pool_rows, mix_items, seed)
                 for start in range(0, rows, partition_rows)]
        ddf = dd.from_map(_make_partition, specs, meta=meta)
        with C.PeakRSS() as mem:
            counts, wall = C.timed(
                lambda: clf(ddf)[clf.label_field].value_counts().compute())
        counts = {str(k): int(v) for k, v in counts.items()}
        if sum(counts.values()) != rows:
            raise RuntimeError(f"classified {sum(counts.values())} rows, expected {rows}")
        workers_mb = [mem.peak_by_pid_mb.get(pid, 0.0) for pid in worker_pids]
        return {
            "rows": rows,
            "partitions": len(specs),
            "partition_rows": partition_rows,
            "batch_size": batch_size,
            "max_seq_length": max_seq_length,
            "wall_s": round(wall, 3),
            "docs_per_s": round(rows / wall, 1),
            "us_per_row": round(wall / rows * 1e6, 1),
            "worker_pids": worker_pids,
            "in_process_worker": worker_pids == [os.getpid()],
            "worker_peak_rss_mb": round(max(workers_mb), 1),
            **mem.as_dict(),
            "label_counts": counts,
        }
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def run_scaling(model: str, rows_list: list[int], *, batch_size: int = 32,
                partition_rows: int = 5000, mix: dict[str, float] | None = None, seed: int = 0,
                backend: str = "cpu", n_workers: int | None = None,
                max_seq_length: int | None = None, timeout_s: float | None = None
                ) -> dict[str, Any]:
    """Measure every size in ``rows_list``, each in a fresh Python process.

    Returns a dict with one entry per size (``runs``) and the summary the targets need:
    ``time_per_row_ratio`` (per-row time at the largest size / at the smallest; 1.0 = linear)
    and ``worker_memory_ratio`` (peak worker RSS at the largest / at the smallest; 1.0 = flat).
    """
    mix = mix or dict(C.DEFAULT_MIX)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(C.REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    runs: list[dict[str, Any]] = []
    for rows in rows_list:
        C.log(f"scaling: {rows} rows of {Path(model).name} in a fresh process")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", "--rows", str(rows),
               "--model", str(model), "--batch-size", str(batch_size),
               "--partition-rows", str(partition_rows), "--seed", str(seed), "--backend", backend,
               "--mix", ",".join(f"{k}={v}" for k, v in mix.items())]
        if n_workers is not None:
            cmd += ["--workers", str(n_workers)]
        if max_seq_length is not None:
            cmd += ["--max-length", str(max_seq_length)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s,
                              check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"scaling run for {rows} rows failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        runs.append(json.loads(lines[-1][len(_RESULT_TAG):]))
    return {"model": str(model), "backend": backend, "n_workers": n_workers,
            "pool_rows": POOL_ROWS, "runs": runs, **summarize(runs)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Linearity of time and flatness of memory between the smallest and largest size."""
    if len(runs) < 2:
        return {"time_per_row_ratio": None, "worker_memory_ratio": None,
                "worker_memory_growth_mb": None, "rss_increase_growth_mb": None}
    small, large = min(runs, key=lambda r: r["rows"]), max(runs, key=lambda r: r["rows"])
    return {
        "rows_range": [small["rows"], large["rows"]],
        "time_per_row_ratio": round(large["us_per_row"] / small["us_per_row"], 3),
        "worker_memory_ratio": round(large["worker_peak_rss_mb"] / small["worker_peak_rss_mb"],
                                     3),
        "worker_memory_growth_mb": round(large["worker_peak_rss_mb"]
                                         - small["worker_peak_rss_mb"], 1),
        # the same on what the run added above the loaded model (no interpreter baseline)
        "rss_increase_growth_mb": round(large["rss_increase_mb"] - small["rss_increase_mb"], 1),
    }


def _layout_name(scaling: dict[str, Any]) -> str:
    run = scaling["runs"][0]
    if run["in_process_worker"]:
        return "1 in-process worker"
    n = len(run["worker_pids"])
    return f"{n} process worker{'s' if n > 1 else ''}"


def plot_throughput(layouts: list[dict[str, Any]], ax_rate: Any, ax_mem: Any) -> None:
    """Documents/s and peak worker RSS against rows, one line per worker layout."""
    for scaling in layouts:
        runs = sorted(scaling["runs"], key=lambda r: r["rows"])
        rows = [r["rows"] for r in runs]
        name = _layout_name(scaling)
        ax_rate.plot(rows, [r["docs_per_s"] for r in runs], "o-", label=name)
        ax_mem.plot(rows, [r["worker_peak_rss_mb"] for r in runs], "o-", label=name)
    for ax in (ax_rate, ax_mem):
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("rows")
        ax.legend(fontsize=8)
    model = Path(layouts[0]["model"]).name
    ax_rate.set_ylabel("documents/s")
    ax_rate.set_title(f"throughput vs rows and workers ({model})")
    ax_mem.set_ylabel("peak RSS per worker (MB)")
    ax_mem.set_title("worker memory vs rows and workers")


def plot_scaling(scaling: dict[str, Any], ax_time: Any, ax_mem: Any) -> None:
    """Wall time (with the linear extrapolation of the smallest size) and peak worker RSS."""
    runs = sorted(scaling["runs"], key=lambda r: r["rows"])
    rows = [r["rows"] for r in runs]
    ax_time.plot(rows, [r["wall_s"] for r in runs], "o-", label="measured")
    ax_time.plot(rows, [runs[0]["wall_s"] * n / rows[0] for n in rows], "--", color="gray",
                 label="linear from smallest")
    ax_time.set_xscale("log")
    ax_time.set_yscale("log")
    ax_time.set_xlabel("rows")
    ax_time.set_ylabel("wall time (s)")
    ax_time.set_title(f"time vs rows ({Path(scaling['model']).name})")
    ax_time.legend(fontsize=8)
    if ax_mem is None:
        return
    ax_mem.plot(rows, [r["worker_peak_rss_mb"] for r in runs], "o-", color="tab:red")
    ax_mem.set_xscale("log")
    ax_mem.set_ylim(bottom=0)
    ax_mem.set_xlabel("rows")
    ax_mem.set_ylabel("peak worker RSS (MB)")
    ax_mem.set_title("worker memory vs rows")


def resolve_model(name: str, work_dir: Path) -> str:
    """``tiny``/``minilm``/``default`` (built or reused in ``work_dir``) or a checkpoint path."""
    if name in ("tiny", "minilm", "default"):
        texts, _ = C.mixed_corpus(256)
        ready, skipped = C.prepare_checkpoints([name], work_dir, texts)
        if not ready:
            raise SystemExit(f"model {name!r} is not available: {skipped}")
        return str(ready[0].nvidia or ready[0].hf)
    return name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(map(str, DEFAULT_ROWS)),
                        help="comma-separated sizes (default 10000,100000)")
    parser.add_argument("--large", action="store_true", help="add 1,000,000 rows")
    parser.add_argument("--model", default="tiny",
                        help="tiny, minilm, default or a checkpoint folder (default tiny)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--partition-rows", type=int, default=5000)
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit (default: the model's; --quick: 64)")
    parser.add_argument("--workers", default=None,
                        help="Dask workers; a comma list (e.g. 1,2) measures each layout "
                             "(default: get_client()'s default)")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "gpu", "auto"))
    parser.add_argument("--mix", default=None, help="e.g. imdb=0.2,ag_news=0.4,sst2=0.4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_results", help="output folder")
    parser.add_argument("--work-dir", default=None,
                        help="where built checkpoints are cached (default <out>/work)")
    parser.add_argument("--quick", action="store_true",
                        help="toy sizes for CI: 200 and 400 rows, 64 tokens")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    C.add_data_option(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the scaling benchmark; returns the JSON written to ``<out>/scaling.json``."""
    args = parse_args(argv)
    C.set_data_dir(args.data)
    mix = C.parse_mix(args.mix)
    if args.one:  # child process: one size, result on stdout
        result = measure_one(int(args.rows), args.model, batch_size=args.batch_size,
                             partition_rows=args.partition_rows, mix=mix, seed=args.seed,
                             backend=args.backend,
                             n_workers=int(args.workers) if args.workers else None,
                             max_seq_length=args.max_length)
        print(_RESULT_TAG + json.dumps(result), flush=True)
        return result
    rows_list = [200, 400] if args.quick else [int(r) for r in args.rows.split(",") if r]
    if args.large and LARGE_ROWS not in rows_list:
        rows_list.append(LARGE_ROWS)
    partition_rows = 100 if args.quick else args.partition_rows
    max_length = args.max_length or (64 if args.quick else None)
    out = Path(args.out)
    work_dir = Path(args.work_dir) if args.work_dir else out / "work"
    model = resolve_model(args.model, work_dir)
    payload = {"benchmark": "scaling", "machine": C.machine_info(),
               "load_before": C.other_cpu_load(), "args": vars(args)}
    workers = [int(w) for w in args.workers.split(",") if w] if args.workers else [None]
    layouts = [run_scaling(model, sorted(rows_list), batch_size=args.batch_size,
                           partition_rows=partition_rows, mix=mix, seed=args.seed,
                           backend=args.backend, n_workers=n, max_seq_length=max_length)
               for n in workers]
    payload["scaling"] = layouts[0]  # the targets (linear time, flat memory) use the first
    payload["layouts"] = layouts
    payload["load_after"] = C.other_cpu_load()
    C.write_json(out / "scaling.json", payload)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_throughput(layouts, axes[0], axes[2])
    plot_scaling(payload["scaling"], axes[1], None)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)
    plt.close(fig)
    C.log(f"wrote {out / 'scaling.json'} and {out / 'scaling.png'}")
    return payload


if __name__ == "__main__":
    main()
