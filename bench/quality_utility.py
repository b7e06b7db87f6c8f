"""Does sample quality predict utility? And does a filter help? (issue 14, items 4 and 3)

MNIST few-shot under the protocol of ``mnist_fewshot.py`` (CNN, 1,000 steps of 64, half real per
batch, the full 10,000-image test set; its real and real+classic cells are restored from the
committed results, not recomputed). Generator arms: the single VAE on the unlabeled pool with
three samplers and the per-class VAEs with the prior, at 1:1 and 500 per class -- and, for the
filter ablation, the same 500-per-class draws through the confidence filter (a linear probe on
the arm's real training images' Lite0 features, p >= 0.6) and the near-copy filter (ratio 1/3).

For every generator cell the runner scores up to ``--quality-samples`` synthetic images per class
against the arm's real training images (Lite0 features): KID, precision, recall, density,
coverage, near-copy share. The report gives, over all (arm, n) pairs, Spearman's rank correlation
of each number with the arm's gain over real+classic (mean over seeds), with a bootstrap
interval over the pairs, and a scatter plot; then the filter ablation table.

    python bench/quality_utility.py --threads 1      # full run (resumes)
    python bench/quality_utility.py --cached-only    # report what is cached, compute nothing
    python bench/quality_utility.py --quick          # smoke test of the script
    python bench/quality_utility.py --flowers bench/results/issue12/flowers-s2/flowers.json
                                                     # the same tables from a flowers run made with
                                                     # flowers.py --quality-samples N (computes nothing)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from _common import RESULTS_DIR, command_sentence, machine, restore_cells, setup, warn_not_cached, write_json
from genaug.data import load_mnist
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, summarise
from genaug.evaluate.quality_utility import correlations, filter_ablation, quality_points, scatter_plot
from genaug.evaluate.report import markdown_table
from genaug.generators.classic import ClassicConfig

CONFIDENCE = "confidence:0.6"


def specs(quick: bool) -> list[GeneratorSpec]:
    """The arms (declarations over the runner; the VAE configs are mnist_fewshot.py's)."""
    per = 20 if quick else 500
    arms = ["real+synthetic"]
    single = []
    for sampler in ("noise", "interpolation+noise", "extrapolation+noise"):
        options = {"sampler": sampler}
        single += [SampleVariant(label=f"{sampler},1:1", options=options, ratio=1.0, arms=arms),
                   SampleVariant(label=f"{sampler},{per}", options=options, per_class=per, arms=arms)]
    prior = {"sampler": "prior"}
    return [
        GeneratorSpec(label="vae-single", kind="vae", unlabeled_pool=True, variants=single + [
            SampleVariant(label=f"extrapolation+noise,{per},{CONFIDENCE}", per_class=per, arms=arms,
                          options={"sampler": "extrapolation+noise"}, filters=[CONFIDENCE]),
            SampleVariant(label=f"extrapolation+noise,{per},near-copy", per_class=per, arms=arms,
                          options={"sampler": "extrapolation+noise"}, filters=["near-copy"])],
            config=dict(mode="single", channels=[32, 64, 128], hidden=128, latent_dim=50 if not quick else 8,
                        beta=1.0, steps=100 if quick else 3000, batch_size=64, alpha=0.5, noise=0.3,
                        generative_classifier=True, gc_steps=50 if quick else 600)),
        GeneratorSpec(label="vae-per-class", kind="vae", variants=[
            SampleVariant(label="prior,1:1", options=prior, ratio=1.0, arms=arms),
            SampleVariant(label=f"prior,{per}", options=prior, per_class=per, arms=arms),
            SampleVariant(label=f"prior,{per},{CONFIDENCE}", options=prior, per_class=per, arms=arms,
                          filters=[CONFIDENCE])],
            config=dict(mode="per_class", channels=[32, 64, 128], hidden=128, latent_dim=2, beta=0.5,
                        batchnorm=False, steps=20 if quick else 400, batch_size=64, generative_classifier=True,
                        gc_steps=50 if quick else 300)),
    ]


def correlation_row(entry: dict, with_n: bool = False) -> str:
    """One markdown row of a correlation (a dash where the number did not vary)."""
    start = f"| {entry['n']} " if with_n else ""
    if entry["rho"] is None:
        return f"{start}| {entry['number']} | – | – | {entry['points']} | {entry['reading']} |"
    return (f"{start}| {entry['number']} | {entry['rho']:+.2f} | {entry['low']:+.2f} to {entry['high']:+.2f} | "
            f"{entry['points']} | {entry['reading']} |")


def flowers_report(source: Path, out: Path) -> None:
    """Quality against utility on a finished flowers run (``flowers.py --quality-samples N``): per
    scenario and classifier, one point per generator arm (its accuracy gain over real+classic)."""
    document = json.loads(source.read_text())
    md = ["# Does sample quality predict utility? (flowers, seed 002 scenarios)", "",
          f"Read from `{source.as_posix().split('bench/', 1)[-1]}` (written by "
          f"`{document['machine']['command']}`) by `python bench/quality_utility.py --flowers "
          f"{source.as_posix().split('bench/', 1)[-1]}`; nothing recomputed.", "",
          "Utility = an arm's accuracy gain over `real+classic` on the scenario's test split. Quality = KID, "
          "precision / recall / density / coverage, the near-copy share and the Inception Score of the arm's "
          "generated images (at most the run's `quality_samples` per class, Lite0 features) against the arm's own "
          "real training images (never the test split). Only the target class is generated, so these numbers "
          "describe its images. One point per generator arm.", "",
          "Read with care: the `synthetic:` and `mixed:` variants of one generator are drawn with the same seeds, so "
          "their quality numbers coincide (and `balanced:` draws a superset); the points are not independent (about "
          "four generators, each used three ways), so the bootstrap intervals below are too narrow, and the ranking "
          "mostly separates img2img variations of the real tulips from images made from noise.", ""]
    payload = {"source": source.as_posix().split("bench/", 1)[-1], "runs": []}
    for run in document["runs"]:
        dataset = f"s{run['scenario']}-{run['classifier']}"
        cells = [c for c in document["cells"] if c.get("dataset") == dataset]
        result = {"cells": cells, "generators": run.get("generators", [])}
        table = correlations(result, run["rows"])
        if not table:
            continue
        head = f"scenario {run['scenario']}, classifier {run['classifier']}"
        plot = scatter_plot(result, run["rows"], out / f"quality_utility_flowers_{dataset}.png")
        seeds = sorted({c["seed"] for c in cells})
        md += [f"## {head.capitalize()} (seeds {', '.join(map(str, seeds))})", "",
               "| number | Spearman ρ | 95% interval (bootstrap over points) | points | reads as |",
               "|---|---|---|---|---|"] + [correlation_row(entry) for entry in table]
        md += ["", "| arm | gain over real+classic | KID | precision | recall | density | coverage | near-copies |",
               "|---|---|---|---|---|---|---|---|"]
        for point in quality_points(result, run["rows"]):
            value = lambda k: f"{point[k]:.3f}" if k in point else "–"  # noqa: E731
            md.append(f"| {point['arm']} | {point['gain']:+.3f} | {value('kid')} | {value('precision')} | "
                      f"{value('recall')} | {value('density')} | {value('coverage')} | {value('near_copy_share')} |")
        md += ["", f"![quality against gain, {head}]({plot.name})" if plot else "", ""]
        payload["runs"].append({"scenario": run["scenario"], "classifier": run["classifier"], "seeds": seeds,
                                "correlations": table, "points": quality_points(result, run["rows"])})
    write_json(out / "quality_utility_flowers.json", payload)
    (out / "quality_utility_flowers.md").write_text("\n".join(md))
    print("\n".join(md))


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--shots", default="5,20")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000, help="classifier steps per arm (mnist_fewshot.py's)")
    parser.add_argument("--quality-samples", type=int, default=100, help="synthetic images per class scored")
    parser.add_argument("--cached-only", action="store_true", help="compute nothing: report the cells cached so far")
    parser.add_argument("--restore-from", type=Path, action="append", default=None,
                        help="results JSON whose cells go back into the cache first (default: this benchmark's "
                             "committed file and mnist_fewshot's real / real+classic cells)")
    parser.add_argument("--flowers", type=Path, default=None,
                        help="report quality against utility from this flowers results JSON instead (no MNIST run)")
    args = parser.parse_args()
    if args.flowers is not None:
        flowers_report(args.flowers, args.out / "issue14")
        return
    torch.set_num_threads(args.threads)
    train, test = load_mnist()
    if args.quick:
        test = test.subset(range(500))
    name = "mnist_quick" if args.quick else "mnist_fewshot"  # mnist_fewshot.py's cache: its cells are shared
    out_name = "quality_utility_quick" if args.quick else "quality_utility"
    sources = args.restore_from or [RESULTS_DIR / "issue14" / f"{out_name}.json",
                                    RESULTS_DIR / "issue12" / "mnist-vae" / "mnist_fewshot.json"]
    for source in sources:
        restored = restore_cells(source, args.cache, dataset=name)
        if restored:
            print(f"restored {restored} cells from {source} into {args.cache}")
    protocol = Protocol(shots=[2] if args.quick else [int(s) for s in args.shots.split(",")],
                        seeds=[0] if args.quick else [int(s) for s in args.seeds.split(",")],
                        arms=["real", "real+classic", "real+synthetic"], classifier="cnn",
                        classifier_steps=30 if args.quick else args.steps, classifier_batch=64,
                        classic=ClassicConfig(preset="strong"), real_fraction=0.5,
                        quality_samples=10 if args.quick else args.quality_samples)
    started = time.time()

    def show(event):
        print(f"[{time.time() - started:7.0f}s] {event.step}/{event.total} {event.message}", flush=True)

    generators = specs(args.quick)
    result = evaluate(train, test, generators, protocol, dataset_name=name, cache_dir=args.cache, progress=show,
                      cached_only=args.cached_only, keep_samples=False)
    warn_not_cached(result, name)
    for cell in result["cells"]:
        cell["dataset"] = name
    rows = summarise(result)
    table = correlations(result, rows)
    out = args.out / "issue14"
    plot = scatter_plot(result, rows, out / f"{out_name}.png")
    ablation = filter_ablation(result, rows)
    payload = {"benchmark": "issue 14: quality vs utility, filter ablation (MNIST few-shot)", "machine": machine(),
               "wall_seconds_this_invocation": round(time.time() - started, 1),
               "protocol": protocol.model_dump(mode="json"), "generators": [g.model_dump(mode="json") for g in generators],
               "correlations": table, "ablation": ablation, "summary": rows, "cells": result["cells"]}
    write_json(out / f"{out_name}.json", payload)
    md = ["# Does sample quality predict utility? Does a filter help? (MNIST few-shot)", "",
          command_sentence(payload, "Protocol and budgets in the JSON.", wall=False), "",
          "Utility = an arm's weighted-F1 gain over `real+classic` (mean over seeds, the same seeds and 10,000 test "
          "images). Quality = the runner's numbers for the arm's synthetic images (at most "
          f"{protocol.quality_samples} per class, Lite0 features) against the arm's own real training images "
          "(never the test split), averaged over seeds. One point per (generator arm, n).", "",
          "## Rank correlation of each quality number with the gain", "",
          "| number | Spearman ρ | 95% interval (bootstrap over points) | points | reads as |", "|---|---|---|---|---|"]
    md += [correlation_row(entry) for entry in table]
    within = correlations(result, rows, by_n=True)
    md += ["", "Pooled points mix the effect of n itself (at n = 20 every arm is closer to real+classic and the "
           "real images are more varied); within each n apart:", "",
           "| n | number | Spearman ρ | 95% interval | points | reads as |", "|---|---|---|---|---|---|"]
    md += [correlation_row(entry, with_n=True) for entry in within]
    payload["correlations_within_n"] = within
    write_json(out / f"{out_name}.json", payload)
    md += ["", f"![quality against gain]({plot.name})" if plot else "(no plot: too few points)", "",
           "## Filter ablation (the same first draw with and without the filter; rejected samples redrawn)", "",
           "| n | arm | filter | F1 without | F1 with | Δ (with − without) [95%] | rejected | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    for entry in ablation:
        d = entry["delta"]
        md.append(f"| {entry['n']} | {entry['base_arm']} | {entry['filter']} | {entry['without']:.3f} | "
                  f"{entry['with']:.3f} | {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] | "
                  f"{entry['rejection_rate']:.0%} | {entry['verdict']} |")
    helped = [e for e in ablation if e["helps"]]
    md += ["", ("Filters that helped beyond noise: " + "; ".join(f"{e['filter']} on {e['base_arm']} at n={e['n']}"
                                                              for e in helped)) if helped else
           "No filter helped beyond noise in this benchmark.", "",
           "## All arms", "", markdown_table(rows), "",
           "The flowers generator arms: `quality_utility_flowers.md` (`--flowers`). Not covered: MNIST's DDIM / "
           "DCGAN arms (pool DDIM fits take hours on this CPU) and Inception-space numbers (Lite0 only here).", ""]
    (out / f"{out_name}.md").write_text("\n".join(md))
    print("\n".join(md[:40]))


if __name__ == "__main__":
    main()
