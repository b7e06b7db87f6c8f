"""The test harness itself: the throwaway PostgreSQL server, per-test databases, and the CI rule
that a test needing chromium or PostgreSQL is never skipped in CI (tests/_external.py)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _external import names_external_requirement, require_or_skip
from _postgres import DATABASE_AGNOSTIC_SKIP_REASON, NO_DATABASE_SKIP_REASON, SQLITE_ONLY_SKIP_REASON
from sqlalchemy import create_engine, text

from genaug.store import Registry

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def run_pytest(args: list[str], cwd: Path, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    """pytest in a subprocess (its own session, its own hooks), output captured."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def outcome_counts(output: str) -> dict[str, int]:
    """``{"failed": 2, "skipped": 1, ...}`` from pytest's last summary line."""
    summary = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


# -- require_or_skip and the CI rule -------------------------------------------------

def test_require_or_skip_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("GENAUG_CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not available: not on PATH"):
        require_or_skip("chromium", "not on PATH")
    monkeypatch.setenv("GENAUG_CI", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium is not available: not on PATH.*GENAUG_CI=1"):
        require_or_skip("chromium", "not on PATH")


@pytest.mark.parametrize("reason, external", [
    ("chromium not installed", True), ("needs Chromium", True), ("no PostgreSQL server", True),
    ("postgres binaries missing", True), ("could not import 'playwright'", True),
    ("needs a GPU", False), ("process start times need /proc", False), ("", False)])
def test_which_skip_reasons_name_an_external_requirement(reason, external):
    assert names_external_requirement(reason) is external


def test_sqlite_only_skips_do_not_fail_ci():
    assert not names_external_requirement(SQLITE_ONLY_SKIP_REASON)
    assert not names_external_requirement(DATABASE_AGNOSTIC_SKIP_REASON)
    assert not names_external_requirement(NO_DATABASE_SKIP_REASON)


INNER_CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from _external import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401
"""
INNER_TESTS = """
import pytest
from _external import require_or_skip

def test_skips_for_chromium():
    pytest.skip("chromium is not installed")

@pytest.mark.skip(reason="no PostgreSQL server here")
def test_marked_skip_for_postgresql():
    pass

def test_require_or_skip():
    require_or_skip("chromium", "not on PATH")

def test_skips_for_something_else():
    pytest.skip("needs a GPU")

@pytest.mark.xfail(reason="chromium renders this wrong", run=True, strict=False)
def test_xfail_is_left_alone():
    assert False

def test_passes():
    pass
"""
INNER_MODULE_SKIP = """
import pytest
pytest.skip("chromium is missing", allow_module_level=True)

def test_never_runs():
    pass
"""


@pytest.fixture
def inner_project(tmp_path) -> Path:
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    (tmp_path / "test_module_skip.py").write_text(textwrap.dedent(INNER_MODULE_SKIP))
    return tmp_path


def test_ci_turns_skips_for_chromium_or_postgresql_into_failures(inner_project):
    env = {k: v for k, v in os.environ.items() if k != "GENAUG_CI"}
    args = ["-q", "-rA", "--continue-on-collection-errors", "-o", "addopts="]

    local = run_pytest(args, inner_project, env)
    assert local.returncode == 0, local.stdout + local.stderr
    assert outcome_counts(local.stdout) == {"passed": 1, "skipped": 5, "xfailed": 1}, local.stdout

    ci = run_pytest(args, inner_project, {**env, "GENAUG_CI": "1"})
    assert ci.returncode == 1, ci.stdout + ci.stderr
    # chromium skip and require_or_skip fail; the marker skip errors in setup; the module-level
    # skip becomes a collection error; a skip for anything else and an xfail stay as they are.
    assert outcome_counts(ci.stdout) == {"failed": 2, "passed": 1, "skipped": 1, "xfailed": 1, "errors": 2}, \
        ci.stdout
    for name in ("test_skips_for_chromium", "test_marked_skip_for_postgresql", "test_require_or_skip"):
        assert re.search(rf"(FAILED|ERROR) test_inner.py::{name}\b", ci.stdout), ci.stdout
    assert "ERROR test_module_skip.py" in ci.stdout and "SKIPPED" in ci.stdout
    assert "GENAUG_CI=1: a test needing an external requirement was skipped" in ci.stdout


# -- the PostgreSQL server and the per-test databases ---------------------------------------

def test_the_throwaway_server(postgres_server):
    settings = ("listen_addresses", "port", "fsync", "server_encoding", "unix_socket_directories")
    admin = postgres_server.admin()
    shown = {name: admin.execute(f"SHOW {name}").fetchone()[0] for name in settings}
    assert shown["listen_addresses"] == "127.0.0.1" and int(shown["port"]) == postgres_server.port
    assert shown["fsync"] == "off" and shown["server_encoding"] == "UTF8"
    assert Path(shown["unix_socket_directories"]).parent == postgres_server.root

    name = postgres_server.create_database()
    engine = create_engine(postgres_server.url(name))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == name
    finally:
        engine.dispose()
    postgres_server.drop_database(name)
    assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0


def test_every_test_has_its_database(database_url, tmp_path):
    assert os.environ.get("GENAUG_DATABASE_URL") == database_url
    with Registry.open(tmp_path / "home") as registry:
        expected = "sqlite" if database_url is None else "postgresql"
        assert registry.engine.dialect.name == expected
        assert registry.list() == []  # fresh: nothing left from other tests
        registry.begin_training("leftover", "k", {}, None, {})
    if database_url is None:
        assert (tmp_path / "home" / "registry.db").exists()
    else:
        assert database_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert not (tmp_path / "home" / "registry.db").exists()


def _suite_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GENAUG_CI", "GENAUG_DATABASE_URL")}
    return {**env, "GENAUG_TEST_DATABASE": "postgresql", **extra}


def test_postgresql_run_fails_without_server_binaries(tmp_path):
    done = run_pytest(["-q", "tests/test_filters.py"], REPO, _suite_env(GENAUG_TEST_PG_BIN=str(tmp_path / "none")))
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "GENAUG_TEST_DATABASE=postgresql, but the PostgreSQL server binaries" in done.stderr


@pytest.mark.database_agnostic  # it starts its own inner run; the outer run's database adds nothing
@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadscope"]], ids=["one-process", "xdist"])
def test_postgresql_run_fails_when_the_server_does_not_start(tmp_path, workers):
    """In one process and as `make test` runs it (two xdist workers): every test that needs the
    server errors with the reason, and the run fails (not an xdist crash that hides the reason)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for binary in ("initdb", "pg_ctl", "postgres"):
        (fake / binary).write_text("#!/bin/sh\necho 'fake server binary refuses' >&2\nexit 1\n")
        (fake / binary).chmod(0o755)
    done = run_pytest(["-q", *workers, "tests/test_test_harness.py::test_every_test_has_its_database",
                       "tests/test_test_harness.py::test_the_throwaway_server"], REPO,
                      _suite_env(GENAUG_TEST_PG_BIN=str(fake)))
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "could not start the test PostgreSQL server" in output
    assert "2 errors" in output and "passed" not in output and "INTERNALERROR" not in output, output


# -- no_database: run once, and only when it really never opens the registry ----------------

INNER_ROOT_CONFTEST = f"""
import importlib.util
import sys

sys.path.insert(0, {str(TESTS)!r})
spec = importlib.util.spec_from_file_location("genaug_root_conftest", {str(TESTS / "conftest.py")!r})
root = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root)
globals().update({{k: v for k, v in vars(root).items() if not k.startswith("__")}})
"""
INNER_NO_DATABASE = """
import pytest
from genaug.store import Registry

@pytest.mark.no_database
def test_marked_but_opens_the_registry(tmp_path):
    Registry.open(tmp_path)

@pytest.mark.no_database
def test_marked_and_never_opens_it():
    pass

def test_unmarked_opens_it(tmp_path):
    Registry.open(tmp_path)
"""


@pytest.mark.database_agnostic  # it starts its own inner run; the outer run's database adds nothing
def test_a_no_database_test_that_opens_the_registry_fails(tmp_path):
    (tmp_path / "conftest.py").write_text(INNER_ROOT_CONFTEST)
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_NO_DATABASE))
    env = {k: v for k, v in os.environ.items() if k not in ("GENAUG_CI", "GENAUG_TEST_DATABASE")}
    done = run_pytest(["-q", "-rA", "-o", "addopts=", "-p", "no:randomly"], tmp_path, env)
    counts = outcome_counts(done.stdout)
    counts.pop("warnings", None)  # the inner project does not register the markers
    # The offending test's own body passes; the guard fails it at teardown (an error).
    assert counts == {"passed": 3, "error": 1}, done.stdout + done.stderr
    assert re.search(r"ERROR test_inner.py::test_marked_but_opens_the_registry\b", done.stdout), done.stdout
    assert "marked no_database but opened the registry database" in done.stdout
    # Its skip in the PostgreSQL run is not one that CI turns into a failure.
    assert not names_external_requirement(NO_DATABASE_SKIP_REASON)
