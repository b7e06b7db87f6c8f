"""One evaluation grid on the three executors (issue 16 item 4, target 4): wall time, and whether
they give the same cells.

The grid is the MNIST few-shot benchmark's (``bench/mnist_fewshot.py``: its protocol, its base arms
and its per-class VAE arms with their four sample variants) at one n, over several seeds, with a
shorter classifier budget (``--steps``). It runs

- ``local``: one process, one torch thread (``genaug.evaluate``);
- ``dask``: a LocalCluster of 2 one-thread worker processes on 127.0.0.1;
- ``jobs``: 2 ``genaug worker`` processes (one torch thread per job) on a fresh SQLite registry;

each from an empty cache folder of its own, so every wall time includes all of its work (and, for
dask and jobs, starting the workers). The cells of each fanned-out run are compared with the local
ones: same cells in the same order, every number equal up to ``TOLERANCE``. The pool-trained single
VAE of the benchmark is left out: its 3,000-step fit on the 60,000 training images would dominate
the grid and make the units whole seeds.

    python bench/executors.py --n 5 --seeds 0,1,2,3 --steps 300
    python bench/executors.py --quick      # smoke test of the script

Resumable per executor: a finished executor's result stays in the JSON and is not run again.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import machine, setup, write_json
from genaug.data import few_shot_subset, load_mnist
from genaug.evaluate import Protocol, evaluate
from genaug.evaluate.executors import run_on_dask, work_units
from genaug.generators.classic import ClassicConfig
from genaug.jobs.grid import run_on_jobs
from mnist_fewshot import specs

EXECUTORS = ("local", "dask", "jobs")
TOLERANCE = 1e-6  # relative, for every number of a cell
VOLATILE = {"cpu_seconds", "generator_fit_cpu_seconds", "identity", "cpu"}
WORKER_START_SECONDS = 600


def grid(args) -> tuple:
    """(train, test, generators, protocol) of the run."""
    train, test = load_mnist()
    if args.quick:
        train, test = few_shot_subset(train, 30, seed=0), few_shot_subset(test, 20, seed=0)
    generators = [spec for spec in specs(args.quick) if not spec.unlabeled_pool]
    protocol = Protocol(shots=[args.n], seeds=[int(s) for s in args.seeds.split(",")],
                        arms=["real", "real+classic", "real+synthetic", "real+synthetic+classic"], classifier="cnn",
                        classifier_steps=args.steps, classifier_batch=64, classic=ClassicConfig(preset="strong"),
                        real_fraction=0.5)
    return train, test, generators, protocol


def start_workers(home: Path, count: int, logs: Path) -> list[subprocess.Popen]:
    """``count`` genaug workers on the registry of ``home``, once each has started polling."""
    env = {**os.environ, "GENAUG_HOME": str(home), "GENAUG_JOB_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("GENAUG_DATABASE_URL", None)  # the fresh SQLite registry of ``home``
    workers, files = [], []
    for index in range(count):
        log = logs / f"worker-{index}.log"
        files.append(log)
        with open(log, "w") as output:
            workers.append(subprocess.Popen([sys.executable, "-m", "genaug.jobs.worker"], env=env, stdout=output,
                                            stderr=subprocess.STDOUT))
    deadline = time.monotonic() + WORKER_START_SECONDS
    for worker, log in zip(workers, files):
        while "genaug worker" not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                stop_workers(workers)
                raise SystemExit(f"executors: a worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """SIGTERM, then SIGKILL after a minute."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()


