"""The job table on its own: atomic claims, guarded state changes, re-queueing of silent workers.

Runs against the module's registry database: the SQLite file, or PostgreSQL in that run.
"""
from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import update

from genaug.jobs.table import (CANCELLED, FAILED, MAX_ATTEMPTS, QUEUED, RUNNING, SUCCEEDED, JobLostError, JobRow,
                               JobStore, utcnow)
from genaug.store.registry import Registry


@pytest.fixture
def store(tmp_path, module_database_url):
    registry = Registry.open(tmp_path / "home", module_database_url)
    jobs = JobStore(registry)
    with registry.session() as session:  # the module shares one database: start each test empty
        session.query(JobRow).delete()
    yield jobs
    registry.close()


def _claim_all(home: str, url, worker: str, queue, barrier) -> None:
    registry = Registry.open(home, url)
    jobs = JobStore(registry)
    claimed = []
    barrier.wait(60)  # all four start claiming at the same moment
    while True:
        job = jobs.claim(worker)
        if job is None:
            break
        claimed.append(job.id)
    registry.close()
    queue.put(claimed)


def test_four_processes_claiming_at_once_take_every_job_exactly_once(store, tmp_path, module_database_url):
    submitted = {store.submit("generate", {"i": i}).id for i in range(200)}
    context = multiprocessing.get_context("fork")
    queue, barrier = context.Queue(), context.Barrier(4)
    workers = [context.Process(target=_claim_all, args=(str(tmp_path / "home"), module_database_url, f"w{n}", queue,
                                                        barrier))
               for n in range(4)]
    for process in workers:
        process.start()
    results = [queue.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(30)
    claimed = [job_id for result in results for job_id in result]
    assert len(claimed) == len(set(claimed)) == 200 and set(claimed) == submitted
    rows = {row.id: row for row in store.list(limit=1000)}
    assert all(row.status == RUNNING and row.attempts == 1 for row in rows.values())


def test_state_changes_are_guarded(store):
    job = store.submit("train", {"x": 1}, owner="alice")
    assert store.get(job.id).status == QUEUED and store.get(job.id).owner == "alice"
    claimed = store.claim("w1")
    assert claimed.id == job.id and claimed.attempts == 1
    assert store.claim("w2") is None
    assert store.heartbeat(job.id, "w1") is False
    with pytest.raises(JobLostError):
        store.heartbeat(job.id, "w2")  # not its job
    assert store.finish(job.id, SUCCEEDED, worker="w2") is False
    store.report_progress(job.id, {"step": 3, "total": 10}, ["a line"])
    assert store.get(job.id).progress == {"step": 3, "total": 10} and "a line" in store.get(job.id).log
    assert store.cancel(job.id).cancel_requested is True
    assert store.heartbeat(job.id, "w1") is True  # the worker learns of the cancel
    assert store.finish(job.id, CANCELLED, worker="w1") is True
    assert store.finish(job.id, FAILED, worker="w1", error="late") is False  # finished stays finished
    row = store.get(job.id)
    assert row.status == CANCELLED and row.error is None and row.finished_at is not None
    queued = store.submit("generate", {})
    assert store.cancel(queued.id).status == CANCELLED  # at once, no worker involved
    assert store.claim("w1") is None


def test_silent_workers_lose_their_jobs(store):
    job = store.submit("train", {})
    store.claim("dead-worker")
    assert store.requeue_stale(30) == []  # its heartbeat is fresh
    with store.registry.session() as session:
        session.execute(update(JobRow).where(JobRow.id == job.id).values(heartbeat_at=utcnow() - timedelta(seconds=60)))
    assert store.requeue_stale(30) == [job.id]
    row = store.get(job.id)
    assert row.status == QUEUED and row.worker is None and any("re-queued" in line for line in row.log)
    with pytest.raises(JobLostError):
        store.heartbeat(job.id, "dead-worker")  # a worker that comes back does not get it back
    # A job whose worker died MAX_ATTEMPTS times fails instead of looping forever.
    for attempt in range(2, MAX_ATTEMPTS + 1):
        assert store.claim(f"w{attempt}").attempts == attempt
        with store.registry.session() as session:
            session.execute(update(JobRow).where(JobRow.id == job.id)
                            .values(heartbeat_at=utcnow() - timedelta(seconds=60)))
        store.requeue_stale(30)
    row = store.get(job.id)
    assert row.status == FAILED and "stopped responding" in row.error


def test_errors_with_nul_characters_are_stored(store):
    job = store.submit("train", {})
    store.claim("w")
    assert store.finish(job.id, FAILED, worker="w", error="bad byte \x00 in file") is True
    assert "\x00" not in store.get(job.id).error and "bad byte" in store.get(job.id).error


def test_unknown_job_type_is_refused(store):
    with pytest.raises(ValueError, match="type"):
        store.submit("paint", {})


def test_a_running_job_logs_recomputed_cells_and_keeps_its_latest_message(store):
    """Progress is logged at each tenth of a stage; a cell that is cached but recomputed is logged
    as it starts (the first few per stage), so the job's log says why a resumed evaluation computes
    it again; a failed job keeps its last progress beside the traceback."""
    from genaug.jobs.worker import RECOMPUTED_LOG_LINES, JobProgress
    from genaug.progress import RECOMPUTED_MARK, ProgressEvent

    job = store.submit("evaluate", {})
    assert store.claim("w1").id == job.id
    progress = JobProgress(store, job.id)
    why = f"{RECOMPUTED_MARK}a cached cell of other settings is not reused"
    recomputed = [f"n=2 seed={k} real{why}" for k in range(RECOMPUTED_LOG_LINES + 2)]
    # All within the first tenth of 1,000 steps: only the recompute rule logs any but the first.
    events = [(0, "n=2 seed=0 real+classic")] + [(1 + k, m) for k, m in enumerate(recomputed)] + \
        [(RECOMPUTED_LOG_LINES + 3, "n=3 seed=0 real"), (1000, "done")]
    for step, message in events:
        progress(ProgressEvent("evaluate", step, 1000, message=message))
    progress._write()
    row = store.get(job.id)
    logged = [line.split(" ", 1)[1] for line in row.log if line.split(" ", 2)[1].startswith("evaluate")]
    assert logged == ["evaluate: 1000 steps", "evaluate 0/1000  n=2 seed=0 real+classic",
                      *[f"evaluate {1 + k}/1000  {m}" for k, m in enumerate(recomputed[:RECOMPUTED_LOG_LINES])],
                      "evaluate: more cached cells are recomputed than this log lists",
                      "evaluate 1000/1000  done"], row.log
    assert row.progress["message"] == "done" and row.progress["step"] == 1000
    # The failure path: the traceback joins the last record instead of replacing it.
    store.report_progress(job.id, progress.record() | {"traceback": "Traceback ..."})
    row = store.get(job.id)
    assert row.progress["message"] == "done" and row.progress["traceback"] == "Traceback ..."
