"""Seed 002 scenarios on the flowers set (ch. 4.2-4.4, tables 4.2-4.5): declarations over genaug.evaluate.

Data: ../shared/data/flowers (5 classes, 128 px JPEGs), ingested at 64 x 64 (the thesis trains at 64 px).
A fixed test split of 100 images per class (split seed 0) never reaches a generator or the classifier.

- Scenario 1: classifier on sunflower / tulip / dandelion; the generators learn the training
  sunflowers (~630). "synthetic" replaces the real sunflowers by as many generated ones, "mixed"
  adds 100 generated sunflowers to the real ones (thesis: 733 + 100).
- Scenario 2: tulip / daisy / rose with only 150 training tulips (drawn per seed); the generators
  learn those 150; "synthetic" = 150 generated tulips instead of the real ones, "mixed" = 150 real
  + 150 generated (thesis tables 4.4 / 4.5).
- Scenario 3: as scenario 2, the generators learn the 150 tulips expanded 15x by classic
  augmentation (2,250 images; the thesis had 2,235).

Every scenario also runs "real+classic" and "balanced+classic" (enough generated images of the
small class to reach the others' mean count, with classic augmentation). The thesis's
"tulip-only" test set is mirrored by the accuracy on every target image in neither the training
nor the test split (the runner's ``score_unused``; scenarios 2 and 3, ~730 tulips), and by the
target-class recall on the test split (every scenario).

The runner does the rest: one classifier and budget for every arm (``--classifier``), cell
identities, caching and resuming, bootstrap intervals, paired differences, the Holm-corrected
recommendation.

    python bench/flowers.py --scenarios 2 --seeds 0                       # one scenario, one seed
    python bench/flowers.py --classifier lite0-linear --generators none   # the real arms only
    python bench/flowers.py --generators none --arms real                 # each classifier on your images
    python bench/flowers.py                                               # everything (days on a CPU)
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from _common import CACHE_DIR, RESULTS_DIR, machine, restore_cells, setup, warn_not_cached, write_json
from genaug.data import LabelledImages, ingest
from genaug.data.builtin import find_data_file
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, recommend, summarise
from genaug.evaluate.metrics import decode_predictions
from genaug.evaluate.report import markdown_table

THESIS = {  # accuracy, seed 002 tables 4.2/4.3 (scenario 1, DDIM) and 4.4/4.5 (scenario 3, DDIM)
    1: {"mixed test": {"real": 0.87, "synthetic": 0.84, "mixed": 0.89},
        "target-only test": {"real": 0.92, "synthetic": 0.80, "mixed": 0.95}},
    3: {"mixed test": {"real": 0.57, "synthetic": 0.57, "mixed": 0.65},
        "target-only test": {"real": 0.08, "synthetic": 0.09, "mixed": 0.22}},
}
SCENARIOS = {
    1: {"classes": ["sunflower", "tulip", "dandelion"], "target": "sunflower", "n_target": None, "mixed": 100,
        "augment_copies": 1},
    2: {"classes": ["tulip", "daisy", "rose"], "target": "tulip", "n_target": 150, "mixed": 150, "augment_copies": 1},
    3: {"classes": ["tulip", "daisy", "rose"], "target": "tulip", "n_target": 150, "mixed": 150, "augment_copies": 15},
}
TEST_PER_CLASS = 100

# What a CPU affords at 64 px: a 1.1 M-parameter UNet (4 levels, attention at 8 px) and a DCGAN
# with 32 base channels. The thesis trained its DDIM (quickgrid/pytorch-diffusion) on an A100.
UNET_64_CPU = {"block_out_channels": [16, 32, 64, 64], "layers_per_block": 1, "attention_resolution": 8,
               "norm_num_groups": 8}


def generator_configs(quick: bool, budget_scale: float) -> dict[str, tuple[str, dict, dict[str, dict]]]:
    """name -> (kind, config, sample variants' options) at the stated CPU budgets."""
    s = (lambda steps: max(2, int(steps * budget_scale))) if not quick else (lambda steps: 3)
    unet = {"preset": "tiny"} if quick else UNET_64_CPU
    sample_steps = 4 if quick else 50
    return {
        "dcgan": ("dcgan", {"mode": "per_class", "ngf": 32, "ndf": 32, "steps": s(2000), "batch_size": 32,
                            "checkpoint_every": 250, "sample_every": 500}, {"dcgan": {}}),
        "ddim": ("ddim", {"mode": "per_class", **unet, "steps": s(3000), "batch_size": 16, "checkpoint_every": 250,
                          "sample_every": 1000},
                 {"ddim": {"steps": sample_steps},
                  **{f"ddim-img2img-{strength}": {"mode": "img2img", "strength": strength, "steps": sample_steps}
                     for strength in (0.3, 0.6)}}),
    }


def scenario_specs(number: int, names: list[str], quick: bool, budget_scale: float) -> list[GeneratorSpec]:
    """Per generator: learns the target class only; variants 'synthetic' (replaces the real target
    images), 'mixed' (adds a fixed number) and 'balanced' (fills the target class up, + classic)."""
    scenario = SCENARIOS[number]
    configs = generator_configs(quick, budget_scale)
    specs = []
    for name in names:
        kind, config, variants = configs[name]
        declared = []
        for label, options in variants.items():
            declared += [
                SampleVariant(label=f"synthetic:{label}", options=options, ratio=1.0, replace_real=True,
                              arms=["real+synthetic"]),
                SampleVariant(label=f"mixed:{label}", options=options, per_class=scenario["mixed"], ratio=None,
                              arms=["real+synthetic"]),
                SampleVariant(label=f"balanced:{label}", options=options, fill="mean",
                              arms=["real+synthetic+classic"])]
        specs.append(GeneratorSpec(label=name, kind=kind, config=config, classes=[scenario["target"]],
                                   augment_copies=scenario["augment_copies"], variants=declared))
    return specs


def load_flowers() -> LabelledImages:
    """The flowers set at 64 px (ingested once, kept as .npz: ingesting 4,317 JPEGs takes a while)."""
    cache = CACHE_DIR / "flowers64.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return LabelledImages(z["images"], z["labels"], [str(c) for c in z["class_names"]], [str(s) for s in z["sources"]])
    data = ingest(find_data_file("flowers"), image_size=64).data
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, images=data.images, labels=data.labels, class_names=np.array(data.class_names),
                        sources=np.array(data.sources))
    return data


