"""Backends and clusters: CPU LocalCluster (threads and processes), GPU paths (marked)."""

from __future__ import annotations

import subprocess
import sys

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from dask_classify import DistributedDataClassifier, get_client
from dask_classify.backend import GPUBackendError, gpu_available, resolve_backend


def test_import_is_light():
    code = ("import sys, dask_classify; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'cudf', 'dask')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_backend_resolution_without_gpu():
    from dask_classify.backend import gpu_count

    if gpu_available() or gpu_count():
        pytest.skip("this machine has a GPU")
    assert resolve_backend("auto") == "cpu" and resolve_backend(None) == "cpu"
    with pytest.raises(GPUBackendError, match="no NVIDIA GPU"):
        resolve_backend("gpu")
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'gpu'"):
        resolve_backend("tpu")


def test_device_env_makes_auto_the_cpu_on_a_gpu_machine(monkeypatch):
    from dask_classify import backend

    monkeypatch.setattr(backend, "gpu_count", lambda: 1)  # as on a GPU host (NVML sees one)
    monkeypatch.setenv("DASK_CLASSIFY_DEVICE", "cpu")
    assert backend.resolve_device("auto") == "cpu"
    assert backend.resolve_device("cuda") == "cuda"  # an explicit device is kept
    monkeypatch.setattr(backend, "gpu_count", lambda: 0)
    monkeypatch.delenv("DASK_CLASSIFY_DEVICE")
    assert backend.resolve_device("auto") == "cpu"


@pytest.mark.slow
def test_local_cluster_with_two_worker_processes(deberta_ckpt, ag_news_texts):
    texts = ag_news_texts[:400]
    df = pd.DataFrame({"text": texts}, index=np.arange(400)[::-1])
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    clf = DistributedDataClassifier(deberta_ckpt, score_field="p")
    local = clf(ddf).compute(scheduler="sync")
    client = get_client(backend="cpu", n_workers=2, processes=True, reuse_existing=False,
                        dashboard_address=None)
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert len(info) == 2
        distributed = clf(ddf).compute()
        # every worker process loaded the model once, with its share of the cores
        envs = client.run(lambda: __import__("os").environ.get("OMP_NUM_THREADS"))
        trims = client.run(lambda: __import__("os").environ.get("MALLOC_TRIM_THRESHOLD_"))
    finally:
        client.close()
        client.cluster.close()
    pd.testing.assert_frame_equal(distributed, local)
    share = str(max(1, len(__import__("os").sched_getaffinity(0)) // 2))
    assert set(envs.values()) == {share} and set(trims.values()) == {None}


@pytest.mark.slow
def test_get_client_default_layout_and_reuse():
    from distributed.deploy.utils import nprocesses_nthreads

    cores = len(__import__("os").sched_getaffinity(0))
    n_workers, threads = nprocesses_nthreads(cores)
    client = get_client(backend="cpu", reuse_existing=False, dashboard_address=None)
    try:
        assert get_client() is client
        # distributed's split of the cores (2 cores: two single-threaded worker processes)
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert len(info) == n_workers
        assert {w["nthreads"] for w in info.values()} == {threads}
        if n_workers > 1:
            torch_threads = client.run(lambda: __import__("torch").get_num_threads())
            assert set(torch_threads.values()) == {max(1, cores // n_workers)}
        else:
            assert not client.cluster.processes  # a single worker runs in this process
    finally:
        client.close()
        client.cluster.close()


@pytest.mark.slow
def test_process_workers_leave_this_process_environment_alone(deberta_ckpt, monkeypatch):
    # distributed's nannies write OMP_NUM_THREADS=<share> into the parent's os.environ; left
    # there, this process's own classification ran on one torch thread
    import torch

    from dask_classify.backend import set_torch_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    cores = len(__import__("os").sched_getaffinity(0))
    client = get_client(backend="cpu", n_workers=2, processes=True, reuse_existing=False,
                        dashboard_address=None)
    try:
        env = __import__("os").environ
        assert "OMP_NUM_THREADS" not in env and env["MKL_NUM_THREADS"] == "7"
        before = torch.get_num_threads()
        try:
            set_torch_threads(None)
            assert torch.get_num_threads() == cores
        finally:
            torch.set_num_threads(before)
        assert set(client.run(lambda: __import__("os").environ["OMP_NUM_THREADS"]).values()) == {
            str(max(1, cores // 2))}
    finally:
        client.close()
        client.cluster.close()


def test_get_client_threads_only_sets_the_worker_count():
    cores = len(__import__("os").sched_getaffinity(0))
    client = get_client(backend="cpu", threads_per_worker=cores, reuse_existing=False,
                        dashboard_address=None)
    try:
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert len(info) == 1 and {w["nthreads"] for w in info.values()} == {cores}
    finally:
        client.close()
        client.cluster.close()


def test_connect_to_a_scheduler_address(deberta_ckpt):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        client = get_client(cluster.scheduler_address)
        try:
            assert client.scheduler.address == cluster.scheduler_address
            ddf = dd.from_pandas(pd.DataFrame({"text": ["good", "bad"]}), npartitions=1)
            out = DistributedDataClassifier(deberta_ckpt)(ddf).compute()
            assert out["preds"].notna().all()
        finally:
            client.close()


@pytest.mark.gpu
@pytest.mark.rapids
def test_gpu_dask_cudf_in_dask_cudf_out(deberta_ckpt, ag_news_texts):
    import cudf
    import dask_cudf

    client = get_client(backend="gpu", reuse_existing=False)
    try:
        gdf = cudf.DataFrame({"text": ag_news_texts[:500]}, index=np.arange(500)[::-1])
        ddf = dask_cudf.from_cudf(gdf, npartitions=3, sort=False)
        out = DistributedDataClassifier(deberta_ckpt, score_field="p")(ddf)
        assert type(out._meta).__module__.startswith("cudf")
        result = out.compute()
        assert isinstance(result, cudf.DataFrame)
        cpu = DistributedDataClassifier(deberta_ckpt, device="cpu", autocast=False,
                                        score_field="p")(gdf.to_pandas())
        assert result.index.to_pandas().equals(cpu.index)
        agree = (result["preds"].to_pandas().values == cpu["preds"].values).mean()
        assert agree > 0.99  # fp16/bf16 autocast may flip a near-tie
    finally:
        client.close()
        client.cluster.close()
