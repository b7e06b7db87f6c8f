"""A throwaway PostgreSQL server for the test suite (``GENAUG_TEST_DATABASE=postgresql``).

``PostgresServer.start()`` runs ``initdb`` into a fresh temporary folder (trust auth, user
``postgres``, UTF8) and starts the server with ``pg_ctl -w``, listening only on 127.0.0.1 on
a free port, its unix socket inside that folder, fsync off. ``stop()`` stops it
(``pg_ctl stop -m immediate``) and removes the folder. ``create_database()`` /
``drop_database()`` give each test its own database; ``take_database()`` /
``release_database()`` do the same in a background thread, one database ahead, so the
~0.1 s a ``CREATE DATABASE`` takes overlaps the previous test instead of adding to it.

``initdb`` refuses to run as root: when the tests run as root, every server binary runs as
the ``postgres`` system user (the folder is chowned to it).

The binaries are found on PATH first, then in ``/usr/lib/postgresql/<version>/bin`` (newest
version first); ``GENAUG_TEST_PG_BIN`` names their folder explicitly.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
# Why a ``sqlite_only`` test is skipped in the PostgreSQL run. It must not name PostgreSQL:
# in CI a skip naming it fails the run (see _external.py), and this skip is intended.
SQLITE_ONLY_SKIP_REASON = "sqlite_only: checks the SQLite database itself, and this run tests another one"
DATABASE_AGNOSTIC_SKIP_REASON = ("database_agnostic: this test's subject is not the registry (web UI pages, quality "
                                 "numbers, filters, the runner, the test harness); the registry calls it makes run "
                                 "on this database in the store, service and CLI tests")
NO_DATABASE_SKIP_REASON = ("no_database: this test never opens the registry database (checked in the SQLite run); "
                           "a second database adds nothing")
START_TIMEOUT_S = 60
SERVER_USER = "postgres"  # the system user that runs the server when we are root

# Appended to postgresql.conf: a private, fast, disposable server.
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
"""


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing, or the server could not be started."""


def find_bin_dir() -> Optional[Path]:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    ``$GENAUG_TEST_PG_BIN`` if set (and then only that folder), else the folder of ``pg_ctl``
    on PATH (symlinks resolved, so the three come from the same installation), else the
    newest ``/usr/lib/postgresql/<version>/bin`` that has all three.
    """
    candidates: list[Path] = []
    if os.environ.get("GENAUG_TEST_PG_BIN"):
        candidates.append(Path(os.environ["GENAUG_TEST_PG_BIN"]))
    else:
        candidates += _default_candidates()
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in SERVER_BINARIES):
            return folder
    return None


def _default_candidates() -> list[Path]:
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
        candidates.append(Path(on_path).parent)

    def version(path: Path) -> tuple:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    return candidates + sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _traversable_by_others(path: Path) -> bool:
    """Whether every folder from / down to ``path`` lets other users in (o+x)."""
    for folder in [path, *path.parents]:
        try:
            if not folder.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


