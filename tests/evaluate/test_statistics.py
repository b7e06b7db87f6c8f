"""Statistics for comparing arms over seeds: metrics, hierarchical and paired bootstraps, Holm, warnings."""
from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from genaug.evaluate.statistics import (bootstrap_interval, evaluation_warnings, holm_adjust, metric_value,
                                        paired_bootstrap_difference)

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _predictions(y_true, n_classes, correct_rate, rng):
    """Predictions that are right for about ``correct_rate`` of the examples, random otherwise."""
    wrong = (y_true + rng.integers(1, n_classes, size=y_true.shape)) % n_classes
    return np.where(rng.random(y_true.shape) < correct_rate, y_true, wrong)


def _arm(y_true, n_classes, correct_rate, seeds, offset=0):
    return {s: _predictions(y_true, n_classes, correct_rate, np.random.default_rng(1000 * offset + s))
            for s in seeds}


# --------------------------------------------------------------------------- metric_value


@pytest.mark.parametrize("trial", range(20))
def test_metric_value_matches_sklearn(trial):
    rng = np.random.default_rng(trial)
    n_classes = int(rng.integers(2, 8))
    n = int(rng.integers(5, 200))
    # Only some classes occur, so absent classes (scored 0 in macro F1) are exercised too.
    present = rng.choice(n_classes, size=int(rng.integers(1, n_classes + 1)), replace=False)
    y_true = rng.choice(present, size=n)
    y_pred = rng.integers(0, n_classes, size=n) if trial % 2 else rng.choice(present, size=n)
    labels = list(range(n_classes))
    assert metric_value(y_true, y_pred, n_classes, "accuracy") == pytest.approx(accuracy_score(y_true, y_pred),
                                                                                abs=1e-12)
    for metric, average in (("weighted_f1", "weighted"), ("macro_f1", "macro")):
        expected = f1_score(y_true, y_pred, labels=labels, average=average, zero_division=0)
        assert metric_value(y_true, y_pred, n_classes, metric) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: metric_value([0, 1], [0, 1], 2, "f1"), "metric must be one of"),
    (lambda: metric_value([0, 1], [0, 1, 1], 2, "accuracy"), "y_pred has 3 entries but y_true has 2"),
    (lambda: metric_value([0, 2], [0, 1], 2, "accuracy"), "y_true holds class indices"),
    (lambda: metric_value([0.5, 1.0], [0, 1], 2, "accuracy"), "y_true must hold integer class indices"),
    (lambda: metric_value([], [], 2, "accuracy"), "y_true is empty"),
    (lambda: metric_value([0, 1], [0, 1], 0, "accuracy"), "n_classes must be a positive integer"),
    (lambda: bootstrap_interval({}, [0, 1], 2, "accuracy"), "preds_by_seed has no seeds"),
    (lambda: bootstrap_interval({0: [0, 1]}, [0, 1], 2, "accuracy", n_boot=0), "n_boot must be"),
    (lambda: bootstrap_interval({0: [0, 1]}, [0, 1], 2, "accuracy", level=95), "level must be"),
    (lambda: bootstrap_interval({0: [0, 5]}, [0, 1], 2, "accuracy"), r"preds_by_seed\[0\] holds class"),
    (lambda: paired_bootstrap_difference({0: [0, 1]}, {1: [0, 1]}, [0, 1], 2, "accuracy"), "share no seed"),
    (lambda: holm_adjust([0.1, 1.5]), "p_values must all lie in"),
])
def test_bad_arguments_raise_clear_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- bootstrap_interval


def test_interval_mean_is_plain_mean_over_seeds_and_brackets_it():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=500)
    preds = _arm(y_true, 4, 0.7, seeds=[0, 1, 2])
    result = bootstrap_interval(preds, y_true, 4, "macro_f1", n_boot=500)
    expected = np.mean([metric_value(y_true, p, 4, "macro_f1") for p in preds.values()])
    assert result["mean"] == pytest.approx(expected, abs=1e-12)
    assert result["low"] < result["mean"] < result["high"]
    assert result["n_seeds"] == 3 and result["n_boot"] == 500
    assert "seeds" in result["method"] and "test examples" in result["method"]


def test_interval_stays_in_unit_range_for_two_very_different_seeds():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, size=300)
    preds = {0: _predictions(y_true, 5, 0.05, rng), 1: _predictions(y_true, 5, 0.96, rng)}
    f1s = sorted(metric_value(y_true, p, 5, "weighted_f1") for p in preds.values())
    assert f1s[0] < 0.15 and f1s[1] > 0.9
    for metric in ("accuracy", "weighted_f1", "macro_f1"):
        result = bootstrap_interval(preds, y_true, 5, metric, n_boot=1000)
        assert 0.0 <= result["low"] <= result["high"] <= 1.0
        # Seed resampling must show up: the interval spans most of the gap between the two seeds.
        assert result["high"] - result["low"] > 0.5


