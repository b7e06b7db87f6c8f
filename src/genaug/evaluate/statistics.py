"""Honest statistics for comparing classifier arms trained over several seeds on one fixed test set.

An *arm* is one training-data variant (real only, real + synthetic, ...). Each arm was trained
once per seed and every seed scored the same test set, so the arm is given as
``{seed: y_pred}`` next to one ``y_true``. Two sources of noise matter: which seeds happened to
run, and which test examples happened to be drawn. The intervals here resample both (a
hierarchical bootstrap), so a difference that one lucky test set or one lucky seed produced
shows up as noise instead of as a win.

Why a bootstrap and not a t-interval over seeds: with 2-3 seeds a t-interval ignores the test
set entirely and can run outside [0, 1]; a percentile bootstrap of a bounded metric cannot.
Its known weakness is the other way round: with very few seeds it understates seed-to-seed
variation (resampling 2 values rarely produces the spread a third seed would), which is what
:func:`evaluation_warnings` says out loud.

Pure numpy; scipy is not a core dependency.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

METRICS = ("accuracy", "weighted_f1", "macro_f1")

# Working memory for one chunk of bootstrap replicates. Per replicate we hold about
# 20 bytes per test example (drawn indices, counts, float weights), so 64 MB keeps a chunk of
# ~300 replicates at N = 10,000; with the kept draws and scores (_DRAWS_KEPT_BYTES,
# _SCORES_KEPT_BYTES) the whole computation stays under 200 MB.
_CHUNK_BYTES = 64 * 2**20

# float32 sums of integer counts are exact below 2**24; above that fall back to float64.
_FLOAT32_EXACT = 2**24


# --------------------------------------------------------------------------- validation


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}")
    return int(n_classes)


def _labels(values, name: str, n_classes: int, length: int | None = None) -> np.ndarray:
    """``values`` as a 1-D int64 array of class indices in [0, n_classes), or a ValueError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; there is nothing to score")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries but y_true has {length}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices; got dtype {array.dtype}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= n_classes:
        raise ValueError(f"{name} holds class indices from {low} to {high}, "
                         f"outside [0, {n_classes - 1}] for n_classes={n_classes}")
    return array.astype(np.int64, copy=False)


