"""Where an evaluation grid's cells are computed: here (``local``), fanned out over a
``dask.distributed`` cluster (``dask``: a LocalCluster on 127.0.0.1; ``dask://host:8786``: a running
scheduler), or as jobs of the registry database for ``genaug worker``s (``jobs``: ``genaug.jobs.grid``,
which lives above this layer because it needs the job table).

The unit of work is one (n, seed) pair: every arm of it, so that a generator is fitted once per
(n, seed) and its draws serve all that pair's arms. When a spec is pool-trained (fitted once per
seed on the whole training split, independent of n) the unit is every n of one seed instead, so
that pool fit is made once. Each unit runs the ordinary runner with the shared ``cache_dir``, which
every worker must be able to read and write (a local folder for a LocalCluster, a shared file
system for a cluster); cells land there as they do locally. The result is then read back from the
cache in the usual order (``evaluate(..., cached_only=True)``), so a fanned-out run gives the same
cells as a local one (not the sample grids: the workers keep no samples), and a worker that dies
loses only its unfinished cells: the next run recomputes exactly those. Each unit trains with one
torch thread (two units on two cores do not fight over them, and the numbers match a local
one-thread run). Each unit also carries the submitting run's lite0-linear feature precision, so a
worker on another CPU computes the cells under the submitter's identity.

Ray is not used: at start-up it contacts the network unless specially configured.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from ..progress import ProgressCallback, ProgressEvent

EXECUTORS = ("local", "dask", "jobs")
LOCAL_WORKERS = 2


def parse_executor(value: Optional[str]) -> tuple[str, Optional[str]]:
    """(``local`` | ``dask`` | ``jobs``, scheduler address or None) from ``--executor``."""
    value = (value or "local").strip()
    if value in EXECUTORS:
        return value, None
    if value.startswith("dask://") and len(value) > len("dask://"):
        return "dask", "tcp://" + value[len("dask://"):]
    raise ValueError(f"executor: '{value}' is not one of local, dask, dask://HOST:PORT, jobs")


Unit = tuple[tuple[Optional[int], ...], int]  # (the shots it runs -- None is "the whole split" --, seed)


class ExecutorError(RuntimeError):
    """A fanned-out grid could not finish: a unit failed or was cancelled on a worker, or its cells
    are not where they should be. The message says which unit and why."""


def work_units(protocol, generators: list) -> list[Unit]:
    """The independent units of a grid: ``((n,), seed)`` for every n and seed, or ``((every n...), seed)``
    when a spec is pool-trained (its pool fit serves every n of the seed). A repeated seed or n counts
    once (it would run twice on the same cell files)."""
    seeds = list(dict.fromkeys(protocol.seeds))
    shots = tuple(dict.fromkeys(protocol.shots))
    if any(spec.unlabeled_pool for spec in generators):
        return [(shots, seed) for seed in seeds]
    return [((n,), seed) for seed in seeds for n in shots]


def unit_protocol(protocol, unit: Unit):
    """The protocol restricted to one work unit (cell identities ignore shots and seeds)."""
    shots, seed = unit
    return protocol.model_copy(update={"seeds": [seed], "shots": list(shots)})


def unit_label(unit: Unit) -> str:
    """``n=5 seed=1``, ``n=all seed=1`` (the whole split) or ``n=5,10 seed=1``."""
    shots, seed = unit
    return f"n={','.join('all' if n is None else str(n) for n in shots)} seed={seed}"


def check_fan_out(generators: list, cache_dir: Optional[Path], executor: str) -> Path:
    """Refusals shared by the executors that fan out; returns the cache folder, absolute (a remote
    worker would resolve a relative one in its own working directory)."""
    if cache_dir is None:
        raise ValueError(f"executor {executor}: needs a cache folder every worker can read and write (cache_dir)")
    if any(spec.model is not None for spec in generators):
        raise ValueError(f"executor {executor}: a stored registry model is evaluated locally (leave out the executor)")
    return Path(cache_dir).resolve()


def read_back(train, test, generators: list, protocol, *, dataset_name: str, cache_dir: Path,
              ood: Optional[dict], computed: set[tuple], executor: str) -> dict[str, Any]:
    """The fanned-out grid read from the cache in the usual order; refuses when a cell the workers
    reported is not there under this run's identities (another genaug version, another folder)."""
    from .protocol import evaluate, not_cached_sentence

    result = evaluate(train, test, generators, protocol, dataset_name=dataset_name, cache_dir=cache_dir,
                      cached_only=True, ood=ood)
    left_out = not_cached_sentence(result)
    result.pop("not_cached", None)  # a fanned-out result looks like a local one
    missing = computed - {(c["n"], c["seed"], c["arm"]) for c in result["cells"]}
    if missing:
        shown = ", ".join(f"n={n} seed={s} {arm}" for n, s, arm in sorted(missing, key=str)[:5])
        raise ExecutorError(f"executor {executor}: {len(missing)} cell(s) the workers computed are not in the cache "
                           f"{cache_dir} under this run's identities ({shown}); do all workers run the same genaug "
                           f"and share that folder? ({left_out})")
    return result