def test_interval_stays_in_unit_range_on_a_tiny_test_set():
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    preds = {0: y_true.copy(), 1: np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0]), 2: y_true.copy()}
    for metric in ("accuracy", "weighted_f1", "macro_f1"):
        result = bootstrap_interval(preds, y_true, 3, metric, n_boot=1000)
        assert 0.0 <= result["low"] <= result["high"] <= 1.0
        assert result["high"] == pytest.approx(1.0)


def test_single_seed_resamples_test_examples_only():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 3, size=400)
    result = bootstrap_interval({7: _predictions(y_true, 3, 0.8, rng)}, y_true, 3, "accuracy", n_boot=1000)
    assert result["n_seeds"] == 1 and "one seed" in result["method"]
    # Binomial standard error at p=0.8, n=400 is 0.02; a 95% interval is about 0.08 wide.
    assert 0.05 < result["high"] - result["low"] < 0.11
    assert result["low"] < result["mean"] < result["high"]


def test_a_perfect_arm_has_a_degenerate_interval_at_one():
    y_true = np.arange(50) % 5
    result = bootstrap_interval({0: y_true, 1: y_true}, y_true, 5, "macro_f1", n_boot=200)
    assert result["mean"] == result["low"] == result["high"] == 1.0


def test_bootstrap_is_deterministic_for_a_fixed_rng_seed():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, size=300)
    preds = _arm(y_true, 4, 0.6, seeds=[0, 1, 2])
    first = bootstrap_interval(preds, y_true, 4, "weighted_f1", n_boot=300, rng_seed=5)
    # Dict order must not matter either.
    again = bootstrap_interval(dict(reversed(list(preds.items()))), y_true, 4, "weighted_f1",
                               n_boot=300, rng_seed=5)
    other = bootstrap_interval(preds, y_true, 4, "weighted_f1", n_boot=300, rng_seed=6)
    assert first == again
    assert (first["low"], first["high"]) != (other["low"], other["high"])

    baseline = _arm(y_true, 4, 0.5, seeds=[0, 1, 2], offset=1)
    diff_a = paired_bootstrap_difference(preds, baseline, y_true, 4, "accuracy", n_boot=300, rng_seed=5)
    diff_b = paired_bootstrap_difference(preds, baseline, y_true, 4, "accuracy", n_boot=300, rng_seed=5)
    assert diff_a == diff_b


@pytest.fixture
def nothing_kept(monkeypatch):
    """Bootstrap draws and scored sets neither kept nor reused: every call draws afresh."""
    from genaug.evaluate import statistics

    statistics.clear_kept_bootstrap()
    monkeypatch.setattr(statistics, "_DRAWS_KEPT_BYTES", 0)
    yield statistics
    statistics.clear_kept_bootstrap()


def test_chunks_do_not_change_the_draws(nothing_kept, monkeypatch):
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 3, size=201)
    preds = _arm(y_true, 3, 0.7, seeds=[0, 1])
    whole = bootstrap_interval(preds, y_true, 3, "accuracy", n_boot=101)
    # One-replicate chunks read the random stream in 101 pieces instead of one; the bit
    # generator's stream does not depend on that, which is what lets kept draws be reused by
    # calls that chunk differently.
    monkeypatch.setattr(nothing_kept, "_CHUNK_BYTES", 1)
    assert bootstrap_interval(preds, y_true, 3, "accuracy", n_boot=101) == whole


def test_kept_draws_and_scores_change_no_number(nothing_kept, monkeypatch):
    statistics = nothing_kept
    rng = np.random.default_rng(12)
    y_true = rng.integers(0, 4, size=701)  # odd sizes: the stream's spare half-words carry over
    arms = [_arm(y_true, 4, rate, seeds=[0, 1, 2], offset=i) for i, rate in enumerate((0.6, 0.65, 0.7))]
    calls = [(bootstrap_interval, (arms[0], y_true, 4, "weighted_f1")),
             (paired_bootstrap_difference, (arms[1], arms[0], y_true, 4, "weighted_f1")),
             (paired_bootstrap_difference, (arms[2], arms[0], y_true, 4, "weighted_f1")),
             (paired_bootstrap_difference, (arms[2], arms[1], y_true, 4, "macro_f1")),
             (bootstrap_interval, (arms[2], y_true, 4, "accuracy")),
             (paired_bootstrap_difference, ({0: arms[1][0], 1: arms[1][1]}, arms[0], y_true, 4, "weighted_f1"))]
    fresh = [fn(*args, n_boot=301) for fn, args in calls]

    monkeypatch.setattr(statistics, "_DRAWS_KEPT_BYTES", 128 * 2**20)
    scored = []
    real_indicator = statistics._cell_indicator
    monkeypatch.setattr(statistics, "_cell_indicator",
                        lambda codes, dtype: scored.append(1) or real_indicator(codes, dtype))
    # Reversed, so every call finds what the others left behind.
    kept = [fn(*args, n_boot=301) for fn, args in reversed(calls)][::-1]
    assert kept == fresh
    assert statistics._draws_cache and statistics._scores_cache
    # Asked again, every set's column is reused: nothing is scored a second time.
    before = len(scored)
    assert [fn(*args, n_boot=301) for fn, args in calls] == fresh
    assert len(scored) == before
    # Kept arrays are shared, so they are read-only.
    draws = next(iter(statistics._draws_cache.values()))
    with pytest.raises(ValueError):
        draws.seed_weights[0, 0] = 5.0


