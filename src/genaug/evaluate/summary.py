"""From cells to a verdict: per (n, arm) intervals, paired differences, a corrected choice.

Each row holds the arm's mean over seeds with a bootstrap interval over seeds and test
examples (``statistics.py``), and its paired difference to ``real`` and to ``real+classic``.
The recommendation per n compares every generator arm with the reference (``real+classic``
where it ran, else ``real``), corrects the p-values for having looked at all of them (Holm),
and names an arm only when it beats the reference beyond noise after that correction;
otherwise it says that synthetic data did not help and recommends the reference.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Optional

import numpy as np

from .metrics import decode_predictions
from .statistics import bootstrap_interval, evaluation_warnings, holm_adjust, paired_bootstrap_difference

ALPHA = 0.05
N_BOOT = 1000
GQI_NOTE = ("GQI (GAN Quality Index) = accuracy of a classifier trained on generated images only, "
            "as a percentage of one trained on your images only: 100 means the generated images teach as much. "
            "'GQI (filtered)' is seed 002's definition: the generated images first pass a classifier of the real "
            "training images (the confidence filter), then train; plain 'GQI' uses them unfiltered.")


def _n_key(n) -> float:
    return math.inf if n is None else n


def _unit(result: dict) -> str:
    return "row" if result.get("data_kind") == "table" else "image"


def plain_arm_name(arm: str, cell: Optional[dict] = None, unit: str = "image",
                   class_names: Optional[list[str]] = None) -> str:
    """``real+synthetic+classic[vae/prior]`` -> ``your images + 500 vae images per class (prior) + classic augmentation``."""
    things = f"{unit}s"
    if arm == "real":
        return f"your {things}"
    if arm == "real+classic":
        return f"your {things} + classic augmentation"
    match = re.fullmatch(r"(synthetic|real\+synthetic|real\+synthetic\+classic)\[(.+?)/(.+)\]", arm)
    if not match:
        return arm
    base, label, variant = match.groups()
    cell = cell or {}
    # The plan names the arm; a filter that left classes short is said apart (what the classifier got).
    counts = {int(c): int(k) for c, k in (cell.get("planned_per_class") or cell.get("samples_per_class") or {}).items()}
    got = sum(int(k) for k in (cell.get("samples_per_class") or {}).values())
    values = sorted(set(counts.values()))
    names = class_names or []
    if len(counts) == 1 and names:
        (c, k), = counts.items()
        amount = f"{k} {label} {things} of {names[c] if c < len(names) else c}"
    elif len(values) == 1:
        amount = f"{values[0]} {label} {things} per class"
    elif values:
        amount = f"{sum(counts.values())} {label} {things} balancing the classes"
    else:
        amount = f"{label} {things}"
    detail = "" if variant == "default" else f" ({variant})"
    if counts and got < sum(counts.values()):
        detail += f" [{got} kept by the filters" + (f" in seed {cell['seed']}]" if "seed" in cell else "]")
    if base == "synthetic":
        return f"only generated {things}: {amount}{detail}"
    if cell.get("replace_real"):
        text = f"your {things} with {amount}{detail} in place of the real ones"
    else:
        text = f"your {things} + {amount}{detail}"
    return text + " + classic augmentation" if base.endswith("+classic") else text


def _predictions(per_seed: dict[int, dict]) -> Optional[dict[int, np.ndarray]]:
    if not all("predictions" in c for c in per_seed.values()):
        return None
    return {s: decode_predictions(c["predictions"]) for s, c in per_seed.items()}


def _seed_only_interval(values: list[float], n_boot: int = N_BOOT) -> dict:
    """For cells kept without predictions (made before they were stored): a percentile bootstrap
    over the seed values alone. It stays inside the metric's range but ignores the test set."""
    rng = np.random.default_rng(0)
    array = np.asarray(values, float)
    means = array[rng.integers(0, len(array), size=(n_boot, len(array)))].mean(1)
    return {"mean": float(array.mean()), "low": float(np.quantile(means, 0.025)),
            "high": float(np.quantile(means, 0.975)), "n_seeds": len(array),
            "method": "bootstrap over seeds only (cells without stored predictions)"}


