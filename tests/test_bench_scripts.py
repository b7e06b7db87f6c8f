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
# No database involved: once is enough. Each test runs a script up to four times; on a machine whose
# cores are busy with a benchmark a run takes many times its idle 1-3 minutes, hence deadlines far
# above pytest's default 600 s (one such test once failed that way, not on an assertion).
SCRIPT_DEADLINE = 1800
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only, pytest.mark.timeout(4 * SCRIPT_DEADLINE)]


def run_bench(script: str, tmp_path: Path, *args: str) -> str:
    """Run bench/<script> --quick with its cache and results under tmp_path; returns its log."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick", "--cache", str(tmp_path / "cache"),
                           "--out", str(tmp_path / "out"), *args], capture_output=True, text=True, env=env, timeout=SCRIPT_DEADLINE)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def run_flowers(tmp_path: Path, *args: str) -> str:
    return run_bench("flowers.py", tmp_path, *args)


def test_flowers_quick_resumes_and_reports_every_cached_scenario(tmp_path):
    first = run_flowers(tmp_path, "--scenarios", "2", "--classifier", "cnn")
    assert "fit dcgan" in first and "fit ddim" in first
    report = json.loads((tmp_path / "out" / "flowers_quick.json").read_text())
    (run,) = report["runs"]
    arms = [r["arm"] for r in run["rows"]]
    assert arms[:2] == ["real", "real+classic"]
    assert {"real+synthetic[dcgan/mixed:dcgan]", "real+synthetic+classic[ddim/balanced:ddim-img2img-0.6]",
            "real+synthetic[ddim/synthetic:ddim]"} <= set(arms)
    rows = {r["arm"]: r for r in run["rows"]}
    # The runner declared it: 20 real tulips replaced by 20 generated ones, the others whole.
    assert "in place of the real ones" in rows["real+synthetic[ddim/synthetic:ddim]"]["plain_name"]
    assert all(r["scenario"] == 2 and r["seeds"] == [0] and 0 <= r["accuracy_low"] <= r["accuracy_high"] <= 1
               for r in run["rows"])
    assert all(r["unused_accuracy"]["mean"] >= 0 for r in run["rows"])  # the unseen tulips are scored
    md = (tmp_path / "out" / "flowers_quick.md").read_text()
    assert "## Targets" in md and "Scenario 2, cnn: real" in md
    # One seed: the report says what that cannot show, as genaug's own report does.
    assert run["warnings"] and all(f"- warning: {w}" in md for w in run["warnings"])
    assert any("seed" in w for w in run["warnings"])

    # The same command again computes nothing: every generator and every cell comes from the cache.
    again = run_flowers(tmp_path, "--scenarios", "2", "--classifier", "cnn")
    assert "fit " not in again
    assert json.loads((tmp_path / "out" / "flowers_quick.json").read_text())["runs"] == report["runs"]

    # A fresh clone has no cache, only the committed results file: its cells go back into the
    # cache and a report-only run rebuilds the same summary.
    shutil.rmtree(tmp_path / "cache")
    results = tmp_path / "out" / "flowers_quick.json"
    fresh = subprocess.run([sys.executable, str(ROOT / "bench" / "flowers.py"), "--quick", "--cache",
                            str(tmp_path / "cache"), "--out", str(tmp_path / "out2"), "--scenarios", "2",
                            "--classifier", "cnn", "--report-only", "--restore-from", str(results)],
                           capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=SCRIPT_DEADLINE)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "restored" in fresh.stdout
    assert json.loads((tmp_path / "out2" / "flowers_quick.json").read_text())["runs"] == report["runs"]


def test_mnist_quick_reports_the_diffusion_target_and_cached_only_recomputes_nothing(tmp_path):
    first = run_bench("mnist_fewshot.py", tmp_path)
    assert "fit ddim-pool" in first and "fit dcgan" in first
    report = json.loads((tmp_path / "out" / "mnist_quick.json").read_text())
    arms = {r["arm"] for r in report["summary"]["cnn"]}
    assert {"real", "real+classic", "real+synthetic+classic[ddim-pool/img2img0.7,20]",
            "real+synthetic[dcgan/default,20]", "real+synthetic+classic[vae-single/noise,50]"} <= arms
    md = (tmp_path / "out" / "mnist_quick.md").read_text()
    section = md.split("Diffusion against the VAE")[1].split("|")[0]
    assert "n=2 (seeds 0): best diffusion arm" in section and "target" in section
    assert "cnn, n=2: best arm" in md
    assert "- warning: " in md and "seed" in md.split("- warning: ")[1].splitlines()[0]  # one seed ran

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

    # --arms holds for the deep arms too (under lite0-linear a +classic cell costs about an hour).
    run_bench("mnist_fewshot.py", tmp_path, "--cached-only", "--arms", "real,real+synthetic")
    narrowed = {r["arm"] for r in json.loads((tmp_path / "out" / "mnist_quick.json").read_text())["summary"]["cnn"]}
    assert {"real+synthetic[dcgan/default,20]", "real+synthetic[vae-single/noise,50]"} <= narrowed
    assert not [arm for arm in narrowed if "classic" in arm], narrowed


def test_mnist_select_quick_checks_its_choice_against_classic_augmentation(tmp_path):
    """`mnist_fewshot.py --select`: the choice per n on validation folds of the training images,
    its test scores beside real and real+classic, the oracle's every candidate, and the target
    check against real+classic in the report."""
    log = run_bench("mnist_fewshot.py", tmp_path, "--select", "--select-grid", "quick+pool")
    assert "search fold 2/2" in log and "final run at n=2" in log
    report = json.loads((tmp_path / "out" / "mnist_quick_select_quick+pool.json").read_text())
    (run,) = report["runs"]
    (choice,) = run["choices"]
    assert choice["n"] == 2 and run["cost"]["validation_examples"] >= 1990  # a 2,000-image stratified pool
    assert {"real", "real+classic", choice["arm"]} == {r["arm"] for r in run["final_summary"]}
    oracle_arms = {r["arm"] for r in run["oracle_summary"]}
    assert "real+classic" in oracle_arms and len(oracle_arms) == 2 + run["cost"]["candidate_arms"]
    # quick+pool: the pool-trained single VAE is a candidate beside the per-class ones, with and without classic
    assert {"real+synthetic[vae-pool/extrapolation+noise,50]", "real+synthetic+classic[vae-pool/extrapolation+noise,50]",
            "real+synthetic[vae/prior,1:1]"} <= oracle_arms
    pool = [c for c in run["candidates"] if c["label"] == "vae-pool"]
    assert len(pool) == 1 and pool[0]["unlabeled_pool"] and pool[0]["config"]["mode"] == "single"
    md = (tmp_path / "out" / "mnist_quick_select_quick+pool.md").read_text()
    (check,) = [line for line in md.splitlines() if line.startswith("- cnn, n=2: chose")]
    assert "lose to real+classic beyond the interval" in check and check.endswith(("**met**", "**not met**"))
    # the final runs' warnings, as `genaug evaluate --select` prints them: one seed ran
    assert any("1 seed ran" in w for w in run["warnings"]) and all(f"- warning: {w}" in md for w in run["warnings"])
    # The report keeps every cell it made, search folds included: a fresh clone restores them and computes nothing.
    folds = {c["dataset"] for c in run["fold_cells"]}
    assert folds == {"mnist_quick-select-quick+pool-select-fold0", "mnist_quick-select-quick+pool-select-fold1"}
    assert len(run["fold_cells"]) == 2 * (2 + run["cost"]["candidate_arms"])  # 2 folds x every arm, n = 2, one seed
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    again = run_bench("mnist_fewshot.py", fresh, "--select", "--select-grid", "quick+pool", "--restore-from",
                      str(tmp_path / "out" / "mnist_quick_select_quick+pool.json"))
    assert "restored" in again and " fit " not in again and "final run at n=2" in again
    rerun = json.loads((fresh / "out" / "mnist_quick_select_quick+pool.json").read_text())["runs"][0]
    assert rerun["choices"] == run["choices"] and rerun["final_summary"] == run["final_summary"]


def test_flowers_select_checks_its_choice_and_shares_the_plain_runs_cells(tmp_path):
    """`flowers.py --select`: per scenario the choice on validation folds of the training split, its
    test score beside every candidate's (the oracle) and the target check; the final and oracle cells
    live in the plain run's cache (a plain run afterwards computes nothing), and the report restores
    into an empty cache."""
    log = run_flowers(tmp_path, "--select", "--scenarios", "2", "--classifier", "cnn")
    assert "search fold 2/2" in log and "final run at n=20" in log
    report = json.loads((tmp_path / "out" / "flowers_quick_select_quick.json").read_text())
    (run,) = report["runs"]
    (choice,) = run["choices"]
    assert run["scenario"] == 2 and choice["n"] == 20 and run["cost"]["validation_examples"] > 1000
    assert {"real", "real+classic", choice["arm"]} == {r["arm"] for r in run["final_summary"]}
    oracle_arms = {r["arm"] for r in run["oracle_summary"]}
    assert len(oracle_arms) == 2 + run["cost"]["candidate_arms"] and "real+synthetic[vae/prior,1:1]" in oracle_arms
    md = (tmp_path / "out" / "flowers_quick_select_quick.md").read_text()
    (check,) = [line for line in md.splitlines() if line.startswith("- scenario 2, cnn, n=20: chose")]
    assert "lose to real+classic beyond the interval" in check and check.endswith(("**met**", "**not met**"))
    assert any("1 seed ran" in w for w in run["warnings"]) and all(f"- warning: {w}" in md for w in run["warnings"])
    assert {c["dataset"] for c in run["fold_cells"]} == {"s2-cnn-quick-select-fold0", "s2-cnn-quick-select-fold1"}
    assert {c["dataset"] for c in run["oracle_cells"] + run["final_cells"]} == {"s2-cnn"}
    plain = run_flowers(tmp_path, "--scenarios", "2", "--classifier", "cnn", "--generators", "none",
                        "--arms", "real,real+classic")
    assert "2/2 done" in plain and "seed=0 real" not in plain  # both cells were the select run's
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    again = run_flowers(fresh, "--select", "--scenarios", "2", "--classifier", "cnn", "--restore-from",
                        str(tmp_path / "out" / "flowers_quick_select_quick.json"))
    assert "restored" in again and " fit " not in again and "final run at n=20" in again
    rerun = json.loads((fresh / "out" / "flowers_quick_select_quick.json").read_text())["runs"][0]
    assert rerun["choices"] == run["choices"] and rerun["oracle_summary"] == run["oracle_summary"]


def test_quality_utility_reads_a_flowers_run_and_computes_nothing(tmp_path):
    """`quality_utility.py --flowers` turns a committed flowers run (made with --quality-samples)
    into the correlation table, the per-arm numbers and the plot, from the JSON alone."""
    source = ROOT / "bench" / "results" / "issue12" / "flowers-s2" / "flowers.json"
    cells = [c for c in json.loads(source.read_text())["cells"] if c.get("dataset") == "s2-cnn" and "generator" in c]
    assert cells and all(c.get("quality") for c in cells)
    log = run_bench("quality_utility.py", tmp_path, "--flowers", str(source))
    report = (tmp_path / "out" / "issue14" / "quality_utility_flowers.md").read_text()
    seeds = ", ".join(map(str, sorted({c["seed"] for c in cells})))
    assert f"## Scenario 2, classifier cnn (seeds {seeds})" in report and "## Scenario 2, classifier cnn" in log
    # One point per generator arm (its quality and gain are means over the seeds).
    points = {c["arm"] for c in cells}
    rows = [line for line in report.splitlines() if line.startswith("| kid |")]
    assert len(rows) == 1 and f"| {len(points)} |" in rows[0]
    arms = [line for line in report.splitlines() if line.startswith("| real+synthetic")]
    assert len(arms) == len(points)
    assert (tmp_path / "out" / "issue14" / "quality_utility_flowers_s2-cnn.png").stat().st_size > 10_000
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.json"))


def test_contrastive_ood_quick_reports_every_arm_with_ood_columns_and_resumes(tmp_path):
    """Seed 000's benchmark at --quick budgets: every arm of item 2 (ce-real, supcon-real, + positives,
    + negatives, + cross-class negatives) and the lite0-linear reference, OOD metrics on the held-out
    digits and on flowers, the negatives' quality card; a report-only rerun computes nothing."""
    first = run_bench("contrastive_ood.py", tmp_path, "--datasets", "mnist")
    assert "fit ddim" in first
    report = json.loads((tmp_path / "out" / "contrastive_ood_quick.json").read_text())
    rows = report["summary"]["mnist"]["ood"]
    assert {(r["classifier"], r["arm"]) for r in rows} == {
        ("cnn", "real"), ("lite0-linear", "real"), ("supcon", "real"), ("supcon", "real+synthetic[ddim/pos0.2]"),
        ("supcon", "real+synthetic[ddim/pos0.2+neg0.5]"), ("supcon", "real+synthetic[ddim/pos0.2+cross0.5]")}
    assert all(set(r["sets"]) == {"near", "far"} for r in rows)
    negatives = [c for c in report["cells"] if c.get("variant", "").startswith("pos0.2+")]
    assert len(negatives) == 2 and all(c["negatives"]["quality"]["samples"] > 0 for c in negatives)
    md = (tmp_path / "out" / "contrastive_ood_quick.md").read_text()
    assert "mnist n=3 (1 seed(s)): supcon + positives vs supcon-real: accuracy" in md
    assert "near-OOD (held-out classes): AUROC" in md and "How near is near" in md

    again = run_bench("contrastive_ood.py", tmp_path, "--datasets", "mnist", "--report-only")
    assert "fit " not in again and not re.search(r"\d+/\d+ n=\d+ seed=", again)
    assert json.loads((tmp_path / "out" / "contrastive_ood_quick.json").read_text())["summary"] == report["summary"]