def test_draws_too_large_to_keep_are_drawn_each_time(nothing_kept):
    rng = np.random.default_rng(13)
    y_true = rng.integers(0, 3, size=300)
    preds = _arm(y_true, 3, 0.7, seeds=[0, 1])
    first = bootstrap_interval(preds, y_true, 3, "accuracy", n_boot=200)
    assert bootstrap_interval(preds, y_true, 3, "accuracy", n_boot=200) == first
    assert not nothing_kept._draws_cache and not nothing_kept._scores_cache


# --------------------------------------------------------------------------- paired difference


def test_clearly_better_arm_is_significant():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 10, size=2000)
    better = _arm(y_true, 10, 0.9, seeds=[0, 1, 2], offset=1)
    worse = _arm(y_true, 10, 0.6, seeds=[0, 1, 2], offset=2)
    result = paired_bootstrap_difference(better, worse, y_true, 10, "accuracy", n_boot=1000)
    assert result["p_value"] == pytest.approx(1 / 1001)
    assert result["within_noise"] is False
    assert 0.25 < result["low"] < result["mean"] < result["high"] < 0.35
    assert result["n_seeds"] == 3 and result["n_boot"] == 1000

    reverse = paired_bootstrap_difference(worse, better, y_true, 10, "accuracy", n_boot=1000)
    assert reverse["mean"] == pytest.approx(-result["mean"])
    assert -1.0 <= reverse["low"] <= reverse["high"] < 0


def test_identical_arms_are_within_noise():
    rng = np.random.default_rng(6)
    y_true = rng.integers(0, 4, size=500)
    preds = _arm(y_true, 4, 0.7, seeds=[0, 1, 2])
    twin = {s: p.copy() for s, p in preds.items()}
    result = paired_bootstrap_difference(preds, twin, y_true, 4, "macro_f1", n_boot=500)
    assert result["mean"] == 0.0 and result["low"] == 0.0 and result["high"] == 0.0
    assert result["within_noise"] is True
    assert result["p_value"] == 1.0


def test_pairing_uses_only_common_seeds():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 3, size=300)
    arm = _arm(y_true, 3, 0.8, seeds=[0, 1, 2, 3])
    baseline = _arm(y_true, 3, 0.6, seeds=[1, 2, 3, 9], offset=1)
    result = paired_bootstrap_difference(arm, baseline, y_true, 3, "accuracy", n_boot=300)
    expected = np.mean([metric_value(y_true, arm[s], 3, "accuracy") - metric_value(y_true, baseline[s], 3, "accuracy")
                        for s in (1, 2, 3)])
    assert result["n_seeds"] == 3
    assert result["mean"] == pytest.approx(expected, abs=1e-12)


def test_pairing_narrows_the_interval_compared_with_separate_intervals():
    # Both arms share most predictions, so their shared test-set luck should cancel.
    rng = np.random.default_rng(8)
    y_true = rng.integers(0, 5, size=1000)
    base = _arm(y_true, 5, 0.7, seeds=[0, 1, 2])
    arm = {}
    for s, p in base.items():
        fixed = p.copy()
        flip = np.flatnonzero(p != y_true)[:10]
        fixed[flip] = y_true[flip]
        arm[s] = fixed
    diff = paired_bootstrap_difference(arm, base, y_true, 5, "accuracy", n_boot=500)
    single = bootstrap_interval(base, y_true, 5, "accuracy", n_boot=500)
    assert diff["high"] - diff["low"] < 0.5 * (single["high"] - single["low"])
    assert diff["mean"] == pytest.approx(0.01)
    assert diff["within_noise"] is False


# --------------------------------------------------------------------------- holm_adjust


