"""Reproduction of seed 001 tables 6.4 / 6.6 on MNIST few-shot (n per class in 2..50, 3 seeds, full test set).

Arms: real, real+classic; VAE arms: single VAE (latent space learned on the unlabeled MNIST
training images -- labels unused, as in seed 001 ch. 6.4 -- samples derived from the few
labelled examples) with noise / interpolation+noise / extrapolation+noise, and per-class VAEs
(trained on the few-shot subset only) with the prior; at 1:1 and at 2000 generated per class;
with and without the generative classifier. Issue 3 adds DDIM (pool-trained with img2img from the
labelled examples; class-conditional on the few-shot subset) and conditional-DCGAN arms at the n in
--deep-shots. Resumable: every cell is cached, long generator fits keep checkpoints.

    python bench/mnist_fewshot.py                 # full run (resumes)
    python bench/mnist_fewshot.py --cached-only   # report what is cached, compute nothing
    python bench/mnist_fewshot.py --quick         # smoke test of the script
    python bench/mnist_fewshot.py --select        # the automatic choice (issue 12), beside an oracle

--select runs `genaug evaluate --select` (genaug.evaluate.select) for every n and classifier: the
candidates are the default image grid (--select-grid default: per-class VAE and DDIM img2img; CPU-days
on MNIST) or the quick grid (--select-grid quick: small per-class VAEs; quick+pool adds the single VAE
whose latent space is learned from the training images without labels), chosen on validation folds
of the 60,000 training images, retrained and scored once on the test set. Beside it, every
candidate is scored directly on the test set (the oracle: for the report's check only, it never
reaches the choice) to say whether the choice lost to real+classic or gave up a gain that exists.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

import numpy as np

from _common import (RESULTS_DIR, command_sentence, machine, restore_cells, setup, warn_not_cached, warning_bullets,
                     write_json)
from _select_check import pool_rule, pool_suffix, seed_list, seeds_suffix, select_sections, select_with_oracle, smoke_test_grid
from genaug.data import load_mnist
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, summarise
from genaug.evaluate.metrics import decode_predictions
from genaug.evaluate.report import markdown_table, plot_metric_vs_n, verdict_lines
from genaug.evaluate.summary import result_warnings
from genaug.evaluate.select import VALIDATION_SIZE, default_grid
from genaug.evaluate.statistics import paired_bootstrap_difference
from genaug.generators.classic import ClassicConfig

# Seed 001, weighted F1, mean of 3 seeds. Table 6.4 (1:1) and table 6.6 (2000 generated per class).
SEED_1TO1 = {  # n: baseline, noise, interp+noise, extrap+noise, multi-VAE
    2: (0.660, 0.619, 0.674, 0.653, 0.678), 5: (0.776, 0.721, 0.787, 0.768, 0.770),
    10: (0.849, 0.825, 0.859, 0.849, 0.854), 20: (0.905, 0.878, 0.905, 0.909, 0.904),
    50: (0.941, 0.920, 0.942, 0.938, 0.937)}
SEED_2000 = {
    2: (0.660, 0.679, 0.668, 0.638, 0.634), 5: (0.776, 0.779, 0.795, 0.772, 0.768),
    10: (0.849, 0.851, 0.868, 0.871, 0.839), 20: (0.905, 0.894, 0.907, 0.919, 0.897),
    50: (0.941, 0.914, 0.935, 0.945, 0.925)}
SAMPLER_COLUMN = {"noise": 1, "interpolation+noise": 2, "extrapolation+noise": 3}


def specs(quick: bool) -> list[GeneratorSpec]:
    """The VAE arms. Budgets: see the module docstring and results file."""
    big = 50 if quick else 2000
    single_variants = []
    for sampler in ("noise", "interpolation+noise", "extrapolation+noise"):
        single_variants += [
            SampleVariant(label=f"{sampler},1:1", options={"sampler": sampler}, ratio=1.0,
                          arms=["real+synthetic"]),
            SampleVariant(label=f"{sampler},{big}", options={"sampler": sampler}, per_class=big,
                          arms=["real+synthetic", "real+synthetic+classic"]),
            SampleVariant(label=f"{sampler},{big},gc", options={"sampler": sampler}, per_class=big,
                          filters=["generative-classifier"], arms=["real+synthetic"]),
        ]
    per_class_variants = [
        SampleVariant(label="prior,1:1", options={"sampler": "prior"}, ratio=1.0, arms=["real+synthetic"]),
        SampleVariant(label=f"prior,{big}", options={"sampler": "prior"}, per_class=big,
                      arms=["real+synthetic", "real+synthetic+classic"]),
        SampleVariant(label=f"prior,{big},gc", options={"sampler": "prior"}, per_class=big,
                      filters=["generative-classifier"], arms=["real+synthetic"]),
    ]
    return [
        # Seed 001: single VAE d=50, beta 1, trained on all 60,000 training images (unlabeled).
        GeneratorSpec(label="vae-single", kind="vae", unlabeled_pool=True, variants=single_variants, config=dict(
            mode="single", channels=[32, 64, 128], hidden=128, latent_dim=50 if not quick else 8, beta=1.0,
            steps=100 if quick else 3000, batch_size=64, alpha=0.5, noise=0.3, generative_classifier=True,
            gc_steps=50 if quick else 600)),
        # Seed 001: per-class VAEs, d=2, beta=0.5, on the few-shot subset only.
        GeneratorSpec(label="vae-per-class", kind="vae", variants=per_class_variants, config=dict(
            mode="per_class", channels=[32, 64, 128], hidden=128, latent_dim=2, beta=0.5, batchnorm=False,
            steps=20 if quick else 400, batch_size=64, generative_classifier=True, gc_steps=50 if quick else 300)),
    ]


# The UNet the CPU budget affords at 28 px (0.7 M parameters; the '28' preset has 3.9 M).
SMALL_UNET = {"block_out_channels": [16, 32, 64], "layers_per_block": 1, "attention_resolution": 7,
              "norm_num_groups": 8, "flip": False, "checkpoint_every": 250}


def deep_specs(quick: bool) -> list[GeneratorSpec]:
    """Issue 3's arms: DDIM (on the unlabeled pool with img2img from the labelled examples, and
    class-conditional on the few-shot subset only, sampled from noise with guidance and by
    img2img) and a conditional DCGAN (few-shot subset only). 500 generated per class (the CPU
    budget; the VAE lines use 2,000), and the strongest img2img also at 2,000 per class."""
    per = 20 if quick else 500
    steps = (lambda full: 4) if quick else (lambda full: full)
    unet = {"preset": "tiny"} if quick else SMALL_UNET
    sample_steps = 4 if quick else 20
    both = ["real+synthetic", "real+synthetic+classic"]
    return [
        # The analogue of vae-single: the pool teaches the UNet what digits look like (labels unused);
        # img2img from each of the n labelled examples keeps that example's class.
        GeneratorSpec(label="ddim-pool", kind="ddim", unlabeled_pool=True, config=dict(
            mode="single", **unet, steps=steps(4000), batch_size=32, seed=0), variants=[
            SampleVariant(label=f"img2img{strength},{per}", options={"strength": strength, "steps": sample_steps},
                          per_class=per, arms=both) for strength in (0.3, 0.5, 0.7)] + [
            # As many per class as the best VAE line: is the gap to it a matter of sample count?
            SampleVariant(label=f"img2img0.7,{4 * per}", options={"strength": 0.7, "steps": sample_steps},
                          per_class=4 * per, arms=both)]),
        GeneratorSpec(label="ddim-cond", kind="ddim", config=dict(
            mode="conditional", **unet, steps=steps(1500), batch_size=32, label_dropout=0.1), variants=[
            SampleVariant(label=f"cfg2,{per}", options={"guidance_scale": 2.0, "steps": sample_steps}, per_class=per, arms=both),
            SampleVariant(label=f"img2img0.5,{per}", options={"mode": "img2img", "strength": 0.5, "steps": sample_steps},
                          per_class=per, arms=both)]),
        GeneratorSpec(label="dcgan", kind="dcgan", config=dict(
            mode="conditional", ngf=32, ndf=32, steps=steps(1500), batch_size=32, checkpoint_every=250), variants=[
            SampleVariant(label=f"default,{per}", per_class=per, arms=both)]),
    ]


def only(generators: list[GeneratorSpec], wanted: list[str] | None) -> list[GeneratorSpec]:
    """The generators and variants named by ``--variant GENERATOR/VARIANT`` (all when none is named).
    Cell identities do not depend on which other variants run, so a partial run's cells are the
    full run's cells."""
    if not wanted:
        return generators
    chosen = []
    for g in generators:
        variants = [v for v in g.variants if f"{g.label}/{v.label}" in wanted]
        if variants:
            chosen.append(g.model_copy(update={"variants": variants}))
    return chosen