def _seed_only_difference(values: dict[int, float], baseline: dict[int, float]) -> dict:
    seeds = sorted(set(values) & set(baseline))
    diffs = [values[s] - baseline[s] for s in seeds]
    interval = _seed_only_interval(diffs)
    rng = np.random.default_rng(0)
    array = np.asarray(diffs)
    means = array[rng.integers(0, len(array), size=(N_BOOT, len(array)))].mean(1)
    p = min(1.0, max(2 * min(np.mean(means <= 0), np.mean(means >= 0)), 1 / (N_BOOT + 1)))
    return {**interval, "p_value": float(p), "within_noise": bool(interval["low"] <= 0 <= interval["high"])}


def summarise(result: dict, metric: Optional[str] = None, n_boot: int = N_BOOT) -> list[dict]:
    """One row per (n, arm): mean and bootstrap interval of the metric, accuracy, paired
    differences to ``real`` and ``real+classic`` (with p-values), GQI for synthetic-only arms,
    and a plain name."""
    metric = metric or result["protocol"].get("metric", "weighted_f1")
    y_true = np.asarray(result["test_labels"]) if result.get("test_labels") is not None else None
    n_classes = len(result["class_names"])
    unit = _unit(result)
    by_key: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for cell in result["cells"]:
        by_key[(cell["n"], cell["arm"])][cell["seed"]] = cell

    def interval(per_seed):
        preds = _predictions(per_seed) if y_true is not None else None
        if preds is None:
            return _seed_only_interval([c[metric] for c in per_seed.values()])
        return bootstrap_interval(preds, y_true, n_classes, metric, n_boot=n_boot)

    def difference(per_seed, base_per_seed):
        preds, base = (_predictions(per_seed), _predictions(base_per_seed)) if y_true is not None else (None, None)
        if preds is None or base is None:
            return _seed_only_difference({s: c[metric] for s, c in per_seed.items()},
                                         {s: c[metric] for s, c in base_per_seed.items()})
        return paired_bootstrap_difference(preds, base, y_true, n_classes, metric, n_boot=n_boot)

    rows = []
    for (n, arm), per_seed in by_key.items():
        spread = interval(per_seed)
        any_cell = next(iter(per_seed.values()))
        row = {"n": n, "arm": arm, "plain_name": plain_arm_name(arm, any_cell, unit, result["class_names"]), "metric": metric,
               f"{metric}_mean": spread["mean"], f"{metric}_low": spread["low"], f"{metric}_high": spread["high"],
               "interval_method": spread["method"],
               "accuracy_mean": float(np.mean([c["accuracy"] for c in per_seed.values()])),
               "cpu_seconds_mean": float(np.mean([c.get("cpu_seconds", 0) for c in per_seed.values()])),
               "classifier": any_cell.get("classifier"), "seeds": sorted(per_seed)}
        for key, base in (("delta_vs_real", "real"), ("delta_vs_classic", "real+classic")):
            base_cells = by_key.get((n, base), {})
            if arm not in ("real", base) and set(base_cells) & set(per_seed):
                row[key] = difference(per_seed, base_cells)
        unused = [c["unused"]["accuracy"] for c in per_seed.values() if c.get("unused")]
        if unused:  # accuracy on the training examples the few-shot draw left out (one set per seed)
            row["unused_accuracy"] = _seed_only_interval(unused)
        real_acc = [c["accuracy"] for c in by_key.get((n, "real"), {}).values()]
        if arm.startswith("synthetic") and real_acc and np.mean(real_acc) > 0:
            row["gqi"] = 100 * row["accuracy_mean"] / float(np.mean(real_acc))
            # seed 002's GQI filters with a real-data classifier first; the plain one does not
            row["gqi_filtered"] = any(str(f).startswith("confidence") for f in any_cell.get("filters") or [])
        rows.append(row)
    rows.sort(key=lambda r: (_n_key(r["n"]), r["arm"] != "real", r["arm"] != "real+classic", r["arm"]))
    return rows


def _range(entry: dict, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(entry['low'])} to {fmt.format(entry['high'])}"


