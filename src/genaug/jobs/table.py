"""The job table: train / generate / evaluate requests, their status, progress and result.

Jobs live in the registry database (SQLite file or PostgreSQL), so the service, any number
of workers and a restarted server all see the same queue. Every state change is one guarded
``UPDATE ... WHERE status = <expected>``: two workers racing for a job, or a cancel racing a
finish, cannot both win, on SQLite (one writer at a time) or PostgreSQL (the second UPDATE
re-checks the row after the first commits).

    queued -> running -> succeeded | failed | cancelled
    queued -> cancelled
    running -> queued            (its worker stopped sending heartbeats: another one resumes it)
"""
from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ..store.registry import Base, Registry, json_safe

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
JOB_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
# evaluate_cells: one unit of an evaluation grid run by the ``jobs`` executor (genaug.jobs.grid);
# queued by the library or CLI, never through the service's API.
JOB_TYPES = ("train", "generate", "evaluate", "evaluate_cells")
LOG_LINES = 60
HISTORY_POINTS = 240
MAX_ATTEMPTS = 3


def utcnow() -> datetime:
    """Now, timezone-aware UTC (SQLite drops the zone; ``as_utc`` puts it back)."""
    return datetime.now(timezone.utc)


def as_utc(moment: Optional[datetime]) -> Optional[datetime]:
    """A datetime read from either database, as aware UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class JobRow(Base):
    """One job."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    owner: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    log: Mapped[list] = mapped_column(JSON, default=list)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    worker: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), nullable=True)
    # Bumped on every change: the event stream sends a job again only when this moved.
    revision: Mapped[int] = mapped_column(Integer, default=0)


class JobNotFoundError(LookupError):
    """No job has this id."""


@dataclass
class Claimed:
    """A job a worker has just taken: its id, type, params and the attempt number."""

    id: str
    type: str
    params: dict
    attempts: int
    owner: Optional[str] = None  # the token that submitted it


def public_worker(name: Optional[str]) -> Optional[str]:
    """The name a worker is shown by: ``worker-<id>``, without the host name and pid of its full
    name (``host:pid:id``), which stays in the database for the workers themselves."""
    if not name:
        return name
    parts = name.rsplit(":", 1)
    tail = parts[-1] if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{6}", parts[-1]) else \
        hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"worker-{tail}"


def _append_log(lines: list, new: list[str]) -> list:
    return (list(lines or []) + [line[:500] for line in new])[-LOG_LINES:]


