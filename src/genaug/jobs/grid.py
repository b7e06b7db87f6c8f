"""The ``jobs`` executor of the evaluation runner: every work unit of a grid (an ``(n, seed)`` pair,
or a whole seed when a spec is pool-trained; ``genaug.evaluate.executors.work_units``) becomes an
``evaluate_cells`` job in the registry database, run by any ``genaug worker`` on any machine that
shares the database and the cache folder.

The submitting process writes the grid's inputs once into the cache folder
(``<cache>/plans/<id>/``: the splits and OOD sets as .npz or CSV, the generator specs and the
protocol as JSON -- no pickle; the id is the hash of the JSON, checked when a worker loads it),
queues one job per unit, waits for them (progress as they end; Ctrl-C or a failed unit cancels
the rest), reads the grid back from the cache in the usual order -- the cells are the ones a
local run computes -- and deletes its finished jobs (a failed grid keeps them, with their errors).
Cells are cached as they finish, so a worker that dies costs only its unfinished cells: its job
is re-queued once its heartbeat is stale, and the next attempt finds the others in the cache.

Trust: these jobs are queued by whoever can write the registry database (the service's API does
not take them), and a plan may name a user classifier (``module:function``) that every worker
imports -- install it there. Claims are the job table's (``JobStore.claim``): on PostgreSQL
``FOR UPDATE SKIP LOCKED``. The units share the queue with the service's jobs, oldest first.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

from ..evaluate.executors import ExecutorError, check_fan_out, read_back, run_unit, unit_label, work_units
from ..progress import ProgressCallback, ProgressEvent
from ..store.datasets import load_part, save_part
from ..store.registry import Registry
from .table import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobStore, public_worker

JOB_TYPE = "evaluate_cells"
PLAN_DIR = "plans"
PLAN_FILE = "plan.json"
POLL_SECONDS = 0.5


def _plan_document(train, test, generators: list, protocol, dataset_name: str, ood: Optional[dict]) -> dict:
    return {"dataset_name": dataset_name,
            "generators": [spec.model_dump(mode="json") for spec in generators],
            "protocol": protocol.model_dump(mode="json"),
            "fingerprints": {"train": train.fingerprint(), "test": test.fingerprint(),
                             "ood": {name: data.fingerprint() for name, data in (ood or {}).items()}}}


def write_plan(cache_dir: Path, train, test, generators: list, protocol, dataset_name: str,
               ood: Optional[dict] = None) -> str:
    """Write the grid's inputs into ``<cache_dir>/plans/<id>/`` (once: the id is their hash) and
    return the id. Refuses data that does not read back with the same fingerprint (its cells
    would land under other identities)."""
    document = _plan_document(train, test, generators, protocol, dataset_name, ood)
    plan_id = _plan_id(document)
    folder = Path(cache_dir) / PLAN_DIR / plan_id
    if (folder / PLAN_FILE).exists():
        return plan_id
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written into a folder of its own, plan.json last, then renamed: a worker never reads half a plan.
    partial = folder.parent / f".{plan_id}.{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        save_part(partial, "train", train)
        save_part(partial, "test", test)
        for index, data in enumerate((ood or {}).values()):
            save_part(partial, f"ood-{index}", data)
        (partial / PLAN_FILE).write_text(json.dumps({**document, "ood": list(ood or {})}, indent=1))
        written = _load_plan_folder(partial, plan_id)  # what the workers will read: data, specs, protocol
        if written["protocol"] != protocol or written["generators"] != list(generators):
            raise ValueError("executor jobs: the generator specs or the protocol do not survive their JSON form "
                             "unchanged (a value JSON cannot hold?); run this grid locally or with the dask executor")
        try:
            partial.rename(folder)
        except OSError:  # another run wrote the same plan at the same moment: theirs is ours
            if not (folder / PLAN_FILE).exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return plan_id


def _plan_id(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:20]


def load_plan(cache_dir: Path, plan_id: str) -> dict[str, Any]:
    """A plan ``write_plan`` wrote: ``train``, ``test``, ``generators``, ``protocol``,
    ``dataset_name`` and ``ood``, with every split checked against its recorded fingerprint."""
    if not plan_id or not all(c in "0123456789abcdef" for c in plan_id):
        raise ValueError(f"plan: {plan_id!r} is not a plan id")
    folder = Path(cache_dir) / PLAN_DIR / plan_id
    if not (folder / PLAN_FILE).exists():
        raise FileNotFoundError(f"plan {plan_id}: not in the cache folder; does this worker share the "
                                f"submitting machine's cache folder (the same path)?")
    return _load_plan_folder(folder, plan_id)


def _load_plan_folder(folder: Path, plan_id: str) -> dict[str, Any]:
    from ..evaluate.protocol import GeneratorSpec, Protocol

    document = json.loads((folder / PLAN_FILE).read_text())
    if _plan_id({k: v for k, v in document.items() if k != "ood"}) != plan_id:
        raise ValueError(f"plan {plan_id}: plan.json was changed after it was written; refusing to run it")
    train, test = load_part(folder, "train"), load_part(folder, "test")
    ood = {name: load_part(folder, f"ood-{index}") for index, name in enumerate(document.get("ood") or [])}
    recorded = document["fingerprints"]
    found = {"train": train.fingerprint(), "test": test.fingerprint(),
             "ood": {name: data.fingerprint() for name, data in ood.items()}}
    if found != recorded:
        raise ValueError(f"plan {plan_id}: the data does not read back unchanged (a table whose values do not "
                         "survive their CSV round trip exactly?); run this grid locally or with the dask executor")
    return {"train": train, "test": test, "ood": ood or None, "dataset_name": document["dataset_name"],
            "generators": [GeneratorSpec.model_validate(g) for g in document["generators"]],
            "protocol": Protocol.model_validate(document["protocol"])}


def run_evaluate_cells(params: dict[str, Any], home: Path, folder: Path, progress: ProgressCallback,
                       note: Callable[[dict], None], *, owner: Optional[str] = None) -> dict[str, Any]:
    """The worker's side: one unit of a plan's grid into the shared cache."""
    from ..pretrained.lite0 import PRECISIONS

    precision = params.get("lite0_precision")  # the submitter's (absent in jobs queued before it was carried)
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"lite0_precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    cache = Path(params["cache"])
    plan = load_plan(cache, str(params["plan"]))
    shots = params.get("shots")
    if not isinstance(shots, list) or not shots or \
            not all(n is None or (isinstance(n, int) and not isinstance(n, bool) and n > 0) for n in shots):
        raise ValueError(f"shots: {shots!r} is not a list of positive integers or null (the whole split)")
    unit = (tuple(shots), int(params["seed"]))
    cells = run_unit(plan["train"], plan["test"], plan["generators"], plan["protocol"], unit, plan["dataset_name"],
                     str(cache), plan["ood"], progress=progress, precision=precision)
    return {"plan": params["plan"], "unit": unit_label(unit), "cells": [list(cell) for cell in cells]}


def run_on_jobs(train, test, generators: list, protocol, *, dataset_name: str, cache_dir: Optional[Path],
                home: str | os.PathLike | None = None, url: Optional[str] = None,
                progress: Optional[ProgressCallback] = None, ood: Optional[dict] = None,
                poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Queue every work unit of the grid as a job, wait for the workers, read the grid back.

    ``home`` / ``url``: the registry whose job table the workers poll (default: ``$GENAUG_HOME``,
    ``$GENAUG_DATABASE_URL``). ``cache_dir`` must be the same path on every worker's machine."""
    from ..evaluate.protocol import check_plan

    cache_dir = check_fan_out(generators, cache_dir, "jobs")
    _, classifier = check_plan(train, test, generators, protocol, ood)  # refuse before queueing anything
    plan_id = write_plan(cache_dir, train, test, generators, protocol, dataset_name, ood)
    units = work_units(protocol, generators)
    # the submitter's lite0-linear precision travels with each job (run_unit); none for other classifiers
    carried = {} if classifier.precision is None else {"lite0_precision": classifier.precision}
    started = time.monotonic()
    with Registry.open(home, url) as registry:
        store = JobStore(registry)
        jobs: dict[str, tuple] = {}
        try:
            for shots, seed in units:
                row = store.submit(JOB_TYPE, {"cache": str(cache_dir), "plan": plan_id, "dataset": dataset_name,
                                              "shots": list(shots), "seed": seed, **carried})
                jobs[row.id] = (shots, seed)
            rows = _wait(store, jobs, progress, poll_seconds)
        except BaseException:  # Ctrl-C, or a unit failed: the rest would only burn the workers' time
            for job_id in jobs:
                try:
                    store.cancel(job_id)
                except Exception:  # noqa: BLE001 -- the original error is the one to see
                    pass
            raise
        from .executors import job_dir  # (that module maps job types to this one's runner)

        for job_id in jobs:  # done: the cells are in the cache; the rows would crowd the job list
            if store.delete(job_id):
                shutil.rmtree(job_dir(Path(registry.home), job_id), ignore_errors=True)
    computed: set[tuple] = set()
    for row in rows:
        computed.update((n, seed, arm) for n, seed, arm in row.result.get("cells", []))
    result = read_back(train, test, generators, protocol, dataset_name=dataset_name, cache_dir=cache_dir, ood=ood,
                       computed=computed, executor="jobs")
    result["executor"] = {"name": "jobs", "jobs": len(jobs),
                          "workers": sorted({public_worker(row.worker) for row in rows if row.worker}),
                          "wall_seconds": round(time.monotonic() - started, 1)}
    return result