def scenario_split(data: LabelledImages, number: int) -> tuple[LabelledImages, LabelledImages]:
    """(training split, test split) of the scenario's classes: 100 test images per class, split seed 0."""
    classes = SCENARIOS[number]["classes"]
    keep = np.flatnonzero(np.isin(np.array(data.class_names)[data.labels], classes))
    names = np.array(data.class_names)[data.labels[keep]]
    labels = np.array([classes.index(n) for n in names], np.int64)
    data = LabelledImages(data.images[keep], labels, list(classes), [data.sources[i] for i in keep])
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.choice(np.flatnonzero(data.labels == c), TEST_PER_CLASS, replace=False)
                           for c in range(len(classes))])
    train = np.setdiff1d(np.arange(len(data)), test)
    return data.subset(train), data.subset(np.sort(test))


def target_recall(result: dict, target: int) -> dict[tuple, float]:
    """Per (seed, arm): the share of test images of the target class predicted as it."""
    y = np.asarray(result["test_labels"])
    mask = y == target
    return {(c["seed"], c["arm"]): float(np.mean(decode_predictions(c["predictions"])[mask] == target))
            for c in result["cells"]}


def run_scenario(number: int, args, classifier: str, log) -> dict:
    """One scenario under one classifier: the runner's result, with each row's target-only scores."""
    scenario = SCENARIOS[number]
    train, test = scenario_split(load_flowers(), number)
    if args.quick:
        test = test.subset(range(0, len(test), 10))
    names = [] if args.generators == "none" else args.generators.split(",")
    specs = scenario_specs(number, names, args.quick, args.budget_scale)
    protocol = Protocol(shots=[scenario["n_target"] if not args.quick or scenario["n_target"] is None else 20],
                        seeds=[0] if args.quick else [int(s) for s in args.seeds.split(",")],
                        arms=args.arms.split(","), classifier=classifier,
                        classifier_steps=20 if args.quick else args.classifier_steps,
                        shot_classes=[scenario["target"]] if scenario["n_target"] else None,
                        score_unused=scenario["n_target"] is not None, metric="accuracy",
                        quality_samples=args.quality_samples)
    dataset = f"s{number}-{classifier}"
    result = evaluate(train, test, specs, protocol, dataset_name=dataset, cache_dir=args.cache_root,
                      progress=lambda e: log(f"scenario {number} {classifier}: {e.step}/{e.total} {e.message}"
                                             + (f" (eta {e.eta_seconds:.0f} s)" if e.eta_seconds else "")),
                      keep_samples=False, cached_only=args.report_only)
    warn_not_cached(result, dataset)
    for cell in result["cells"]:
        cell["dataset"] = dataset
    rows = summarise(result)
    recall = target_recall(result, scenario["classes"].index(scenario["target"]))
    for row in rows:
        values = [v for (seed, arm), v in recall.items() if arm == row["arm"]]
        row["target_recall_mean"] = float(np.mean(values)) if values else None
        row["scenario"] = number
    return {"scenario": number, "classifier": classifier, "rows": rows, "recommendation": recommend(rows),
            "cells": result["cells"], "generators": result["generators"], "protocol": result["protocol"]}