class JobStore:
    """Submit, claim, update and read jobs in the registry database."""

    def __init__(self, registry: Registry):
        self.registry = registry
        Base.metadata.create_all(registry.engine, tables=[JobRow.__table__])

    # -- submitting and reading --------------------------------------------------
    def submit(self, job_type: str, params: dict, owner: Optional[str] = None) -> JobRow:
        """Queue a job and return its row."""
        if job_type not in JOB_TYPES:
            raise ValueError(f"type: {job_type!r} is not one of {', '.join(JOB_TYPES)}")
        row = JobRow(id=str(uuid.uuid4()), type=job_type, status=QUEUED, params=json_safe(params), owner=owner,
                     progress={}, log=[f"{utcnow():%H:%M:%S} queued"], result={}, attempts=0,
                     cancel_requested=False, created_at=utcnow(), revision=0)
        with self.registry.session() as session:
            session.add(row)
        return row

    def get(self, job_id: str) -> JobRow:
        """The job with this id; ``JobNotFoundError`` otherwise."""
        with self.registry.session() as session:
            row = session.get(JobRow, job_id)
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return row

    def list(self, job_type: Optional[str] = None, status: Optional[str] = None, limit: int = 100) -> list[JobRow]:
        """Newest first."""
        query = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
        if job_type:
            query = query.where(JobRow.type == job_type)
        if status:
            query = query.where(JobRow.status == status)
        with self.registry.session() as session:
            return list(session.scalars(query))

    # -- workers -------------------------------------------------------------
    def get_many(self, job_ids: list[str]) -> list[JobRow]:
        """The rows of these ids that exist (one query)."""
        with self.registry.session() as session:
            return list(session.scalars(select(JobRow).where(JobRow.id.in_(list(job_ids)))))

    def claim(self, worker: str) -> Optional[Claimed]:
        """Take the oldest queued job for ``worker``; None when the queue is empty.

        On PostgreSQL the oldest queued row is locked with ``FOR UPDATE SKIP LOCKED``: many workers
        polling at once each get another job and none waits on another's lock. On SQLite (one
        writer at a time) the guarded ``UPDATE`` alone decides a race."""
        if self.registry.engine.dialect.name == "postgresql":
            return self._claim_skip_locked(worker)
        with self.registry.session() as session:
            candidates = list(session.scalars(select(JobRow.id).where(JobRow.status == QUEUED)
                                              .order_by(JobRow.created_at).limit(8)))
        for job_id in candidates:
            now = utcnow()
            with self.registry.session() as session:
                taken = session.execute(
                    update(JobRow).where(JobRow.id == job_id, JobRow.status == QUEUED)
                    .values(status=RUNNING, worker=worker, started_at=now, heartbeat_at=now,
                            attempts=JobRow.attempts + 1, revision=JobRow.revision + 1)).rowcount == 1
                if taken:
                    row = session.get(JobRow, job_id)
                    row.log = _append_log(row.log, [f"{now:%H:%M:%S} started on {public_worker(worker)} (attempt {row.attempts})"])
                    return Claimed(row.id, row.type, dict(row.params), row.attempts, row.owner)
        return None

    def _claim_skip_locked(self, worker: str) -> Optional[Claimed]:
        now = utcnow()
        with self.registry.session() as session:
            job_id = session.scalar(select(JobRow.id).where(JobRow.status == QUEUED).order_by(JobRow.created_at)
                                    .limit(1).with_for_update(skip_locked=True))
            if job_id is None:
                return None
            # Still guarded: a row cancelled between our SELECT and the lock is not taken.
            if session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == QUEUED)
                               .values(status=RUNNING, worker=worker, started_at=now, heartbeat_at=now,
                                       attempts=JobRow.attempts + 1, revision=JobRow.revision + 1)).rowcount != 1:
                return None
            row = session.get(JobRow, job_id)
            row.log = _append_log(row.log, [f"{now:%H:%M:%S} started on {public_worker(worker)} (attempt {row.attempts})"])
            return Claimed(row.id, row.type, dict(row.params), row.attempts, row.owner)

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Record that ``worker`` still runs the job; returns whether a cancel was asked for.

        Raises ``JobLostError`` when the job is no longer this worker's (re-queued after a
        missed heartbeat, or deleted): the worker must stop running it.
        """
        with self.registry.session() as session:
            changed = session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker,
                                                           JobRow.status == RUNNING)
                                      .values(heartbeat_at=utcnow())).rowcount
            if changed != 1:
                raise JobLostError(f"job {job_id} is no longer run by {worker}")
            return bool(session.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id)))

    def report_progress(self, job_id: str, progress: dict, log_lines: Optional[list[str]] = None) -> None:
        """Store the latest progress (and append log lines) of a running job."""
        with self.registry.session() as session:
            row = session.get(JobRow, job_id)
            if row is None or row.status != RUNNING:
                return
            row.progress = json_safe(progress)
            if log_lines:
                row.log = _append_log(row.log, log_lines)
            row.revision = (row.revision or 0) + 1

    def finish(self, job_id: str, status: str, *, result: Optional[dict] = None, error: Optional[str] = None,
               worker: Optional[str] = None, log_line: Optional[str] = None) -> bool:
        """``running -> status``; False when the job was not running (by ``worker``, if given)."""
        if status not in FINISHED:
            raise ValueError(f"finish: {status!r} is not a final status")
        now = utcnow()
        with self.registry.session() as session:
            query = update(JobRow).where(JobRow.id == job_id, JobRow.status == RUNNING)
            if worker is not None:
                query = query.where(JobRow.worker == worker)
            values: dict[str, Any] = {"status": status, "finished_at": now, "revision": JobRow.revision + 1}
            if result is not None:
                values["result"] = json_safe(result)
            if error is not None:
                # PostgreSQL text cannot hold NUL (an error may quote binary input).
                values["error"] = error[:20_000].replace("\x00", "\\x00")
            if session.execute(query.values(**values)).rowcount != 1:
                return False
            row = session.get(JobRow, job_id)
            row.log = _append_log(row.log, [f"{now:%H:%M:%S} {status}" + (f": {log_line}" if log_line else "")])
            return True

    def requeue(self, job_id: str, worker: str, reason: str) -> bool:
        """``running -> queued`` for a job ``worker`` gives up (it shuts down); False if not its job."""
        with self.registry.session() as session:
            if session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker,
                                                    JobRow.status == RUNNING)
                               .values(status=QUEUED, worker=None, revision=JobRow.revision + 1)).rowcount != 1:
                return False
            row = session.get(JobRow, job_id)
            row.log = _append_log(row.log, [f"{utcnow():%H:%M:%S} re-queued: {reason}"])
            return True

    # -- people ----------------------------------------------------------------
    def cancel(self, job_id: str) -> JobRow:
        """Cancel: a queued job at once; a running one is flagged and its worker stops it."""
        now = utcnow()
        with self.registry.session() as session:
            if session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == QUEUED)
                               .values(status=CANCELLED, finished_at=now, revision=JobRow.revision + 1)).rowcount:
                row = session.get(JobRow, job_id)
                row.log = _append_log(row.log, [f"{now:%H:%M:%S} cancelled before it started"])
            elif session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == RUNNING)
                                 .values(cancel_requested=True, revision=JobRow.revision + 1)).rowcount:
                row = session.get(JobRow, job_id)
                row.log = _append_log(row.log, [f"{now:%H:%M:%S} cancel requested"])
        return self.get(job_id)

    def delete(self, job_id: str) -> bool:
        """Delete a finished job's row; False when it is queued or running (cancel it first) or gone."""
        from sqlalchemy import delete as sql_delete

        with self.registry.session() as session:
            return session.execute(sql_delete(JobRow).where(JobRow.id == job_id,
                                                            JobRow.status.in_(FINISHED))).rowcount == 1

    def requeue_stale(self, timeout_seconds: float) -> list[str]:
        """Re-queue running jobs whose worker has been silent for ``timeout_seconds``.

        Such a worker died (or hangs): another worker resumes the job from its last
        checkpoint. A job that already died ``MAX_ATTEMPTS`` times fails instead, and a
        stale job somebody wanted cancelled is cancelled.
        """
        cutoff = utcnow() - timedelta(seconds=timeout_seconds)
        with self.registry.session() as session:
            stale = list(session.scalars(select(JobRow).where(JobRow.status == RUNNING,
                                                              JobRow.heartbeat_at < cutoff)))
        moved = []
        for row in stale:
            now = utcnow()
            if row.cancel_requested:
                status, note = CANCELLED, "cancelled (its worker stopped responding)"
            elif row.attempts >= MAX_ATTEMPTS:
                status, note = FAILED, f"failed: its worker stopped responding {row.attempts} times"
            else:
                status, note = QUEUED, (f"re-queued: worker {public_worker(row.worker)} silent for over "
                                        f"{timeout_seconds:g} s")
            values: dict[str, Any] = {"status": status, "worker": None, "revision": JobRow.revision + 1}
            if status != QUEUED:
                values["finished_at"] = now
            if status == FAILED:
                values["error"] = note
            with self.registry.session() as session:
                # Guarded on the heartbeat we read: a worker that just came back keeps its job.
                if session.execute(update(JobRow).where(JobRow.id == row.id, JobRow.status == RUNNING,
                                                        JobRow.heartbeat_at == row.heartbeat_at)
                                   .values(**values)).rowcount == 1:
                    fresh = session.get(JobRow, row.id)
                    fresh.log = _append_log(fresh.log, [f"{now:%H:%M:%S} {note}"])
                    moved.append(row.id)
        return moved


class JobLostError(RuntimeError):
    """The job was taken away from this worker (re-queued or deleted)."""
