"""Data-parallel training on the CPU: two processes (DDP over gloo), a tiny BERT encoder.

The command line is run as a subprocess, as a user would run it: Lightning starts the second
process by running the same command again. The test checks the split of the data, that the
validation metrics are over the whole validation set, that exactly one ``best_model/`` is
written, and that no process is left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("lightning")
psutil = pytest.importorskip("psutil")

from dask_classify.testing import build_tiny_encoder, default_corpus  # noqa: E402
from dask_classify.train.data import read_tsv, write_tsv  # noqa: E402

TRAIN_ROWS, DEV_ROWS = 161, 101  # odd: a padded sampler would show up in the counts


def _processes_mentioning(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _run_two_processes(tmp_path: Path, data_dir: Path, devices: list[str]) -> str:
    """Train with two processes through the command line; returns its output (checked)."""
    encoder = build_tiny_encoder(tmp_path / "encoder", "bert", default_corpus(3000))
    train_frame = read_tsv(data_dir / "sst2" / "train.tsv", num_classes=2).iloc[:TRAIN_ROWS]
    dev_frame = read_tsv(data_dir / "sst2" / "dev.tsv", num_classes=2).iloc[:DEV_ROWS]
    write_tsv(tmp_path / "train.tsv", train_frame["sentence"], train_frame["label"])
    write_tsv(tmp_path / "dev.tsv", dev_frame["sentence"], dev_frame["label"])
    exp = tmp_path / "ddp_exp"
    command = [
        sys.executable, "-m", "dask_classify", "train",
        f"model.language_model.pretrained_model_name={encoder}",
        f"model.train_ds.file_path={tmp_path / 'train.tsv'}",
        f"model.validation_ds.file_path={tmp_path / 'dev.tsv'}",
        "model.dataset.num_classes=2", "model.dataset.max_seq_length=32",
        "model.train_ds.batch_size=16", "model.validation_ds.batch_size=16",
        "model.optim.lr=1e-3", *devices,
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
        f"exp_manager.exp_dir={exp}",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        # No process of this run may outlive it (the second rank is a child of the first).
        deadline = time.monotonic() + 10
        while _processes_mentioning(str(exp)) and time.monotonic() < deadline:
            time.sleep(0.5)
        leftovers = _processes_mentioning(str(exp))
        for leftover in leftovers:
            leftover.kill()
    assert proc.returncode == 0, output[-5000:]
    assert leftovers == [], [p.info["cmdline"] for p in leftovers]

    result = json.loads((exp / "train_result.json").read_text())
    assert [row["epoch"] for row in result["history"]] == [0, 1]
    half = (TRAIN_ROWS + 1) // 2
    for row in result["history"]:
        # Each process trained on its own half (the sampler pads the odd one out) ...
        assert row["train_examples_per_process"] == [half, half], row
        # ... and together they covered every training example, each epoch.
        assert row["train_examples_distinct"] == TRAIN_ROWS, row
    # Validation metrics are over the whole validation set, each example once.
    assert result["val_report"]["num_samples"] == DEV_ROWS
    reports = re.findall(r"weighted avg\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)", output)
    assert reports and all(int(n) == DEV_ROWS for n in reports), reports
    assert len(reports) == 2  # one printed report per epoch (rank 0 only)
    for row in result["history"]:  # a count of correct examples out of 101, not of 102
        correct = row["val_accuracy"] * DEV_ROWS
        assert abs(correct - round(correct)) < 1e-4, row["val_accuracy"]
    # Exactly one best model (rank 0 writes it), no temporary folders left behind.
    assert [p.relative_to(exp).as_posix() for p in exp.rglob("best_model")] == ["best_model"]
    assert (exp / "best_model" / "model.safetensors").is_file()
    assert not [p for p in exp.rglob(".*") if "best_model" in p.name]
    return output


@pytest.mark.slow
def test_two_cpu_processes_split_the_data_and_write_one_best_model(tmp_path, data_dir):
    output = _run_two_processes(tmp_path, data_dir, ["trainer.devices=2", "trainer.strategy=ddp",
                                                     "trainer.accelerator=cpu"])
    assert output.count("devices: cpu, 2 process(es)") == 1  # the start report, once


@pytest.mark.gpu
@pytest.mark.slow
def test_nemo_gpus_2_trains_on_two_gpus(tmp_path, data_dir):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    output = _run_two_processes(tmp_path, data_dir, ["trainer.gpus=2", "trainer.accelerator=ddp"])
    assert output.count("devices: cuda, 2 process(es)") == 1
