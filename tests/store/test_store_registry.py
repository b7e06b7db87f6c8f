"""The registry on a real database: rows, names, reuse rules, JSON, cleanup.

The SQLite file by default; a fresh PostgreSQL database when GENAUG_TEST_DATABASE=postgresql.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from genaug.store import (
    ModelBusyError,
    ModelExistsError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelRow,
    Registry,
    validate_name,
)

SUMMARY = {"counts": {"a": 3, "b": 1}, "image_shape": [8, 8, 1], "source": "/data/blümen"}


@pytest.fixture
def registry(home):
    with Registry.open(home) as registry:
        yield registry


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def set_owner(registry: Registry, model_id: str, **values) -> None:
    with registry.session() as session:
        row = session.get(ModelRow, model_id)
        for key, value in values.items():
            setattr(row, key, value)


def make_folders(home: Path, model_id: str) -> list[Path]:
    folders = [home / "models" / model_id, home / "models" / f".tmp-{model_id}-0123abcd"]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "weights.safetensors").write_bytes(b"x")
    return folders


def test_crud_and_json_round_trip(home, registry):
    config = {"steps": 3, "betas": [0.9, 0.99], "nested": {"flag": True, "none": None}}
    row = registry.begin_training("m1", "test_tiny", config, "f" * 64, SUMMARY)
    assert row.status == "training" and row.owner_pid == os.getpid() and row.owner_host == socket.gethostname()
    assert row.class_names == ["a", "b"]
    assert registry.list(status="ready") == []
    folder = make_folders(home, row.id)[0]
    registry.mark_ready(row.id, f"models/{row.id}",
                        {"loss": np.float32(0.25), "bad": float("nan"), "per_class": np.array([1, 2])})
    registry.close()

    with Registry.open(home) as reopened:
        got = reopened.get("m1")
        assert reopened.get(row.id).name == "m1"
        assert (got.status, got.kind, got.config, got.data_summary) == ("ready", "test_tiny", config, SUMMARY)
        assert got.metrics == {"loss": 0.25, "bad": None, "per_class": [1, 2]}
        assert got.data_fingerprint == "f" * 64 and got.artifact_dir == f"models/{row.id}"
        assert got.created_at is not None and got.updated_at >= got.created_at
        assert [r.name for r in reopened.list(status="ready")] == ["m1"]
        assert reopened.artifact_path(got) == folder

        reopened.delete("m1")
        assert not folder.exists()
        with pytest.raises(ModelNotFoundError, match="no model named 'm1'"):
            reopened.get("m1")
        assert reopened.list() == []


def test_list_filters_by_status(registry):
    ready = registry.begin_training("r", "k", {}, None, SUMMARY)
    registry.mark_ready(ready.id, f"models/{ready.id}", {})
    failed = registry.begin_training("f", "k", {}, None, SUMMARY)
    registry.mark_failed(failed.id, "boom")
    registry.begin_training("t", "k", {}, None, SUMMARY)
    assert [r.name for r in registry.list(status="ready")] == ["r"]
    assert [r.name for r in registry.list(status="failed")] == ["f"]
    assert sorted(r.name for r in registry.list()) == ["f", "r", "t"]
    assert registry.get("f").error == "boom"
    with pytest.raises(ValueError, match="status: 'bogus'"):
        registry.list(status="bogus")


@pytest.mark.parametrize("name", ["../x", "", "a" * 65, "a/b", "a\\b", ".hidden", "-x", "a b", "a\n", "/abs", "ü"])
def test_invalid_names_are_refused(registry, name):
    with pytest.raises(ValueError, match="model name"):
        registry.begin_training(name, "k", {}, None, SUMMARY)
    assert registry.list() == []


@pytest.mark.parametrize("name", ["a", "a" * 64, "my-model_1.0", "7x"])
def test_valid_names(name):
    assert validate_name(name) == name


def test_ready_name_is_taken_unless_replaced(home, registry):
    old = registry.begin_training("m", "k", {}, None, SUMMARY)
    old_folder = make_folders(home, old.id)[0]
    registry.mark_ready(old.id, f"models/{old.id}", {})
    with pytest.raises(ModelExistsError, match="model m already exists"):
        registry.begin_training("m", "k", {}, None, SUMMARY)
    new = registry.begin_training("m", "k", {}, None, SUMMARY, replace=True)
    assert new.id != old.id and registry.get("m").id == new.id
    assert not old_folder.exists()


def test_live_training_blocks_the_name(registry):
    registry.begin_training("m", "k", {}, None, SUMMARY)  # owned by this (live) process
    with pytest.raises(ModelBusyError, match=f"m is being trained by pid {os.getpid()}"):
        registry.begin_training("m", "k", {}, None, SUMMARY)
    with pytest.raises(ModelBusyError, match="is being trained"):
        registry.begin_training("m", "k", {}, None, SUMMARY, replace=True)


def test_training_on_another_host_counts_as_alive(registry):
    row = registry.begin_training("m", "k", {}, None, SUMMARY)
    set_owner(registry, row.id, owner_host="elsewhere.example", owner_pid=dead_pid())
    with pytest.raises(ModelBusyError, match="on host elsewhere.example"):
        registry.begin_training("m", "k", {}, None, SUMMARY)


def test_dead_owner_row_and_its_folders_are_replaced(home, registry):
    old = registry.begin_training("m", "k", {}, None, SUMMARY)
    set_owner(registry, old.id, owner_pid=dead_pid())
    folders = make_folders(home, old.id)
    new = registry.begin_training("m", "k", {}, None, SUMMARY)
    assert new.id != old.id and new.status == "training"
    assert registry.find(old.id) is None
    assert not any(folder.exists() for folder in folders)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times need /proc")
def test_recycled_pid_does_not_keep_a_dead_training_alive(registry):
    old = registry.begin_training("m", "k", {}, None, SUMMARY)
    # Same pid as a live process (ours), but a different process start: the owner is gone.
    set_owner(registry, old.id, owner_started="another-boot:12345")
    assert registry.begin_training("m", "k", {}, None, SUMMARY).id != old.id


def test_failed_row_is_replaced(home, registry):
    old = registry.begin_training("m", "k", {}, None, SUMMARY)
    folders = make_folders(home, old.id)
    registry.mark_failed(old.id, "RuntimeError: out of memory")
    new = registry.begin_training("m", "k", {}, None, SUMMARY)
    assert new.id != old.id and not any(folder.exists() for folder in folders)


def test_finishing_is_guarded_by_status(registry):
    row = registry.begin_training("m", "k", {}, None, SUMMARY)
    registry.mark_failed(row.id, "boom")
    with pytest.raises(ModelNotReadyError, match="model m is failed, not training"):
        registry.mark_ready(row.id, f"models/{row.id}", {})
    assert registry.mark_failed(row.id, "again") is None
    with pytest.raises(ModelNotFoundError, match="no longer exists"):
        registry.mark_ready("00000000-0000-0000-0000-000000000000", "models/x", {})


def test_an_error_text_with_nul_characters_still_fails_the_row(registry, database_url):
    # PostgreSQL text cannot hold NUL; the row must leave "training" all the same.
    row = registry.begin_training("m", "k", {"path": "a\x00b"}, None, SUMMARY)
    assert registry.mark_failed(row.id, "ValueError: bad byte \x00 in x.png").status == "failed"
    expected = "ValueError: bad byte \x00 in x.png" if database_url is None else "ValueError: bad byte \\x00 in x.png"
    assert registry.get("m").error == expected
    assert registry.get("m").config == {"path": "a\x00b"}  # JSON keeps it (escaped as \u0000)


def test_delete_refuses_a_live_training_unless_forced(home, registry):
    row = registry.begin_training("m", "k", {}, None, SUMMARY)
    with pytest.raises(ModelBusyError, match="stop it first"):
        registry.delete("m")
    registry.delete("m", force=True)
    assert registry.find("m") is None
    with pytest.raises(ModelNotFoundError):
        registry.delete("m")


def test_cleanup_fails_dead_trainings_and_removes_stale_folders(home, registry):
    dead = registry.begin_training("dead", "k", {}, None, SUMMARY)
    set_owner(registry, dead.id, owner_pid=dead_pid())
    dead_folders = make_folders(home, dead.id)
    live = registry.begin_training("live", "k", {}, None, SUMMARY)
    live_tmp = make_folders(home, live.id)[1]
    ready = registry.begin_training("ready", "k", {}, None, SUMMARY)
    ready_folder = make_folders(home, ready.id)[0]
    registry.mark_ready(ready.id, f"models/{ready.id}", {})
    orphan = home / "models" / "11111111-2222-3333-4444-555555555555"
    orphan.mkdir()

    report = registry.cleanup()

    assert report["failed"] == ["dead"]
    assert registry.get("dead").status == "failed" and "ended without finishing" in registry.get("dead").error
    assert not any(folder.exists() for folder in dead_folders) and not orphan.exists()
    assert live_tmp.exists() and ready_folder.exists()
    assert sorted(report["removed"]) == sorted([f.name for f in dead_folders] + [orphan.name])


@pytest.mark.sqlite_only
def test_sqlite_uses_wal_and_a_busy_timeout(registry):
    with registry.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_database_url_from_the_environment(home, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere" / "team.db"
    other.parent.mkdir()
    monkeypatch.setenv("GENAUG_DATABASE_URL", f"sqlite:///{other}")
    with Registry.open(home) as registry:
        registry.begin_training("m", "k", {}, None, SUMMARY)
    assert other.exists() and not (home / "registry.db").exists()


def test_schema_compiles_for_postgresql():
    ddl = str(CreateTable(ModelRow.__table__).compile(dialect=postgresql.dialect()))
    assert "CREATE TABLE models" in ddl and "JSON" in ddl and "TIMESTAMP WITH TIME ZONE" in ddl
