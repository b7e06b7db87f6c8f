"""The model registry: one row per trained (or training, or failed) generator.

The database is a SQLite file at ``$GENAUG_HOME/registry.db`` by default; any other
database (PostgreSQL for teams) is named by ``GENAUG_DATABASE_URL``. Only portable SQL is
used: JSON columns are ``sqlalchemy.JSON`` and every query goes through the ORM / Core.

A row moves ``training -> ready`` or ``training -> failed``, never back. A row is marked
``ready`` only after its artifact folder is complete on disk (see ``artifacts``), so a
process killed at any moment never leaves a ready model without its files. Folders are
addressed by the row's id, never by its name: names are user input and must not form paths.
"""
from __future__ import annotations

import math
import os
import re
import socket
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Iterator, Optional

from sqlalchemy import JSON, DateTime, Integer, String, Text, create_engine, delete, event, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from .artifacts import MODELS_DIR, cleanup_stale_folders, model_dir, remove_model_folders

TRAINING, READY, FAILED = "training", "ready", "failed"
STATUSES = (TRAINING, READY, FAILED)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SQLITE_BUSY_TIMEOUT_MS = 30_000


class ModelExistsError(ValueError):
    """A ready model already has this name."""


class ModelBusyError(ValueError):
    """The model is being trained by a live process."""


class ModelNotFoundError(LookupError):
    """No model has this name or id."""


class ModelNotReadyError(ValueError):
    """The model exists but is still training or has failed."""


def genaug_home(home: str | os.PathLike | None = None) -> Path:
    """The genaug home folder: ``home`` if given, else ``$GENAUG_HOME``, else ``~/.genaug``."""
    chosen = home if home is not None else os.environ.get("GENAUG_HOME") or "~/.genaug"
    return Path(chosen).expanduser().absolute()


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise a ValueError saying why.

    1 to 64 characters, letters, digits, ``.``, ``_``, ``-``, starting with a letter or
    digit: no slashes, no ``..`` at the start, nothing a shell or a URL would mangle.
    """
    if not isinstance(name, str):
        raise ValueError(f"model name must be a string, got {type(name).__name__}")
    if not name:
        raise ValueError("model name must not be empty")
    if len(name) > 64:
        raise ValueError(f"model name {name[:20]!r}...: at most 64 characters, got {len(name)}")
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return name


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars/arrays to Python, paths to str, NaN/inf to None.

    PostgreSQL's JSON type rejects NaN, and numpy floats are not JSON serialisable, so
    everything bound for a JSON column or a manifest line passes through here.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return json_safe(value.tolist())
    if hasattr(value, "item"):
        return json_safe(value.item())
    return str(value)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the registry tables."""


class ModelRow(Base):
    """One trained, training or failed generator."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    class_names: Mapped[list] = mapped_column(JSON, default=list)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    data_fingerprint: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    data_summary: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    owner_pid: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    owner_host: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    # Identifies the owner process beyond its pid (boot id + start time), so a recycled
    # pid -- common in containers -- does not keep a dead training "alive" forever.
    owner_started: Mapped[Optional[str]] = mapped_column(String(128), nullable=True)
    # No foreign key on purpose: deleting a parent must not fail or cascade to its children.
    parent_id: Mapped[Optional[str]] = mapped_column(String(36), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow, onupdate=_utcnow)
    artifact_dir: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    # The API token that trained it through the service (None: the library or the CLI). Only
    # that token, or an admin, may delete or replace it over HTTP.
    created_by: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)

    def __repr__(self) -> str:
        return f"ModelRow(name={self.name!r}, kind={self.kind!r}, status={self.status!r}, id={self.id!r})"


# -- owner processes -----------------------------------------------------------

def _process_start_token(pid: int) -> Optional[str]:
    """Boot id + start time of ``pid`` (Linux), or None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return f"{boot_id}:{fields[19]}"  # field 22 of the full line: start time in clock ticks


def _pid_running(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that nobody reaped yet is a zombie: dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, IndexError):
        return True


def owner_alive(row: ModelRow) -> bool:
    """Whether the process that owns a ``training`` row may still be running.

    A process on another host cannot be checked from here, so it counts as alive: the
    safe answer, which ``delete(name, force=True)`` overrides.
    """
    if row.owner_pid is None:
        return False
    if row.owner_host != socket.gethostname():
        return True
    if not _pid_running(row.owner_pid):
        return False
    token = _process_start_token(row.owner_pid)
    return row.owner_started is None or token is None or token == row.owner_started


def _busy_message(row: ModelRow) -> str:
    where = "" if row.owner_host == socket.gethostname() else f" on host {row.owner_host}"
    return f"{row.name} is being trained by pid {row.owner_pid}{where}"


