"""Multi-node as users run it: ``dask scheduler --scheduler-file`` and ``dask worker`` processes
started by the dask command, each in its own working directory, a worker SIGKILLed mid-job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).with_name("dask"))


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([DASK, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_scheduler_file_cluster_survives_a_killed_worker(tmp_path, bert_ckpt, ag_news_texts):
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                     "--dashboard-address", ":0", "--no-show"], tmp_path / "scheduler")]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        for name in ("w1", "w2"):
            procs.append(_start(["worker", "--scheduler-file", str(scheduler_file),
                                 "--nworkers", "1", "--nthreads", "1", "--name", name,
                                 "--memory-limit", "0", "--dashboard-address", ":0"],
                                tmp_path / name))
        client = Client(scheduler_file=str(scheduler_file))
        client.wait_for_workers(2, timeout=120)

        shutil.copytree(bert_ckpt, tmp_path / "job" / "model")  # a path relative to the job
        src = tmp_path / "job" / "in"
        src.mkdir()
        texts = ag_news_texts[:1800]
        for k in range(6):
            rows = [{"i": k * 300 + j, "text": t} for j, t in enumerate(texts[k * 300:][:300])]
            (src / f"shard-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        cmd = [sys.executable, "-m", "dask_classify", "classify", "in", "--model", "model",
               "--output", "out", "--scheduler-file", str(scheduler_file),
               "--partition-rows", "50", "--batch-size", "4", "--no-progress"]
        job = subprocess.Popen(cmd, cwd=tmp_path / "job", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        out = tmp_path / "job" / "out"
        deadline = time.time() + 300
        while time.time() < deadline and len(list(out.glob("*/part.*.parquet"))) < 4:
            time.sleep(0.1)
        first = next(iter(client.scheduler_info()["workers"]))
        victim = client.run(os.getpid, workers=[first])
        os.kill(next(iter(victim.values())), signal.SIGKILL)  # the worker process, mid-job
        stdout, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, stderr
        assert "rows in: 1800" in stdout
        back = pd.read_parquet(out)
        assert sorted(back["i"]) == list(range(1800))  # every row once, none lost
        assert back["preds"].notna().all()
        client.close()
    finally:
        for proc in procs:
            _stop(proc)
