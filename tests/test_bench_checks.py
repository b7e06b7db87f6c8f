"""The checks the benchmark reports make of their own numbers (fast; the scripts themselves run
in tests/test_bench_scripts.py, marked slow)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))
import _select_check  # noqa: E402

pytestmark = pytest.mark.no_database


def row(arm: str, mean: float, low: float, high: float, p: float) -> dict:
    return {"arm": arm, "delta_vs_real": {"mean": mean, "low": low, "high": high, "p_value": p}}


REAL = {"arm": "real"}


@pytest.mark.parametrize("choice, oracle, verdict", [
    # the choice loses to real beyond its interval
    (row("b", -0.05, -0.08, -0.02, 0.001), [REAL, row("b", -0.05, -0.08, -0.02, 0.001)], "not met"),
    # a gain exists (a), the choice (b) is neither a winner nor a gain of its own: given up
    (row("b", -0.001, -0.02, +0.02, 0.9), [REAL, row("a", 0.10, 0.06, 0.14, 0.001), row("b", -0.001, -0.02, 0.02, 0.9)],
     "not met"),
    # a gain exists and the choice stayed with real: given up
    (REAL, [REAL, row("a", 0.10, 0.06, 0.14, 0.001)], "not met"),
    # the choice is the winner
    (row("a", 0.10, 0.06, 0.14, 0.001), [REAL, row("a", 0.10, 0.06, 0.14, 0.001)], "met"),
    # no gain to keep: staying with real is right
    (REAL, [REAL, row("a", 0.01, -0.02, 0.04, 0.4)], "met"),
])
def test_the_select_check_needs_no_loss_and_a_kept_gain(choice, oracle, verdict):
    text = _select_check.select_check(choice, oracle)
    assert text.endswith(f"**{verdict}**"), text


def test_winners_are_holm_corrected_over_every_candidate():
    # p = 0.03 alone is a winner; beside three other candidates Holm multiplies it by four
    alone = [REAL, row("a", 0.05, 0.01, 0.09, 0.03)]
    crowded = alone + [row(x, 0.0, -0.02, 0.02, 0.9) for x in "bcd"]
    assert _select_check.winners_on_test_split(alone) == ["a"]
    assert _select_check.winners_on_test_split(crowded) == []


def classic_row(arm: str, mean: float, low: float, high: float, p: float) -> dict:
    return {"arm": arm, "delta_vs_classic": {"mean": mean, "low": low, "high": high, "p_value": p}}


@pytest.mark.parametrize("choice, oracle, verdict", [
    # images: the reference is real+classic; a generator arm beats it and the choice kept classic
    ({"arm": "real+classic"}, [REAL, {"arm": "real+classic"}, classic_row("a", 0.05, 0.02, 0.08, 0.001)], "not met"),
    # the choice is that winner
    (classic_row("a", 0.05, 0.02, 0.08, 0.001), [REAL, {"arm": "real+classic"}, classic_row("a", 0.05, 0.02, 0.08, 0.001)],
     "met"),
    # the choice is real, and classic augmentation beats real beyond noise: real loses to the reference
    (REAL, [REAL, row("real+classic", 0.10, 0.06, 0.14, 0.001), classic_row("a", 0.0, -0.02, 0.02, 0.9)], "not met"),
    # the choice is real where classic augmentation hurt: no loss, no gain to keep
    (REAL, [REAL, row("real+classic", -0.05, -0.08, -0.02, 0.001), classic_row("a", 0.0, -0.02, 0.02, 0.9)], "met"),
    # classic augmentation helps within noise: real does not lose beyond the interval (the negated
    # interval is [-0.05, +0.01]; with its bounds left unswapped it would read as a loss)
    (REAL, [REAL, row("real+classic", 0.02, -0.01, 0.05, 0.3)], "met"),
    # Holm against real+classic: p = 0.03 beside three other candidates is no winner
    ({"arm": "real+classic"}, [REAL, {"arm": "real+classic"}, classic_row("a", 0.05, 0.01, 0.09, 0.03)]
     + [classic_row(x, 0.0, -0.02, 0.02, 0.9) for x in "bcd"], "met"),
])
def test_the_select_check_against_classic_augmentation_for_images(choice, oracle, verdict):
    text = _select_check.select_check(choice, oracle, reference="real+classic")
    assert text.endswith(f"**{verdict}**") and "real+classic" in text, text


def test_the_choice_is_judged_by_the_rows_given_for_it():
    """The final run's rows (reference_rows) decide the choice's own difference, not the oracle's."""
    oracle = [REAL, row("real+classic", 0.10, 0.06, 0.14, 0.001)]
    final = [REAL, row("real+classic", 0.01, -0.02, 0.04, 0.5)]
    assert _select_check.select_check(REAL, oracle, "real+classic").endswith("**not met**")
    assert _select_check.select_check(REAL, oracle, "real+classic", reference_rows=final).endswith("**met**")


