"""The classifier against its CPU peers on the same model, texts, max length and batch size.

Runtimes, all interleaved ``--reps`` times in one process (each round runs every runtime once,
in a rotating order; ratios are medians of the per-round ratios, since this VM's speed drifts
20-40% within minutes and other jobs share its cores):

* ``dask_classify``: ``DistributedDataClassifier(folder, model_inference_batch_size=B,
  max_seq_length=L)`` with every other parameter at its default (on the CPU: at most 2048
  padded tokens per batch, duplicates folded, torch engine) on ``get_client()``'s default
  cluster (2 cores: two single-threaded worker processes), ``.compute()``;
* ``dask_classify_onnx``: the same with ``engine="onnx"`` (ONNX Runtime; needs ``[onnx]``);
* ``hf_pipeline``: ``pipeline("text-classification", batch_size=B, truncation=True,
  max_length=L)`` in this process (a thread per core) on the equivalent plain transformers
  folder (``common.export_hf``), fed the texts longest first: the best a pipeline user can do;
* ``curator`` (when ``nemo_curator`` imports): NeMo Curator's own ``TokenizerStage`` and
  ``ClassifierModelStage`` (``model_inference_batch_size=B``, ``max_seq_length=L``,
  ``sort_by_length=True``, ``autocast=False``) called in this process (a thread per core) on
  one ``DocumentBatch`` of all the texts, with two shims that only let them run on a CPU with
  transformers 5: the model is not moved with ``.cuda()`` and the tokenizer gets back
  ``batch_encode_plus`` (removed in transformers 5) as a call of the tokenizer itself. The
  model folder is the same NVIDIA-format checkpoint, its backbone saved beside it for
  Curator's ``AutoModel.from_pretrained(config["base_model"])``.

Usage (Curator needs its own virtual environment, see ``benchmarks/README.md``)::

    python benchmarks/bench_peers.py --models tiny --rows 1200 --batch-size 64 \\
        --runtimes dask_classify,dask_classify_onnx,curator --out bench_results/peers_curator
    python benchmarks/bench_peers.py --models minilm --rows 300 --batch-size 32 \\
        --max-length 256 --runtimes dask_classify,dask_classify_onnx,hf_pipeline \\
        --out bench_results/peers_pipeline
    python benchmarks/bench_peers.py --quick --out /tmp/peers      # toy size (smoke test)

Writes ``<out>/peers.json`` and ``<out>/peers.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

RUNTIMES = ("dask_classify", "dask_classify_onnx", "hf_pipeline", "curator")


def curator_checkpoint(nvidia: Path, out: Path) -> Path:
    """The NVIDIA-format checkpoint as NeMo Curator loads it: ``base_model`` names a backbone
    folder (written beside it) instead of an embedded ``backbone_config``."""
    import shutil

    from dask_classify.engine.loading import load_model, load_tokenizer

    stamp = out / "source_mtime.txt"
    mtime = str((nvidia / "config.json").stat().st_mtime_ns)
    if stamp.is_file() and stamp.read_text() == mtime:
        return out
    model, info = load_model(nvidia)
    out.mkdir(parents=True, exist_ok=True)
    model.model.save_pretrained(str(out / "backbone"))
    config = json.loads((nvidia / "config.json").read_text())
    config.pop("backbone_config", None)
    config["base_model"] = str(out / "backbone")
    config.setdefault("fc_dropout", 0.2)
    config["label2id"] = {label: i for i, label in enumerate(info.labels)}
    # Curator reads the labels with AutoConfig, which needs a model type (NVIDIA's hub folders
    # get theirs from "deberta" in their names)
    config["model_type"] = model.model.config.model_type
    (out / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copyfile(nvidia / "model.safetensors", out / "model.safetensors")
    load_tokenizer(nvidia).save_pretrained(str(out))
    stamp.write_text(mtime)
    return out


class CuratorRunner:
    """NeMo Curator's tokenizer and model stages, run on the CPU with the two shims."""

    def __init__(self, folder: Path, batch_size: int, max_length: int) -> None:
        import torch
        from nemo_curator.stages.text.classifiers import base as curator_base
        from nemo_curator.stages.text.models.tokenizer import TokenizerStage

        # shim 1: Curator's _setup calls .cuda() on the model; keep it on the CPU
        real_cuda = torch.nn.Module.cuda
        torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        try:
            self.tokenizer = TokenizerStage(model_identifier=str(folder), max_seq_length=max_length,
                                            sort_by_length=True)
            self.tokenizer.setup()
            tok = self.tokenizer.tokenizer
            # shim 2: transformers 5 removed batch_encode_plus; the tokenizer call is the same
            if not hasattr(tok, "batch_encode_plus"):
                type(tok).batch_encode_plus = lambda self, texts, **kw: self(texts, **kw)
            self.model = curator_base.ClassifierModelStage(
                model_identifier=str(folder), model_inference_batch_size=batch_size,
                has_seq_order=True, autocast=False)
            self.model.setup()
        finally:
            torch.nn.Module.cuda = real_cuda  # type: ignore[method-assign]

    def __call__(self, texts: list[str]) -> list[str]:
        import pandas as pd
        from nemo_curator.tasks import DocumentBatch

        batch = DocumentBatch(dataset_name="bench",
                              data=pd.DataFrame({"text": texts}))
        out = self.model.process(self.tokenizer.process(batch))
        return [str(v) for v in out.to_pandas()["preds"].tolist()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny")
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--partition-rows", type=int, default=300)
    parser.add_argument("--mix", default=None)
    parser.add_argument("--quick", action="store_true", help="toy size for the smoke test")
    parser.add_argument("--out", type=Path, default=Path("bench_results/peers"))
    parser.add_argument("--work-dir", type=Path, default=None)
    C.add_data_option(parser)
    args = parser.parse_args(argv)
    C.set_data_dir(args.data)
    if args.quick:
        args.models, args.rows, args.reps, args.batch_size = "tiny", 48, 2, 8
        args.runtimes = "dask_classify,hf_pipeline"
    work = args.work_dir or args.out / "work"
    texts, _ = C.mixed_corpus(args.rows, C.parse_mix(args.mix))
    checkpoints, skipped = C.prepare_checkpoints(args.models.split(","), work, texts[:64])
    wanted = args.runtimes.split(",")
    unknown = sorted(set(wanted) - set(RUNTIMES))
    if unknown:
        raise SystemExit(f"unknown runtimes {unknown}; choose from {RUNTIMES}")
    machine = C.machine_info()
    results = []
    import os

    from dask_classify import get_client
    from dask_classify.engine.onnx_runtime import CACHE_ENV

    os.environ.setdefault(CACHE_ENV, str(work / "onnx"))  # the workers inherit it
    client = None
    if any(w.startswith("dask_classify") for w in wanted):
        client = get_client(backend="cpu", reuse_existing=False, dashboard_address=None)
    try:
        for ck in checkpoints:
            results.append(bench_model(ck, texts, wanted, args, client, work, skipped))
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    payload = {"machine": machine, "workers": None if client is None else "get_client() default",
               "args": {k: str(v) for k, v in vars(args).items()}, "skipped": skipped,
               "results": results}
    C.write_json(args.out / "peers.json", payload)
    (args.out / "peers.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


def bench_model(ck: C.Checkpoint, texts: list[str], wanted: list[str], args: Any, client: Any,
                work: Path, skipped: list[str]) -> dict[str, Any]:
    import dask.dataframe as dd
    import pandas as pd

    from dask_classify import DistributedDataClassifier

    runs: dict[str, Any] = {}
    frame = pd.DataFrame({"text": pd.Series(texts, dtype=C.string_dtype())})
    ddf = dd.from_pandas(frame, npartitions=max(1, math.ceil(len(texts) / args.partition_rows)),
                         sort=True)
    for name in ("dask_classify", "dask_classify_onnx"):
        if name in wanted:
            engine = "onnx" if name.endswith("onnx") else "torch"
            clf = DistributedDataClassifier(ck.nvidia, model_inference_batch_size=args.batch_size,
                                            max_seq_length=args.max_length, engine=engine)
            runs[name] = (lambda clf=clf: [str(v) for v in
                                           clf(ddf).compute(scheduler=client)["preds"]])
    with C.torch_threads() as threads:
        if "hf_pipeline" in wanted:
            from transformers import pipeline

            pipe = pipeline("text-classification", model=str(ck.hf), tokenizer=str(ck.hf),
                            device=-1, batch_size=args.batch_size, truncation=True,
                            max_length=args.max_length)
            runs["hf_pipeline"] = lambda: C.run_hf_pipeline(pipe, texts, sort_by_length=True)
        if "curator" in wanted:
            try:
                import nemo_curator  # noqa: F401
            except ImportError as exc:
                skipped.append(f"curator: {exc} (see benchmarks/README.md for its venv)")
            else:
                folder = curator_checkpoint(ck.nvidia, work / f"{ck.name}-curator")
                runner = CuratorRunner(folder, args.batch_size, args.max_length)
                runs["curator"] = lambda: runner(texts)
        labels = {name: fn() for name, fn in runs.items()}  # warm-up: every model loaded
        names = list(runs)
        times: dict[str, list[float]] = {n: [] for n in names}
        load_before = C.other_cpu_load()
        for rep in range(args.reps):
            for name in names[rep % len(names):] + names[: rep % len(names)]:
                times[name].append(C.timed(runs[name])[1])
            C.log(f"{ck.name} round {rep + 1}: " + ", ".join(
                f"{n} {len(texts) / times[n][-1]:.1f} docs/s" for n in names))
        load_after = C.other_cpu_load()
    base = np.array(times.get("dask_classify", times[names[0]]))
    ref = labels.get("dask_classify", labels[names[0]])
    return {
        "model": ck.name, "description": ck.description, "texts": len(texts),
        "batch_size": args.batch_size, "max_length": args.max_length,
        "in_process_torch_threads": threads,
        "docs_per_s": {n: round(len(texts) / float(np.median(v)), 1) for n, v in times.items()},
        "all_s": {n: [round(x, 3) for x in v] for n, v in times.items()},
        "dask_classify_speedup": {n: round(float(np.median(np.array(v) / base)), 3)
                                  for n, v in times.items() if n != "dask_classify"},
        "onnx_speedup": ({n: round(float(np.median(np.array(v) / np.array(
            times["dask_classify_onnx"]))), 3) for n, v in times.items()
            if n != "dask_classify_onnx"} if "dask_classify_onnx" in times else None),
        "same_labels_as_dask_classify": {n: C.agreement(ref, v) for n, v in labels.items()},
        "load_before": load_before, "load_after": load_after,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| model | texts | batch | max length | runtime | docs/s | dask_classify (torch) "
             "speed-up | with engine=onnx | same labels |", "|---|---:|---:|---:|---|---:|---:|"
             "---:|---:|"]
    for r in results:
        for name, rate in r["docs_per_s"].items():
            speed = r["dask_classify_speedup"].get(name)
            onnx = (r["onnx_speedup"] or {}).get(name)
            lines.append(
                f"| {r['model']} | {r['texts']} | {r['batch_size']} | {r['max_length']} | {name} "
                f"| {rate:.1f} | {'' if speed is None else f'**{speed:.2f}x**'} | "
                f"{'' if onnx is None else f'{onnx:.2f}x'} | "
                f"{r['same_labels_as_dask_classify'][name]:.2%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