def run(executor: str, args, data: tuple, folder: Path) -> dict:
    """One executor on the grid from an empty cache; its cells and wall seconds."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    train, test, generators, protocol = data
    started = time.monotonic()
    if executor == "local":
        result = evaluate(train, test, generators, protocol, dataset_name="mnist", cache_dir=folder / "cells",
                          keep_samples=False)
    elif executor == "dask":
        result = run_on_dask(train, test, generators, protocol, address=None, dataset_name="mnist",
                             cache_dir=folder / "cells", workers=2)
    else:
        workers = start_workers(folder / "home", 2, folder)
        try:
            # The workers' fresh SQLite registry, whatever GENAUG_DATABASE_URL says.
            result = run_on_jobs(train, test, generators, protocol, dataset_name="mnist", cache_dir=folder / "cells",
                                 home=folder / "home", url=f"sqlite:///{(folder / 'home' / 'registry.db').as_posix()}")
        finally:
            stop_workers(workers)
    wall = time.monotonic() - started
    cells = [{k: v for k, v in cell.items() if k not in VOLATILE} for cell in result["cells"]]
    return {"wall_seconds": round(wall, 1), "cells": json.loads(json.dumps(cells, default=str)),
            "cpu_seconds": round(sum(c.get("cpu_seconds", 0) for c in result["cells"]), 1),
            "details": result.get("executor")}


def differences(first, second, path: str = "") -> list[str]:
    """Where two cells (or lists of cells) differ beyond ``TOLERANCE``."""
    if isinstance(first, dict) and isinstance(second, dict):
        if set(first) != set(second):
            return [f"{path}: keys {sorted(set(first) ^ set(second))}"]
        return [d for key in first for d in differences(first[key], second[key], f"{path}.{key}")]
    if isinstance(first, list) and isinstance(second, list):
        if len(first) != len(second):
            return [f"{path}: {len(first)} vs {len(second)} items"]
        return [d for i, (a, b) in enumerate(zip(first, second)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(first, (int, float)) and isinstance(second, (int, float)) and not isinstance(first, bool):
        same = math.isclose(first, second, rel_tol=TOLERANCE, abs_tol=TOLERANCE) or (first != first and second != second)
        return [] if same else [f"{path}: {first} vs {second}"]
    return [] if first == second else [f"{path}: {first!r} vs {second!r}"]


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--n", type=int, default=5, help="labelled images per class (one n)")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--steps", type=int, default=300, help="classifier steps per arm")
    parser.add_argument("--note", default="", help="a paragraph put under the table (what else was measured)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps = "0,1", 10
    torch.set_num_threads(1)  # as every unit on a worker
    out_json = args.out / ("executors_quick.json" if args.quick else "executors.json")
    stored = json.loads(out_json.read_text()) if out_json.exists() else {}
    setting = {"n": args.n, "seeds": args.seeds, "steps": args.steps, "quick": args.quick}
    runs = stored.get("runs", {}) if stored.get("setting") == setting else {}
    data = grid(args)
    units = work_units(data[3], data[2])
    for executor in EXECUTORS:
        if executor in runs:
            continue
        print(f"executors: {executor} ...", flush=True)
        runs[executor] = run(executor, args, data, args.cache / "executors" / executor)
        print(f"executors: {executor} {runs[executor]['wall_seconds']} s wall, {len(runs[executor]['cells'])} cells",
              flush=True)
        write_json(out_json, {"machine": machine(), "setting": setting, "runs": runs})
    local = runs["local"]["cells"]
    md = ["<!-- executors: written by bench/executors.py -->",
          "## One grid on the three executors (issue 16)", "",
          f"`{machine()['command']}`: the MNIST few-shot benchmark's grid at n = {args.n} (its protocol, base arms and "
          f"per-class VAE arms; seeds {args.seeds}; {args.steps} classifier steps per arm; not the pool-trained single "
          f"VAE) = {len(local)} cells in {len(units)} units of work ((n, seed) pairs). Each executor from an empty "
          f"cache, one torch thread per process, on this {os.cpu_count()}-core CPU; dask and jobs with 2 worker "
          "processes (their wall time includes starting them). Classifier CPU s: the cells' own CPU seconds of "
          "classifier training, summed (the same work in every executor).", "",
          "| executor | wall s | × local | classifier CPU s | cells | same cells as local (rel. tol. 1e-6) |",
          "|---|---|---|---|---|---|"]
    for executor in EXECUTORS:
        entry = runs[executor]
        found = differences(entry["cells"], local)
        entry["differences"] = found[:20]
        md.append(f"| {executor} | {entry['wall_seconds']:.0f} | {entry['wall_seconds'] / runs['local']['wall_seconds']:.2f} | "
                  f"{entry['cpu_seconds']:.0f} | {len(entry['cells'])} | "
                  f"{'yes' if not found else f'no: {len(found)} differences'} |")
    if args.note:
        md += ["", args.note]
    md += ["", "<!-- /executors -->"]
    write_json(out_json, {"machine": machine(), "setting": setting, "runs": runs})
    section = "\n".join(md)
    target = args.out / ("executors_quick.md" if args.quick else "executors.md")
    target.write_text(section + "\n")
    print(section)
    if any(runs[e]["differences"] for e in EXECUTORS):
        raise SystemExit("executors: the fanned-out cells differ from the local ones (see the table)")


if __name__ == "__main__":
    main()
