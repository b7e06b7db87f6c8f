"""DESIGN.md's import arrows hold: ``lint-imports`` checks the layers contract in pyproject.toml."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import genaug

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[1]
SOURCES = Path(genaug.__file__).resolve().parent


def _lint_imports(sources: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``genaug`` package in ``sources`` (whatever is installed)."""
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert executable, "lint-imports is missing: pip install -e '.[dev]' installs import-linter"
    env = {**os.environ, "PYTHONPATH": str(sources.parent)}
    return subprocess.run([executable, "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def test_imports_point_down_the_flow():
    result = _lint_imports(SOURCES, ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_the_check_catches_an_upward_import(tmp_path):
    """The contract is not vacuous: a generator module that imports the service breaks it."""
    copy = tmp_path / "src" / "genaug"
    shutil.copytree(SOURCES, copy, ignore=shutil.ignore_patterns("__pycache__", "web"))
    (copy / "generators" / "upward.py").write_text("from ..service import app  # noqa: F401\n")
    result = _lint_imports(copy, tmp_path)
    assert result.returncode != 0
    assert "genaug.generators is not allowed to import genaug.service" in result.stdout
    assert "genaug.generators.upward -> genaug.service.app" in result.stdout
