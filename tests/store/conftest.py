"""Fixtures of the store tests: a fresh GENAUG_HOME with a real registry per test.

The registry database is the test's (see ``database_url`` in tests/conftest.py): the SQLite
file ``<home>/registry.db``, or a fresh PostgreSQL database when GENAUG_TEST_DATABASE=postgresql.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tiny test generator lives beside these tests; import it as "_tiny_generator" everywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def home(tmp_path, monkeypatch, database_url) -> Path:
    """An empty GENAUG_HOME (also set in the environment); the database is ``database_url``'s."""
    path = tmp_path / "home"
    monkeypatch.setenv("GENAUG_HOME", str(path))
    return path
