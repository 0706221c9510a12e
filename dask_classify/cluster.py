"""Getting a Dask client: reuse one, join a running scheduler, or start a local cluster.

Dask is the distributed engine; this module only picks sensible defaults for text classification.
"""

from __future__ import annotations

import os
from typing import Any

from dask_classify.backend import cpu_cores, import_gpu_module, resolve_backend
from dask_classify.errors import UsageError


def get_client(
    scheduler_address: str | None = None,
    *,
    scheduler_file: str | os.PathLike | None = None,
    backend: str = "auto",
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    processes: bool | None = None,
    reuse_existing: bool = True,
    **cluster_kwargs: Any,
):
    """Return a :class:`distributed.Client` to classify with.

    Parameters
    ----------
    scheduler_address : str, optional
        Address of a running scheduler (``"tcp://host:8786"``, a ``dask scheduler`` or any
        multi-node cluster). When given, the client connects to it and no cluster is started.
    scheduler_file : path-like, optional
        The file a scheduler wrote its address to (``dask scheduler --scheduler-file``,
        dask-jobqueue and ``dask-mpi`` jobs on a shared filesystem); used like an address.
    backend : {"auto", "cpu", "gpu"}, default "auto"
        Which local cluster to start when none is running: ``"gpu"`` starts
        ``dask_cuda.LocalCUDACluster`` (one worker per GPU), ``"cpu"`` a
        ``distributed.LocalCluster``; ``"auto"`` picks ``"gpu"`` when a GPU and the ``[gpu]``
        extra are present.
    n_workers : int, optional
        Number of workers. CPU default: distributed's own split of the cores into worker
        processes and threads (``nprocesses_nthreads``: one single-threaded worker per core up to
        4 cores, then about the square root of the cores; see Notes). GPU default: one per
        visible GPU.
    threads_per_worker : int, optional
        Threads per worker (and torch threads in each worker). CPU default: that same split, or
        the cores divided by ``n_workers`` when ``n_workers`` is given (and, given only this,
        ``n_workers`` defaults to the cores divided by it).
    processes : bool, optional
        CPU only: run workers in separate processes. Default: ``False`` when there is one worker
        (an in-process worker), else ``True``.
    reuse_existing : bool, default True
        Return the current default client when there is one, instead of starting a cluster.
    **cluster_kwargs
        Passed on to ``LocalCluster`` / ``LocalCUDACluster`` (e.g. ``dashboard_address``,
        ``memory_limit``, ``rmm_pool_size``). ``dashboard_address=None`` means a free port:
        distributed serves its HTTP dashboard whatever this says (dask/distributed#8136), and
        None would otherwise try port 8787 and warn when it is taken.

    Returns
    -------
    distributed.Client

    Raises
    ------
    dask_classify.backend.GPUBackendError
        ``backend="gpu"`` without a GPU or without the ``[gpu]`` extra.

    Notes
    -----
    Process workers' nannies set ``MALLOC_TRIM_THRESHOLD_=65536``, which slows torch inference,
    and ``OMP_NUM_THREADS=1``: here the malloc setting is removed and each worker's torch gets
    ``cores // n_workers`` threads. The CPU default (distributed's split into single-threaded
    processes on small machines) was chosen by measurement with the runs interleaved
    (``benchmarks/bench_classify.py --sweep``, figures in ``benchmarks/README.md``): a forward
    pass of a small encoder is many short operations, which one core per process runs without
    waiting on a second thread. Each worker process holds its own copy of the model; pass
    ``n_workers=1`` for a single in-process worker when memory is short. In every process
    forward passes run one at a time with all of that process's torch threads, while other task
    threads tokenize.

    Examples
    --------
    >>> from dask_classify import get_client
    >>> client = get_client(backend="cpu", dashboard_address=None)  # doctest: +SKIP
    >>> client = get_client("tcp://scheduler:8786")                  # doctest: +SKIP
    >>> client = get_client(scheduler_file="~/scheduler.json")       # doctest: +SKIP
    """
    from distributed import Client, default_client

    if scheduler_address is not None and scheduler_file is not None:
        raise UsageError("give scheduler_address or scheduler_file, not both")
    if scheduler_address is not None:
        return Client(scheduler_address)
    if scheduler_file is not None:
        if not os.path.isfile(scheduler_file):
            raise UsageError(f"scheduler file {os.fspath(scheduler_file)!r} does not exist "
                             "(start the scheduler with --scheduler-file first)")
        return Client(scheduler_file=os.fspath(scheduler_file))
    if reuse_existing:
        try:
            return default_client()
        except ValueError:
            pass

    if "dashboard_address" in cluster_kwargs and cluster_kwargs["dashboard_address"] is None:
        # distributed still binds its HTTP server to :8787 when given None (and warns when the
        # port is taken); a free port serves "no particular dashboard" without the warning.
        cluster_kwargs["dashboard_address"] = ":0"
    chosen = resolve_backend(backend)
    if chosen == "gpu":
        dask_cuda = import_gpu_module("dask_cuda")
        if n_workers is not None:
            cluster_kwargs.setdefault("n_workers", n_workers)
        if threads_per_worker is not None:
            cluster_kwargs.setdefault("threads_per_worker", threads_per_worker)
        cluster = dask_cuda.LocalCUDACluster(**cluster_kwargs)
        return Client(cluster)

    import dask
    from distributed import LocalCluster
    from distributed.deploy.utils import nprocesses_nthreads

    if n_workers is None and threads_per_worker is None:
        n_workers, threads_per_worker = nprocesses_nthreads(cpu_cores())
    elif n_workers is None:
        n_workers = max(1, cpu_cores() // int(threads_per_worker))
    n_workers = int(n_workers)
    if n_workers < 1:
        raise UsageError(f"n_workers must be >= 1, not {n_workers}")
    if threads_per_worker is None:
        threads_per_worker = max(1, cpu_cores() // n_workers)
    if processes is None:
        processes = n_workers > 1
    # Process workers: None unsets malloc trimming (distributed.nanny._get_env_variables), and
    # each worker's torch gets its share of the cores instead of the nanny's default of 1.
    share = str(max(1, cpu_cores() // n_workers))
    environ = {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}
    # Each nanny writes its pre-spawn variables into *this* process's os.environ and leaves them
    # there (distributed.nanny, os.environ.update before spawning): OMP_NUM_THREADS=1 would then
    # give this process's own torch (set_torch_threads, direct classify_partition calls, a later
    # in-process worker) one thread. They are put back as they were once the workers run.
    before = {k: os.environ.get(k) for k in environ}
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v
                              for k, v in environ.items()}):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=processes,
                **cluster_kwargs,
            )
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Client(cluster)
