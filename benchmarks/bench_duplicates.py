"""Duplicate folding: the classifier on corpora with 0%, 20% and 50% duplicate rows.

Three parts (``--parts``, default all):

``chunk``
    Duplicates inside a partition. For each model and duplicate share, the same rows (real mixed
    texts; a share of them repeats an earlier row, shuffled in) are classified with
    ``fold_duplicates=True`` (the default: each distinct text once per chunk) and
    ``fold_duplicates=False`` (every row run, the behaviour before folding), by direct
    ``classify_partition`` calls in this process on partitions of ``--partition-rows`` rows,
    with ``--threads`` torch threads (default every core) and the package's CPU defaults
    otherwise. The two are interleaved ``--reps`` times; the speed-up is the median of the
    per-round ratios, of wall time and of this process's CPU time (with one thread the CPU time is
    the work done, which other jobs on a shared machine disturb far less than the wall time).
    Outputs must agree: labels identical, probabilities within 1e-5.

``spread``
    Duplicates spread over the whole job, as crawled data split into shards has them: the same
    corpora cut into ``--spread-partitions`` partitions of a Dask DataFrame (computed by the
    synchronous scheduler in this process) and written as as many JSONL shards classified by
    ``classify_files`` (in this process). ``fold_duplicates="global"`` (one forward per distinct
    text of the job: a hash pass, a table of outputs by hash, lookups) against ``True`` (per
    chunk, which finds only the duplicates that share a partition); interleaved rounds as above,
    outputs compared the same way.

``table``
    The memory and time of global folding's hash pass and output table for a job of
    ``--table-rows`` rows (default ten million; ``--table-share`` of them duplicates) in
    partitions of ``--table-partition-rows``: each partition's texts go through the hash pass
    (:func:`dask_classify.fold.first_texts`), the per-partition firsts are joined into one
    :class:`~dask_classify.hashing.OutputTable` (model outputs replaced by stand-in float32 rows:
    the model's time is the other parts' business), and each partition looks its rows up. It
    reports the table's bytes (16 bytes of hash plus 4 per label per *distinct* text; this is
    what every lookup task holds) and this process's peak RSS increase, with the time of each
    step per million rows.

Usage::

    python benchmarks/bench_duplicates.py --models default,tiny --rows 4000 --reps 5 \\
        --out bench_results/duplicates
    python benchmarks/bench_duplicates.py --parts spread --models default,tiny --rows 4000 \\
        --spread-partitions 16 --reps 5 --out bench_results/duplicates-spread
    python benchmarks/bench_duplicates.py --parts table --table-rows 10000000 \\
        --out bench_results/duplicates-table
    python benchmarks/bench_duplicates.py --quick --out /tmp/dups     # toy size (smoke test)

Writes ``<out>/duplicates.json`` (``results``: chunk, ``spread``, ``table``) and
``<out>/duplicates.md``.
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


def _outputs(frame: Any) -> tuple[np.ndarray, np.ndarray]:
    return frame["preds"].to_numpy(dtype=object), np.array(frame["p"].tolist())


def _compare(a: Any, b: Any) -> tuple[float, float]:
    (la, pa), (lb, pb) = _outputs(a), _outputs(b)
    return float((la == lb).mean()), float(np.abs(pa - pb).max())


def speedups(times: dict[str, list[float]], cpu: dict[str, list[float]], base: str,
             new: str) -> dict[str, Any]:
    """The speed-up of ``new`` over ``base``: medians and per-round ratios, wall and CPU time."""
    ratios = np.array(times[base]) / np.array(times[new])
    cpu_ratios = np.array(cpu[base]) / np.array(cpu[new])
    return {"speedup": round(float(np.median(ratios)), 3),
            "speedup_per_round": [round(float(r), 3) for r in ratios],
            "cpu_speedup": round(float(np.median(cpu_ratios)), 3),
            "cpu_speedup_per_round": [round(float(r), 3) for r in cpu_ratios],
            "all_s": times, "all_cpu_s": cpu}


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
        same, diff = _compare(a, b)
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
        rows.append({
            "model": name, "duplicate_share": share, "rows": len(corpus),
            "distinct": len(set(corpus)),
            "fold_docs_per_s": round(len(corpus) / float(np.median(times["fold"])), 1),
            "no_fold_docs_per_s": round(len(corpus) / float(np.median(times["no_fold"])), 1),
            **speedups(times, cpu, "no_fold", "fold"),
            "same_labels": same, "max_abs_prob_diff": diff})
    return rows


def write_shards(corpus: list[str], folder: Path, shards: int) -> Path:
    """``corpus`` as ``shards`` JSONL files of consecutive rows (``id``, ``text``)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(corpus) // shards)
    for k in range(shards):
        rows = corpus[k * per: (k + 1) * per]
        frame = pd.DataFrame({"id": range(k * per, k * per + len(rows)), "text": rows})
        frame.to_json(folder / f"shard-{k:05d}.jsonl", orient="records", lines=True)
    return folder


