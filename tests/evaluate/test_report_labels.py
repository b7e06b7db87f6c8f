"""Labels with markdown or path characters in an evaluation report: the verdict table keeps its
columns, and every file the report writes has a name the service serves (issue 13)."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from genaug.evaluate import write_report
from genaug.evaluate.report import markdown_table, safe_file_name, summarise, table_cell
from genaug.service.routes_jobs import SAFE_FILE

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

# A generator label a user may type: a pipe, a slash, a space and a non-ASCII letter.
LABEL = "vae|big ü/x"


def _cells(arm: str, score: float, **extra) -> list[dict]:
    return [{"n": 3, "seed": seed, "arm": arm, "accuracy": score + 0.01 * seed, "weighted_f1": score + 0.01 * seed,
             **extra} for seed in (0, 1)]


def _result() -> dict:
    counts = {"samples_per_class": {"0": 4, "1": 4}}
    samples = SimpleNamespace(data=np.zeros((8, 8, 8, 1), np.uint8), labels=np.repeat(np.arange(2), 4),
                              class_names=["a|b", "c"])
    cells = (_cells("real", 0.6) + _cells("real+classic", 0.65)
             + _cells(f"real+synthetic[{LABEL}/default]", 0.7, **counts)
             + _cells("real+synthetic[vae_big___x/default]", 0.7, **counts))
    return {"protocol": {"metric": "weighted_f1"}, "class_names": ["a|b", "c"], "cells": cells, "data_kind": "images",
            "samples": {f"{LABEL}/default": (samples, None), "vae_big___x/default": (samples, None)}}


def _cells_of(line: str) -> list[str]:
    """A markdown table row's cells, split at unescaped pipes (as GitHub-flavoured markdown does)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def test_a_pipe_in_a_label_keeps_the_table_rows_whole_and_the_file_names_servable(tmp_path):
    result = _result()
    rows = summarise(result)
    table = markdown_table(rows).splitlines()
    width = len(_cells_of(table[0]))
    assert width == 8
    assert all(len(_cells_of(line)) == width for line in table), table
    labelled = [line for line in table if "vae\\|big" in line]
    assert len(labelled) == 1 and "vae|big" not in labelled[0].replace("\\|", "")
    assert _cells_of(labelled[0])[1].replace("\\|", "|").endswith(f"(`real+synthetic[{LABEL}/default]`)")

    written = write_report(result, tmp_path / "report")
    markdown = (tmp_path / "report" / "results.md").read_text()
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_lines) == len(rows) + 2
    assert all(len(_cells_of(line)) == width for line in table_lines), table_lines
    # One plot per label, each with a plain, distinct name that is written and that the service serves.
    assert len(written["grids"]) == 2 and len(set(written["grids"])) == 2, written["grids"]
    assert written["grids"][0] == "samples_vae_big___x_default.png"
    files = sorted(p.name for p in (tmp_path / "report").iterdir())  # what the job lists in `files`
    assert set(written["grids"]) <= set(files)
    for name in files:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and SAFE_FILE.fullmatch(name), name
    for grid in written["grids"]:
        assert f"![{grid}]({grid})" in markdown


def test_table_cells_and_file_names():
    assert table_cell("a|b\nc") == "a\\|b c"
    assert safe_file_name("samples_a|b/c d", ".png") == "samples_a_b_c_d.png"
    assert safe_file_name("|x", ".png") == "f_x.png"
    taken = {"samples_a_b.png"}
    assert safe_file_name("samples_a|b", ".png", taken) == "samples_a_b_2.png"
    assert "samples_a_b_2.png" in taken