def _wait(store: JobStore, jobs: dict[str, tuple], progress: Optional[ProgressCallback], poll_seconds: float) -> list:
    """Poll the jobs until all have ended; raises on the first failed or cancelled one."""
    reported = -1
    while True:
        rows = store.get_many(list(jobs))
        for row in rows:
            if row.status in (FAILED, CANCELLED):
                raise ExecutorError(f"executor jobs: {unit_label(jobs[row.id])} (job {row.id}) {row.status} on "
                                   f"{public_worker(row.worker) or 'no worker'}: {row.error or 'cancelled'}")
        if len(rows) < len(jobs):
            raise ExecutorError("executor jobs: a job of this grid was deleted from the job table")
        done = sum(row.status == SUCCEEDED for row in rows)
        if done != reported and progress is not None:
            running = sum(row.status == RUNNING for row in rows)
            progress(ProgressEvent("evaluate", done, len(jobs), eta_seconds=None,
                                   message=f"{done} of {len(jobs)} units done, {running} running on genaug workers"
                                   + ("" if running or done else " (none claimed yet: is a `genaug worker` "
                                      "running on this database?)")))
            reported = done
        if done == len(jobs):
            return rows
        time.sleep(poll_seconds)


def jobs_executor(home: str | os.PathLike | None = None, url: Optional[str] = None,
                  poll_seconds: float = POLL_SECONDS) -> Callable[..., dict[str, Any]]:
    """``run_on_jobs`` bound to a registry, as ``genaug.api.evaluate_request(executor=...)`` takes it."""
    def run(train, test, generators, protocol, **kwargs) -> dict[str, Any]:
        return run_on_jobs(train, test, generators, protocol, home=home, url=url, poll_seconds=poll_seconds, **kwargs)

    run.name = "jobs"  # type: ignore[attr-defined]
    return run