def seed_columns(rows: list[dict]) -> list[str]:
    """Our gains over our own real baseline beside the seed's gains over its baseline."""
    lines = ["| n | arm | ours: F1 | ours: Δ vs real | seed 001: F1 | seed 001: Δ vs its baseline |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        arm, n = r["arm"], r["n"]
        seed_value = None
        if arm == "real":
            seed_value = SEED_1TO1[n][0]
        elif arm.startswith("real+synthetic[") and not arm.endswith("+classic"):
            variant = arm[arm.index("/") + 1:-1]
            table = SEED_2000 if ",2000" in variant else SEED_1TO1
            if ",gc" in variant:
                table = None  # seed 001 reports max(with GC, without GC); compared on the non-GC line
            if table is not None:
                if "vae-per-class" in arm:
                    seed_value = table[n][4]
                else:
                    sampler = variant.split(",")[0]
                    seed_value = table[n][SAMPLER_COLUMN[sampler]] if sampler in SAMPLER_COLUMN else None
        if seed_value is None:
            continue
        ours_delta = f"{r['delta_vs_real']['mean']:+.3f}" if r.get("delta_vs_real") else ""
        seed_delta = "" if arm == "real" else f"{seed_value - SEED_1TO1[n][0]:+.3f}"
        lines.append(f"| {n} | {arm} | {r['weighted_f1_mean']:.3f} | {ours_delta} | {seed_value:.3f} | {seed_delta} |")
    return lines


def diffusion_vs_vae(result: dict, shots: list[int]) -> list[str]:
    """Issue 3's MNIST target per n: the best diffusion arm against the best VAE arm, on the seeds
    both have, as a paired bootstrap over seeds and test images."""
    y_true = np.asarray(result["test_labels"])
    lines = []
    for n in shots:
        by_arm: dict[str, dict[int, dict]] = {}
        for c in result["cells"]:
            if c["n"] == n and "predictions" in c:
                by_arm.setdefault(c["arm"], {})[c["seed"]] = c
        diffusion = {a: v for a, v in by_arm.items() if "[ddim-" in a}
        vae = {a: v for a, v in by_arm.items() if "[vae-" in a}
        if not diffusion or not vae:
            continue
        mean = lambda cells: float(np.mean([c["weighted_f1"] for c in cells.values()]))  # noqa: E731
        best_d, best_v = max(diffusion, key=lambda a: mean(diffusion[a])), max(vae, key=lambda a: mean(vae[a]))
        seeds = sorted(set(diffusion[best_d]) & set(vae[best_v]))
        if not seeds:
            continue
        preds = lambda cells: {s: decode_predictions(cells[s]["predictions"]) for s in seeds}  # noqa: E731
        d = paired_bootstrap_difference(preds(diffusion[best_d]), preds(vae[best_v]), y_true, 10, "weighted_f1")
        verdict = "met" if d["low"] > 0 else "NOT met"
        lines.append(f"n={n} (seeds {','.join(map(str, seeds))}): best diffusion arm {best_d} "
                     f"{mean(diffusion[best_d]):.3f}; best VAE arm {best_v} {mean(vae[best_v]):.3f}; "
                     f"Δ {d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}): target {verdict}"
                     + ("" if n <= 10 else " (the target is for n <= 10 only)") + ".")
    return lines


def classic_gap(rows: list[dict], classifier: str) -> list[str]:
    """The issue's target at n <= 10: the best arm against real+classic by >= .02."""
    lines = []
    for n in sorted({r["n"] for r in rows if r["n"] is not None and r["n"] <= 10}):
        here = [r for r in rows if r["n"] == n and "delta_vs_classic" in r and not r["arm"].startswith("synthetic")]
        if not here:
            continue
        best = max(here, key=lambda r: r["delta_vs_classic"]["mean"])
        d = best["delta_vs_classic"]
        lines.append(f"{classifier}, n={n}: best arm {best['arm']} {d['mean']:+.3f} ({d['low']:+.3f} to "
                     f"{d['high']:+.3f}) vs real+classic: +0.02 target {'met' if d['mean'] >= 0.02 else 'NOT met'} (judged by the mean; "
                     f"the recommendation above says whether it is beyond noise after the Holm correction).")
    return lines


def mnist_protocol(classifier: str, args) -> Protocol:
    """The benchmark's protocol: every arm the same classifier, steps and batch of 64; the kornia
    'strong' preset for classic augmentation; mixed arms draw half of each batch from real images."""
    shots = [2] if args.quick else [int(s) for s in args.shots.split(",")]
    return Protocol(shots=shots, seeds=[0] if args.quick else [int(s) for s in args.seeds.split(",")],
                    arms=args.arms.split(","), classifier=classifier, classifier_steps=30 if args.quick else args.steps,
                    classifier_batch=64, classic=ClassicConfig(preset="strong"), real_fraction=0.5)


def pool_candidate(quick: bool) -> GeneratorSpec:
    """The single VAE of seed 001 (latent space learned on the training split's images without
    labels) with its best sampler at 2,000 per class, with and without classic augmentation: the
    arm that beats real+classic at n = 5 on the test split (``results/issue12/mnist-vae``). In a
    search fold it learns from that fold's inner training images only, never from the fold."""
    single = next(spec for spec in specs(quick) if spec.label == "vae-single")
    big = 50 if quick else 2000
    variant = next(v for v in single.variants if v.label == f"extrapolation+noise,{big}")
    return single.model_copy(update={"label": "vae-pool", "variants": [variant]})


def select_candidates(train, args) -> list[GeneratorSpec]:
    """The --select grid (``quick+pool``: the quick grid and the pool-trained single VAE); --quick
    shrinks every per-class candidate's training to a smoke test's budget."""
    candidates = default_grid(train, quick=args.select_grid in ("quick", "quick+pool"))
    if args.quick:
        candidates = smoke_test_grid(candidates)
    if args.select_grid == "quick+pool":
        candidates.append(pool_candidate(args.quick))
    return candidates


def select_benchmark(classifier: str, args, train, test, show) -> dict:
    """One classifier's automatic choice per n, its test-set scores, and the oracle beside it."""
    protocol = mnist_protocol(classifier, args)
    # the fold cells are cached per pool (another pool: other cells); with the default pool the final
    # and the oracle runs share one name, so the oracle reuses the final run's real, real+classic and
    # chosen cells
    name = ("mnist_quick" if args.quick else "mnist_fewshot") + f"-select-{args.select_grid}" \
        + ("" if classifier == "cnn" else f"-{classifier}")
    oracle_protocol = protocol.model_copy(update={"arms": ["real", "real+classic", "real+synthetic",
                                                           "real+synthetic+classic"]})
    run = select_with_oracle(train, test, protocol, oracle_protocol, select_candidates(train, args),
                             final_name=name + pool_suffix(args.validation_size), oracle_name=name,
                             cache_dir=args.cache, show=show, reference="real+classic", prefix=f"{classifier}, ",
                             validation_size=args.validation_size or None, search_seeds=seed_list(args.search_seeds))
    return {"classifier": classifier, **run}


def write_select_report(runs: list[dict], args, started: float) -> None:
    """mnist_fewshot_select[_<grid>][_s<pool>][``seeds_suffix``][_<classifiers>].{json,md} (mnist_quick_...
    with --quick): the choices, the target check, the test-set tables."""
    seeds = seed_list(args.search_seeds)
    classifiers = args.classifier.split(",")
    name = ("mnist_quick" if args.quick else "mnist_fewshot") + "_select" + \
        ("" if args.select_grid == "default" else f"_{args.select_grid}") + pool_suffix(args.validation_size) \
        + seeds_suffix(seeds) \
        + ("" if classifiers == ["cnn"] else "_" + "-".join(classifiers))
    payload = {"benchmark": "MNIST few-shot through --select", "machine": machine(), "runs": runs,
               "select_grid": args.select_grid, "validation_size": args.validation_size,
               "wall_seconds_this_invocation": round(time.time() - started, 1)}
    write_json(args.out / f"{name}.json", payload)
    md = ["# MNIST few-shot through `--select` (issue 12, item 8)", "",
          command_sentence(payload), "",
          f"The choice: the {args.select_grid} candidate grid for images, 2 validation folds drawn from the 60,000 "
          f"training images only (a stratified pool: {pool_rule(args.validation_size or None, None, 'images')}; "
          f"search seeds {seeds or 'as the final runs'}), the chosen "
          "recipe retrained on the few-shot subset and scored once on the test set. The oracle scores every candidate "
          "on the test set directly -- for this check only; the choice never sees it. Reference: real+classic.", "",
          "## Target: the choice never loses to real+classic beyond the interval and keeps the gains that exist", ""]
    md += [f"- {line}" for run in runs for line in run["checks"]]
    for run in runs:
        md += ["", f"## Classifier {run['classifier']}", ""] + select_sections(run, split="test set")
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def run_classifier(classifier: str, args, train, test, show) -> tuple[dict, list[GeneratorSpec], list[int]]:
    """Every arm under one classifier (its own cell cache: a cell path names n, seed and arm only)."""
    protocol = mnist_protocol(classifier, args)
    name = ("mnist_quick" if args.quick else "mnist_fewshot") + ("" if classifier == "cnn" else f"-{classifier}")
    generators = [] if args.generators == "none" else only(specs(args.quick), args.variant)
    result = evaluate(train, test, generators, protocol, dataset_name=name, cache_dir=args.cache, progress=show,
                      cached_only=args.cached_only)
    warn_not_cached(result, name)
    deep_shots = [] if args.generators == "none" else [2] if args.quick else \
        [int(s) for s in args.deep_shots.split(",") if s]
    # Same protocol (same cell identities), fewer shots, without the base arms: those cells are in
    # ``result`` already and must not be counted twice. --arms holds here too (a lite0-linear
    # +classic cell costs about an hour on this CPU).
    deep_arms = [a for a in protocol.arms if "synthetic" in a]
    if deep_shots and deep_arms:
        deep_protocol = protocol.model_copy(update={"shots": deep_shots, "arms": deep_arms})
        deep = evaluate(train, test, only(deep_specs(args.quick), args.variant), deep_protocol, dataset_name=name,
                        cache_dir=args.cache, progress=show, cached_only=args.cached_only)
        warn_not_cached(deep, name + " (deep arms)")
        result["cells"] += deep["cells"]
        generators = generators + only(deep_specs(args.quick), args.variant)
    for cell in result["cells"]:
        cell["dataset"] = name
    return result, generators, deep_shots


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--shots", default="2,5,10,20,50")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000, help="classifier steps per arm")
    parser.add_argument("--classifier", default="cnn", help="comma separated, e.g. cnn,lite0-linear: every one runs")
    parser.add_argument("--generators", default="all", help="'all' (the VAE and deep arms) or 'none' (real arms only)")
    parser.add_argument("--arms", default="real,real+classic,real+synthetic,real+synthetic+classic",
                        help="comma separated runner arms (e.g. 'real' alone to compare classifiers)")
    parser.add_argument("--deep-shots", default="2,5,10,20,50", help="n for the DDIM / DCGAN arms (issue 3); '' = none")
    parser.add_argument("--variant", action="append", default=None, metavar="GENERATOR/VARIANT",
                        help="run only this generator variant (repeatable), e.g. 'vae-single/extrapolation+noise,2000'")
    parser.add_argument("--cached-only", action="store_true", help="compute nothing: report the cells cached so far")
    parser.add_argument("--restore-from", type=Path, default=None,
                        help="results JSON whose cells go back into the cache first (default: the committed "
                             "bench/results file), so a fresh clone resumes instead of recomputing")
    parser.add_argument("--select", action="store_true", help="the automatic choice per n, beside an oracle (see above)")
    parser.add_argument("--select-grid", choices=["default", "quick", "quick+pool"], default="quick",
                        help="with --select: the candidate grid, quick (small per-class VAEs; the script's default), "
                             "quick+pool (those and the pool-trained single VAE of seed 001, the arm that beats "
                             "real+classic at n = 5) or default (genaug's: per-class VAE and DDIM, CPU-days here)")
    parser.add_argument("--validation-size", type=int, default=VALIDATION_SIZE,
                        help="with --select: the validation pool's size in images, stratified; 0 = half of every class")
    parser.add_argument("--search-seeds", default=None, help="with --select: the search's seeds (default --seeds)")
    args = parser.parse_args()
    known = {f"{g.label}/{v.label}" for g in specs(args.quick) + deep_specs(args.quick) for v in g.variants}
    unknown = sorted(set(args.variant or []) - known)
    if unknown:
        parser.error(f"--variant: unknown {unknown}; known: {sorted(known)}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)  # the report and its plots go there
    train, test = load_mnist()
    if args.quick:
        test = test.subset(range(500))
    started = time.time()
    name = "mnist_quick" if args.quick else "mnist_fewshot"
    results = args.restore_from or RESULTS_DIR / f"{name}.json"
    restored = restore_cells(results, args.cache, dataset=name)
    if restored:
        print(f"restored {restored} cells from {results} into {args.cache}")

    def show(event):
        print(f"[{time.time() - started:7.0f}s] {event.step}/{event.total} {event.message}", flush=True)

    if args.select:
        write_select_report([select_benchmark(c, args, train, test, show) for c in args.classifier.split(",")],
                            args, started)
        return
    md = ["# MNIST few-shot (seed 001 tables 6.4 / 6.6)", ""]
    cells, summaries = [], {}
    for classifier in args.classifier.split(","):
        result, generators, deep_shots = run_classifier(classifier, args, train, test, show)
        rows = summarise(result)
        cells += result["cells"]
        summaries[classifier] = rows
        md += [f"## Classifier {classifier}: {result['classifier']['description']}", "",
               "Per n, the recommendation (Holm-corrected over the generator arms):", ""]
        md += [f"- {v}" for v in verdict_lines(rows)]
        md += warning_bullets(result_warnings(result, rows)) + ["", "Targets at n <= 10:", ""]
        md += [f"- {v}" for v in classic_gap(rows, classifier)]
        lines = diffusion_vs_vae(result, deep_shots)
        if lines:
            md += ["", "Diffusion against the VAE (issue 3 target: a diffusion arm beats the best VAE arm at n <= 10):",
                   ""] + [f"- {v}" for v in lines]
        md += ["", markdown_table(rows), ""]
        if classifier == "cnn":
            md += ["Beside seed 001 (its classifier was weaker: compare gains over each protocol's own baseline):", ""]
            md += seed_columns(rows) + [""]
        plot = plot_metric_vs_n(rows, args.out / f"{name}_{classifier}_f1_vs_n.png")
        if plot:
            md += [f"![F1 against n]({plot.name})", ""]
    budgets = {"classifier_steps": 30 if args.quick else args.steps, "classifier_batch": 64,
               "vae": {g.label: g.config for g in specs(args.quick)},
               "deep_arms": {g.label: g.config for g in deep_specs(args.quick)}, "test_images": len(test)}
    payload = {"benchmark": "seed 001 tables 6.4/6.6, MNIST few-shot", "machine": machine(),
               "wall_seconds_this_invocation": round(time.time() - started, 1), "budgets": budgets,
               "summary": summaries, "cells": cells}
    write_json(args.out / f"{name}.json", payload)
    intro = [command_sentence(payload, "Budgets in the JSON.", wall=False), "",
             "Weighted F1 on the full 10,000-image test set, mean and 95% bootstrap interval over seeds and test "
             "images; Δ = paired bootstrap difference (same seeds, same test images).", "",
             "Generators: `vae-single` learns its latent space from the 60,000 MNIST training images *without labels* "
             "(the unlabeled pool of seed 001 ch. 6.4; the test set never reaches it) and derives every sample from one "
             "of the n labelled few-shot examples, whose class it keeps. `vae-per-class` trains one VAE per class on the "
             "n labelled examples only. `,gc` = generative-classifier filter on; `+classic` = classic augmentation "
             "(kornia 'strong' preset) applied on the fly to every training batch. Mixed arms draw half of each batch "
             "from the real images.", "",
             "Issue 3 arms: `ddim-pool` is the diffusion analogue of `vae-single` (an unconditional DDIM on the "
             "unlabeled pool; img2img variations of the n labelled examples at strength 0.3 / 0.5 / 0.7, 20 DDIM "
             "steps). `ddim-cond`: a class-conditional DDIM on the n labelled examples (guidance 2, or img2img 0.5). "
             "`dcgan`: a conditional DCGAN on the n labelled examples. 500 generated per class; "
             "`img2img0.7,2000` draws 2,000.", ""]
    (args.out / f"{name}.md").write_text("\n".join(md[:2] + intro + md[2:]) + "\n")
    print("\n".join(md[:2] + intro + md[2:]))


if __name__ == "__main__":
    main()