def test_proben1_quick_warns_and_rebuilds_from_its_results_file(tmp_path):
    """Tables 6.2 / 6.3 print the library's warnings (one seed ran; glass has test classes under 30)
    and keep them in the JSON; a rerun with an empty cache restores the written results file's
    cells and computes nothing (a fresh clone rebuilds the committed report)."""
    first = run_bench("proben1.py", tmp_path)
    assert "fit beta-norm" in first
    report = json.loads((tmp_path / "out" / "proben1_quick.json").read_text())
    assert report["quick"] is True  # what a restore names the cells' caches by
    md = (tmp_path / "out" / "proben1_quick.md").read_text()
    glass = report["table_6_2"]["glass"]["warnings"]
    assert any("seed ran" in w for w in glass) and any(re.search(r"has only \d+ test rows?:", w) for w in glass), glass
    assert all(f"- glass: warning: {w}" in md for w in glass)
    few = report["table_6_3"]["warnings"]
    assert any("seed ran" in w for w in few) and all(f"- warning: {w}" in md for w in few)

    shutil.rmtree(tmp_path / "cache")
    again = run_bench("proben1.py", tmp_path)
    found = re.search(r"restored (\d+) cells", again)
    assert found, again
    assert int(found.group(1)) == sum(len(t["cells"]) for t in report["table_6_2"].values()) + len(report["table_6_3"]["cells"])
    assert "fit beta" not in again
    rebuilt = json.loads((tmp_path / "out" / "proben1_quick.json").read_text())
    assert rebuilt["table_6_2"]["glass"]["summary"] == report["table_6_2"]["glass"]["summary"]
    assert rebuilt["table_6_3"]["summary"] == report["table_6_3"]["summary"]
    missing = subprocess.run([sys.executable, str(ROOT / "bench" / "proben1.py"), "--quick", "--restore-from",
                              str(tmp_path / "no-such.json")], capture_output=True, text=True, timeout=SCRIPT_DEADLINE)
    assert missing.returncode == 2 and "--restore-from: no results file at" in missing.stderr  # a typo is not ignored


