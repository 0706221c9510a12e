"""Smoke tests of the benchmark harness: every script runs end to end at toy size.

The real numbers come from running the scripts by hand (``benchmarks/README.md``); here we only
check that each one runs, writes its JSON and PNG, and that the values are sane (identical fp32
labels, positive rates, a FLOP fit that checks out). Both tests share one work folder, so the
tiny checkpoint is built once.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

# every test runs a benchmark script end to end; the module's runs are shared fixtures, so its
# tests stay on one pytest-xdist worker (scripts/test.sh runs --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("benchmarks")]

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench(data_dir):
    """The benchmark modules, imported the way the scripts import each other."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name)
               for name in ("common", "bench_classify", "bench_scaling")}
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench_work")


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_mixed_corpus_is_real_mixed_and_deterministic(bench):
    common = bench["common"]
    texts, sources = common.mixed_corpus(1000, seed=3)
    again, _ = common.mixed_corpus(1000, seed=3)
    assert texts == again and len(texts) == 1000
    assert Counter(sources) == {"imdb": 200, "ag_news": 400, "sst2": 400}
    stats = common.describe_texts(texts, sources)["by_source"]
    # really mixed lengths: reviews are far longer than news items, news than SST-2 phrases
    assert stats["imdb"]["chars_mean"] > 3 * stats["ag_news"]["chars_mean"]
    assert stats["ag_news"]["chars_mean"] > 2 * stats["sst2"]["chars_mean"]
    # asking for more rows than a corpus holds repeats it
    many, many_sources = common.mixed_corpus(5000, {"imdb": 1.0})
    assert set(many_sources) == {"imdb"} and len(set(many)) < len(many)


def test_batching_helpers_match_run_model(bench):
    common = bench["common"]
    lengths = [5, 50, 7, 3, 50, 20]
    # run_model's batches: longest first, each padded to its longest row
    assert common.batch_shapes(lengths, 4) == [(4, 50), (2, 5)]
    assert common.batch_shapes(lengths, 4, sort_by_length=False) == [(4, 50), (2, 50)]
    batches = common.token_budget_batches(lengths, 100)
    assert [len(b) for b in batches] == [2, 4]  # 2 rows of 50 fit, then the 4 left (width 20)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))


@pytest.fixture(scope="module")
def classify_run(bench, work_dir, tmp_path_factory) -> tuple[dict, Path]:
    import dask

    out = tmp_path_factory.mktemp("classify")
    import torch

    scheduler = dask.config.get("scheduler", None)
    with pytest.MonkeyPatch.context() as env:
        # as a fresh process has it: a nanny started by an earlier test in this process may
        # have left OMP_NUM_THREADS=1 here (distributed writes its pre-spawn variables into the
        # parent's environment)
        env.delenv("OMP_NUM_THREADS", raising=False)
        threads = torch.get_num_threads()
        payload = bench["bench_classify"].main(
            ["--quick", "--no-scaling", "--sweep", "--out", str(out), "--work-dir",
             str(work_dir)])
    # its several clients closed, the dask config is as it was (a leaked
    # scheduler="dask.distributed" made every later compute() fail with "no Client active")
    assert dask.config.get("scheduler", None) == scheduler
    assert torch.get_num_threads() == threads  # the timed sections put torch's threads back
    return payload, out