def run_unit(train, test, generators, protocol, unit: Unit, dataset_name: str,
             cache_dir: str, ood: Optional[dict], progress: Optional[ProgressCallback] = None,
             precision: Optional[str] = None) -> list[tuple]:
    """One unit of work into the shared cache, with one torch thread; returns its cells' (n, seed, arm).
    ``precision``: the submitting run's lite0-linear precision, as its classifier was resolved
    (``ClassifierChoice.precision``; None for other classifiers): a worker on a CPU without native
    bf16 then computes, in emulated bf16, the cells the submitter reads back. None: this process's own."""
    import torch

    from ..pretrained.lite0 import precision_override
    from .protocol import evaluate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with precision_override(precision):
            result = evaluate(train, test, generators, unit_protocol(protocol, unit), dataset_name=dataset_name,
                              cache_dir=Path(cache_dir), keep_samples=False, ood=ood, progress=progress)
    finally:
        torch.set_num_threads(threads)  # a shared worker runs other work after this unit
    return [(c["n"], c["seed"], c["arm"]) for c in result["cells"]]


def run_on_dask(train, test, generators: list, protocol, *, address: Optional[str], dataset_name: str,
                cache_dir: Optional[Path], progress: Optional[ProgressCallback] = None,
                ood: Optional[dict] = None, workers: int = LOCAL_WORKERS) -> dict[str, Any]:
    """Compute every work unit's cells on dask workers, then read the grid back from the cache.

    ``address``: a running scheduler (``tcp://host:8786``); None starts a LocalCluster of ``workers``
    processes, one thread each, bound to 127.0.0.1 (nothing listens beyond this machine)."""
    cache_dir = check_fan_out(generators, cache_dir, "dask")
    from distributed import Client, LocalCluster, as_completed

    from .protocol import check_plan

    _, classifier = check_plan(train, test, generators, protocol, ood)  # refuse before starting a cluster
    precision = classifier.precision  # the submitter's, carried to every unit (run_unit)
    units = work_units(protocol, generators)
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
    started = time.monotonic()
    try:
        with Client(cluster if cluster is not None else address) as client:
            # The data travels to the workers once, not once per task.
            data = client.scatter([train, test, generators, ood], broadcast=True)
            futures = {client.submit(run_unit, *data[:3], protocol, unit, dataset_name, str(cache_dir), data[3],
                                     precision=precision, pure=False,
                                     key=f"genaug-{unit_label(unit).replace(' ', '-')}-{time.time_ns()}"):
                       unit for unit in units}
            computed: set[tuple] = set()
            for done, future in enumerate(as_completed(futures), start=1):
                try:
                    computed.update(future.result())
                except Exception as error:  # noqa: BLE001 -- re-raised with the unit it belongs to
                    raise ExecutorError(f"executor dask: {unit_label(futures[future])} failed on a worker: "
                                       f"{type(error).__name__}: {error}") from error
                if progress is not None:
                    progress(ProgressEvent("evaluate", done, len(futures),
                                           message=f"{unit_label(futures[future])} done on a dask worker",
                                           eta_seconds=None))
    finally:
        if cluster is not None:
            cluster.close()
    result = read_back(train, test, generators, protocol, dataset_name=dataset_name, cache_dir=cache_dir,
                       ood=ood, computed=computed, executor="dask")
    result["executor"] = {"name": "dask", "address": address or f"LocalCluster({workers} workers, 127.0.0.1)",
                          "wall_seconds": round(time.monotonic() - started, 1)}
    return result
