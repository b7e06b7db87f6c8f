"""The benchmark scripts end to end at their --quick budgets: they run, resume from their caches, and
report from the cache alone (the flowers report merges every cached cell, so a run of one scenario never
drops another scenario's results)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]  # no database involved: once is enough


def run_bench(script: str, tmp_path: Path, *args: str) -> str:
    """Run bench/<script> --quick with its cache and results under tmp_path; returns its log."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick", "--cache", str(tmp_path / "cache"),
                           "--out", str(tmp_path / "out"), *args], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def run_flowers(tmp_path: Path, *args: str) -> str:
    return run_bench("flowers.py", tmp_path, *args)


def test_flowers_quick_resumes_and_reports_every_cached_scenario(tmp_path):
    first = run_flowers(tmp_path, "--scenarios", "2")
    assert "fit dcgan" in first and "fit ddim" in first
    report = json.loads((tmp_path / "out" / "flowers_quick.json").read_text())
    arms = [r["arm"] for r in report["summary"]]
    assert arms[:2] == ["real", "real+classic"]
    assert {"mixed[dcgan]", "balanced+classic[ddim-img2img-0.6]", "synthetic[ddim]"} <= set(arms)
    assert all(r["scenario"] == 2 and r["seeds"] == [0] for r in report["summary"])
    md = (tmp_path / "out" / "flowers_quick.md").read_text()
    assert "## Targets (issue 3)" in md and "Scenario 2 (seeds 0)" in md
    assert (tmp_path / "out" / "flowers_figures" / "s2-seed0-dcgan.png").exists()

    # The same command again computes nothing: every generator and every cell comes from the cache.
    again = run_flowers(tmp_path, "--scenarios", "2")
    assert "fit " not in again and "training images)" not in again
    assert json.loads((tmp_path / "out" / "flowers_quick.json").read_text())["summary"] == report["summary"]

    # A cell computed under other generator budgets is not reused: it is recomputed (from the
    # cached samples, no refit) and everything else still comes from the cache.
    stale = tmp_path / "cache" / "flowers_quick" / "s2-seed0" / "cells" / "mixed[dcgan]-20.json"
    cell = json.loads(stale.read_text())
    assert cell["generator_budget"]
    stale.write_text(json.dumps({**cell, "generator_budget": "an-old-budget"}))
    redo = run_flowers(tmp_path, "--scenarios", "2")
    assert "fit " not in redo
    assert re.findall(r"scenario 2 seed 0: (\S+) \(\d+ training images\)", redo) == ["mixed[dcgan]"]
    assert json.loads(stale.read_text())["generator_budget"] == cell["generator_budget"]

    # A report-only run (no scenario computed) still lists scenario 2 from the cache.
    only = run_flowers(tmp_path, "--report-only")
    assert "fit " not in only
    rebuilt = json.loads((tmp_path / "out" / "flowers_quick.json").read_text())
    assert rebuilt["summary"] == report["summary"]

    # A fresh clone has no cache, only the committed results file: its cells go back into the
    # cache and the same command neither refits a generator nor retrains a classifier.
    shutil.rmtree(tmp_path / "cache")
    results = tmp_path / "results.json"
    shutil.copy(tmp_path / "out" / "flowers_quick.json", results)
    fresh = run_flowers(tmp_path, "--scenarios", "2", "--restore-from", str(results))
    assert "restored" in fresh and "fit " not in fresh and "training images)" not in fresh
    assert json.loads((tmp_path / "out" / "flowers_quick.json").read_text())["summary"] == report["summary"]


def test_mnist_quick_reports_the_diffusion_target_and_cached_only_recomputes_nothing(tmp_path):
    first = run_bench("mnist_fewshot.py", tmp_path)
    assert "fit ddim-pool" in first and "fit dcgan" in first
    report = json.loads((tmp_path / "out" / "mnist_quick.json").read_text())
    arms = {r["arm"] for r in report["summary"]}
    assert {"real", "real+classic", "real+synthetic+classic[ddim-pool/img2img0.7,20]",
            "real+synthetic[dcgan/default,20]", "real+synthetic+classic[vae-single/noise,50]"} <= arms
    md = (tmp_path / "out" / "mnist_quick.md").read_text()
    section = md.split("## Diffusion against the VAE")[1].split("##")[0]
    assert "n=2 (seeds 0): best diffusion arm" in section and "target" in section

    only = run_bench("mnist_fewshot.py", tmp_path, "--cached-only")
    computed = [line for line in only.splitlines() if re.search(r"\] +\d+/\d+ n=\d+ seed=", line)]
    assert computed == [], computed
    assert json.loads((tmp_path / "out" / "mnist_quick.json").read_text())["summary"] == report["summary"]

    # Without the cache (a fresh clone), the results file alone brings every cell back.
    shutil.rmtree(tmp_path / "cache")
    results = tmp_path / "results.json"
    shutil.copy(tmp_path / "out" / "mnist_quick.json", results)
    fresh = run_bench("mnist_fewshot.py", tmp_path, "--cached-only", "--restore-from", str(results))
    assert "restored" in fresh
    assert json.loads((tmp_path / "out" / "mnist_quick.json").read_text())["summary"] == report["summary"]
