"""Fixtures for the ingest tests: temporary folders of real image files (see _sample_files)."""
from __future__ import annotations

import pytest
from _sample_files import MessyFolder, build_messy_folder


@pytest.fixture()
def messy_folder(tmp_path) -> MessyFolder:
    """A fresh messy folder per test (building it takes a few milliseconds)."""
    return build_messy_folder(tmp_path / "messy")
