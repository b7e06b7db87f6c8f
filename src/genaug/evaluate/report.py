"""Summaries of an evaluation: per (n, arm) mean and 95% interval over seeds, paired differences
against ``real`` and ``real+classic``, the GAN Quality Index (seed 002 ch. 2.7.2), and the
JSON / markdown / PNG outputs."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Optional

import numpy as np

from .summary import GQI_NOTE, plain_arm_name, recommend, result_warnings, summarise

__all__ = ["summarise", "markdown_table", "verdict_lines", "recommend", "write_report", "plain_arm_name",
           "plot_metric_vs_n", "sample_grid", "explanations", "safe_file_name", "table_cell"]


def table_cell(text: object) -> str:
    """``text`` as one markdown table cell: ``|`` escaped as ``\\|`` and line breaks as spaces
    (a label such as ``a|b`` would otherwise add a column to its row)."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).replace("|", "\\|")


def safe_file_name(stem: str, suffix: str = "", taken: Optional[set] = None) -> str:
    """``stem + suffix`` with every character but ``A-Za-z0-9._-`` replaced by ``_`` (a label such as
    ``vae|x/default`` ends up in a plot's file name, which the service serves only when it is this
    plain); at most 150 characters of the stem. ``taken``: names already used (a collision, e.g.
    ``a|b`` and ``a_b``, gets ``_2``, ``_3``...); the chosen name is added to it."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:150] or "_"
    if not base[0].isalnum():
        base = "f" + base
    name, k = f"{base}{suffix}", 2
    while taken is not None and name in taken:
        name, k = f"{base}_{k}{suffix}", k + 1
    if taken is not None:
        taken.add(name)
    return name


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _delta(entry: Optional[dict]) -> str:
    if not entry:
        return ""
    noise = " (noise)" if entry.get("within_noise") else ""
    return f"{entry['mean']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]{noise}"


def markdown_table(rows: list[dict], plain: bool = True) -> str:
    """The verdict table: one line per (n, arm), intervals in brackets, deltas paired by seed."""
    metric = rows[0]["metric"] if rows else "weighted_f1"
    lines = [f"| n/class | training data | {metric} [95% interval] | Δ vs your data | Δ vs + classic | accuracy | GQI | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"{r['plain_name']} (`{r['arm']}`)" if plain and r["plain_name"] != r["arm"] else r["arm"]
        lines.append(f"| {r['n'] if r['n'] is not None else 'all'} | {table_cell(name)} | "
                     f"{_fmt(r[f'{metric}_mean'])} [{_fmt(r[f'{metric}_low'])}, {_fmt(r[f'{metric}_high'])}] | "
                     f"{_delta(r.get('delta_vs_real'))} | {_delta(r.get('delta_vs_classic'))} | "
                     f"{_fmt(r['accuracy_mean'])} | {_gqi(r)} | {len(r['seeds'])} |")
    return "\n".join(lines)


def _gqi(row: dict) -> str:
    """The GQI cell: the value, marked when it is seed 002's filtered version."""
    if "gqi" not in row:
        return ""
    return _fmt(row["gqi"], 1) + (" (filtered)" if row.get("gqi_filtered") else "")


def verdict_lines(rows: list[dict]) -> list[str]:
    """The recommendation per n, one plain sentence each (``summary.recommend``)."""
    return [r["sentence"] for r in recommend(rows)]


def explanations(metric: str, classifier: Optional[dict] = None) -> list[str]:
    """One line per number a reader sees."""
    lines = [f"{metric}: the test score (1 = every test example right); weighted F1 averages the per-class "
             "F1 scores weighted by how many test examples each class has.",
             "[a, b]: 95% interval from a bootstrap over seeds and test examples (it stays inside the score's range).",
             "Δ: the paired difference to your data alone / to your data + classic augmentation (same seeds, same "
             "test examples); '(noise)' marks an interval that contains 0.",
             "The recommendation names an arm only when it beats the reference after a Holm correction for "
             "comparing every generator arm at once.",
             GQI_NOTE]
    if classifier:
        lines.insert(0, f"Classifier: {classifier.get('description', classifier.get('name'))} "
                        f"(`{classifier.get('name')}`), the same for every arm, with the same steps and examples per step.")
    return lines


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
        pts = sorted((r["n"], r[f"{metric}_mean"], r[f"{metric}_low"], r[f"{metric}_high"])
                     for r in rows if r["arm"] == arm and r["n"] is not None)
        xs, ys, lows, highs = zip(*pts)
        ax.errorbar(xs, ys, yerr=[[y - lo for y, lo in zip(ys, lows)], [hi - y for y, hi in zip(ys, highs)]],
                    label=arm, marker="o", capsize=3)
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


def write_report(result: dict, out_dir: Path, title: str = "genaug evaluation",
                 selection: Optional[dict] = None) -> dict:
    """Write ``results.json``, ``results.md``, ``f1_vs_n.png`` and a sample grid per generator variant.

    The report leads with the recommendation (one sentence per n), then the warnings, the
    compact table with plain names, what each number means, and the details.
    ``selection``: ``select.select_recipe``'s answer, whose ``final`` is ``result``; its
    sentences (the chosen recipe, its test gain, the search cost) lead the report instead.
    """
    from .select import selection_sentences

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarise(result)
    picks = recommend(rows)
    warnings = result_warnings(result, rows)
    serialisable = {k: v for k, v in result.items() if k != "samples"}
    sentences = [p["sentence"] for p in picks]
    if selection is not None:
        sentences = selection_sentences(selection, rows)
        serialisable["selection"] = {"choices": selection["choices"], "cost": selection["cost"],
                                     "candidates": selection["candidates"],
                                     "validation_summary": summarise(selection["validation"])}
    serialisable.update(summary=rows, recommendation=picks, warnings=warnings, sentences=sentences)
    (out_dir / "results.json").write_text(json.dumps(serialisable, indent=1))
    metric = rows[0]["metric"] if rows else "weighted_f1"
    md = [f"# {title}", "", "## Recommendation", ""] + [f"- {line}" for line in sentences]
    if warnings:
        md += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    md += ["", "## Results", "", markdown_table(rows), "", "How to read it:", ""]
    md += [f"- {line}" for line in explanations(metric, result.get("classifier"))]
    plot = plot_metric_vs_n(rows, out_dir / "f1_vs_n.png")
    if plot:
        md += ["", f"![{metric} against n]({plot.name})"]
    grids = []
    taken = {"results.json", "results.md", "f1_vs_n.png"}
    for label, (samples, real) in result.get("samples", {}).items():
        if isinstance(samples.data, np.ndarray):
            grid = sample_grid(samples.data, samples.labels, samples.class_names,
                               out_dir / safe_file_name(f"samples_{label}", ".png", taken), title=label)
            grids.append(grid.name)
    if grids:
        md += ["", "## Samples", ""] + [f"![{g}]({g})" for g in grids]
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    return {"rows": rows, "markdown": markdown_table(rows), "verdict": sentences,
            "recommendation": picks, "warnings": warnings, "grids": grids,
            "explanations": explanations(metric, result.get("classifier"))}
