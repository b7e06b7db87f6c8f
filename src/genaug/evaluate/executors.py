"""Where an evaluation grid's cells are computed: here (``local``), or fanned out over a
``dask.distributed`` cluster (``dask``: a LocalCluster on 127.0.0.1; ``dask://host:8786``: a running
scheduler).

The unit of work is one seed: every (n, arm) cell of that seed, so that a pool-trained generator is
still fitted once per seed. Each task runs the ordinary runner on its seed with the shared
``cache_dir``, which every worker must be able to read and write (a local folder for a LocalCluster,
a shared file system for a cluster); cells land there as they do locally. The result is then read
back from the cache in the usual order (``evaluate(..., cached_only=True)``), so a fanned-out run
gives the same cells as a local one (not the sample grids: the workers keep no samples), and a
worker that dies loses only its unfinished cells: the
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
              ood: Optional[dict]) -> list[tuple]:
    """One task: every cell of ``seed`` into the shared cache; returns their (n, seed, arm)."""
    import torch

    from .protocol import evaluate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = evaluate(train, test, generators, protocol.model_copy(update={"seeds": [seed]}),
                          dataset_name=dataset_name, cache_dir=Path(cache_dir), keep_samples=False, ood=ood)
    finally:
        torch.set_num_threads(threads)  # a shared worker runs other work after this task
    return [(c["n"], c["seed"], c["arm"]) for c in result["cells"]]


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
    # Absolute: a remote worker would resolve a relative folder in its own working directory.
    cache_dir = Path(cache_dir).resolve()
    seeds = list(dict.fromkeys(protocol.seeds))  # a repeated seed would run twice on the same cell files
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
    started = time.monotonic()
    try:
        with Client(cluster if cluster is not None else address) as client:
            # The data travels to the workers once, not once per task.
            data = client.scatter([train, test, generators, ood], broadcast=True)
            futures = {client.submit(_run_seed, *data[:3], protocol, seed, dataset_name, str(cache_dir), data[3],
                                     pure=False, key=f"genaug-seed-{seed}-{time.time_ns()}"): seed
                       for seed in seeds}
            computed: set[tuple] = set()
            for done, future in enumerate(as_completed(futures), start=1):
                try:
                    computed.update(future.result())
                except Exception as error:  # noqa: BLE001 -- re-raised with the seed it belongs to
                    raise RuntimeError(f"executor dask: seed {futures[future]} failed on a worker: "
                                       f"{type(error).__name__}: {error}") from error
                if progress is not None:
                    progress(ProgressEvent("evaluate", done, len(futures),
                                           message=f"seed {futures[future]} done on a dask worker",
                                           eta_seconds=None))
    finally:
        if cluster is not None:
            cluster.close()
    result = evaluate(train, test, generators, protocol, dataset_name=dataset_name, cache_dir=cache_dir,
                      cached_only=True, ood=ood)
    missing = computed - {(c["n"], c["seed"], c["arm"]) for c in result["cells"]}
    if missing:  # e.g. a worker with another genaug version wrote cells under other identities
        shown = ", ".join(f"n={n} seed={s} {arm}" for n, s, arm in sorted(missing, key=str)[:5])
        raise RuntimeError(f"executor dask: {len(missing)} cell(s) the workers computed are not in the cache "
                           f"{cache_dir} under this run's identities ({shown}); do all workers run the same genaug "
                           "and share that folder?")
    result["executor"] = {"name": "dask", "address": address or f"LocalCluster({workers} workers, 127.0.0.1)",
                          "wall_seconds": round(time.monotonic() - started, 1)}
    return result