def recommend(rows: list[dict]) -> list[dict]:
    """Per n: the recommended arm and one plain sentence, with the Holm correction stated.

    ``{"n", "arm", "plain_name", "helps", "sentence", "reference", "compared", "holm_p", "runner_up"}``;
    ``runner_up`` (None where a candidate was chosen or none ran): the best candidate not chosen,
    ``{"arm", "plain_name", "delta"}`` with its difference to the reference.
    """
    out = []
    for n in sorted({r["n"] for r in rows}, key=_n_key):
        here = {r["arm"]: r for r in rows if r["n"] == n}
        reference = "real+classic" if "real+classic" in here else "real" if "real" in here else None
        if reference is None:
            continue
        ref = here[reference]
        metric = ref["metric"]
        key = "delta_vs_classic" if reference == "real+classic" else "delta_vs_real"
        # Only generator arms that train on your data too are candidates: an arm of generated
        # images alone is a quality measure (GQI), not a recipe.
        candidates = [r for a, r in here.items() if a not in ("real", "real+classic")
                      and not a.startswith("synthetic") and key in r]
        adjusted = holm_adjust([c[key]["p_value"] for c in candidates]) if candidates else []
        winners = [(c, p) for c, p in zip(candidates, adjusted) if p < ALPHA and c[key]["mean"] > 0]
        at = "with all your images" if n is None else f"at {n} per class"
        ref_text = f"{metric} {ref[f'{metric}_mean']:.3f} ({_range({'low': ref[f'{metric}_low'], 'high': ref[f'{metric}_high']})})"
        correction = (f"Holm-corrected over {len(candidates)} generator arm{'s' if len(candidates) != 1 else ''}"
                      if candidates else "no generator arm ran")
        if winners:
            best, p = max(winners, key=lambda w: w[0][f"{metric}_mean"])
            d = best[key]
            sentence = (f"{at.capitalize()}: use {best['plain_name']}: {metric} {best[f'{metric}_mean']:.3f} "
                        f"({_range({'low': best[f'{metric}_low'], 'high': best[f'{metric}_high']})}), "
                        f"{d['mean']:+.3f} over {ref['plain_name']} ({_range(d, True)}; p = {p:.3g}, {correction}).")
            out.append({"n": n, "arm": best["arm"], "plain_name": best["plain_name"], "helps": True,
                        "sentence": sentence, "reference": reference, "compared": len(candidates), "holm_p": p,
                        "runner_up": None})
            continue
        choice = ref
        if reference == "real+classic" and "real" in here and "delta_vs_real" in ref:
            d_classic = ref["delta_vs_real"]
            if d_classic["mean"] < 0 and not d_classic["within_noise"]:
                choice = here["real"]  # classic augmentation hurt beyond noise: plain images win
        best_other = max(candidates, key=lambda c: c[key]["mean"], default=None)
        tail = ""
        if best_other is not None:
            d = best_other[key]
            # An interval wholly below 0 is a loss, not noise: say which.
            verdict = ("worse beyond noise" if d["mean"] < 0 and not d["within_noise"]
                       else "within noise after the correction")
            tail = (f" The best generator arm, {best_other['plain_name']}, is {d['mean']:+.3f} "
                    f"({_range(d, True)}) vs {ref['plain_name']}: {verdict} ({correction}).")
        what = "Synthetic data does not help here beyond noise" if candidates else "No generator arm ran"
        sentence = f"{at.capitalize()}: {what}; use {choice['plain_name']}: {ref_text if choice is ref else metric + ' ' + format(choice[f'{metric}_mean'], '.3f')}.{tail}"
        runner_up = None if best_other is None else {"arm": best_other["arm"], "plain_name": best_other["plain_name"],
                                                     "delta": best_other[key]}
        out.append({"n": n, "arm": choice["arm"], "plain_name": choice["plain_name"], "helps": False,
                    "sentence": sentence, "reference": reference, "compared": len(candidates), "holm_p": None,
                    "runner_up": runner_up})
    return out


def result_warnings(result: dict, rows: list[dict]) -> list[str]:
    """Warnings about the test set (classes under 30 examples), the seeds (fewer than 3) and cells
    computed on more than one kind of CPU."""
    if result.get("test_labels") is None or not rows:
        return []
    n_seeds = min(len(r["seeds"]) for r in rows)
    warnings = evaluation_warnings(np.asarray(result["test_labels"]), result["class_names"], n_seeds,
                                   unit=_unit(result))
    return warnings + mixed_cpu_warnings(result.get("cells") or [])


def mixed_cpu_warnings(cells: list[dict]) -> list[str]:
    """One line when the cells record more than one CPU (``genaug.hardware``): a cell recomputed on
    another CPU can differ in its last digits, so differences that small are noise. Cells without a
    record (made before genaug recorded it) are not counted."""
    cpus = sorted({cell["cpu"] for cell in cells if cell.get("cpu")})
    if len(cpus) < 2:
        return []
    return [f"these cells were computed on {len(cpus)} kinds of CPU ({' | '.join(cpus)}): float arithmetic "
            "differs between CPUs, so the same cell recomputed on another one can differ by a few test "
            "predictions; differences of that size are noise"]