def bench_spread(folder: Path, name: str, texts: list[str], shares: list[float], reps: int,
                 partitions: int, work: Path, threads: int | None = None
                 ) -> list[dict[str, Any]]:
    """``fold_duplicates="global"`` against ``True`` with the duplicates spread over
    ``partitions`` partitions of a Dask DataFrame and as many shards of ``classify_files``."""
    import dask.dataframe as dd
    import pandas as pd

    from dask_classify import DistributedDataClassifier, classify_files

    clfs = {key: DistributedDataClassifier(folder, score_field="p", torch_threads=threads,
                                           fold_duplicates=fold)
            for key, fold in (("global", "global"), ("chunk", True))}
    rows = []
    for share in shares:
        corpus = with_duplicates(texts, share)
        ddf = dd.from_pandas(pd.DataFrame({"text": corpus}), npartitions=partitions, sort=False)
        src = write_shards(corpus, work / f"shards-{share:g}", partitions)

        def frame_run(clf: Any, ddf: Any = ddf) -> Any:
            return clf(ddf).compute(scheduler="sync")

        def files_run(clf: Any, key: str, src: Path = src, share: float = share) -> Any:
            out = work / f"out-{share:g}-{key}"
            summary = classify_files(str(src), str(out), clf, overwrite=True,
                                     output_format="parquet")
            return out, summary

        def read_back(out: Path) -> Any:
            return pd.read_parquet(out).sort_values("id", ignore_index=True)

        for where in ("dataframe", "files"):
            warm, summaries, forwards = {}, {}, {}
            for key, clf in clfs.items():  # warm-up: outputs, and the rows the model ran
                with C.profile_partitions() as prof:
                    if where == "dataframe":
                        warm[key] = frame_run(clf)
                    else:
                        out, summaries[key] = files_run(clf, key)
                        warm[key] = read_back(out)
                forwards[key] = int(sum(rows for rows, _ in prof.batches))
            same, diff = _compare(warm["global"], warm["chunk"])
            times: dict[str, list[float]] = {"global": [], "chunk": []}
            cpu: dict[str, list[float]] = {"global": [], "chunk": []}
            for rep in range(reps):
                order = list(clfs.items())
                for key, clf in (order if rep % 2 == 0 else order[::-1]):
                    fn = ((lambda clf=clf: frame_run(clf)) if where == "dataframe"
                          else (lambda clf=clf, key=key: files_run(clf, key)))
                    _, wall, used = C.timed_cpu(fn)
                    times[key].append(wall)
                    cpu[key].append(used)
                C.log(f"{name} {where} {share:.0%} duplicates over {partitions} round {rep + 1}:"
                      f" global {times['global'][-1]:.2f}s, chunk {times['chunk'][-1]:.2f}s")
            glob = summaries.get("global")
            rows.append({
                "model": name, "where": where, "partitions": partitions,
                "duplicate_share": share, "rows": len(corpus), "distinct": len(set(corpus)),
                "distinct_texts_reported": getattr(glob, "distinct_texts", None),
                "forwards": forwards,
                "forward_ratio": round(forwards["chunk"] / max(forwards["global"], 1), 3),
                "table_bytes_reported": getattr(glob, "table_bytes", None),
                "global_docs_per_s": round(len(corpus) / float(np.median(times["global"])), 1),
                "chunk_docs_per_s": round(len(corpus) / float(np.median(times["chunk"])), 1),
                **speedups(times, cpu, "chunk", "global"),
                "same_labels": same, "max_abs_prob_diff": diff})
    return rows