def test_proben1_select_quick_reports_the_choice_beside_the_oracle(tmp_path):
    """Table 6.3's grid through the automatic choice: per n a choice, its test score, and the check
    against every candidate scored on the test split (which the choice never sees)."""
    log = run_bench("proben1.py", tmp_path, "--select")
    report = json.loads((tmp_path / "out" / "proben1_select_quick.json").read_text())
    (choice,) = report["choices"]
    assert choice["n"] == 5 and not any("classic" in r["arm"] for r in report["validation_summary"])  # tables: none
    assert {r["arm"] for r in report["final_summary"]} == {"real", choice["arm"]}
    assert len({r["arm"] for r in report["oracle_summary"]}) == 5  # real + 4 candidates
    # every cell names the cache it lives in, search folds included (restore_cells puts them back)
    assert {c["dataset"] for c in report["fold_cells"]} == {f"proben1-thyroid-select_quick-select-fold{f}" for f in (0, 1)}
    assert {c["dataset"] for c in report["final_cells"]} == {"proben1-thyroid-select_quick"}
    assert {c["dataset"] for c in report["oracle_cells"]} == {"proben1-thyroid-oracle_quick"}
    md = (tmp_path / "out" / "proben1_select_quick.md").read_text()
    assert re.search(r"- n=5: chose \S+; test Δ vs real .*\*\*(not )?met\*\*", md), md
    assert any("1 seed ran" in w for w in report["warnings"]) and all(f"- warning: {w}" in md for w in report["warnings"])
    assert "proben1.py --quick" in md and "--select" in md.split("\n")[2] and "Search cost" in log


