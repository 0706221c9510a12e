"""Large data, disk to disk: does worker memory stay flat as rows grow?

Generates a Parquet data set of real, mixed-length texts (AG News descriptions and IMDB reviews
from ``--data DIR``, by default the samples in ``tests/data``, repeated) with ``--rows`` rows
(default 2,000,000) in row groups, then
runs ``dask-classify classify`` on it with the tiny DeBERTa checkpoint on a ``LocalCluster`` of
process workers, sampling every worker's RSS (and the client's) every ``--interval`` seconds.
Writes ``large.json`` (peak RSS per worker, RSS against rows written, docs/s) and
``large.png`` (RSS over the run).

Usage::

    python benchmarks/bench_large.py --rows 2000000 --out bench_results/
    python benchmarks/bench_large.py --rows 2000 --out /tmp/smoke      # toy size (CI smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402


def make_dataset(folder: Path, rows: int, rows_per_file: int = 200_000) -> Path:
    """A Parquet folder of ``rows`` real texts (row groups of 20k rows)."""
    ag, imdb = C.read_source("ag_news"), C.read_source("imdb")
    pool = np.array(ag * 3 + imdb, dtype=object)  # mostly short news, some long reviews
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = 0
    while written < rows:
        n = min(rows_per_file, rows - written)
        frame = pd.DataFrame({"id": np.arange(written, written + n),
                              "text": pool[rng.integers(0, len(pool), n)]})
        frame.to_parquet(folder / f"part.{written // rows_per_file:05d}.parquet", index=False,
                         row_group_size=20_000)
        written += n
    return folder


def rows_written(folder: Path, seen: dict[str, int]) -> int:
    """Rows in the finished Parquet parts under ``folder`` (hidden temporaries included)."""
    import pyarrow.parquet as pq

    for part in [*folder.glob("*/part.*.parquet"), *folder.glob(".*/part.*.parquet")]:
        # the same part before and after its folder's rename: one key
        key = f"{part.parent.name.split('.tmp-')[0].lstrip('.')}/{part.name}"
        if key not in seen:
            try:
                seen[key] = pq.read_metadata(part).num_rows
            except OSError:  # being written or renamed right now: next sample
                continue
    return sum(seen.values())


def rss_by_rows(samples: list[dict], rows: int) -> list[dict]:
    """Highest worker RSS (MiB) seen up to each quarter of the rows written: flat memory means
    the later quarters add nothing."""
    out = []
    for quarter in (1, 2, 3, 4):
        upto = [s for s in samples if s["rows_written"] <= rows * quarter / 4]
        if upto:
            out.append({"rows_written_up_to": rows * quarter // 4,
                        "worker_rss_mib": round(max(max(s["worker_rss"], default=0)
                                                    for s in upto) / 2**20, 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--fold-duplicates", action="store_true",
                        help="fold repeated texts (the data set repeats its texts; off: the same "
                             "work as runs before folding existed)")
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)

    import psutil
    from distributed import LocalCluster

    from dask_classify.cli import main as cli
    from dask_classify.testing import build_tiny_deberta_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    model = build_tiny_deberta_checkpoint(work / "model", ["a", "b", "c"])
    started = time.perf_counter()
    source = make_dataset(work / "input", args.rows)
    generate_s = time.perf_counter() - started

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    samples: list[dict] = []
    stop = threading.Event()

    seen: dict[str, int] = {}

    def sample() -> None:
        from distributed import Client

        with Client(cluster, set_as_default=False) as client:
            while not stop.is_set():
                rss = client.run(lambda: psutil.Process().memory_info().rss)
                samples.append({"t": time.perf_counter() - started,
                                "rows_written": rows_written(out / "classified", seen),
                                "client_rss": psutil.Process().memory_info().rss,
                                "worker_rss": list(rss.values())})
                stop.wait(args.interval)

    thread = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        rc = cli(["classify", str(source), "--model", str(model), "--output",
                  str(out / "classified"), "--overwrite", "--no-progress",
                  "--max-seq-length", str(args.max_seq_length), "--batch-size", "32",
                  *([] if args.fold_duplicates else ["--no-fold-duplicates"]),
                  "--scheduler-address", cluster.scheduler_address])
    finally:
        stop.set()
        thread.join()
        cluster.close()
    seconds = time.perf_counter() - started
    if rc != 0:
        return rc
    summary = json.loads((out / "classified" / "_summary.json").read_text())
    worker_peaks = [max(s["worker_rss"][i] for s in samples if len(s["worker_rss"]) > i)
                    for i in range(args.workers)]
    result = {
        "rows": args.rows, "workers": args.workers, "seconds": round(seconds, 1),
        "fold_duplicates": args.fold_duplicates,
        "generate_seconds": round(generate_s, 1),
        "docs_per_second": round(args.rows / seconds, 1),
        "rows_out": summary["rows_out"],
        "peak_worker_rss_mib": [round(p / 2**20, 1) for p in worker_peaks],
        "peak_client_rss_mib": round(max(s["client_rss"] for s in samples) / 2**20, 1),
        "worker_rss_by_rows": rss_by_rows(samples, args.rows),
        "samples": samples,
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
    }
    (out / "large.json").write_text(json.dumps(result, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    t = [s["t"] for s in samples]
    for i in range(args.workers):
        ax.plot(t, [s["worker_rss"][i] / 2**20 if len(s["worker_rss"]) > i else np.nan
                    for s in samples], label=f"worker {i}")
    ax.plot(t, [s["client_rss"] / 2**20 for s in samples], label="client", linestyle="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"{args.rows:,} rows disk to disk: memory over the run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "large.png", dpi=100)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