# -- the registry ----------------------------------------------------------------

class Registry:
    """Rows of the ``models`` table plus the artifact folders under ``$GENAUG_HOME/models``.

    Open with ``Registry.open()``; use as a context manager (or call ``close()``) to release
    the database connections.
    """

    def __init__(self, engine: Engine, home: Path):
        self.engine = engine
        self.home = home
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, home: str | os.PathLike | None = None, url: str | None = None) -> "Registry":
        """Open (and create when missing) the registry of ``home``.

        The database is ``url``, else ``$GENAUG_DATABASE_URL``, else the SQLite file
        ``<home>/registry.db``. Artifacts always live under ``home``.
        """
        home_path = genaug_home(home)
        (home_path / MODELS_DIR).mkdir(parents=True, exist_ok=True)
        url = url or os.environ.get("GENAUG_DATABASE_URL") or f"sqlite:///{(home_path / 'registry.db').as_posix()}"
        engine = _create_engine(url)
        try:
            Base.metadata.create_all(engine)
        except (OperationalError, ProgrammingError, IntegrityError):
            # Another process created the tables between our check and our CREATE: look again.
            Base.metadata.create_all(engine)
        add_missing_columns(engine)
        return cls(engine, home_path)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    # -- lifecycle of a row --------------------------------------------------
    def begin_training(self, name: str, kind: str, config: dict, fingerprint: Optional[str],
                       data_summary: dict, *, class_names: Optional[list[str]] = None,
                       replace: bool = False, parent_id: Optional[str] = None,
                       created_by: Optional[str] = None) -> ModelRow:
        """Insert a ``training`` row for ``name`` owned by this process and return it.

        Name reuse: a ``ready`` model of that name is an error unless ``replace`` (then it
        is deleted now, before the new one is trained); a ``training`` row whose owner is
        alive is an error; a ``failed`` row or a ``training`` row whose owner died is
        removed together with its leftover folders, and the name is reused.
        """
        validate_name(name)
        if class_names is None:
            class_names = list((data_summary or {}).get("counts", {}))
        # Two processes may race for the same name: the unique constraint decides, and the
        # loser re-reads the winner's row to give the right message.
        for attempt in range(3):
            stale_id = None
            try:
                with self.session() as session:
                    existing = session.scalars(select(ModelRow).where(ModelRow.name == name)).one_or_none()
                    if existing is not None:
                        self._check_reusable(existing, replace)
                        stale_id = existing.id
                        # Delete by id and status: if another process changed the row since we
                        # read it, nothing is deleted and the insert below fails on the name.
                        session.execute(delete(ModelRow).where(ModelRow.id == existing.id,
                                                               ModelRow.status == existing.status))
                    row = ModelRow(id=str(uuid.uuid4()), name=name, kind=kind, status=TRAINING,
                                   class_names=json_safe(list(class_names)), config=json_safe(config or {}),
                                   data_fingerprint=fingerprint, data_summary=json_safe(data_summary or {}),
                                   metrics={}, parent_id=parent_id, owner_pid=os.getpid(),
                                   owner_host=socket.gethostname(),
                                   owner_started=_process_start_token(os.getpid()), created_by=created_by)
                    session.add(row)
            except IntegrityError:
                if attempt == 2:
                    raise ModelBusyError(f"{name}: another process is registering this name right now")
                continue
            if stale_id is not None:
                remove_model_folders(self.home, stale_id)
            return row
        raise AssertionError("unreachable")

    def _check_reusable(self, existing: ModelRow, replace: bool) -> None:
        if existing.status == READY and not replace:
            raise ModelExistsError(f"model {existing.name} already exists (delete it or replace it)")
        if existing.status == TRAINING and owner_alive(existing):
            raise ModelBusyError(_busy_message(existing))

    def mark_ready(self, model_id: str, artifact_dir: str, metrics: dict) -> ModelRow:
        """``training -> ready``; call only after the artifact folder is complete on disk."""
        return self._finish(model_id, status=READY, artifact_dir=artifact_dir, metrics=json_safe(metrics or {}),
                            error=None)

    def mark_failed(self, model_id: str, error: str) -> Optional[ModelRow]:
        """``training -> failed`` with the error text; None when the row is gone or finished.

        PostgreSQL text cannot hold NUL characters (an error quoting a binary file may have
        them): there they are stored as ``\\x00``, so the row still leaves ``training``.
        """
        text = str(error)
        if self.engine.dialect.name == "postgresql":
            text = text.replace("\x00", "\\x00")
        try:
            return self._finish(model_id, status=FAILED, error=text)
        except (ModelNotFoundError, ModelNotReadyError):
            return None

    def _finish(self, model_id: str, **values: Any) -> ModelRow:
        with self.session() as session:
            # Guarded on status: a row deleted or taken over meanwhile must not be revived.
            result = session.execute(update(ModelRow)
                                     .where(ModelRow.id == model_id, ModelRow.status == TRAINING)
                                     .values(updated_at=_utcnow(), **values))
            if result.rowcount != 1:
                row = session.get(ModelRow, model_id)
                if row is None:
                    raise ModelNotFoundError(f"model id {model_id} no longer exists (deleted while training?)")
                raise ModelNotReadyError(f"model {row.name} is {row.status}, not training")
        return self.get(model_id)

    def abandon_training(self, model_id: str) -> bool:
        """Delete a ``training`` row whose run stopped for a shutdown (not failed: it resumes later).

        False when the row is gone or no longer training (finished meanwhile: left as it is).
        """
        with self.session() as session:
            return session.execute(delete(ModelRow).where(ModelRow.id == model_id,
                                                          ModelRow.status == TRAINING)).rowcount == 1

    # -- reading --------------------------------------------------------------
    def find(self, name_or_id: str) -> Optional[ModelRow]:
        """The row with this name (or else this id), or None."""
        with self.session() as session:
            row = session.scalars(select(ModelRow).where(ModelRow.name == name_or_id)).one_or_none()
            return row if row is not None else session.get(ModelRow, name_or_id)

    def get(self, name_or_id: str) -> ModelRow:
        """The row with this name or id; ``ModelNotFoundError`` naming it otherwise."""
        row = self.find(name_or_id)
        if row is None:
            raise ModelNotFoundError(f"no model named {name_or_id!r}")
        return row

    def list(self, status: Optional[str] = None) -> list[ModelRow]:
        """All rows (or those with ``status``), oldest first."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        query = select(ModelRow).order_by(ModelRow.created_at, ModelRow.name)
        if status is not None:
            query = query.where(ModelRow.status == status)
        with self.session() as session:
            return list(session.scalars(query))

    def artifact_path(self, row: ModelRow) -> Path:
        """Absolute path of a row's artifact folder."""
        return self.home / row.artifact_dir if row.artifact_dir else model_dir(self.home, row.id)

    # -- removing -------------------------------------------------------------
    def delete(self, name: str, *, force: bool = False) -> ModelRow:
        """Delete the row and its artifact folder; refuses a live training unless ``force``."""
        row = self.get(name)
        if row.status == TRAINING and not force and owner_alive(row):
            raise ModelBusyError(_busy_message(row) + "; stop it first (or force the delete)")
        with self.session() as session:
            session.execute(delete(ModelRow).where(ModelRow.id == row.id))
        # Row first, then files: a kill in between leaves an orphan folder (removed by
        # cleanup), never a listed model without its files.
        remove_model_folders(self.home, row.id)
        return row

    def cleanup(self) -> dict[str, list[str]]:
        """Mark trainings whose owner died as failed and remove folders no live row needs.

        Removes stale ``.tmp-*`` folders and ``models/<id>`` folders of rows that are gone
        or failed. Returns what it did: ``{"failed": [names], "removed": [folder names]}``.
        """
        failed = []
        for row in self.list(status=TRAINING):
            if not owner_alive(row):
                if self.mark_failed(row.id, f"training process pid {row.owner_pid} on {row.owner_host} "
                                            "ended without finishing") is not None:
                    failed.append(row.name)
        keep = {row.id for row in self.list() if row.status in (TRAINING, READY)}
        removed = cleanup_stale_folders(self.home, keep_ids=keep)
        return {"failed": failed, "removed": removed}


def add_missing_columns(engine: Engine, tables=None) -> list[str]:
    """Add the nullable columns a newer genaug declares to tables an older one created.

    ``create_all`` creates missing tables but never changes existing ones; every column added
    since the first release is nullable, so ``ALTER TABLE ... ADD COLUMN`` is all an upgrade
    needs. Returns ``table.column`` for each column added.
    """
    from sqlalchemy import inspect

    inspector = inspect(engine)
    present_tables = set(inspector.get_table_names())
    added = []
    for table in tables or Base.metadata.sorted_tables:
        if table.name not in present_tables:
            continue
        have = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                added.append(f"{table.name}.{column.name}")
            except (OperationalError, ProgrammingError):
                # Another process added it between our look and our ALTER.
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise
    return added


def _create_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        # WAL lets readers (the service listing models) run while a trainer writes; the
        # busy timeout makes concurrent writers wait instead of failing at once.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return engine