def _check_bootstrap_args(n_boot, level) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not isinstance(level, (int, float, np.floating)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be a number strictly between 0 and 1; got {level!r}")


def _seed_codes(preds_by_seed, name: str, y_true: np.ndarray, n_classes: int) -> dict:
    """``{seed: y_true * K + y_pred}`` for every seed (the flat confusion-cell index per example)."""
    if not isinstance(preds_by_seed, Mapping):
        raise ValueError(f"{name} must be a dict {{seed: y_pred}}; got {type(preds_by_seed).__name__}")
    if not preds_by_seed:
        raise ValueError(f"{name} has no seeds; it needs at least one {{seed: y_pred}} entry")
    return {seed: y_true * n_classes + _labels(pred, f"{name}[{seed!r}]", n_classes, len(y_true))
            for seed, pred in preds_by_seed.items()}


def _ordered(seeds) -> list:
    # Sorting fixes which seed gets which bootstrap index, so results do not depend on the
    # order a caller happened to fill its dict in.
    try:
        return sorted(seeds)
    except TypeError:
        return sorted(seeds, key=repr)


# --------------------------------------------------------------------------- metrics


def _metric_from_confusion(confusion: np.ndarray, metric: str) -> np.ndarray:
    """The metric of every confusion matrix in a ``(..., K, K)`` stack (rows true, columns predicted)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    true_count = confusion.sum(axis=-1)
    total = true_count.sum(axis=-1)
    if metric == "accuracy":
        return _safe_divide(tp.sum(axis=-1), total)
    # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (true count + predicted count); a class with neither
    # scores 0, which is sklearn's zero_division=0.
    f1 = _safe_divide(2.0 * tp, true_count + confusion.sum(axis=-2))
    if metric == "macro_f1":
        return f1.mean(axis=-1)
    return _safe_divide((f1 * true_count).sum(axis=-1), total)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.zeros(numerator.shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _full_metric(codes: np.ndarray, n_classes: int, metric: str) -> float:
    confusion = np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return float(_metric_from_confusion(confusion, metric))


def metric_value(y_true, y_pred, n_classes: int, metric: str) -> float:
    """One metric of ``y_pred`` against ``y_true`` over classes ``0..n_classes-1``.

    ``metric`` is ``"accuracy"``, ``"weighted_f1"`` or ``"macro_f1"``; the F1 values equal
    sklearn's ``f1_score(y_true, y_pred, labels=range(n_classes), average=..., zero_division=0)``,
    so a class absent from both arrays still counts (as 0) in macro F1.
    """
    _check_metric(metric)
    n_classes = _check_n_classes(n_classes)
    truth = _labels(y_true, "y_true", n_classes)
    pred = _labels(y_pred, "y_pred", n_classes, len(truth))
    return _full_metric(truth * n_classes + pred, n_classes, metric)


# --------------------------------------------------------------------------- bootstrap machinery


def _test_resample_counts(rng: np.random.Generator, n_rows: int, n_examples: int) -> np.ndarray:
    """``(n_rows, N)`` multinomial(N, uniform) counts: how often each test example was drawn.

    Counting N uniform index draws is the same multinomial as ``rng.multinomial`` but faster,
    and a count vector turns "score the resampled test set" into one matrix product.
    """
    drawn = rng.integers(0, n_examples, size=(n_rows, n_examples))
    drawn += np.arange(n_rows)[:, None] * n_examples
    return np.bincount(drawn.ravel(), minlength=n_rows * n_examples).reshape(n_rows, n_examples)


def _cell_indicator(codes: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The confusion cells ``codes`` uses, and the ``(N, cells used)`` one-hot matrix onto them.

    Only cells that occur get a column: with many classes the full N x K^2 one-hot would be
    mostly empty columns and could run to gigabytes.
    """
    cells, inverse = np.unique(codes, return_inverse=True)
    onehot = np.zeros((codes.shape[0], cells.shape[0]), dtype=dtype)
    onehot[np.arange(codes.shape[0]), inverse.ravel()] = 1
    return cells, onehot


def _weight_dtype(n_examples: int):
    return np.float32 if n_examples < _FLOAT32_EXACT else np.float64


def _chunk_size(n_examples: int, n_sets: int, n_cells: int, n_boot: int) -> int:
    per_replicate = 24 * n_examples + 16 * n_sets * n_cells
    return max(1, min(n_boot, _CHUNK_BYTES // per_replicate))


def _resampled_metrics(code_sets: list[np.ndarray], n_classes: int, metric: str, draws: "_Draws") -> np.ndarray:
    """``(n_boot, len(code_sets))`` metric values, every set scored on the same test resamples.

    Sharing a resample across seeds (and across arms) is what makes the comparison paired: the
    hard test examples a replicate drew are hard for everyone in it. A set's column depends on
    nothing but the set and the draws (confusion counts are exact integer sums), so with kept
    draws each set is scored once and its column reused: a report compares every arm with two
    baselines and would otherwise score the baselines' seeds once per comparison.
    """
    keys = [None if draws.key is None else (draws.key, metric, n_classes, hashlib.sha1(codes.tobytes()).hexdigest())
            for codes in code_sets]
    with _draws_lock:
        columns = [None if key is None else _scores_cache.get(key) for key in keys]
        for key, column in zip(keys, columns):
            if column is not None:
                _scores_cache.move_to_end(key)
    missing = [j for j, column in enumerate(columns) if column is None]
    if missing:
        n_examples, n_cells = code_sets[0].shape[0], n_classes * n_classes
        indicators = [_cell_indicator(code_sets[j], _weight_dtype(n_examples)) for j in missing]
        chunk = _chunk_size(n_examples, len(missing), n_cells, draws.n_boot)
        values = []
        for weights in draws.test_weights(chunk):
            confusion = np.zeros((weights.shape[0], len(missing), n_cells))
            for j, (cells, onehot) in enumerate(indicators):
                confusion[:, j, cells] = weights @ onehot
            values.append(_metric_from_confusion(
                confusion.reshape(weights.shape[0], len(missing), n_classes, n_classes), metric))
        scored = np.concatenate(values)
        with _draws_lock:
            for i, j in enumerate(missing):
                columns[j] = scored[:, i].copy()
                if keys[j] is not None:
                    _scores_cache[keys[j]] = columns[j]
            _evict(_scores_cache, _SCORES_KEPT_BYTES, lambda column: column.nbytes)
    return np.stack(columns, axis=1)


# Drawing the test resamples (N uniform indices per replicate, counted) costs more than scoring
# them, and a report asks for the same draws dozens of times: every interval and difference uses
# rng_seed 0 with the same numbers of replicates, seeds and test examples. So the most recent
# draws are kept, up to _DRAWS_KEPT_BYTES in all (2,000 replicates of a 10,000-image test set take
# 76 MiB); a larger one is drawn chunk by chunk as it is used. A kept draw is the very numbers a
# fresh one gives (the bit generator's stream does not depend on how it is split into chunks;
# tested), so no result depends on what ran before. A scored code set is kept too (one column of
# n_boot floats, _resampled_metrics), up to _SCORES_KEPT_BYTES. Peak memory: the kept draws and
# scores, plus one draw being made (its array and one chunk's working memory): under 200 MB.
_DRAWS_KEPT_BYTES = 80 * 2**20
_SCORES_KEPT_BYTES = 16 * 2**20
_draws_cache: OrderedDict = OrderedDict()
_scores_cache: OrderedDict = OrderedDict()
_draws_lock = threading.Lock()  # guards both caches
_drawing_lock = threading.Lock()  # one keepable draw at a time: two threads never draw the same one twice


def _evict(cache: OrderedDict, budget: int, size: Callable[[object], int]) -> None:
    """Drop the least recently used entries of ``cache`` until what is left fits ``budget`` bytes."""
    while cache and sum(size(v) for v in cache.values()) > budget:
        cache.popitem(last=False)


def clear_kept_bootstrap() -> None:
    """Forget every kept draw and scored set (their memory is freed; later calls draw again and
    get the same numbers)."""
    with _draws_lock:
        _draws_cache.clear()
        _scores_cache.clear()


@dataclass(frozen=True)
class _Draws:
    """One bootstrap's draws: ``seed_weights`` ``(n_boot, n_seeds)``, then the test resamples:
    either ``kept_test``, the whole ``(n_boot, N)`` counts (``key`` names them in the kept draws),
    or, for draws too large to keep (``key`` None), ``draw_test``, which draws them chunk by chunk
    as they are read (once)."""
    key: Optional[tuple]
    n_boot: int
    seed_weights: np.ndarray
    kept_test: Optional[np.ndarray] = None
    draw_test: Optional[Callable[[int], Iterator[np.ndarray]]] = None

    def __post_init__(self) -> None:
        if (self.kept_test is None) == (self.draw_test is None):
            raise ValueError("_Draws holds its test resamples one way: kept_test or draw_test, exactly one")

    def test_weights(self, chunk: int) -> Iterator[np.ndarray]:
        """The test-example counts of every replicate, ``chunk`` replicates at a time."""
        if self.kept_test is None:
            yield from self.draw_test(chunk)
            return
        for start in range(0, self.n_boot, chunk):
            yield self.kept_test[start:start + chunk]


def _bootstrap_draws(rng_seed, n_boot: int, n_seeds: int, n_examples: int) -> _Draws:
    """The seed weights and test resamples of one bootstrap, drawn from ``default_rng(rng_seed)``
    in that order (kept and reused where they fit ``_DRAWS_KEPT_BYTES``)."""
    dtype = _weight_dtype(n_examples)
    size = n_boot * n_examples * np.dtype(dtype).itemsize
    keep = isinstance(rng_seed, (int, np.integer)) and not isinstance(rng_seed, bool) and size <= _DRAWS_KEPT_BYTES
    if not keep:
        rng = np.random.default_rng(rng_seed)
        seed_weights = _seed_resample_weights(rng, n_boot, n_seeds)

        def drawn(chunk: int) -> Iterator[np.ndarray]:
            for start in range(0, n_boot, chunk):
                yield _test_resample_counts(rng, min(chunk, n_boot - start), n_examples).astype(dtype)

        return _Draws(None, n_boot, seed_weights, draw_test=drawn)
    key = (int(rng_seed), n_boot, n_seeds, n_examples)
    with _drawing_lock:
        with _draws_lock:
            kept = _draws_cache.get(key)
            if kept is not None:
                _draws_cache.move_to_end(key)
                return kept
            # make room first, so the old draws and the new one never exceed the budget together
            _evict(_draws_cache, _DRAWS_KEPT_BYTES - size, lambda d: d.kept_test.nbytes)
        rng = np.random.default_rng(rng_seed)
        seed_weights = _seed_resample_weights(rng, n_boot, n_seeds)
        test = np.empty((n_boot, n_examples), dtype=dtype)
        chunk = _chunk_size(n_examples, 1, 1, n_boot)
        for start in range(0, n_boot, chunk):
            rows = min(chunk, n_boot - start)
            test[start:start + rows] = _test_resample_counts(rng, rows, n_examples)
        for array in (seed_weights, test):
            array.setflags(write=False)  # shared between calls: nobody may change them
        kept = _Draws(key, n_boot, seed_weights, kept_test=test)
        with _draws_lock:
            _draws_cache[key] = kept
        return kept


def _seed_resample_weights(rng: np.random.Generator, n_boot: int, n_seeds: int) -> np.ndarray:
    """``(n_boot, S)`` share of each seed in each replicate's resample of the seeds (rows sum to 1)."""
    drawn = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    drawn += np.arange(n_boot)[:, None] * n_seeds
    counts = np.bincount(drawn.ravel(), minlength=n_boot * n_seeds).reshape(n_boot, n_seeds)
    return counts / n_seeds


def _percentiles(replicates: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - float(level)) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------- public intervals


def bootstrap_interval(preds_by_seed: Mapping, y_true, n_classes: int, metric: str, *,
                       n_boot: int = 2000, level: float = 0.95, rng_seed=0) -> dict:
    """Mean over seeds of one arm's metric, with a hierarchical percentile bootstrap interval.

    ``preds_by_seed`` is ``{seed: y_pred}`` on the test set ``y_true``. Each replicate resamples
    the seeds with replacement and the test examples with replacement (one resample shared
    by all seeds of that replicate), scores each resampled seed and averages. Returns
    ``{"mean", "low", "high", "n_seeds", "n_boot", "method"}``: ``mean`` is the plain mean over
    seeds on the full test set, ``low``/``high`` the ``level`` percentile interval, which lies in
    [0, 1] by construction. One seed is allowed (the interval then covers the test set only).
    Deterministic for a given ``rng_seed``.
    """
    _check_metric(metric)
    _check_bootstrap_args(n_boot, level)
    n_classes = _check_n_classes(n_classes)
    truth = _labels(y_true, "y_true", n_classes)
    codes = _seed_codes(preds_by_seed, "preds_by_seed", truth, n_classes)
    seeds = _ordered(codes)
    code_sets = [codes[s] for s in seeds]

    draws = _bootstrap_draws(rng_seed, int(n_boot), len(seeds), truth.shape[0])
    per_seed = _resampled_metrics(code_sets, n_classes, metric, draws)
    low, high = _percentiles((per_seed * draws.seed_weights).sum(axis=1), level)
    return {
        "mean": float(np.mean([_full_metric(c, n_classes, metric) for c in code_sets])),
        "low": low,
        "high": high,
        "n_seeds": len(seeds),
        "n_boot": int(n_boot),
        "method": ("bootstrap over seeds and test examples" if len(seeds) > 1
                   else "bootstrap over test examples (one seed)"),
    }


def paired_bootstrap_difference(arm: Mapping, baseline: Mapping, y_true, n_classes: int, metric: str,
                                *, n_boot: int = 2000, level: float = 0.95, rng_seed=0) -> dict:
    """Arm minus baseline on one metric, paired by seed and by test example.

    Only seeds present in both ``{seed: y_pred}`` dicts are used; every replicate draws one
    resample of those seeds and one of the test examples and applies both to both arms, so
    shared luck cancels. Returns ``{"mean", "low", "high", "p_value", "n_seeds", "n_boot",
    "within_noise"}``: ``mean`` is the mean over common seeds of the full-test-set difference,
    ``low``/``high`` the percentile interval (inside [-1, 1]), ``p_value`` the two-sided
    bootstrap p-value ``2 * min(P(diff <= 0), P(diff >= 0))`` clipped to
    ``[1 / (n_boot + 1), 1]``, and ``within_noise`` whether the interval contains 0.
    Raises ValueError when the arms share no seed.
    """
    _check_metric(metric)
    _check_bootstrap_args(n_boot, level)
    n_classes = _check_n_classes(n_classes)
    truth = _labels(y_true, "y_true", n_classes)
    arm_codes = _seed_codes(arm, "arm", truth, n_classes)
    base_codes = _seed_codes(baseline, "baseline", truth, n_classes)
    seeds = _ordered(set(arm_codes) & set(base_codes))
    if not seeds:
        raise ValueError(f"arm and baseline share no seed (arm has {_ordered(arm_codes)}, "
                         f"baseline has {_ordered(base_codes)}); a paired comparison needs common seeds")

    code_sets = [arm_codes[s] for s in seeds] + [base_codes[s] for s in seeds]
    draws = _bootstrap_draws(rng_seed, int(n_boot), len(seeds), truth.shape[0])
    both = _resampled_metrics(code_sets, n_classes, metric, draws)
    per_seed_diff = both[:, :len(seeds)] - both[:, len(seeds):]
    diffs = (per_seed_diff * draws.seed_weights).sum(axis=1)
    low, high = _percentiles(diffs, level)
    return {
        "mean": float(np.mean([_full_metric(arm_codes[s], n_classes, metric)
                               - _full_metric(base_codes[s], n_classes, metric) for s in seeds])),
        "low": low,
        "high": high,
        "p_value": _two_sided_p(diffs, int(n_boot)),
        "n_seeds": len(seeds),
        "n_boot": int(n_boot),
        "within_noise": bool(low <= 0.0 <= high),
    }


def _two_sided_p(diffs: np.ndarray, n_boot: int) -> float:
    # Ties at exactly 0 count on both sides: identical arms must come out at p = 1, not 0.
    p = 2.0 * min(float(np.mean(diffs <= 0.0)), float(np.mean(diffs >= 0.0)))
    # A bootstrap of n_boot replicates cannot resolve p below 1/(n_boot+1); reporting 0 would
    # claim a certainty the computation does not have.
    return float(min(1.0, max(p, 1.0 / (n_boot + 1))))


# --------------------------------------------------------------------------- multiple comparisons


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    With m p-values sorted ascending, the i-th (1-based) becomes ``(m - i + 1) * p``, made
    non-decreasing along the sorted order and capped at 1. Comparing each adjusted value with
    alpha controls the family-wise error rate when several arms are tested against one baseline.
    """
    values = np.asarray(list(p_values), dtype=float)
    if values.ndim != 1:
        raise ValueError(f"p_values must be a flat sequence of numbers; got shape {values.shape}")
    if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
        raise ValueError(f"p_values must all lie in [0, 1]; got {values.tolist()}")
    m = values.shape[0]
    order = np.argsort(values, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


# --------------------------------------------------------------------------- warnings


def evaluation_warnings(y_true, class_names: Sequence[str], n_seeds: int, *,
                        min_test_per_class: int = 30, min_seeds: int = 3, unit: str = "image") -> list[str]:
    """Plain-English warnings about what this test set and seed count can and cannot show.

    One warning per class with fewer than ``min_test_per_class`` test examples, and one when
    fewer than ``min_seeds`` seeds ran. ``unit`` names a test example in the text ("image",
    "row"). Returns an empty list when nothing is wrong.
    """
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty; it needs one name per class")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 0:
        raise ValueError(f"n_seeds must be a non-negative integer; got {n_seeds!r}")
    if isinstance(min_test_per_class, bool) or not isinstance(min_test_per_class, (int, np.integer)) \
            or min_test_per_class < 0:
        raise ValueError(f"min_test_per_class must be a non-negative integer; got {min_test_per_class!r}")
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, (int, np.integer)) or min_seeds < 0:
        raise ValueError(f"min_seeds must be a non-negative integer; got {min_seeds!r}")
    counts = np.bincount(_labels(y_true, "y_true", len(names)), minlength=len(names))
    warnings = [_class_warning(name, int(n), unit) for name, n in zip(names, counts) if n < min_test_per_class]
    if n_seeds < min_seeds:
        warnings.append(_seed_warning(int(n_seeds), int(min_seeds)))
    return warnings


def _class_warning(name: str, count: int, unit: str) -> str:
    if count == 0:
        return (f"class {name!r} has no test {unit}s: its F1 is always scored 0, which lowers macro F1 "
                f"whatever the model does; add test {unit}s for it")
    # Flipping one prediction moves a class's F1 by at most 2/(n+1) (its only hit lost); the
    # 95% sampling half-width of a rate measured on n examples is up to 1.96*sqrt(0.25/n) ~ 1/sqrt(n).
    step, noise = 2.0 / (count + 1), 1.0 / math.sqrt(count)
    plural = unit if count == 1 else f"{unit}s"
    return (f"class {name!r} has only {count} test {plural}: one {unit} changes its F1 by up to {step:.2f}; "
            f"treat per-class F1 differences below {noise:.2f} as noise")


def _seed_warning(n_seeds: int, min_seeds: int) -> str:
    if n_seeds == 0:
        return f"no seeds ran: there are no results to compare; run {min_seeds} or more"
    if n_seeds == 1:
        return ("only 1 seed ran: intervals rest only on test-set resampling and say nothing about "
                f"seed-to-seed variation; run {min_seeds} or more")
    return (f"only {n_seeds} seeds ran: intervals rest mostly on test-set resampling and say little about "
            f"seed-to-seed variation; run {min_seeds} or more")
