"""Where an evaluation grid's cells are computed: here (``local``), or fanned out over a
``dask.distributed`` cluster (``dask``: a LocalCluster on 127.0.0.1; ``dask://host:8786``: a running
scheduler).

The unit of work is one seed: every (n, arm) cell of that seed, so that a pool-trained generator is
still fitted once per seed. Each task runs the ordinary runner on its seed with the shared
``cache_dir``, which every worker must be able to read and write (a local folder for a LocalCluster,
a shared file system for a cluster); cells land there as they do locally. The result is then read
back from the cache in the usual order (``evaluate(..., cached_only=True)``), so a fanned-out run
gives the same cells as a local one, and a worker that dies loses only its unfinished cells: the
next run recomputes exactly those. Each task trains with one torch thread (two tasks on two cores
do not fight over them, and the numbers match a local one-thread run).

Ray is not used: at start-up it contacts the network unless specially configured.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from ..progress import ProgressCallback, ProgressEvent

EXECUTORS = ("local", "dask")
LOCAL_WORKERS = 2


def parse_executor(value: Optional[str]) -> tuple[str, Optional[str]]:
    """(``local`` | ``dask``, scheduler address or None for a LocalCluster) from ``--executor``."""
    value = (value or "local").strip()
    if value in EXECUTORS:
        return value, None
    if value.startswith("dask://") and len(value) > len("dask://"):
        return "dask", "tcp://" + value[len("dask://"):]
    raise ValueError(f"executor: '{value}' is not one of local, dask, dask://HOST:PORT")


def _run_seed(train, test, generators, protocol, seed: int, dataset_name: str, cache_dir: str,
              ood: Optional[dict]) -> int:
    """One task: every cell of ``seed`` into the shared cache; returns how many cells it holds."""
    import torch

    from .protocol import evaluate

    torch.set_num_threads(1)
    result = evaluate(train, test, generators, protocol.model_copy(update={"seeds": [seed]}),
                      dataset_name=dataset_name, cache_dir=Path(cache_dir), keep_samples=False, ood=ood)
    return len(result["cells"])


def run_on_dask(train, test, generators: list, protocol, *, address: Optional[str], dataset_name: str,
                cache_dir: Optional[Path], progress: Optional[ProgressCallback] = None,
                ood: Optional[dict] = None, workers: int = LOCAL_WORKERS) -> dict[str, Any]:
    """Compute every seed's cells on dask workers, then read the grid back from the cache.

    ``address``: a running scheduler (``tcp://host:8786``); None starts a LocalCluster of ``workers``
    processes, one thread each, bound to 127.0.0.1 (nothing listens beyond this machine)."""
    if cache_dir is None:
        raise ValueError("executor dask: needs a cache folder every worker can read and write (cache_dir)")
    if any(spec.model is not None for spec in generators):
        raise ValueError("executor dask: a stored registry model is evaluated locally (leave out the executor)")
    from distributed import Client, LocalCluster, as_completed

    from .protocol import check_plan, evaluate

    check_plan(train, test, generators, protocol, ood)  # refuse before starting a cluster
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
    started = time.monotonic()
    try:
        with Client(cluster if cluster is not None else address) as client:
            futures = {client.submit(_run_seed, train, test, generators, protocol, seed, dataset_name,
                                     str(cache_dir), ood, pure=False, key=f"genaug-seed-{seed}-{time.time_ns()}"): seed
                       for seed in protocol.seeds}
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()  # a task's error is raised here, naming what went wrong
                if progress is not None:
                    progress(ProgressEvent("evaluate", done, len(futures),
                                           message=f"seed {futures[future]} done on a dask worker",
                                           eta_seconds=None))
    finally:
        if cluster is not None:
            cluster.close()
    result = evaluate(train, test, generators, protocol, dataset_name=dataset_name, cache_dir=cache_dir,
                      cached_only=True, ood=ood)
    result["executor"] = {"name": "dask", "address": address or f"LocalCluster({workers} workers, 127.0.0.1)",
                          "wall_seconds": round(time.monotonic() - started, 1)}
    return result