@pytest.fixture(scope="module")
def scaling_run(bench, work_dir, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("scaling")
    payload = bench["bench_scaling"].main(
        ["--quick", "--workers", "1,2", "--out", str(out), "--work-dir", str(work_dir)])
    return payload, out


def test_bench_classify_quick(classify_run):
    """The checks that would catch a wrong headline number or a broken file."""
    payload, out = classify_run
    written = json.loads((out / "classify.json").read_text(encoding="utf-8"))
    assert written["models"].keys() == payload["models"].keys() == {"tiny"}
    assert _is_png(out / "classify.png") and (out / "classify.md").stat().st_size > 0
    assert written["corpus"]["rows"] == 200
    assert set(written["corpus"]["by_source"]) == {"imdb", "ag_news", "sst2"}

    tiny = written["models"]["tiny"]
    assert tiny["hf_export_max_abs_prob_diff"] < 1e-5  # the HF twin is the same model
    runs = tiny["runs"]
    assert set(runs) == {"dask_classifier", "dask_classifier_auto", "pipeline_sorted",
                         "pipeline_unsorted", "dask_classifier_int8", "dask_classifier_nvidia"}
    for name, run in runs.items():
        assert run["docs_per_s"] > 0 and run["tokens_per_s"] > run["docs_per_s"], name
    # fp32: the HF pipeline (both orders) and the NVIDIA-format twin agree with us exactly
    assert tiny["labels_agree_fp32"] == 1.0
    for name in ("dask_classifier_auto", "pipeline_sorted", "pipeline_unsorted",
                 "dask_classifier_nvidia"):
        assert runs[name]["label_agreement_with_dask_classifier"] == 1.0
    assert 0.5 <= runs["dask_classifier_int8"]["label_agreement_with_fp32"] <= 1.0
    assert len(tiny["label_counts"]) == 2  # the calibrated random head uses both labels

    split = tiny["time_split"]
    shares = split["tokenize_share"] + split["model_share"] + split["other_share"]
    assert split["model_s"] > 0 and shares == pytest.approx(1.0, abs=1e-3)
    # the headline ratios are medians of back-to-back pairs (drift between pairs cancels)
    overhead = split["dask_overhead"]
    (layout,) = overhead["layouts"]
    pairs = [d / w for d, w in zip(overhead["direct_walls_s"], layout["walls_s"], strict=True)]
    assert layout["vs_direct_paired"] == pytest.approx(float(np.median(pairs)), rel=1e-2)
    h2h = tiny["head_to_head"]
    pairs = [p / w for p, w in zip(h2h["walls_s"]["pipeline_sorted"],
                                   h2h["walls_s"]["dask_classifier"], strict=True)]
    assert h2h["dask_classifier_vs_pipeline_sorted_paired"] == pytest.approx(
        float(np.median(pairs)), rel=1e-2)
    # the package's DeBERTa attention against transformers': same labels, outputs to rounding
    attention = tiny["attention"]
    assert attention["same_labels"] == 1.0 and attention["max_abs_output_diff"] < 1e-4
    flops = tiny["flops"]
    assert flops["flop_fit_check_rel_err"] < 1e-6
    assert 0 < flops["fraction_of_peak"] < 2  # sane: cannot be far above the matmul peak
    assert 0 < flops["padding_efficiency"] <= 1
    assert flops["pipeline_unsorted_padding_efficiency"] <= flops["padding_efficiency"]
    assert all(isinstance(t["met"], bool) for t in written["targets"].values())
    # the sweeps: every batching rule on both corpora; every CPU layout, the default first
    assert set(written["sweep"]["batching"]["tiny"]) == {"mixed", "ag_news"}
    clusters = written["sweep"]["clusters"]
    names = [c["layout"] for c in clusters["layouts"]]
    assert len(names) == 5 and names[0].startswith("get_client() default")


def test_bench_scaling_quick(scaling_run):
    payload, out = scaling_run
    written = json.loads((out / "scaling.json").read_text(encoding="utf-8"))
    assert written["scaling"] == json.loads(json.dumps(payload["scaling"]))
    assert _is_png(out / "scaling.png")
    scaling = written["scaling"]
    assert [r["rows"] for r in scaling["runs"]] == [200, 400]
    for run in scaling["runs"]:
        assert sum(run["label_counts"].values()) == run["rows"]
        assert run["in_process_worker"] and run["worker_peak_rss_mb"] > 0
        assert run["docs_per_s"] > 0 and run["partitions"] == run["rows"] // 100
    assert scaling["time_per_row_ratio"] > 0 and scaling["worker_memory_ratio"] > 0
    # the second layout: two process workers, same rows, same labels
    one, two = written["layouts"]
    assert one == scaling and two["n_workers"] == 2
    assert [r["rows"] for r in two["runs"]] == [200, 400]
    for a, b in zip(one["runs"], two["runs"], strict=True):
        assert not b["in_process_worker"] and len(b["worker_pids"]) == 2
        assert b["label_counts"] == a["label_counts"]


def test_combine_merges_runs_into_one_report(bench, classify_run, scaling_run, tmp_path):
    (_, classify_out), (_, scaling_out) = classify_run, scaling_run
    merged = bench["bench_classify"].main(
        ["--combine", str(classify_out / "classify.json"), str(scaling_out / "scaling.json"),
         "--out", str(tmp_path)])
    assert set(merged["models"]) == {"tiny"} and merged["models"]["tiny"]["rows"] == 200
    assert [r["rows"] for r in merged["scaling"]["runs"]] == [200, 400]
    assert "scaling.time_linear" in merged["targets"]
    assert _is_png(tmp_path / "classify.png")
    table = (tmp_path / "classify.md").read_text(encoding="utf-8")
    assert "| tiny | 200 | dask_classifier |" in table and "| 400 |" in table


def test_bench_large_quick(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        large = importlib.import_module("bench_large")
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "large"
    # in its own process, as it is run: its LocalCluster and clients must not leak into the
    # other tests' dask config and environment
    proc = subprocess.run([sys.executable, str(BENCH / "bench_large.py"), "--rows", "3000",
                           "--out", str(out), "--interval", "0.2"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "large.json").read_text(encoding="utf-8"))
    assert result["rows"] == result["rows_out"] == 3000
    assert len(result["peak_worker_rss_mib"]) == 2 and min(result["peak_worker_rss_mib"]) > 50
    written = [s["rows_written"] for s in result["samples"]]
    assert written == sorted(written) and 0 <= written[-1] <= 3000  # counted from the footers
    assert result["worker_rss_by_rows"][-1]["rows_written_up_to"] == 3000
    assert _is_png(out / "large.png")
    # the row counter: finished and in-flight parts, a part counted once across its rename
    import pandas as pd

    folder = tmp_path / "classified"
    (folder / "a.parquet").mkdir(parents=True)
    (folder / ".b.parquet.tmp-1234").mkdir()
    pd.DataFrame({"x": range(100)}).to_parquet(folder / "a.parquet" / "part.00000.parquet")
    pd.DataFrame({"x": range(50)}).to_parquet(folder / ".b.parquet.tmp-1234" / "part.00000.parquet")
    seen: dict[str, int] = {}
    assert large.rows_written(folder, seen) == 150
    (folder / ".b.parquet.tmp-1234").rename(folder / "b.parquet")
    assert large.rows_written(folder, seen) == 150


@pytest.mark.slow
def test_train_lr_defaults_quick(tmp_path, data_dir):
    """The learning-rate study at toy size: both arms, a tiny encoder, 32 rows; then --combine."""
    pytest.importorskip("lightning")
    from dask_classify.testing import build_tiny_encoder, default_corpus

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_lr_defaults.py"
    encoder = build_tiny_encoder(tmp_path / "enc", "bert", default_corpus(2000))
    common = [sys.executable, str(script), "--data", str(data_dir), "--encoder", str(encoder),
              "--rows", "32", "--seeds", "1"]
    for arm in ("old", "new"):
        subprocess.run([*common, "--arms", arm, "--output", str(tmp_path / f"{arm}.json")],
                       check=True, capture_output=True, text=True, timeout=600)
    subprocess.run([*common, "--combine", str(tmp_path / "old.json"), str(tmp_path / "new.json"),
                    "--output", str(tmp_path / "all.json")], check=True, capture_output=True,
                   text=True, timeout=600)
    payload = json.loads((tmp_path / "all.json").read_text())
    runs = {r["arm"]: r for r in payload["runs"]}
    assert set(runs) == {"old", "new"} and all(r["eval_rows"] == 872 for r in runs.values())
    assert runs["old"]["lr"] == pytest.approx(2e-5)
    assert runs["new"]["optimizer_steps"] == 2  # 32 rows, batch 32, 2 epochs
    from dask_classify.train.module import auto_learning_rate

    assert runs["new"]["lr"] == pytest.approx(auto_learning_rate(64, 2))
    assert len(payload["commands"]) == 2 and "machine" in payload
    assert "| 32 | new |" in (tmp_path / "all.md").read_text()


def _run_script(name: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_bench_engines_quick(tmp_path):
    pytest.importorskip("onnxruntime")
    _run_script("bench_engines.py", "--quick", "--out", str(tmp_path))
    result = json.loads((tmp_path / "engines.json").read_text(encoding="utf-8"))["results"][0]
    entry = result["by_threads"]["1"]
    quality = entry["quality_vs_torch"]
    assert result["model"] == "tiny"
    assert {"torch", "torch_before", "ort", "ort_int8"} <= set(entry["median_s"])
    # the same model on the same batches: ORT and the attention before the change agree
    assert quality["ort"]["same_labels"] == 1.0
    assert quality["ort"]["max_abs_prob_diff"] < 1e-4
    assert quality["torch_before"]["max_abs_prob_diff"] < 1e-5
    assert all(r > 0 for r in entry["ratios"].values() if not isinstance(r, str))
    table = (tmp_path / "engines.md").read_text(encoding="utf-8")
    assert "| tiny | 1 |" in table
    assert "| model | threads | torch | ORT | OV latency | OV throughput | ORT int8 |" in table
    # int8 runs against the fp32 reference: some labels may flip, but not the whole set
    assert 0.0 <= quality["ort_int8"]["same_labels"] <= 1.0
    assert result["ort_int8"]["source"] == "export"  # the tiny DeBERTa graph is not fused

    pytest.importorskip("openvino")
    assert set(entry["median_s"]) == {"torch", "torch_before", "ort", "ov_latency",
                                      "ov_throughput", "ort_int8", "ov_int8"}
    # OpenVINO fp32 on the ORT graph, synchronous or queued batches: torch's labels and probs
    for name in ("ov_latency", "ov_throughput"):
        assert quality[name]["same_labels"] == 1.0
        assert quality[name]["max_abs_prob_diff"] < 1e-4
    assert 0.0 <= quality["ov_int8"]["same_labels"] <= 1.0
    assert entry["ratios"]["ov_best_hint"] in ("LATENCY", "THROUGHPUT")
    assert entry["ratios"]["best_direct_runtime"] in ("ort", "ov_latency", "ov_throughput")
    assert entry["ov_throughput_requests"] >= 1 and set(entry["ov_compile_s"]) == {
        "ov_latency", "ov_throughput", "ov_int8"}
    assert entry["ov_new_shape_ms"] > 0 and entry["ov_repeat_shape_ms"] > 0


@pytest.mark.slow
def test_bench_duplicates_quick(tmp_path):
    _run_script("bench_duplicates.py", "--quick", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "duplicates.json").read_text(encoding="utf-8"))["results"]
    assert [r["duplicate_share"] for r in rows] == [0.0, 0.2, 0.5]
    assert [r["distinct"] for r in rows] == [60, 48, 30]
    assert all(r["same_labels"] == 1.0 and r["max_abs_prob_diff"] < 1e-5 for r in rows)
    payload = json.loads((tmp_path / "duplicates.json").read_text(encoding="utf-8"))
    spread = payload["spread"]
    assert [(r["where"], r["duplicate_share"]) for r in spread] == [
        (w, s) for s in (0.0, 0.2, 0.5) for w in ("dataframe", "files")]
    for r in spread:  # global folding runs each distinct text once, and agrees with per-chunk
        assert r["forwards"]["global"] == r["distinct"] <= r["forwards"]["chunk"]
        assert r["same_labels"] == 1.0 and r["max_abs_prob_diff"] < 1e-5
    files = [r for r in spread if r["where"] == "files"]
    assert [r["distinct_texts_reported"] for r in files] == [60, 48, 30]
    assert all(r["table_bytes_reported"] == r["distinct"] * 24 for r in files)
    table = payload["table"]
    assert table["distinct"] == table["expected_distinct"] == 10_000
    assert table["table_bytes"] == 10_000 * (16 + 4 * table["labels"])


def test_duplicate_corpus_and_curator_checkpoint(bench, work_dir, tmp_path, corpus):
    sys.path.insert(0, str(BENCH))
    try:
        dups = importlib.import_module("bench_duplicates")
        peers = importlib.import_module("bench_peers")
    finally:
        sys.path.remove(str(BENCH))
    texts = [f"text {i}" for i in range(100)]
    out = dups.with_duplicates(texts, 0.2)
    assert len(out) == 100 and len(set(out)) == 80 and set(out) <= set(texts)
    # NeMo Curator's Deberta loads its backbone from config["base_model"]: the harness writes
    # the backbone beside the checkpoint, with the same weights
    from transformers import AutoModel

    from dask_classify.engine.loading import load_model
    from dask_classify.testing import build_tiny_deberta_checkpoint

    nvidia = build_tiny_deberta_checkpoint(tmp_path / "nv", ["a", "b"], tokenizer="bert",
                                           texts=corpus[:200])
    folder = peers.curator_checkpoint(nvidia, tmp_path / "curator")
    config = json.loads((folder / "config.json").read_text())
    backbone = AutoModel.from_pretrained(config["base_model"])
    original, _ = load_model(nvidia)
    for key, value in original.model.state_dict().items():
        assert np.array_equal(backbone.state_dict()[key].numpy(), value.numpy()), key
    assert config["label2id"] == {"a": 0, "b": 1}


@pytest.mark.slow
def test_bench_peers_quick(tmp_path):
    _run_script("bench_peers.py", "--quick", "--out", str(tmp_path))
    result = json.loads((tmp_path / "peers.json").read_text(encoding="utf-8"))["results"][0]
    assert set(result["docs_per_s"]) == {"dask_classify", "hf_pipeline"}
    # the same fp32 model: the pipeline (on its plain-transformers twin) gives the same labels
    assert result["same_labels_as_dask_classify"]["hf_pipeline"] == 1.0
    assert result["dask_classify_speedup"]["hf_pipeline"] > 0