def bench_table(folder: Path, texts: list[str], rows: int, share: float,
                partition_rows: int, labels: int = 2) -> dict[str, Any]:
    """The hash pass, the output table and the lookups of a ``rows``-row job, partition by
    partition as the workers run them (the texts of one partition exist at a time)."""
    import time

    import pandas as pd

    from dask_classify import DistributedDataClassifier
    from dask_classify.fold import first_texts
    from dask_classify.hashing import OutputTable, hash_texts

    clf = DistributedDataClassifier(folder, fold_duplicates="global")
    distinct = rows - int(round(rows * share))
    n_parts = -(-rows // partition_rows)
    rng = np.random.default_rng(0)

    def partition(k: int) -> pd.DataFrame:
        # row r holds text number ids[r] (< distinct): each text number is a real text with a
        # suffix, so the texts are real-length and exactly ``distinct`` of them differ
        start = k * partition_rows
        n = min(partition_rows, rows - start)
        ids = np.arange(start, start + n)
        ids = np.where(ids < distinct, ids, np.random.default_rng(k).integers(0, distinct, n))
        body = [texts[i % len(texts)] for i in ids]
        return pd.DataFrame({"text": [f"{t} #{i}" for t, i in zip(body, ids, strict=True)]})

    hash_s = make_s = 0.0
    parts = []
    with C.PeakRSS() as rss:
        for k in range(n_parts):
            t0 = time.perf_counter()
            frame = partition(k)
            t1 = time.perf_counter()
            firsts = first_texts(frame, clf)
            t2 = time.perf_counter()
            make_s += t1 - t0
            hash_s += t2 - t1
            h1 = firsts["h1"].to_numpy(dtype=np.uint64)
            h2 = firsts["h2"].to_numpy(dtype=np.uint64)
            parts.append((h1, h2, rng.random((len(h1), labels), dtype=np.float32)))
        t0 = time.perf_counter()
        table = OutputTable.build(parts)
        build_s = time.perf_counter() - t0
        del parts
        lookup_s = 0.0
        for k in range(0, n_parts, max(n_parts // 10, 1)):  # a tenth of the partitions
            frame = partition(k)
            h1, h2 = hash_texts(frame["text"].tolist())
            t0 = time.perf_counter()
            table.lookup(h1, h2)
            lookup_s += time.perf_counter() - t0
        looked = len(range(0, n_parts, max(n_parts // 10, 1)))
    per_m = 1e6 / rows
    return {"rows": rows, "duplicate_share": share, "distinct": int(len(table)),
            "expected_distinct": distinct, "partitions": n_parts, "labels": labels,
            "table_bytes": table.nbytes, "table_mib": round(table.nbytes / C.MB, 1),
            "bytes_per_distinct_text": round(table.nbytes / max(len(table), 1), 1),
            "peak_rss_increase_mib": round(rss.increase_mb, 1),
            "hash_pass_s_per_million_rows": round(hash_s * per_m, 3),
            "text_making_s_per_million_rows": round(make_s * per_m, 3),
            "table_build_s": round(build_s, 2),
            "lookup_s_per_million_rows": round(
                lookup_s / max(looked * partition_rows, 1) * 1e6, 3)}


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


def markdown_spread(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | where | duplicate rows | distinct texts | global (docs/s) |"
             " per chunk (docs/s) | rows run by the model, chunk / global | speed-up, wall |"
             " speed-up, CPU time | same labels / max prob diff |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['where']} ({r['partitions']}) | "
                     f"{r['duplicate_share']:.0%} | {r['distinct']} | "
                     f"{r['global_docs_per_s']:.1f} | {r['chunk_docs_per_s']:.1f} | "
                     f"{r['forwards']['chunk']} / {r['forwards']['global']} "
                     f"({r['forward_ratio']:.2f}x) | {r['speedup']:.2f}x | "
                     f"**{r['cpu_speedup']:.2f}x** | "
                     f"{r['same_labels']:.2%} / {r['max_abs_prob_diff']:.1g} |")
    return "\n".join(lines) + "\n"


def markdown_table(t: dict[str, Any]) -> str:
    return ("| rows | duplicates | distinct | table | bytes per distinct text | peak RSS increase"
            " | hash pass (s per M rows) | table build (s) | lookups (s per M rows) |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {t['rows']:,} | {t['duplicate_share']:.0%} | {t['distinct']:,} | "
            f"{t['table_mib']} MiB | {t['bytes_per_distinct_text']} | "
            f"{t['peak_rss_increase_mib']} MiB | {t['hash_pass_s_per_million_rows']} | "
            f"{t['table_build_s']} | {t['lookup_s_per_million_rows']} |\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="chunk,spread,table",
                        help="comma-separated: chunk, spread, table")
    parser.add_argument("--models", default="default,tiny")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--shares", default="0,0.2,0.5")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--partition-rows", type=int, default=2500)
    parser.add_argument("--spread-partitions", type=int, default=16)
    parser.add_argument("--table-rows", type=int, default=10_000_000)
    parser.add_argument("--table-share", type=float, default=0.5)
    parser.add_argument("--table-partition-rows", type=int, default=100_000)
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
        args.spread_partitions, args.table_rows, args.table_partition_rows = 4, 20_000, 5_000
    parts = set(args.parts.split(","))
    if not parts <= {"chunk", "spread", "table"}:
        parser.error(f"--parts: unknown {sorted(parts - {'chunk', 'spread', 'table'})}")
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
    spread: list[dict[str, Any]] = []
    table: dict[str, Any] | None = None
    work = args.work_dir or args.out / "work"
    with C.torch_threads(args.threads):
        for ck in checkpoints:
            if "chunk" in parts:
                rows += bench(ck.nvidia, ck.name, texts, shares, args.reps, args.partition_rows,
                              args.threads)
            if "spread" in parts:
                spread += bench_spread(ck.nvidia, ck.name, texts, shares, args.reps,
                                       args.spread_partitions, work / f"spread-{ck.name}",
                                       args.threads)
        if "table" in parts and checkpoints:
            table = bench_table(checkpoints[0].nvidia, texts, args.table_rows, args.table_share,
                                args.table_partition_rows)
    payload = {"machine": C.machine_info(), "load_before": load_before,
               "load_after": C.other_cpu_load(), "skipped": skipped,
               "args": {k: str(v) for k, v in vars(args).items()}, "results": rows,
               "spread": spread, "table": table}
    C.write_json(args.out / "duplicates.json", payload)
    md = ((markdown(rows) if rows else "") + ("\n" + markdown_spread(spread) if spread else "")
          + ("\n" + markdown_table(table) if table else ""))
    (args.out / "duplicates.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
