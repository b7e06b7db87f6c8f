"""The ``jobs`` executor (issue 16 item 4): a grid's units become jobs of the registry database,
run by real ``genaug worker`` processes (on SQLite and, in the PostgreSQL run, with
``FOR UPDATE SKIP LOCKED`` claims); the cells equal a local run's. Also the CLI's
``--executor jobs`` and the plan files the workers read."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _tiny_grid import comparable_cells, tiny_grid
from typer.testing import CliRunner

from genaug.cli import app
from genaug.data import LabelledTable
from genaug.evaluate import Protocol, evaluate
from genaug.evaluate.executors import ExecutorError
from genaug.jobs import FINISHED, JobStore
from genaug.jobs.grid import JOB_TYPE, load_plan, run_evaluate_cells, run_on_jobs, write_plan
from genaug.store import Registry

pytestmark = pytest.mark.timeout(900)
STARTUP_DEADLINE = 300  # seconds for a worker to import genaug and poll: the machine may be busy
USER_CLASSIFIER = """
import numpy as np

def centroids(x_train, y_train, *, n_classes, seed, steps, batch_size, is_synthetic, augment):
    flat = x_train.reshape(len(x_train), -1).astype(np.float32)
    means = np.stack([flat[y_train == c].mean(0) for c in range(n_classes)])
    return lambda x: ((x.reshape(len(x), -1)[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
"""


def _start_worker(home, log, *args) -> subprocess.Popen:
    env = {**os.environ, "GENAUG_HOME": str(home), "GENAUG_JOB_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # GENAUG_DATABASE_URL stays: the workers use the test's database (tests/conftest.py).
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-m", "genaug.jobs.worker", *args], env=env, stdout=output,
                                stderr=subprocess.STDOUT)


def _wait_until_polling(worker: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while "genaug worker" not in log.read_text():
        assert worker.poll() is None, f"the worker exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"the worker did not start: {log.read_text()}"
        time.sleep(0.1)


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)


def test_two_workers_compute_the_same_cells_as_a_local_run(tmp_path):
    train, test, specs, protocol = tiny_grid()
    local = evaluate(train, test, specs, protocol, cache_dir=tmp_path / "local")
    home = tmp_path / "home"
    # Each worker leaves after two jobs: the four units need both, so both must have taken part.
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [_start_worker(home, log, "--max-jobs", "2") for log in logs]
    try:
        for worker, log in zip(workers, logs):
            _wait_until_polling(worker, log)
        events = []
        fanned = run_on_jobs(train, test, specs, protocol, dataset_name="data", cache_dir=tmp_path / "jobs",
                             home=home, progress=events.append, poll_seconds=0.2)
        for worker in workers:
            assert worker.wait(timeout=STARTUP_DEADLINE) == 0
    finally:
        for worker in workers:
            _stop(worker)
    assert len(fanned["cells"]) == len(local["cells"]) == 8
    assert comparable_cells(fanned) == comparable_cells(local)  # same cells, same order, same numbers
    assert fanned["executor"]["name"] == "jobs" and fanned["executor"]["jobs"] == 4
    # Each worker left after two jobs, so both took part, and each reported its own name.
    assert len(fanned["executor"]["workers"]) == 2 and fanned["executor"]["wall_seconds"] > 0
    assert events[-1].step == events[-1].total == 4
    for log in logs:
        assert log.read_text().count("genaug worker") == 1
    with Registry.open(home) as registry:
        assert JobStore(registry).list(job_type=JOB_TYPE) == []  # a finished grid removes its jobs
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())  # nor their folders


def test_cli_executor_jobs_and_a_failed_unit(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("GENAUG_HOME", str(home))
    train, test, _, _ = tiny_grid()
    data_file = tmp_path / "digits.npz"
    np.savez(data_file, x_train=train.images, y_train=train.labels, x_test=test.images, y_test=test.labels)
    log = tmp_path / "worker.log"
    worker = _start_worker(home, log)
    try:
        _wait_until_polling(worker, log)
        result = CliRunner().invoke(app, ["evaluate", str(data_file), "-g", "classic", "--shots", "3", "--seeds", "0,1",
                                          "--steps", "8", "--executor", "jobs", "--cache", str(tmp_path / "cells"),
                                          "--out", str(tmp_path / "report")])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "report" / "results.md").exists()
        assert len(list((tmp_path / "cells" / "plans").iterdir())) == 1  # the grid's inputs, written once
        with Registry.open(home) as registry:
            assert JobStore(registry).list(job_type=JOB_TYPE) == []  # a finished grid removes its jobs

        # A unit that fails on the worker fails the run with the worker's message, and the grid's
        # other units are cancelled: here a user classifier this process can import and the worker cannot.
        (tmp_path / "only_on_this_machine.py").write_text(USER_CLASSIFIER)
        monkeypatch.syspath_prepend(str(tmp_path))
        protocol = Protocol(shots=[3], seeds=[0, 1], classifier="only_on_this_machine:centroids", classifier_steps=8,
                            arms=["real"])
        with pytest.raises(ExecutorError, match=r"executor jobs: n=3 seed=[01] \(job .*\) failed on worker-\w+: .*"
                                                r"only_on_this_machine"):
            run_on_jobs(train, test, [], protocol, dataset_name="data", cache_dir=tmp_path / "bad", home=home,
                        poll_seconds=0.2)
        # The other unit was cancelled (queued: at once; running: its worker stops it) or failed too.
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            with Registry.open(home) as registry:
                statuses = sorted(row.status for row in JobStore(registry).list(job_type=JOB_TYPE))
            if all(status in FINISHED for status in statuses) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(statuses) == 2 and statuses[0] in ("cancelled", "failed") and statuses[1] == "failed", statuses
        # The CLI shows it as an error line, not a traceback.
        failed = CliRunner().invoke(app, ["evaluate", str(data_file), "--classifier", "only_on_this_machine:centroids",
                                          "--shots", "3", "--seeds", "2", "--steps", "8", "--executor", "jobs",
                                          "--cache", str(tmp_path / "bad-cli"), "--out", str(tmp_path / "bad-report")])
        assert failed.exit_code != 0 and "executor jobs: n=3 seed=2" in failed.output, failed.output
        assert "Traceback" not in failed.output
    finally:
        _stop(worker)


def test_plans_read_back_unchanged_and_refusals(tmp_path):
    train, test, specs, protocol = tiny_grid()
    plan_id = write_plan(tmp_path, train, test, specs, protocol, "data", ood={"near": test})
    assert write_plan(tmp_path, train, test, specs, protocol, "data", ood={"near": test}) == plan_id  # once
    plan = load_plan(tmp_path, plan_id)
    assert plan["train"].fingerprint() == train.fingerprint() and plan["test"].fingerprint() == test.fingerprint()
    assert plan["ood"]["near"].fingerprint() == test.fingerprint()
    assert plan["protocol"] == protocol and plan["generators"] == specs and plan["dataset_name"] == "data"
    assert json.loads((tmp_path / "plans" / plan_id / "plan.json").read_text())["ood"] == ["near"]
    with pytest.raises(ValueError, match="is not a plan id"):
        load_plan(tmp_path, "../elsewhere")
    with pytest.raises(FileNotFoundError, match="share the submitting machine's cache folder"):
        load_plan(tmp_path, "0" * 20)
    # A table travels as CSV and reads back with the same fingerprint (the cells' identities).
    import pandas as pd

    frame = pd.DataFrame({"x": np.array([0.1 + 0.2, 1 / 3, 2 / 3]), "c": pd.Categorical(["007", "a", "007"])})
    table = LabelledTable(frame, np.array([0, 1, 0]), ["a", "b"], ["r0", "r1", "r2"])
    table_id = write_plan(tmp_path / "tables", table, table, [], protocol, "table")
    assert load_plan(tmp_path / "tables", table_id)["train"].fingerprint() == table.fingerprint()
    # Data changed on disk after the plan was written, or an edited plan.json: refused by the worker.
    folder = tmp_path / "plans" / plan_id
    np.savez_compressed(folder / "test.npz", images=test.images[:5], labels=test.labels[:5],
                        class_names=np.asarray(test.class_names), sources=np.asarray(test.sources[:5]))
    with pytest.raises(ValueError, match="does not read back unchanged"):
        load_plan(tmp_path, plan_id)
    document = json.loads((folder / "plan.json").read_text())
    document["protocol"]["classifier_steps"] = 9999
    (folder / "plan.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="plan.json was changed after it was written"):
        load_plan(tmp_path, plan_id)
    with pytest.raises(ValueError, match="executor jobs: needs a cache folder"):
        run_on_jobs(train, test, specs, protocol, dataset_name="data", cache_dir=None, home=tmp_path / "home")
    # The submitter's lite0-linear precision travels with each job; a value no genaug wrote is refused.
    with pytest.raises(ValueError, match="lite0_precision: 'half' is not one of fp32, bf16"):
        run_evaluate_cells({"cache": str(tmp_path), "plan": table_id, "shots": [2], "seed": 0,
                            "lite0_precision": "half"}, tmp_path, tmp_path, lambda event: None, lambda note: None)


def test_each_job_carries_the_submitters_lite0_precision_and_no_other_classifier_gets_one(tmp_path, monkeypatch):
    """The jobs executor puts the run's lite0-linear precision (decided when its classifier was
    resolved) into every job's params, and nothing for other classifiers."""
    from genaug.jobs import grid

    submitted = []

    class Stop(Exception):
        pass

    def submit(self, job_type, params):
        submitted.append(params)
        raise Stop  # enough: what would be queued is known

    monkeypatch.setattr(JobStore, "submit", submit)
    train, test, specs, protocol = tiny_grid()
    monkeypatch.setenv("GENAUG_LITE0_PRECISION", "fp32")
    for classifier, expected in (("lite0-linear", "fp32"), ("cnn", None)):
        with pytest.raises(Stop):
            grid.run_on_jobs(train, test, [], protocol.model_copy(update={"classifier": classifier}),
                             dataset_name="data", cache_dir=tmp_path / "cells", home=tmp_path / "home")
        assert submitted[-1].get("lite0_precision") == expected
        assert ("lite0_precision" in submitted[-1]) == (expected is not None)
