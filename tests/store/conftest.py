"""Fixtures of the store tests: a fresh GENAUG_HOME with a real SQLite registry per test."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tiny test generator lives beside these tests; import it as "_tiny_generator" everywhere.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty GENAUG_HOME (also set in the environment), with no database URL override."""
    path = tmp_path / "home"
    monkeypatch.setenv("GENAUG_HOME", str(path))
    monkeypatch.delenv("GENAUG_DATABASE_URL", raising=False)
    return path