def test_a_partial_report_names_the_cells_it_left_out(capsys):
    """--cached-only / --report-only: the cells missing from the cache are counted and named on
    stderr, those cached under other settings (e.g. another lite0 precision) said apart."""
    import _common

    _common.warn_not_cached({"cells": [], "not_cached": {"cells": 0, "under_other_identity": 0, "first": []}}, "d")
    _common.warn_not_cached({"cells": []}, "d")  # a full run has nothing to say
    assert capsys.readouterr().err == ""
    missing = {"cells": 3, "under_other_identity": 2, "first": ["n=5 seed=0 real", "n=5 seed=1 real"]}
    _common.warn_not_cached({"not_cached": missing, "classifier": {"name": "lite0-linear",
                                                                   "version": "lite0-linear-1-bf16"}}, "mnist-lite0")
    err = capsys.readouterr().err
    assert err.startswith("warning: mnist-lite0: 3 cell(s) of this plan are not in the cache and were left out; "
                          "2 of them are cached under other settings")
    assert "this run's is bf16, GENAUG_LITE0_PRECISION" in err and "e.g. n=5 seed=0 real, n=5 seed=1 real." in err
    _common.warn_not_cached({"not_cached": missing, "classifier": {"name": "cnn", "version": "cnn-1"}}, "mnist")
    err = capsys.readouterr().err
    assert "other settings" in err and "precision" not in err  # the precision hint only where it applies


def test_restore_reads_every_cell_list_of_a_report_and_only_cells_that_name_their_cache():
    """A --select report's search, final and oracle cells come back with the cache they name; those
    of older reports name none and are left out (they are not the script's cells); a report whose
    ``runs`` is not a list of runs (bench/results/executors.json) is read for its ``cells`` only."""
    import _common

    payload = {"cells": [{"arm": "real"}, {"arm": "x", "dataset": "other"}],
               "runs": [{"fold_cells": [{"arm": "f", "dataset": "d-select-fold0"}],
                         "final_cells": [{"arm": "old"}], "oracle_cells": [{"arm": "o", "dataset": "d"}]}, "text"]}
    found = [(c["arm"], c["dataset"]) for c in _common.stored_cells(payload, "script")]
    assert found == [("real", "script"), ("x", "other"), ("f", "d-select-fold0"), ("o", "d")]
    assert _common.stored_cells({"runs": {"local": {}}, "cells": [{"arm": "a"}]}, "s") == [{"arm": "a", "dataset": "s"}]


def test_every_search_seed_list_names_its_own_report():
    """--search-seeds lists name their reports apart (a shared name would overwrite a report and
    restore the other run's cells); seeds 0..k-1 keep the committed "_seeds<k>" form."""
    lists = [None, [0], [1], [3], [0, 1, 2], [0, 1, 2, 3, 4, 5], [6], [1, 2], [2, 1], [0, 2], [12], [1, 2, 3]]
    names = [_select_check.seeds_suffix(seeds) for seeds in lists]
    assert len(set(names)) == len(names), names
    assert names[0] == "" and _select_check.seeds_suffix(list(range(6))) == "_seeds6"


