"""Job workers: take queued jobs from the database and run each in its own child process.

A worker is a small supervisor. For every job it claims it forks a child that runs the
job (so a crash, a leak or a kill inside a job never takes the worker down), and while the
child runs it sends a heartbeat every few seconds and checks whether somebody asked to
cancel. Cancel = SIGUSR1 to the child (raised as ``JobCancelled`` inside it, so
``genaug.train`` marks its model failed and removes its files), SIGKILL after a grace period.

Shutdown is not a cancel. SIGTERM -- to the worker, or to the whole process group as systemd
sends it, which reaches the job's child too -- raises ``ShutdownRequested`` in the child: the
run stops where it is, a training's unfinished model row is dropped (never marked failed),
its checkpoints stay, and the job goes back to the queue to resume from them.

A worker that dies (SIGKILL, power cut) stops sending heartbeats; its child dies with it
(Linux parent-death signal, plus a watchdog thread elsewhere). Any other worker re-queues
a job whose heartbeat is older than the timeout, and the job resumes from its checkpoints.

Fork, not spawn: the worker imports torch and genaug once and every child starts at once
(spawn would pay a few seconds of imports per job). The worker itself runs no torch code
and no threads, which is what makes forking it safe.
"""
from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Optional

from ..interrupts import ShutdownRequested
from ..progress import RECOMPUTED_MARK, ProgressEvent
from ..store.registry import TRAINING, Registry, genaug_home
from .executors import EXECUTORS, job_dir
from .table import (CANCELLED, FAILED, HISTORY_POINTS, RUNNING, SUCCEEDED, Claimed, JobLostError, JobStore,
                    utcnow)

HEARTBEAT_SECONDS = 2.0
CANCEL_GRACE_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 12.0  # under ``genaug serve``'s 20 s wait for its workers
SHUTDOWN_REASON = "its worker shut down"
CANCEL_SIGNAL = signal.SIGUSR1
REQUEUE_CHECK_SECONDS = 5.0
PROGRESS_WRITE_SECONDS = 0.5
RECOMPUTED_LOG_LINES = 8  # per stage, beside its tenths


class JobCancelled(BaseException):
    """Raised inside a job's process when it is cancelled (a BaseException: no ``except Exception`` eats it)."""


# -- inside the job's child process ------------------------------------------------

class JobProgress:
    """The progress callback of a running job: keeps a loss history, writes to the job row.

    Writes at most every ``PROGRESS_WRITE_SECONDS`` (and always the last step of a stage),
    so a fast loop does not turn into a database benchmark.
    """

    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id
        self.history: list[list[Any]] = []
        self.extra: dict[str, Any] = {}
        self.last_write = 0.0
        self.stage: Optional[str] = None
        self.last_logged_tenth = -1
        self.recomputed_logged = 0  # recomputed-cell lines logged between the tenths of this stage
        self.pending_log: list[str] = []

    def note(self, values: dict[str, Any]) -> None:
        """Add fixed facts to every progress record (e.g. the training's work folder)."""
        self.extra.update(values)
        self._write()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.stage != self.stage:
            self.stage, self.last_logged_tenth, self.recomputed_logged = event.stage, -1, 0
            self.pending_log.append(f"{utcnow():%H:%M:%S} {event.stage}: {event.total} steps")
        if event.losses:
            self.history.append([int(event.step), {k: round(float(v), 5) for k, v in event.losses.items()
                                                   if isinstance(v, (int, float))}])
            if len(self.history) > HISTORY_POINTS:  # keep the whole run at half the resolution
                self.history = self.history[::2]
        tenth = int(10 * event.step / max(event.total, 1))
        # A cached cell that cannot be reused is logged whenever it starts (not only at each tenth):
        # it says why an evaluation computes what the user expected it to load. Only the first few
        # per stage, so that a run recomputing everything does not push the rest out of the log.
        recomputed = RECOMPUTED_MARK in event.message and tenth <= self.last_logged_tenth
        if recomputed:
            self.recomputed_logged += 1
            if self.recomputed_logged == RECOMPUTED_LOG_LINES + 1:
                self.pending_log.append(f"{utcnow():%H:%M:%S} {event.stage}: more cached cells are recomputed "
                                        "than this log lists")
        if tenth > self.last_logged_tenth or (recomputed and self.recomputed_logged <= RECOMPUTED_LOG_LINES):
            self.last_logged_tenth = max(tenth, self.last_logged_tenth)
            losses = " ".join(f"{k}={v:.4g}" for k, v in event.losses.items() if isinstance(v, (int, float)))
            self.pending_log.append(f"{utcnow():%H:%M:%S} {event.stage} {event.step}/{event.total} {losses}"
                                    + (f" {event.message}" if event.message else ""))
        self.latest = event
        if now - self.last_write >= PROGRESS_WRITE_SECONDS or event.step >= event.total:
            self._write()

    def record(self) -> dict[str, Any]:
        """The progress record as written to the job row: the fixed facts, then the latest event."""
        event = getattr(self, "latest", None)
        progress = dict(self.extra)
        if event is not None:
            progress.update({"stage": event.stage, "step": event.step, "total": event.total,
                             "fraction": min(1.0, event.step / max(event.total, 1)), "losses": event.losses,
                             "eta_seconds": event.eta_seconds, "message": event.message,
                             "history": self.history})
        return progress

    def _write(self) -> None:
        self.store.report_progress(self.job_id, self.record(), self.pending_log)
        self.pending_log = []
        self.last_write = time.monotonic()


