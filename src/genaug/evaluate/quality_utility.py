"""Does a quality number predict an arm's utility, and does a filter help? Read off a finished
evaluation whose protocol had ``quality_samples`` on (issue 14).

- ``correlations``: over every (generator arm, n) point, Spearman's rank correlation between each
  quality number (mean over seeds) and the arm's gain over ``real+classic``, with a percentile
  bootstrap interval over the points.
- ``filter_ablation``: every filtered variant against its unfiltered twin (same generator, same
  options and count, no filter), as a paired difference over the same seeds and test images.
- ``scatter_plot``: the points, one panel per quality number.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .statistics import paired_bootstrap_difference
from .summary import _predictions, _seed_only_difference

QUALITY_KEYS = ("kid", "precision", "recall", "density", "coverage", "near_copy_share", "inception_score")
N_BOOT = 2000


def _cells_by_arm(result: dict) -> dict[tuple, dict[int, dict]]:
    by: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for cell in result["cells"]:
        by[(cell["n"], cell["arm"])][cell["seed"]] = cell
    return by


def quality_points(result: dict, rows: list[dict]) -> list[dict[str, Any]]:
    """One point per generator arm and n that has a gain over real+classic and quality numbers."""
    by = _cells_by_arm(result)
    points = []
    for row in rows:
        if "[" not in row["arm"] or "delta_vs_classic" not in row:
            continue
        cells = [c for c in by[(row["n"], row["arm"])].values() if c.get("quality")]
        if not cells:
            continue
        point = {"n": row["n"], "arm": row["arm"], "gain": row["delta_vs_classic"]["mean"]}
        for key in QUALITY_KEYS:
            values = [c["quality"][key] for c in cells if c["quality"].get(key) is not None]
            if values:
                point[key] = float(np.mean(values))
        points.append(point)
    return points


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _reading(low: float, high: float) -> str:
    if low > 0:
        return "higher number, larger gain"
    if high < 0:
        return "higher number, smaller gain"
    return "no clear relation (the interval holds 0)"


def correlations(result: dict, rows: list[dict], seed: int = 0, by_n: bool = False) -> list[dict[str, Any]]:
    """Spearman's rho of every quality number with the gain over real+classic, bootstrap interval;
    over all points, or (``by_n``) within each n apart (pooled points mix the effect of n itself)."""
    points = quality_points(result, rows)
    if by_n:
        out = []
        for n in sorted({p["n"] for p in points}, key=lambda n: (n is None, n)):
            mine = [p for p in points if p["n"] == n]
            out += [{**entry, "n": n} for entry in _correlate(mine, seed)]
        return out
    return _correlate(points, seed)


def _correlate(points: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for key in QUALITY_KEYS:
        usable = [p for p in points if key in p]
        if len(usable) < 4:
            continue
        x = np.array([p[key] for p in usable])
        y = np.array([p["gain"] for p in usable])
        rho = _spearman(x, y)
        if not np.isfinite(rho):
            out.append({"number": key, "rho": None, "low": None, "high": None, "points": len(usable),
                        "reading": "the same value for every arm: nothing to rank"})
            continue
        draws = []
        for _ in range(N_BOOT):
            index = rng.integers(0, len(usable), len(usable))
            value = _spearman(x[index], y[index])
            if np.isfinite(value):
                draws.append(value)
        low, high = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if draws else (-1.0, 1.0)
        out.append({"number": key, "rho": rho, "low": low, "high": high, "points": len(usable),
                    "reading": _reading(low, high)})
    return out


def _twin(result: dict, arm: str) -> Optional[str]:
    """The unfiltered twin of a filtered generator arm (same spec, same variant but its label and filters)."""
    base, _, rest = arm.partition("[")
    spec_label, _, variant_label = rest[:-1].partition("/")
    for spec in result.get("generators", []):
        if spec["label"] != spec_label:
            continue
        variants = {v["label"]: v for v in spec["variants"]}
        mine = variants.get(variant_label)
        if mine is None or not mine.get("filters"):
            return None
        strip = lambda v: {k: val for k, val in v.items() if k not in ("label", "filters")}  # noqa: E731
        for label, other in variants.items():
            if not other.get("filters") and strip(other) == strip(mine):
                return f"{base}[{spec_label}/{label}]"
    return None


def filter_ablation(result: dict, rows: list[dict]) -> list[dict[str, Any]]:
    """Every filtered arm against its unfiltered twin at each n: the paired difference, the rejection
    rate, and whether the filter helped beyond noise."""
    by = _cells_by_arm(result)
    metric = rows[0]["metric"] if rows else "weighted_f1"
    y_true = np.asarray(result["test_labels"]) if result.get("test_labels") is not None else None
    means = {(r["n"], r["arm"]): r[f"{metric}_mean"] for r in rows}
    out = []
    for (n, arm), cells in sorted(by.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        twin = _twin(result, arm)
        if twin is None or (n, twin) not in by:
            continue
        base = by[(n, twin)]
        seeds = sorted(set(cells) & set(base))
        if not seeds:
            continue
        mine, theirs = {s: cells[s] for s in seeds}, {s: base[s] for s in seeds}
        preds, base_preds = _predictions(mine), _predictions(theirs)
        if y_true is not None and preds is not None and base_preds is not None:
            delta = paired_bootstrap_difference(preds, base_preds, y_true, len(result["class_names"]), metric)
        else:
            delta = _seed_only_difference({s: c[metric] for s, c in mine.items()},
                                          {s: c[metric] for s, c in theirs.items()})
        stages = [c.get("filter_stats", {}).get("filter_stage", {}) for c in mine.values()]
        drawn = sum(s.get("drawn", 0) for s in stages)
        rejected = sum(s.get("rejected", 0) for s in stages)
        helps = delta["low"] > 0
        verdict = "helps" if helps else "hurts" if delta["high"] < 0 else "within noise"
        out.append({"n": n, "arm": arm, "base_arm": twin, "filter": " + ".join(next(iter(mine.values()))["filters"]),
                    "without": means.get((n, twin), float("nan")), "with": means.get((n, arm), float("nan")),
                    "delta": delta, "rejection_rate": rejected / drawn if drawn else 0.0, "seeds": seeds,
                    "helps": helps, "verdict": verdict})
    return out


def scatter_plot(result: dict, rows: list[dict], path: Path) -> Optional[Path]:
    """Gain over real+classic against each quality number (one panel each); None without points."""
    points = quality_points(result, rows)
    keys = [k for k in QUALITY_KEYS if sum(k in p for p in points) >= 2]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows_n = (len(keys) + columns - 1) // columns
    fig, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 3.3 * rows_n), squeeze=False)
    shots = sorted({p["n"] for p in points}, key=lambda n: (n is None, n))
    markers = dict(zip(shots, "os^Dv<>p"))
    for ax, key in zip(axes.flat, keys):
        for n in shots:
            mine = [p for p in points if p["n"] == n and key in p]
            ax.scatter([p[key] for p in mine], [p["gain"] for p in mine], marker=markers[n], label=f"n={n}", alpha=0.8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(key)
        ax.set_ylabel("gain over real+classic")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
