"""Object storage through a real S3-protocol server (moto in server mode, as s3fs's own tests
use it) and s3fs: s3:// input, s3:// output, and a job killed mid-run that resumes there."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("moto")
s3fs = pytest.importorskip("s3fs")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_server():
    import os

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # moto's default region
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": endpoint}}
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        yield options
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _fs(options):
    return s3fs.S3FileSystem(skip_instance_cache=True, **options)


def test_s3_input_and_output_and_resume_after_a_kill(tmp_path, s3_server, bert_ckpt,
                                                    ag_news_texts):
    fs = _fs(s3_server)
    fs.mkdir("jobs")
    texts = ag_news_texts * 2
    for k in range(3):
        rows = [{"i": k * 1000 + j, "text": t} for j, t in enumerate(texts[k * 1000:][:1000])]
        fs.pipe(f"jobs/in/shard-{k}.jsonl",
                "".join(json.dumps(r) + "\n" for r in rows).encode())
    fs.pipe("jobs/in/_SUCCESS", b"")
    cmd = [sys.executable, "-m", "dask_classify", "classify", "s3://jobs/in", "--model",
           str(bert_ckpt), "--output", "s3://jobs/out", "--storage-options",
           json.dumps(s3_server), "--partition-rows", "40", "--batch-size", "2",
           "--no-progress", "--n-workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            fs.invalidate_cache()
            done = fs.glob("jobs/out/*/part.*.parquet")
            if len(done) >= 3:
                break
            time.sleep(0.2)
        assert len(done) >= 3, "the job never wrote a part"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    fs.invalidate_cache()
    written = {p: fs.info(p)["LastModified"] for p in fs.glob("jobs/out/*/part.*.parquet")}
    assert 3 <= len(written) < 75
    assert len(fs.glob("jobs/out/*/_SUCCESS")) < 3  # killed before the job was done

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "took over the lock of a job that is gone" in rerun.stdout
    fs.invalidate_cache()
    assert len(fs.glob("jobs/out/*/_SUCCESS")) == 3
    kept = {p: fs.info(p)["LastModified"] for p in written}
    assert kept == written  # parts finished before the kill were not redone
    frames = []
    for path in sorted(fs.glob("jobs/out/*/part.*.parquet")):
        with fs.open(path, "rb") as fh:
            frames.append(pd.read_parquet(fh))
    back = pd.concat(frames, ignore_index=True)
    assert sorted(back["i"]) == list(range(3000)) and back["preds"].notna().all()
    manifest = json.loads(fs.cat("jobs/out/_manifest.json"))
    assert all(entry["complete"] for entry in manifest["inputs"].values())
    assert set(manifest["inputs"]) == {f"s3://jobs/in/shard-{k}.jsonl" for k in range(3)}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "nothing to do" not in again.stderr
    assert "skip 3 inputs" in again.stdout or again.stdout.count("skip s3://") == 3