def target_lines(runs: list[dict]) -> list[str]:
    """The issue's flowers targets per (scenario, classifier), on the runner's rows."""
    lines = []
    for run in runs:
        here = {r["arm"]: r for r in run["rows"]}
        if "real" not in here:
            continue
        head = f"Scenario {run['scenario']}, {run['classifier']}"
        real, classic = here["real"], here.get("real+classic")
        line = f"{head}: real {real['accuracy_mean']:.3f}"
        if classic:
            line += f", real+classic {classic['accuracy_mean']:.3f}"
        generated = [r for a, r in here.items() if a not in ("real", "real+classic") and "delta_vs_classic" in r]
        if generated:
            best = max(generated, key=lambda r: r["accuracy_mean"])
            d = best["delta_vs_classic"]
            gap = "met" if d["mean"] >= 0.02 else "NOT met"
            line += (f"; best generator arm {best['plain_name']} {best['accuracy_mean']:.3f}, "
                     f"{d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}) vs real+classic "
                     f"({'within noise' if d['within_noise'] else 'beyond noise'}): +0.02 target {gap}")
        if run["scenario"] in THESIS:
            t = THESIS[run["scenario"]]
            line += f"; thesis real {t['mixed test']['real']:.2f}, mixed {t['mixed test']['mixed']:.2f}"
        lines.append(line + ".")
    return lines


