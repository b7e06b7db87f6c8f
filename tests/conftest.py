"""Test-wide settings: offline, one torch thread (small models; tests run beside each other).

The registry database of every test
------------------------------------
By default every test uses the SQLite file ``$GENAUG_HOME/registry.db`` (``GENAUG_DATABASE_URL``
is removed from the environment for each test, so a developer's own setting never leaks in).

With ``GENAUG_TEST_DATABASE=postgresql`` each session starts one throwaway PostgreSQL server
(see ``_postgres.py``; under ``make test``'s two xdist workers, each worker is a session with
a server of its own) and every test gets a fresh, empty database on it: ``GENAUG_DATABASE_URL``
names it (set with monkeypatch, so subprocesses a test starts inherit it) and it is dropped
after the test. Tests marked ``sqlite_only`` are skipped in that run. If the server cannot be
started there, every test that needs it errors with the reason -- the run never quietly falls
back to SQLite.

``database_agnostic``: a module whose subject is not the registry (web UI pages, quality numbers,
filters, the evaluation runner) and whose registry calls -- train, list, load, generate -- are the
ones the store, service and CLI tests make on both databases runs in the SQLite run only (it keeps ``make test``
within its time budget). Not for anything about jobs, claims, restarts or concurrency.

``no_database``: a module or test that never opens the registry runs in the SQLite run only. The
guard records every engine created while the test body and its function-scoped fixtures run, in
this process; it does not see module- or session-scoped fixtures (they run before it) or
subprocesses, so mark only code that starts neither with the registry.

Fixtures: ``database_url`` (autouse) is the test's database URL: the PostgreSQL URL, or None in
the SQLite run (meaning: the default SQLite file under ``$GENAUG_HOME``). A module whose
module-scoped fixtures fill the registry overrides it with one database for the whole module::

    @pytest.fixture(scope="module")
    def database_url(module_database_url):
        return module_database_url

(and its module-scoped fixtures ask for ``database_url`` so they run after it). Fixtures and
tests must not remove ``GENAUG_DATABASE_URL`` themselves, or the PostgreSQL run would quietly
test SQLite; a subprocess inherits it from ``os.environ``.

``postgres_server`` is the session's server; a test may ask for it in the SQLite run too,
where a missing PostgreSQL skips the test locally and fails it in CI (``GENAUG_CI=1``, see
``_external.py``).
"""
import os
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GENAUG_NO_PLUGINS", "1")
# No quality card after every test training (seconds each): the tests whose subject it is ask for
# one (api.train(quality_samples=...), or the service's GENAUG_QUALITY_SAMPLES).
os.environ["GENAUG_QUALITY_SAMPLES"] = "0"

import pytest  # noqa: E402
import torch  # noqa: E402
from _external import pytest_make_collect_report, pytest_runtest_makereport, require_or_skip  # noqa: E402,F401
from _postgres import DATABASE_AGNOSTIC_SKIP_REASON, NO_DATABASE_SKIP_REASON, SQLITE_ONLY_SKIP_REASON, PostgresServer, PostgresUnavailable, find_bin_dir  # noqa: E402

torch.set_num_threads(1)

TEST_DATABASES = ("sqlite", "postgresql")


def test_database() -> str:
    """The database this run tests against: ``$GENAUG_TEST_DATABASE`` (sqlite by default)."""
    return (os.environ.get("GENAUG_TEST_DATABASE") or "sqlite").strip().lower()


test_database.__test__ = False  # not a test, despite its name


def pytest_configure(config):
    chosen = test_database()
    if chosen not in TEST_DATABASES:
        raise pytest.UsageError(f"GENAUG_TEST_DATABASE={chosen!r}: use one of {', '.join(TEST_DATABASES)}")
    if chosen == "postgresql" and find_bin_dir() is None:
        raise pytest.UsageError(
            "GENAUG_TEST_DATABASE=postgresql, but the PostgreSQL server binaries (initdb, pg_ctl, postgres) "
            "are not on PATH nor in /usr/lib/postgresql/*/bin. Install them (Debian: apt-get install -y "
            "postgresql), name their folder in GENAUG_TEST_PG_BIN, or run without GENAUG_TEST_DATABASE.")


def pytest_report_header(config):
    return f"genaug test database: {test_database()}"


def pytest_collection_modifyitems(config, items):
    if test_database() == "sqlite":
        return
    skip = pytest.mark.skip(reason=SQLITE_ONLY_SKIP_REASON)
    skip_no_database = pytest.mark.skip(reason=NO_DATABASE_SKIP_REASON)
    skip_agnostic = pytest.mark.skip(reason=DATABASE_AGNOSTIC_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)
        elif item.get_closest_marker("database_agnostic"):
            item.add_marker(skip_agnostic)
        elif item.get_closest_marker("no_database"):
            item.add_marker(skip_no_database)


@pytest.fixture(autouse=True)
def _no_database_guard(request):
    """A test marked ``no_database`` runs once (SQLite run only), so it must really never open the
    registry: every engine it creates in this process is recorded, and one is a failure."""
    if request.node.get_closest_marker("no_database") is None:
        yield
        return
    from genaug.store import registry

    opened = []
    original = registry._create_engine

    def recording(url):
        opened.append(url)
        return original(url)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(registry, "_create_engine", recording)
        yield
    assert not opened, ("this test is marked no_database but opened the registry database; remove the marker "
                        "so that it also runs on PostgreSQL")


@pytest.fixture(scope="session")
def postgres_server():
    """The session's throwaway PostgreSQL server (started on first use, stopped at the end)."""
    required = test_database() == "postgresql"
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as error:
        if required:  # the whole run is meant to test PostgreSQL: every test that needs it errors, loudly
            # pytest.fail, not pytest.exit: under `make test`'s xdist workers an exit inside a worker
            # crashes xdist and hides this message; a failed session fixture is kept and re-raised
            # for every later test that asks for it (each errors at once, with this message).
            pytest.fail(f"GENAUG_TEST_DATABASE=postgresql: could not start the test PostgreSQL server: {error}",
                        pytrace=False)
        require_or_skip("PostgreSQL", str(error))
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def _registry_database(request):
    """A fresh registry database while the block runs: its URL (in ``GENAUG_DATABASE_URL``) or None."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        if test_database() != "postgresql":
            monkeypatch.delenv("GENAUG_DATABASE_URL", raising=False)
            yield None
            return
        server = request.getfixturevalue("postgres_server")
        name = server.take_database()
        url = server.url(name)
        # In os.environ, so subprocesses a test starts use the same database.
        monkeypatch.setenv("GENAUG_DATABASE_URL", url)
        try:
            yield url
        finally:
            server.release_database(name)


@pytest.fixture(autouse=True)
def database_url(request):
    """This test's registry database URL (also in ``GENAUG_DATABASE_URL``), or None for SQLite.

    None means the registry's default, the SQLite file ``$GENAUG_HOME/registry.db``. A module
    whose module-scoped fixtures fill the registry shares one database across its tests instead:
    it overrides this fixture with ``module_database_url`` (see tests/store/test_store_generate.py).
    """
    with _registry_database(request) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(request):
    """One registry database for a whole module; same values as ``database_url``."""
    with _registry_database(request) as url:
        yield url