def test_every_validation_pool_names_its_own_report():
    """The pool rule's report suffix: the default pool none; the committed PROBEN1 names kept."""
    assert _select_check.pool_suffix(_select_check.VALIDATION_SIZE) == ""
    assert _select_check.pool_suffix(0) == _select_check.pool_suffix(None) == "_shalf"
    assert _select_check.pool_suffix(None, 100) == "_shalf_pc100" and _select_check.pool_suffix(500) == "_s500"
    assert _select_check.pool_suffix(_select_check.VALIDATION_SIZE, 100) == f"_s{_select_check.VALIDATION_SIZE}_pc100"


def test_the_flowers_control_is_never_the_best_generator_arm():
    """bench/flowers.py's re-weighting control (augmented-copy) is reported beside the generator
    arms, never as the best of them (``is_control`` also keeps it out of the recommendation)."""
    import flowers

    def delta(mean):
        return {"mean": mean, "low": mean - 0.03, "high": mean + 0.03, "within_noise": True, "p_value": 0.5}

    rows = [{"arm": "real", "n": 150, "accuracy_mean": 0.60},
            {"arm": "real+classic", "n": 150, "accuracy_mean": 0.61},
            {"arm": "real+synthetic[ddim/mixed:ddim]", "plain_name": "ddim arm", "n": 150, "accuracy_mean": 0.62,
             "delta_vs_classic": delta(0.01)},
            {"arm": "real+synthetic[augmented-copy/mixed:augmented-copy]", "plain_name": "control arm", "n": 150,
             "accuracy_mean": 0.66, "delta_vs_classic": delta(0.05)}]
    [line] = flowers.target_lines([{"scenario": 2, "classifier": "cnn", "rows": rows}])
    assert "best generator arm ddim arm 0.620" in line and "target NOT met" in line
    assert "control's best arm (augmented-copy, no model) control arm 0.660" in line
    assert flowers.is_control(rows[3]["arm"]) and not flowers.is_control(rows[2]["arm"])


def test_flowers_scenario_3_quick_grid_search_is_named_as_scenario_2s(tmp_path, monkeypatch):
    """The quick grid ignores scenario 3's augmented copies: its cells have scenario 2's identities, so
    bench/flowers.py names the twin in its report (the check line and the scenario's section) instead of
    presenting a search of its own."""
    import argparse

    import numpy as np

    import flowers
    from genaug.data import LabelledImages
    from genaug.evaluate.classifiers import resolve_classifier
    from genaug.evaluate.identity import cell_identity

    assert [flowers.quick_grid_twin(n) for n in (1, 2, 3)] == [None, None, 2]
    names = ["tulip", "daisy", "rose", "sunflower", "dandelion"]
    labels = np.repeat(np.arange(5), 120)
    data = LabelledImages(np.random.default_rng(0).integers(0, 255, (600, 8, 8, 3), dtype=np.uint8), labels, names,
                          [f"{i}.jpg" for i in range(600)])
    args = argparse.Namespace(select_grid="quick", quick=False, generators="dcgan,ddim", budget_scale=1.0, seeds="0",
                              classifier_steps=800, quality_samples=0, validation_size=2000, search_seeds=None,
                              out=tmp_path)

    def identities(number: int) -> list[str]:
        train, test = flowers.scenario_split(data, number)
        protocol = flowers.scenario_protocol(number, args, "cnn", ["real"])
        classifier = resolve_classifier("cnn", "images")
        return [cell_identity(protocol, classifier, train.fingerprint(), test.fingerprint(), spec, variant)
                for spec in flowers.select_candidates(number, train, args) for variant in spec.variants]

    assert identities(2) == identities(3) and len(identities(2)) >= 4 and identities(2) != identities(1)
    args.select_grid = "scenario"  # the scenario's own generators do learn the copies: other identities
    assert identities(2) != identities(3)

    args.select_grid = "quick"
    monkeypatch.setattr(flowers, "select_sections", lambda run: [f"sections of scenario {run['scenario']}"])
    runs = [{"scenario": s, "classifier": "cnn", "twin": flowers.quick_grid_twin(s), "checks": [f"check {s}"]}
            for s in (2, 3)]
    flowers.write_select_report(runs, args, "flowers", 0.0)
    report = (tmp_path / "flowers_select_quick.md").read_text()
    two, three = report.split("## Scenario 2, classifier cnn")[1].split("## Scenario 3, classifier cnn")
    assert flowers.twin_sentence(3) in three and "repeats scenario" not in two
    assert "--select-grid scenario" in flowers.twin_sentence(3)