def classifier_lift(runs: list[dict]) -> list[str]:
    """lite0-linear's real arm against the CNN's, per scenario (the issue's first target)."""
    by = {(r["scenario"], r["classifier"]): {row["arm"]: row for row in r["rows"]} for r in runs}
    lines = []
    for number in sorted({r["scenario"] for r in runs}):
        cnn, lite = by.get((number, "cnn"), {}).get("real"), by.get((number, "lite0-linear"), {}).get("real")
        if cnn and lite:
            lines.append(f"Scenario {number}: real arm, lite0-linear {lite['accuracy_mean']:.3f} "
                         f"({lite['accuracy_low']:.3f} to {lite['accuracy_high']:.3f}) vs cnn {cnn['accuracy_mean']:.3f} "
                         f"({cnn['accuracy_low']:.3f} to {cnn['accuracy_high']:.3f}): "
                         f"{lite['accuracy_mean'] - cnn['accuracy_mean']:+.3f}.")
    return lines


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--scenarios", default="2,3,1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--generators", default="dcgan,ddim", help="comma separated, or 'none' (real arms only)")
    parser.add_argument("--classifier", default="cnn,lite0-linear", help="comma separated: every one runs")
    parser.add_argument("--arms", default="real,real+classic,real+synthetic,real+synthetic+classic",
                        help="comma separated runner arms (e.g. 'real' alone to compare classifiers)")
    parser.add_argument("--classifier-steps", type=int, default=800)
    parser.add_argument("--budget-scale", type=float, default=1.0, help="scale every generator's training steps")
    parser.add_argument("--report-only", action="store_true", help="compute nothing: report the cells cached so far")
    parser.add_argument("--restore-from", type=Path, action="append", default=None,
                        help="results JSON whose cells go back into the cache first (default: the committed "
                             "bench/results file), so a fresh clone resumes instead of recomputing; repeatable")
    parser.add_argument("--quality-samples", type=int, default=0,
                        help="score up to N generated images per class of every generator arm (KID, PRDC, "
                             "near-copies against the arm's real training images; issue 14); 0 = off")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    name = "flowers_quick" if args.quick else "flowers"
    args.cache_root = args.cache / name

    def log(message: str) -> None:
        print(f"[{time.time() - started:7.0f}s] {message}", flush=True)

    restored = sum(restore_cells(path, args.cache_root)
                   for path in args.restore_from or [RESULTS_DIR / f"{name}.json"])
    if restored:
        log(f"restored {restored} cells from the committed results into {args.cache_root}")
    runs = [run_scenario(number, args, classifier, log)
            for classifier in args.classifier.split(",") for number in [int(s) for s in args.scenarios.split(",")]]
    payload = {"benchmark": "seed 002 flowers scenarios", "machine": machine(),
               "wall_seconds_this_invocation": round(time.time() - started, 1),
               "budgets": {"classifier_steps": runs[0]["protocol"]["classifier_steps"] if runs else None,
                           "generators": {k: v[:2] for k, v in generator_configs(args.quick, args.budget_scale).items()}},
               "runs": [{k: v for k, v in r.items() if k != "cells"} for r in runs],
               "cells": [c for r in runs for c in r["cells"]], "thesis": THESIS}
    write_json(args.out / f"{name}.json", payload)
    md = ["# Flowers: seed 002 scenarios (tables 4.2-4.5)", "",
          f"Written by `{payload['machine']['command']}`; CPU, {payload['machine']['threads']} torch thread(s). "
          "Resumable (rerun the same command). Budgets in the JSON, per-cell CPU seconds in its cells.", "",
          "Accuracy on the fixed test split (100 images per class), mean and 95% bootstrap interval over seeds and "
          "test images; Δ = paired difference (same seeds, same test images). 'target recall' = share of the test "
          "images of the target class predicted as it; 'target-only' = accuracy on every target image in neither "
          "split (scenarios 2, 3; the thesis's tulip-only test set).", ""]
    md += ["## Targets", ""] + [f"- {line}" for line in classifier_lift(runs) + target_lines(runs)]
    for run in runs:
        md += ["", f"## Scenario {run['scenario']}, classifier {run['classifier']}", ""]
        md += [f"- {p['sentence']}" for p in run["recommendation"]] + ["", markdown_table(run["rows"]), "",
               "| arm | target recall | target-only accuracy |", "|---|---|---|"]
        for row in run["rows"]:
            unused = row.get("unused_accuracy")
            md.append(f"| {row['plain_name']} | {row['target_recall_mean']:.3f} | "
                      + (f"{unused['mean']:.3f} ({unused['low']:.3f} to {unused['high']:.3f})" if unused else "")
                      + " |")
    md += ["", "## The thesis (DDIM, one run, hand-picked synthetic images)", "",
           "| scenario | test set | real | synthetic | mixed |", "|---|---|---|---|---|"]
    for number, tables in THESIS.items():
        for test_set, values in tables.items():
            md.append(f"| {number} | {test_set} | {values['real']:.2f} | {values['synthetic']:.2f} | {values['mixed']:.2f} |")
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
