"""OOD detection across seeds: per (classifier, n, arm) each score's AUROC / FPR95 on each OOD set,
its spread over seeds, and the paired difference to a baseline arm -- the tables of seed 000's
protocol (``bench/contrastive_ood.py``).

OOD metrics are computed inside each cell on the whole test split and OOD set (``protocol.ood_scores``);
the per-image scores are not kept, so the spread shown is over seeds only: the mean and the range
(smallest to largest seed). A difference counts as consistent only when at least two seeds ran and
every seed agrees in sign; with three seeds that is a weak statement and the tables say so.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

import numpy as np

from .ood import SCORES
from .report import table_cell

METRICS = ("auroc", "fpr95", "aupr_in", "aupr_out")
# Lower is better for FPR95 only.
LOWER_IS_BETTER = {"fpr95"}


def _spread(values: list[float]) -> dict:
    array = np.asarray(values, float)
    return {"mean": float(array.mean()), "min": float(array.min()), "max": float(array.max()), "n_seeds": len(array)}


def summarise_ood(cells: list[dict], baselines: Optional[dict[str, str]] = None) -> list[dict]:
    """One row per (classifier, n, arm) of the cells that carry OOD metrics: ``sets[set][score][metric]``
    = mean / min / max over seeds; with ``baselines`` (classifier -> arm, e.g. ``{"supcon": "real"}``)
    also ``delta[set][score][metric]``, the per-seed difference to that arm (same n, same seeds):
    mean / min / max and ``consistent`` (every seed on the same side of 0)."""
    grouped: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for cell in cells:
        if cell.get("ood"):
            grouped[(cell["classifier"], cell["n"], cell["arm"])][cell["seed"]] = cell
    rows = []
    for (classifier, n, arm), by_seed in grouped.items():
        seeds = sorted(by_seed)
        set_names = sorted(set.intersection(*(set(by_seed[s]["ood"]["sets"]) for s in seeds)))
        row = {"classifier": classifier, "n": n, "arm": arm, "seeds": seeds,
               "accuracy": _spread([by_seed[s]["accuracy"] for s in seeds]),
               "sets": {name: {score: {m: _spread([by_seed[s]["ood"]["sets"][name][score][m] for s in seeds])
                                       for m in METRICS} for score in SCORES} for name in set_names}}
        baseline = (baselines or {}).get(classifier)
        if baseline and baseline != arm and (classifier, n, baseline) in grouped:
            base = grouped[(classifier, n, baseline)]
            common = [s for s in seeds if s in base]
            if common:
                row["delta_vs"] = baseline
                row["delta"] = {name: {score: {m: _difference(
                    [by_seed[s]["ood"]["sets"][name][score][m] - base[s]["ood"]["sets"][name][score][m]
                     for s in common]) for m in METRICS} for score in SCORES}
                    for name in set_names if all(name in base[s]["ood"]["sets"] for s in common)}
        rows.append(row)
    rows.sort(key=lambda r: (r["classifier"], -1 if r["n"] is None else r["n"], r["arm"]))
    return rows


def _difference(diffs: list[float]) -> dict:
    spread = _spread(diffs)
    # One seed agrees with itself: consistency needs at least two.
    spread["consistent"] = bool(len(diffs) >= 2 and (min(diffs) > 0 or max(diffs) < 0))
    return spread


def _value(entry: dict) -> str:
    return f"{entry['mean']:.3f} [{entry['min']:.3f}, {entry['max']:.3f}]"


def _delta(entry: Optional[dict]) -> str:
    if not entry:
        return ""
    mark = " (1 seed)" if entry["n_seeds"] == 1 else "" if entry["consistent"] else " (mixed)"
    return f"{entry['mean']:+.3f} [{entry['min']:+.3f}, {entry['max']:+.3f}]{mark}"


def ood_table(rows: list[dict], set_name: str, metric: str = "auroc", names: Optional[dict[str, str]] = None) -> str:
    """A markdown table of one OOD set and metric: per row the accuracy, then each score's mean [min, max]
    over seeds and, where a baseline ran, the per-seed difference to it ('mixed' = the seeds disagree
    in sign). ``names``: plain names per (classifier/arm) key, e.g. ``{"supcon/real": "supcon-real"}``."""
    header = " | ".join(f"{score} {metric}" for score in SCORES)
    lines = [f"| n | arm | accuracy | {header} | Δ {metric} vs baseline (max softmax / energy / mahalanobis / knn) |",
             "|---|---|---|" + "---|" * len(SCORES) + "---|"]
    for r in rows:
        if set_name not in r["sets"]:
            continue
        key = f"{r['classifier']}/{r['arm']}"
        name = (names or {}).get(key, key)
        values = " | ".join(_value(r["sets"][set_name][score][metric]) for score in SCORES)
        delta = ""
        if r.get("delta") and set_name in r["delta"]:
            delta = " / ".join(_delta(r["delta"][set_name][score][metric]) for score in SCORES)
            delta = f"vs {r['delta_vs']}: {delta}"
        lines.append(f"| {r['n'] if r['n'] is not None else 'all'} | {table_cell(name)} | {_value(r['accuracy'])} | "
                     f"{values} | {table_cell(delta)} |")
    return "\n".join(lines)


def better(metric: str, delta: float) -> bool:
    """Whether a difference in ``metric`` is an improvement (FPR95: lower is better)."""
    return delta < 0 if metric in LOWER_IS_BETTER else delta > 0