def test_an_unfinished_runs_cells_are_kept_and_resumed_from_a_fresh_cache(tmp_path, capsys):
    """bench/keep_cells.py keeps every cell under the run's cache names (its search folds too),
    each naming its cache and its arm, and restore_cells puts them back where the run finds them."""
    import json

    import keep_cells
    from _common import restore_cells

    from genaug.evaluate.cell_cache import CellCache

    old = tmp_path / "old"
    arm = "real+synthetic[vae/prior,1:1]"  # its file name is only a slug: "real+synthetic_vae_prior_1_1_"
    for name in ("run", "run-select-fold0", "other"):
        cache = CellCache(old, name)
        for n in (20, 50, None):
            cache.put(n, 1, arm, {"accuracy": 0.5, "weighted_f1": 0.4}, identity=f"id-{name}-{n}")
    written_before = old / "run" / "n=20" / "seed=2" / "real.json"  # before files named their arm
    written_before.parent.mkdir(parents=True)
    written_before.write_text(json.dumps({"accuracy": 0.3, "identity": "x"}))

    out = tmp_path / "kept.json"
    assert keep_cells.main(["--cache", str(old), "--prefix", "run", "--shots", "20,all", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "kept 4 cells from 2 caches (run, run-select-fold0)" in said and "left out 1 file without its arm" in said, said
    kept = json.loads(out.read_text())
    assert "not a result" in kept["partial"]
    assert sorted((c["dataset"], str(c["n"]), c["arm"]) for c in kept["cells"]) == sorted(
        (d, str(n), arm) for d in ("run", "run-select-fold0") for n in (20, None))

    new = tmp_path / "new"
    assert restore_cells(out, new) == 4
    for name in ("run", "run-select-fold0"):
        cell = CellCache(new, name).get(20, 1, arm, f"id-{name}-20")
        assert cell is not None and cell["weighted_f1"] == 0.4
        assert CellCache(new, name).get(None, 1, arm, f"id-{name}-None") is not None
    assert CellCache(new, "run").get(50, 1, arm, "id-run-50") is None  # n = 50 was not asked for
    assert not (new / "other").exists()
    assert keep_cells.main(["--cache", str(old), "--prefix", "nothing", "--out", str(tmp_path / "none.json")]) == 1
    both = tmp_path / "both.json"  # a second prefix (the oracle's cache, say) adds its caches
    assert keep_cells.main(["--cache", str(old), "--prefix", "run", "--prefix", "oth", "--out", str(both)]) == 0
    assert {c["dataset"] for c in json.loads(both.read_text())["cells"]} == {"run", "run-select-fold0", "other"}
    with pytest.raises(SystemExit):
        keep_cells.main(["--cache", str(old), "--prefix", "run", "--shots", ",", "--out", str(both)])


def test_lite0_precision_rate_keeps_a_decimal_below_100():
    """Emulated bf16 runs at 1-3 features per wall second: the report must not round that to a whole number."""
    from lite0_precision import rate
    assert (rate(1.34), rate(20.46), rate(99.94), rate(129.4), rate(1234.5)) == ("1.3", "20.5", "99.9", "129", "1234")