def _die_with_parent() -> None:
    """End this process when the worker that forked it dies (even by SIGKILL)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)

    def watch() -> None:  # other systems, or a prctl that did not take
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _raise_cancelled(signum, frame) -> None:
    raise JobCancelled("cancelled")


def _raise_shutdown(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough: let the clean-up run
    raise ShutdownRequested("the service is shutting down")


def run_job_in_child(job: Claimed, home: str, url: Optional[str], worker: str, threads: Optional[int]) -> None:
    """The body of a job's child process: run the executor, record the result or the error."""
    _die_with_parent()
    signal.signal(CANCEL_SIGNAL, _raise_cancelled)
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the worker's to handle
    if threads:
        import torch

        torch.set_num_threads(threads)
    home_path = Path(home)
    with Registry.open(home_path, url) as registry:
        store = JobStore(registry)
        progress = JobProgress(store, job.id)
        folder = job_dir(home_path, job.id)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = EXECUTORS[job.type](job.params, home_path, folder, progress, progress.note, owner=job.owner)
        except JobCancelled:
            progress._write()
            store.finish(job.id, CANCELLED, worker=worker, log_line="stopped")
            return
        except ShutdownRequested:
            # Back to the queue; the next run resumes from the checkpoints (or the cell cache).
            store.requeue(job.id, worker, SHUTDOWN_REASON)
            return
        except BaseException as error:  # noqa: BLE001 - every failure is the job's result
            progress._write()
            message = f"{type(error).__name__}: {error}"
            # The traceback goes to the server log and the admin-only route; users see the message.
            details = traceback.format_exc()
            print(f"genaug job {job.id} failed:\n{details}", file=sys.stderr, flush=True)
            # Kept beside the last progress record: a failed job still shows where it stopped.
            store.report_progress(job.id, progress.record() | {"traceback": details[-4000:]})
            store.finish(job.id, FAILED, error=message, worker=worker, log_line=message[:300])
            return
        progress._write()
        store.finish(job.id, SUCCEEDED, result=result, worker=worker)


# -- the supervisor ------------------------------------------------------------------