def test_lite0_precision_quick_measures_both_precisions(tmp_path):
    """`lite0_precision.py --quick`: every precision's speed, its distance to fp32, and 5 probe draws."""
    run_bench("lite0_precision.py", tmp_path)
    result = json.loads((tmp_path / "out" / "lite0_precision_quick.json").read_text())
    rows = {row["precision"]: row for row in result["sets"][0]["rows"]}
    assert set(rows) == {"fp32", "bf16"}
    assert rows["fp32"]["relative_difference"] == 0 and 0 < rows["bf16"]["relative_difference"] < 0.15
    assert all(len(row["probe_accuracies"]) == 5 and 0 < row["probe_accuracy"] <= 1 for row in rows.values())
    # CPU seconds of this process: features per CPU second are at least the wall-clock rate on one thread
    assert all(row["features_per_cpu_s"] >= 0.9 * row["features_per_s"] > 0 for row in rows.values())
    report = (tmp_path / "out" / "lite0_precision_quick.md").read_text()
    assert "| mnist | bf16 | 160 |" in report and "Wall time:" in report and "features per CPU s" in report
    assert f"CPU: {result['machine']['cpu']};" in report
    if str(ROOT / "bench") not in sys.path:
        sys.path.append(str(ROOT / "bench"))
    import lite0_precision
    bf16 = rows["bf16"]
    assert f"| mnist | bf16 | 160 | {lite0_precision.rate(bf16['features_per_s'])} | " \
           f"{lite0_precision.rate(bf16['features_per_cpu_s'])} |" in report