class PostgresServer:
    """One private PostgreSQL server in a temporary folder; see the module docstring."""

    def __init__(self, bin_dir: Optional[Path] = None):
        self.bin_dir = bin_dir or find_bin_dir()
        if self.bin_dir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in "
                "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) "
                "or name their folder in GENAUG_TEST_PG_BIN")
        self.run_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.root: Optional[Path] = None
        self.port: Optional[int] = None
        self._admin = None  # an autocommit psycopg connection to the "postgres" database
        self._background: Optional[concurrent.futures.ThreadPoolExecutor] = None  # one thread, own connection
        self._background_admin = None
        self._next: Optional[concurrent.futures.Future] = None  # the database being created ahead
        self._drops: list[concurrent.futures.Future] = []  # background drops not yet checked

    # -- paths ------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    # -- processes ----------------------------------------------------------------
    def _run(self, *args: str, timeout: float = START_TIMEOUT_S + 30) -> subprocess.CompletedProcess:
        """Run a server binary (as the ``postgres`` user when we are root); output captured."""
        command = [str(self.bin_dir / args[0]), *args[1:]]
        extra = {}
        if self.run_as_root:
            extra = {"user": SERVER_USER, "group": SERVER_USER, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", env=env, cwd=self.root, timeout=timeout, **extra)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def start(self) -> "PostgresServer":
        """initdb + start; raises ``PostgresUnavailable`` with the server's output on failure."""
        if self.run_as_root:
            try:
                import pwd

                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(f"running as root, but there is no {SERVER_USER!r} system user to "
                                          "run the server as (initdb refuses root)") from None
        base = Path(tempfile.gettempdir())
        if self.run_as_root and not _traversable_by_others(base):
            base = Path("/tmp")  # the postgres user must reach the folder
        self.root = Path(tempfile.mkdtemp(prefix="genaug-pg-", dir=base))
        owner = os.getpid()
        # A safety net (the session fixture stops it first); never from a forked child.
        atexit.register(lambda: os.getpid() == owner and self.stop())
        try:
            self.socket_dir.mkdir()
            if self.run_as_root:
                for path in (self.root, self.socket_dir):
                    shutil.chown(path, SERVER_USER, SERVER_USER)
            done = self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                             "--encoding=UTF8", "--locale=C", "--no-sync")
            if done.returncode != 0:
                raise PostgresUnavailable(f"initdb failed (exit {done.returncode}):\n{done.stdout}")
            self._start_on_a_free_port()
        except (OSError, subprocess.SubprocessError) as error:
            self.stop()
            raise PostgresUnavailable(f"could not run the server binaries in {self.bin_dir}: {error}") from error
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_a_free_port(self, attempts: int = 3) -> None:
        conf = self.data_dir / "postgresql.conf"
        original = conf.read_text()
        for attempt in range(attempts):
            self.port = _free_port()
            # Rewritten from the original each attempt: the last "port" line wins anyway.
            conf.write_text(original + SETTINGS.format(port=self.port, socket_dir=self.socket_dir.as_posix()))
            done = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                             "-t", str(START_TIMEOUT_S), "start")
            if done.returncode == 0:
                return
            log = self._log_tail()
            # Another process took the port between our probe and the server's bind: try another.
            if "could not bind" in log or "already in use" in log:
                continue
            break
        raise PostgresUnavailable(f"pg_ctl start failed (exit {done.returncode}):\n{done.stdout}\n"
                                  f"server log ({self.log_file}):\n{log}")

    def stop(self) -> None:
        """Stop the server (immediate mode) and remove its folder; safe to call twice."""
        if self._background is not None:
            self._background.shutdown(wait=True, cancel_futures=True)
            self._background, self._next = None, None
        for connection in (self._admin, self._background_admin):
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    pass
        self._admin = self._background_admin = None
        if self.root is None:
            return
        root, self.root = self.root, None
        if (root / "data" / "postmaster.pid").exists():
            self.root = root  # _run and data_dir need it
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
            except (OSError, subprocess.SubprocessError):
                pass
            self.root = None
        shutil.rmtree(root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------
    def _connect(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                               autocommit=True, connect_timeout=30)

    def admin(self):
        """An autocommit connection to the ``postgres`` database (kept open)."""
        if self._admin is None or self._admin.closed:
            self._admin = self._connect()
        return self._admin

    def _execute(self, sql: str, connection: Callable[[], Any]) -> None:
        """Run ``sql`` on ``connection()``; a lost connection is reopened and the statement retried."""
        import psycopg

        for attempt in range(3):
            try:
                connection().execute(sql)
                return
            except psycopg.OperationalError:  # the connection is closed now: the next call reopens it
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def create_database(self, connection: Optional[Callable[[], Any]] = None) -> str:
        """Create an empty database ``t_<random>`` and return its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._execute(f'CREATE DATABASE "{name}"', connection or self.admin)
        return name

    def drop_database(self, name: str, connection: Optional[Callable[[], Any]] = None) -> None:
        """Drop ``name``, disconnecting whatever still uses it (leaked engines, killed children)."""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', connection or self.admin)

    # -- databases, created one ahead in a background thread ---------------------------
    def _in_background(self, work, *args) -> concurrent.futures.Future:
        if self._background is None:
            self._background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="genaug-test-pg")
        return self._background.submit(work, *args)

    def _background_connection(self):
        # Runs on the background thread only: the connection is that thread's alone.
        if self._background_admin is None or self._background_admin.closed:
            self._background_admin = self._connect()
        return self._background_admin

    def _create_in_background(self) -> str:
        return self.create_database(self._background_connection)

    def _drop_in_background(self, name: str) -> None:
        self.drop_database(name, self._background_connection)

    def take_database(self) -> str:
        """A fresh empty database (created ahead of time when possible); start the next one."""
        for drop in [d for d in self._drops if d.done()]:
            self._drops.remove(drop)
            drop.result()  # raises what a background drop raised
        upcoming = self._next or self._in_background(self._create_in_background)
        self._next = None
        name = upcoming.result(timeout=120)
        self._next = self._in_background(self._create_in_background)
        return name

    def release_database(self, name: str, wait: bool = False) -> None:
        """Drop a database from ``take_database`` (in the background unless ``wait``).

        Drops and creations run in order on one thread, so a drop always happens before the
        server stops; errors of a background drop surface at the next ``take_database``.
        """
        future = self._in_background(self._drop_in_background, name)
        if wait:
            future.result(timeout=120)
        else:
            self._drops.append(future)

