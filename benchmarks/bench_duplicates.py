"""Duplicate folding: the classifier on corpora with 0%, 20% and 50% duplicate rows.

For each model and duplicate share, the same rows (real mixed texts; a share of them repeats
an earlier row, shuffled in) are classified with ``fold_duplicates=True`` (the default: each
distinct text once per chunk) and ``fold_duplicates=False`` (every row run, the behaviour before
folding), by direct ``classify_partition`` calls in this process on partitions of
``--partition-rows`` rows, with ``--threads`` torch threads (default every core) and the
package's CPU defaults otherwise. The two are interleaved ``--reps`` times; the speed-up is the
median of the per-round ratios, of wall time and of this process's CPU time (with one thread the
CPU time is the work done, which other jobs on a shared machine disturb far less than the wall
time). Outputs must agree: labels identical, probabilities within 1e-5.

Usage::

    python benchmarks/bench_duplicates.py --models default,tiny --rows 4000 --reps 5 \\
        --out bench_results/duplicates
    python benchmarks/bench_duplicates.py --quick --out /tmp/dups     # toy size (smoke test)

Writes ``<out>/duplicates.json`` and ``<out>/duplicates.md``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402


def with_duplicates(texts: list[str], share: float, seed: int = 0) -> list[str]:
    """``len(texts)`` rows of which ``share`` repeat one of the others (the rest distinct)."""
    rows = len(texts)
    distinct = list(dict.fromkeys(texts))[: rows - int(round(rows * share))]
    rng = random.Random(seed)
    out = distinct + [rng.choice(distinct) for _ in range(rows - len(distinct))]
    rng.shuffle(out)
    return out


def run(clf: Any, frames: list[Any]) -> Any:
    import pandas as pd

    return pd.concat([clf.classify_partition(f) for f in frames])


def bench(folder: Path, name: str, texts: list[str], shares: list[float], reps: int,
          partition_rows: int, threads: int | None = None) -> list[dict[str, Any]]:
    import pandas as pd

    from dask_classify import DistributedDataClassifier

    on = DistributedDataClassifier(folder, score_field="p", torch_threads=threads)
    off = DistributedDataClassifier(folder, score_field="p", fold_duplicates=False,
                                    torch_threads=threads)
    rows = []
    for share in shares:
        corpus = with_duplicates(texts, share)
        df = pd.DataFrame({"text": corpus})
        frames = [df.iloc[i: i + partition_rows] for i in range(0, len(df), partition_rows)]
        a, b = run(on, frames), run(off, frames)  # warm-up, and the outputs compared
        same = float((a["preds"] == b["preds"]).mean())
        diff = float(np.abs(np.array(a["p"].tolist()) - np.array(b["p"].tolist())).max())
        times: dict[str, list[float]] = {"fold": [], "no_fold": []}
        cpu: dict[str, list[float]] = {"fold": [], "no_fold": []}
        for rep in range(reps):
            pair = [("fold", on), ("no_fold", off)]
            for key, clf in (pair if rep % 2 == 0 else pair[::-1]):
                _, wall, used = C.timed_cpu(lambda clf=clf, frames=frames: run(clf, frames))
                times[key].append(wall)
                cpu[key].append(used)
            C.log(f"{name} {share:.0%} duplicates round {rep + 1}: fold {times['fold'][-1]:.2f}s"
                  f", no fold {times['no_fold'][-1]:.2f}s")
        ratios = np.array(times["no_fold"]) / np.array(times["fold"])
        cpu_ratios = np.array(cpu["no_fold"]) / np.array(cpu["fold"])
        rows.append({
            "model": name, "duplicate_share": share, "rows": len(corpus),
            "distinct": len(set(corpus)),
            "fold_docs_per_s": round(len(corpus) / float(np.median(times["fold"])), 1),
            "no_fold_docs_per_s": round(len(corpus) / float(np.median(times["no_fold"])), 1),
            "speedup": round(float(np.median(ratios)), 3),
            "speedup_per_round": [round(float(r), 3) for r in ratios],
            "cpu_speedup": round(float(np.median(cpu_ratios)), 3),
            "cpu_speedup_per_round": [round(float(r), 3) for r in cpu_ratios],
            "all_s": times, "all_cpu_s": cpu, "same_labels": same, "max_abs_prob_diff": diff})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | duplicate rows | distinct texts | folded (docs/s) | not folded (docs/s) |"
             " speed-up, wall (median of rounds) | speed-up, CPU time | same labels / max prob"
             " diff |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['duplicate_share']:.0%} | {r['distinct']} | "
                     f"{r['fold_docs_per_s']:.1f} | {r['no_fold_docs_per_s']:.1f} | "
                     f"{r['speedup']:.2f}x | **{r['cpu_speedup']:.2f}x** | "
                     f"{r['same_labels']:.2%} / "
                     f"{r['max_abs_prob_diff']:.1g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="default,tiny")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--shares", default="0,0.2,0.5")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--partition-rows", type=int, default=2500)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: every core)")
    parser.add_argument("--quick", action="store_true", help="toy size for the smoke test")
    parser.add_argument("--out", type=Path, default=Path("bench_results/duplicates"))
    parser.add_argument("--work-dir", type=Path, default=None)
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)
    if args.quick:
        args.models, args.rows, args.reps, args.partition_rows = "tiny", 60, 2, 25
    # distinct texts to draw from: ask for more than needed, duplicates in the sources dropped
    pool, _ = C.mixed_corpus(args.rows * 2)
    texts = list(dict.fromkeys(pool))[: args.rows]
    if len(texts) < args.rows:
        raise SystemExit(f"only {len(texts)} distinct texts in the corpora; lower --rows")
    checkpoints, skipped = C.prepare_checkpoints(args.models.split(","),
                                                 args.work_dir or args.out / "work", texts[:64])
    shares = [float(s) for s in args.shares.split(",")]
    load_before = C.other_cpu_load()
    rows: list[dict[str, Any]] = []
    with C.torch_threads(args.threads):
        for ck in checkpoints:
            rows += bench(ck.nvidia, ck.name, texts, shares, args.reps, args.partition_rows,
                          args.threads)
    payload = {"machine": C.machine_info(), "load_before": load_before,
               "load_after": C.other_cpu_load(), "skipped": skipped,
               "args": {k: str(v) for k, v in vars(args).items()}, "results": rows}
    C.write_json(args.out / "duplicates.json", payload)
    (args.out / "duplicates.md").write_text(markdown(rows), encoding="utf-8")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