def test_holm_matches_a_hand_worked_example():
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> made monotone 0.06.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_edge_cases():
    assert holm_adjust([0.6, 0.7]) == [1.0, 1.0]
    assert holm_adjust([0.5, 0.3]) == pytest.approx([0.6, 0.6])
    assert holm_adjust([0.2]) == [0.2]
    assert holm_adjust([]) == []
    assert holm_adjust((0.01, 0.01)) == pytest.approx([0.02, 0.02])


def test_holm_is_never_below_raw_and_never_above_bonferroni():
    p = np.random.default_rng(9).random(12) * 0.2
    adjusted = np.array(holm_adjust(p.tolist()))
    assert (adjusted >= p).all()
    assert (adjusted <= np.minimum(1, p * len(p)) + 1e-15).all()


# --------------------------------------------------------------------------- warnings


def test_warnings_are_silent_when_all_is_fine():
    y_true = np.repeat([0, 1, 2], 40)
    assert evaluation_warnings(y_true, ["rose", "tulip", "daisy"], n_seeds=3) == []


def test_warnings_name_small_classes_with_their_counts():
    y_true = np.concatenate([np.zeros(40, int), np.ones(12, int), np.full(29, 2)])
    warnings = evaluation_warnings(y_true, ["rose", "tulip", "daisy"], n_seeds=5)
    assert len(warnings) == 2
    tulip, daisy = warnings
    assert tulip.startswith("class 'tulip' has only 12 test images:")
    assert "0.15" in tulip and "0.29" in tulip and "noise" in tulip
    assert "class 'daisy' has only 29 test images" in daisy
    assert not any("rose" in w for w in warnings)


def test_warnings_cover_a_class_with_no_test_examples_and_custom_units():
    y_true = np.repeat([0, 2], 40)
    (warning,) = evaluation_warnings(y_true, ["a", "b", "c"], n_seeds=3, unit="row")
    assert "class 'b' has no test rows" in warning and "macro F1" in warning
    (single,) = evaluation_warnings(np.array([0] * 40 + [1]), ["a", "b"], n_seeds=3, unit="row")
    assert "only 1 test row:" in single


def test_warnings_flag_too_few_seeds():
    y_true = np.repeat([0, 1], 40)
    (two,) = evaluation_warnings(y_true, ["a", "b"], n_seeds=2)
    assert two.startswith("only 2 seeds ran:") and "run 3 or more" in two
    (one,) = evaluation_warnings(y_true, ["a", "b"], n_seeds=1)
    assert one.startswith("only 1 seed ran:")
    assert evaluation_warnings(y_true, ["a", "b"], n_seeds=2, min_seeds=2) == []
    assert evaluation_warnings(y_true, ["a", "b"], n_seeds=3, min_test_per_class=41)[0].startswith("class 'a'")


def test_warnings_reject_bad_arguments():
    with pytest.raises(ValueError, match="n_seeds must be"):
        evaluation_warnings([0, 1], ["a", "b"], n_seeds=-1)
    with pytest.raises(ValueError, match="y_true holds class indices"):
        evaluation_warnings([0, 2], ["a", "b"], n_seeds=3)
    with pytest.raises(ValueError, match="class_names is empty"):
        evaluation_warnings([0], [], n_seeds=3)


# --------------------------------------------------------------------------- speed sanity


def test_full_size_run_finishes(capsys):
    rng = np.random.default_rng(10)
    y_true = rng.integers(0, 10, size=10_000)
    arm = _arm(y_true, 10, 0.8, seeds=[0, 1, 2])
    baseline = _arm(y_true, 10, 0.75, seeds=[0, 1, 2], offset=1)
    start = time.perf_counter()
    single = bootstrap_interval(arm, y_true, 10, "macro_f1", n_boot=2000)
    middle = time.perf_counter()
    paired = paired_bootstrap_difference(arm, baseline, y_true, 10, "macro_f1", n_boot=2000)
    end = time.perf_counter()
    with capsys.disabled():
        print(f"\nN=10,000 K=10 3 seeds n_boot=2000: bootstrap_interval {middle - start:.2f}s, "
              f"paired_bootstrap_difference {end - middle:.2f}s")
    assert 0.0 <= single["low"] <= single["high"] <= 1.0
    assert paired["within_noise"] is False


def test_a_bootstrap_holds_its_test_resamples_exactly_one_way():
    """Kept counts or a drawer, never both or neither: a mix-up would read the wrong resamples."""
    from genaug.evaluate.statistics import _Draws

    weights, kept = np.ones((4, 3)), np.ones((4, 10))
    assert _Draws(("k",), 4, weights, kept_test=kept).kept_test is kept
    for both_or_neither in ({}, {"kept_test": kept, "draw_test": lambda chunk: iter(())}):
        with pytest.raises(ValueError, match="exactly one"):
            _Draws(None, 4, weights, **both_or_neither)
