"""Summaries of an evaluation: per (n, arm) mean and 95% interval over seeds, paired differences
against ``real`` and ``real+classic``, the GAN Quality Index (seed 002 ch. 2.7.2), and the
JSON / markdown / PNG outputs."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Optional

import numpy as np

from .metrics import mean_interval, paired_difference


def summarise(result: dict, metric: Optional[str] = None) -> list[dict]:
    """One row per (n, arm): mean/CI of the metric and accuracy, paired deltas, GQI for synthetic arms."""
    metric = metric or result["protocol"].get("metric", "weighted_f1")
    by_key: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for cell in result["cells"]:
        by_key[(cell["n"], cell["arm"])][cell["seed"]] = cell
    rows = []
    for (n, arm), per_seed in by_key.items():
        values = {s: c[metric] for s, c in per_seed.items()}
        real = {s: c[metric] for s, c in by_key.get((n, "real"), {}).items()}
        classic = {s: c[metric] for s, c in by_key.get((n, "real+classic"), {}).items()}
        row = {"n": n, "arm": arm, "metric": metric, **{f"{metric}_{k}": v for k, v in mean_interval(list(values.values())).items()},
               "accuracy_mean": float(np.mean([c["accuracy"] for c in per_seed.values()])),
               "cpu_seconds_mean": float(np.mean([c.get("cpu_seconds", 0) for c in per_seed.values()])),
               "seeds": sorted(per_seed)}
        if arm != "real" and real:
            row["delta_vs_real"] = paired_difference(values, real)
        if arm not in ("real", "real+classic") and classic:
            row["delta_vs_classic"] = paired_difference(values, classic)
        real_acc = [c["accuracy"] for c in by_key.get((n, "real"), {}).values()]
        if arm.startswith("synthetic") and real_acc:
            row["gqi"] = 100 * row["accuracy_mean"] / float(np.mean(real_acc))
        rows.append(row)
    rows.sort(key=lambda r: (math.inf if r["n"] is None else r["n"], r["arm"] != "real", r["arm"] != "real+classic", r["arm"]))
    return rows


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _delta(entry: Optional[dict]) -> str:
    if not entry:
        return ""
    return f"{entry['mean']:+.3f} ± {_fmt(entry['ci95'])}"


def markdown_table(rows: list[dict]) -> str:
    """The verdict table: one line per (n, arm)."""
    metric = rows[0]["metric"] if rows else "weighted_f1"
    lines = [f"| n/class | arm | {metric} (mean ± 95% CI) | Δ vs real | Δ vs real+classic | accuracy | GQI | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n'] if r['n'] is not None else 'all'} | {r['arm']} | "
                     f"{_fmt(r[f'{metric}_mean'])} ± {_fmt(r[f'{metric}_ci95'])} | {_delta(r.get('delta_vs_real'))} | "
                     f"{_delta(r.get('delta_vs_classic'))} | {_fmt(r['accuracy_mean'])} | "
                     f"{_fmt(r.get('gqi'), 1) if 'gqi' in r else ''} | {len(r['seeds'])} |")
    return "\n".join(lines)


def verdict_lines(rows: list[dict]) -> list[str]:
    """Plain-language answer per n: the best arm and whether it beats real and real+classic."""
    out = []
    metric = rows[0]["metric"] if rows else "weighted_f1"
    for n in sorted({r["n"] for r in rows}, key=lambda v: math.inf if v is None else v):
        here = [r for r in rows if r["n"] == n]
        best = max(here, key=lambda r: r[f"{metric}_mean"])
        line = f"n={n if n is not None else 'all'}: best arm {best['arm']} ({metric} {best[f'{metric}_mean']:.3f})"
        for key, name in (("delta_vs_real", "real"), ("delta_vs_classic", "real+classic")):
            d = best.get(key)
            if d:
                sure = " (interval excludes 0)" if not math.isnan(d["ci95"]) and abs(d["mean"]) > d["ci95"] else ""
                line += f"; {d['mean']:+.3f} vs {name}{sure}"
        out.append(line)
    return out


def plot_metric_vs_n(rows: list[dict], path: Path) -> Optional[Path]:
    """F1 against n per arm (only when there are several n)."""
    ns = sorted({r["n"] for r in rows if r["n"] is not None})
    if len(ns) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = rows[0]["metric"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for arm in sorted({r["arm"] for r in rows}):
        pts = sorted((r["n"], r[f"{metric}_mean"], r[f"{metric}_ci95"]) for r in rows if r["arm"] == arm and r["n"] is not None)
        xs, ys, es = zip(*pts)
        ax.errorbar(xs, ys, yerr=[0 if math.isnan(e) else e for e in es], label=arm, marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("real examples per class (n)")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path,
                per_class: int = 8, title: str = "") -> Path:
    """A PNG grid: one row per class, ``per_class`` samples each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(class_names)
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 0.9 + 0.4), squeeze=False)
    for c in range(k):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c][j]
            ax.axis("off")
            if j < len(idx):
                img = images[idx[j]]
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                          vmin=0, vmax=255)
            if j == 0:
                ax.set_title(class_names[c], fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(result: dict, out_dir: Path, title: str = "genaug evaluation") -> dict:
    """Write ``results.json``, ``results.md``, ``f1_vs_n.png`` and a sample grid per generator variant."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarise(result)
    serialisable = {k: v for k, v in result.items() if k != "samples"}
    serialisable["summary"] = rows
    (out_dir / "results.json").write_text(json.dumps(serialisable, indent=1))
    md = [f"# {title}", "", markdown_table(rows), "", "## Verdict", ""] + [f"- {line}" for line in verdict_lines(rows)]
    plot = plot_metric_vs_n(rows, out_dir / "f1_vs_n.png")
    if plot:
        md += ["", f"![{rows[0]['metric']} against n]({plot.name})"]
    grids = []
    for label, (samples, real) in result.get("samples", {}).items():
        if isinstance(samples.data, np.ndarray):
            grid = sample_grid(samples.data, samples.labels, samples.class_names,
                               out_dir / f"samples_{label.replace('/', '_')}.png", title=label)
            grids.append(grid.name)
    if grids:
        md += ["", "## Samples", ""] + [f"![{g}]({g})" for g in grids]
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    return {"rows": rows, "markdown": markdown_table(rows), "verdict": verdict_lines(rows), "grids": grids}