class Worker:
    """Claims jobs and runs each in a forked child; heartbeats, cancels, re-queues stale jobs."""

    def __init__(self, home: str | os.PathLike | None = None, url: Optional[str] = None, *,
                 heartbeat_timeout: float = 30.0, poll_seconds: float = 0.5, threads: Optional[int] = None,
                 name: Optional[str] = None, parent_pid: Optional[int] = None):
        self.home = genaug_home(home)
        self.url = url or os.environ.get("GENAUG_DATABASE_URL") or None
        self.heartbeat_timeout, self.poll_seconds, self.threads = heartbeat_timeout, poll_seconds, threads
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Import genaug and every generator kind (torch, diffusers) once, here: each forked job
        # starts with them loaded instead of paying seconds of imports.
        from .. import api

        api.generator_kinds()
        self.registry = Registry.open(self.home, self.url)
        self.store = JobStore(self.registry)
        self.stopping = False
        self.parent_pid = parent_pid
        self._last_requeue = 0.0
        self._context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")

    def stop(self, *_: Any) -> None:
        """Finish the current job's supervision, then leave the loop (SIGTERM / SIGINT)."""
        self.stopping = True

    def run(self, max_jobs: Optional[int] = None) -> int:
        """Run jobs until stopped (or ``max_jobs`` have run); returns how many ran."""
        done = 0
        while not self.stopping and (max_jobs is None or done < max_jobs):
            self._check_parent()
            if self.stopping:
                break
            self._requeue_stale()
            job = self.store.claim(self.name)
            if job is None:
                time.sleep(self.poll_seconds)
                continue
            self.supervise(job)
            done += 1
        return done

    def _check_parent(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.stopping = True

    def _requeue_stale(self) -> None:
        if time.monotonic() - self._last_requeue >= REQUEUE_CHECK_SECONDS:
            self._last_requeue = time.monotonic()
            self.store.requeue_stale(self.heartbeat_timeout)

    def supervise(self, job: Claimed) -> None:
        """Run ``job`` in a child process until it ends, is cancelled, or is taken away."""
        child = self._context.Process(target=run_job_in_child, name=f"genaug-job-{job.id[:8]}",
                                      args=(job, str(self.home), self.url, self.name, self.threads))
        child.start()
        cancelled_at: Optional[float] = None
        while True:
            child.join(timeout=HEARTBEAT_SECONDS)
            if not child.is_alive():
                break
            try:
                cancel = self.store.heartbeat(job.id, self.name)
            except JobLostError:  # re-queued after we were silent too long: someone else runs it now
                self._kill(child)
                return
            except Exception:  # noqa: BLE001 - a database hiccup must not orphan the child
                continue
            self._check_parent()
            if self.stopping and cancelled_at is None:
                self._stop_for_shutdown(job, child)
                return
            if cancel and cancelled_at is None:
                cancelled_at = time.monotonic()
                os.kill(child.pid, CANCEL_SIGNAL)
            elif cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_SECONDS:
                self._kill(child)
            self._requeue_stale()
        if self.stopping and cancelled_at is None:
            # The child ended while we were told to stop: most likely it got the process
            # group's SIGTERM too and re-queued itself. Whatever it did, this is a shutdown.
            self._stop_for_shutdown(job, child)
            return
        if cancelled_at is not None:
            self.store.finish(job.id, CANCELLED, worker=self.name, log_line="stopped")
        elif child.exitcode != 0:
            how = (f"killed by signal {-child.exitcode}" if child.exitcode and child.exitcode < 0
                   else f"exit code {child.exitcode}")
            self.store.finish(job.id, FAILED, worker=self.name, error=f"the job's process died ({how})",
                              log_line=f"process died ({how})")
        self._release_models(child.pid)

    def _stop_for_shutdown(self, job: Claimed, child) -> None:
        """Stop the job without cancelling it: SIGTERM (it re-queues itself and keeps its
        checkpoints), SIGKILL after a grace period, and the job back in the queue either way."""
        if child.is_alive():
            child.terminate()  # a no-op for the job if the process group's SIGTERM came first
            child.join(timeout=SHUTDOWN_GRACE_SECONDS)
        if child.is_alive():
            self._kill(child)
        self.store.requeue(job.id, self.name, SHUTDOWN_REASON)  # False when the child did it already
        self._release_models(child.pid, shutdown=True)

    @staticmethod
    def _kill(child) -> None:
        child.kill()
        child.join(timeout=10)

    def _release_models(self, pid: Optional[int], shutdown: bool = False) -> None:
        """A training killed hard leaves its model row ``training``: mark it failed now, or, when
        the service is shutting down, drop the row (the re-queued job trains it again, resuming)."""
        from ..store.artifacts import remove_model_folders

        for row in self.registry.list(status=TRAINING):
            if row.owner_pid == pid and row.owner_host == socket.gethostname():
                if shutdown:
                    released = self.registry.abandon_training(row.id)
                else:
                    released = self.registry.mark_failed(row.id, "training stopped (job cancelled or its "
                                                                 "process died)") is not None
                if released:
                    remove_model_folders(self.home, row.id)

    def close(self) -> None:
        """Release the database connections."""
        self.registry.close()


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m genaug.jobs.worker``: one worker, settings from the environment."""
    parser = argparse.ArgumentParser(description="genaug job worker")
    parser.add_argument("--max-jobs", type=int, default=None)
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop (re-queueing the running job) when the process that started this one ends")
    args = parser.parse_args(argv)
    from ..settings import ServiceSettings

    settings = ServiceSettings()
    worker = Worker(settings.home, settings.database_url, heartbeat_timeout=settings.heartbeat_timeout,
                    threads=settings.job_threads or None,
                    parent_pid=os.getppid() if args.exit_with_parent else None)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    print(f"genaug worker {worker.name}: home {worker.home}", flush=True)
    try:
        worker.run(max_jobs=args.max_jobs)
    finally:
        worker.close()


if __name__ == "__main__":
    main()
