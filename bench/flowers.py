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
small class to reach the others' mean count, with classic augmentation).

Mixed batches: the runner draws half of every batch from the real images and half from the
generated ones (``Protocol.real_fraction``). Here the generated images all belong to the target
class, so every arm with generated images also trains on far more target images per batch than
``real`` does (scenario 2 "mixed": 55 % tulips per batch against 10 % in ``real``): a class re-weighting
beside whatever the generator adds. The ``augmented-copy`` generator is the control for that: its
"generated" images are classic-augmented copies of the real target images, drawn in the same
numbers and the same batch shares, so an arm that beats ``augmented-copy``'s beats re-weighting. The thesis's
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
    python bench/flowers.py --select --scenarios 2 --classifier cnn      # the automatic choice, checked
--select chooses a recipe per scenario on validation folds of its training split
(genaug.evaluate.select), retrains it and scores it once on the test split, beside every
candidate's test score (the oracle, for the check only): issue 12's "never loses to real+classic,
keeps the gains that exist".
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from _common import (CACHE_DIR, RESULTS_DIR, command_sentence, machine, restore_cells, setup, warn_not_cached,
                     warning_bullets, write_json)
from _select_check import pool_rule, pool_suffix, seed_list, seeds_suffix, select_sections, select_with_oracle, smoke_test_grid
from genaug.data import LabelledImages, ingest
from genaug.data.builtin import find_data_file
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, recommend, summarise
from genaug.evaluate.metrics import decode_predictions
from genaug.evaluate.report import markdown_table
from genaug.evaluate.summary import result_warnings
from genaug.evaluate.select import VALIDATION_SIZE, default_grid

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


CONTROL = "augmented-copy"  # the re-weighting control (module docstring), asked for by name


def generator_configs(quick: bool, budget_scale: float) -> dict[str, tuple[str, dict, dict[str, dict]]]:
    """name -> (kind, config, sample variants' options) at the stated CPU budgets."""
    s = (lambda steps: max(2, int(steps * budget_scale))) if not quick else (lambda steps: 3)
    unet = {"preset": "tiny"} if quick else UNET_64_CPU
    sample_steps = 4 if quick else 50
    return {
        "dcgan": ("dcgan", {"mode": "per_class", "ngf": 32, "ndf": 32, "steps": s(2000), "batch_size": 32,
                            "checkpoint_every": 250, "sample_every": 500}, {"dcgan": {}}),
        # The re-weighting control (module docstring): no model, copies of the real target images with
        # the classic-augmentation arms' own settings (the protocol's 'strong' preset).
        CONTROL: ("classic", {"preset": "strong"}, {CONTROL: {}}),
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
        # The control copies the real target images themselves, not scenario 3's 15x augmented set.
        copies = 1 if kind == "classic" else scenario["augment_copies"]
        specs.append(GeneratorSpec(label=name, kind=kind, config=config, classes=[scenario["target"]],
                                   augment_copies=copies, variants=declared))
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


def scenario_data(number: int, args) -> tuple[LabelledImages, LabelledImages]:
    """The scenario's (training split, test split); --quick keeps every tenth test image."""
    train, test = scenario_split(load_flowers(), number)
    return train, test.subset(range(0, len(test), 10)) if args.quick else test


def scenario_protocol(number: int, args, classifier: str, arms: list[str]) -> Protocol:
    """The scenario's protocol: n on the target class only (the others whole), the same classifier
    and budget for every arm, accuracy, the unused target images scored where n is set."""
    scenario = SCENARIOS[number]
    return Protocol(shots=[scenario["n_target"] if not args.quick or scenario["n_target"] is None else 20],
                    seeds=[0] if args.quick else [int(s) for s in args.seeds.split(",")],
                    arms=arms, classifier=classifier,
                    classifier_steps=20 if args.quick else args.classifier_steps,
                    shot_classes=[scenario["target"]] if scenario["n_target"] else None,
                    score_unused=scenario["n_target"] is not None, metric="accuracy",
                    quality_samples=args.quality_samples)


def is_control(arm: str) -> bool:
    """Whether a runner arm is the re-weighting control's (``augmented-copy``), not a generator's."""
    return f"[{CONTROL}/" in arm


def generator_names(args) -> list[str]:
    """--generators as a list ('none': [])."""
    return [] if args.generators == "none" else args.generators.split(",")


def run_scenario(number: int, args, classifier: str, log) -> dict:
    """One scenario under one classifier: the runner's result, with each row's target-only scores."""
    scenario = SCENARIOS[number]
    train, test = scenario_data(number, args)
    specs = scenario_specs(number, generator_names(args), args.quick, args.budget_scale)
    protocol = scenario_protocol(number, args, classifier, args.arms.split(","))
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
    # The control is no candidate: the recommendation (and its Holm correction) is over the generators.
    return {"scenario": number, "classifier": classifier, "rows": rows,
            "recommendation": recommend([r for r in rows if not is_control(r["arm"])]),
            "warnings": result_warnings(result, rows), "cells": result["cells"], "generators": result["generators"], "protocol": result["protocol"]}


def select_candidates(number: int, train: LabelledImages, args) -> list[GeneratorSpec]:
    """--select-grid: ``quick`` (genaug's quick image grid: small per-class VAEs, 1:1 and 4:1, with
    and without classic augmentation) or ``scenario`` (the scenario's own --generators, declared as
    the plain run declares them, so the oracle is the plain run's cells)."""
    if args.select_grid == "scenario":
        return scenario_specs(number, generator_names(args), args.quick, args.budget_scale)
    candidates = default_grid(train, quick=True)
    return smoke_test_grid(candidates) if args.quick else candidates


def quick_grid_twin(number: int) -> Optional[int]:
    """The lower-numbered scenario whose quick-grid search this one repeats, or None. The quick grid's
    small per-class VAEs learn the training split's images as they are (no ``augment_copies``), so two
    scenarios with the same classes, target and n give cells of the same identities: scenario 3's
    quick-grid search is scenario 2's (its classifier cells computed again under scenario 3's cache names)."""
    same = lambda a, b: all(a[key] == b[key] for key in ("classes", "target", "n_target"))  # noqa: E731
    return next((other for other in sorted(SCENARIOS) if other < number and same(SCENARIOS[other], SCENARIOS[number])),
                None)


def twin_sentence(number: int) -> str:
    """Why a scenario's quick-grid search says nothing its twin's does not (``quick_grid_twin``)."""
    return (f"Scenario {number}'s quick-grid search repeats scenario {quick_grid_twin(number)}'s: the quick grid's "
            "per-class VAEs do not learn from the augmented copies that set it apart, so its cells have the other "
            "scenario's identities (its classifier cells are kept under this scenario's name, so they are computed "
            "again; the generators' fits and samples are shared through the cache). Its own generators' search is "
            "--select-grid scenario.")


def select_scenario(number: int, args, classifier: str, log) -> dict:
    """One scenario's automatic choice (``select_recipe``) beside the oracle (every candidate scored
    on the test split, for the check only). The final and oracle runs share the plain run's cache
    (``s<N>-<classifier>``): its real, real+classic and -- with the scenario grid -- generator cells
    serve them."""
    train, test = scenario_data(number, args)
    twin = quick_grid_twin(number) if args.select_grid == "quick" else None
    if twin is not None:
        log(f"warning: {twin_sentence(number)}")
    again = "" if twin is None else f" (scenario {twin}'s search again)"
    plain = f"s{number}-{classifier}"
    show = lambda e: log(f"scenario {number} {classifier} select: {e.step}/{e.total} {e.message}"  # noqa: E731
                         + (f" (eta {e.eta_seconds:.0f} s)" if e.eta_seconds else ""))
    run = select_with_oracle(
        train, test, scenario_protocol(number, args, classifier, ["real"]),  # the search sets its own arms
        scenario_protocol(number, args, classifier, ["real", "real+classic", "real+synthetic", "real+synthetic+classic"]),
        select_candidates(number, train, args), final_name=plain, oracle_name=plain, cache_dir=args.cache_root,
        show=show, reference="real+classic",
        prefix=f"scenario {number}{again}, {classifier}, ",
        validation_size=args.validation_size or None, search_seeds=seed_list(args.search_seeds),
        search_name=f"{plain}-{args.select_grid}{pool_suffix(args.validation_size)}")
    return {"scenario": number, "classifier": classifier, "twin": twin, **run}


def select_report_name(name: str, args) -> str:
    """<name>_select_<grid>[_s<pool>][``seeds_suffix``]: one report per grid, pool and search seeds
    (a run of other scenarios or classifiers rewrites it: pass them all, the cache keeps the cells)."""
    return f"{name}_select_{args.select_grid}{pool_suffix(args.validation_size)}{seeds_suffix(seed_list(args.search_seeds))}"


def write_select_report(runs: list[dict], args, name: str, started: float) -> None:
    """The --select report (``select_report_name``): per scenario and classifier the choice, its
    check against the oracle, and the test-split tables."""
    report = select_report_name(name, args)
    payload = {"benchmark": "seed 002 flowers scenarios through --select", "machine": machine(), "runs": runs,
               "select_grid": args.select_grid, "validation_size": args.validation_size,
               "wall_seconds_this_invocation": round(time.time() - started, 1)}
    write_json(args.out / f"{report}.json", payload)
    md = ["# Flowers scenarios through `--select` (issue 12, item 8)", "", command_sentence(payload), "",
          f"The choice: the {args.select_grid} candidate grid, 2 validation folds drawn from the scenario's training "
          f"split only (a stratified pool: {pool_rule(args.validation_size or None, None, 'images')}), the chosen "
          "recipe retrained on the training split (n target images drawn per seed) and scored once on the fixed "
          "test split. The oracle scores every candidate on the test split directly -- for this check only; the "
          "choice never sees it. Reference: real+classic.", "",
          "## Target: the choice never loses to real+classic beyond the interval and keeps the gains that exist", ""]
    md += [f"- {line}" for run in runs for line in run["checks"]]
    for run in runs:
        md += ["", f"## Scenario {run['scenario']}, classifier {run['classifier']}", ""]
        if run.get("twin") is not None:
            md += [twin_sentence(run["scenario"]), ""]
        md += select_sections(run)
    (args.out / f"{report}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


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
        compared = {a: r for a, r in here.items() if a not in ("real", "real+classic") and "delta_vs_classic" in r}
        generated = [r for a, r in compared.items() if not is_control(a)]
        if generated:
            best = max(generated, key=lambda r: r["accuracy_mean"])
            d = best["delta_vs_classic"]
            gap = "met" if d["mean"] >= 0.02 else "NOT met"
            line += (f"; best generator arm {best['plain_name']} {best['accuracy_mean']:.3f}, "
                     f"{d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}) vs real+classic "
                     f"({'within noise' if d['within_noise'] else 'beyond noise'} before the Holm correction "
                     f"of the recommendation below): +0.02 target {gap} (judged by the mean)")
        controls = [r for a, r in compared.items() if is_control(a)]
        if controls:  # what re-weighting alone reaches (module docstring): no generator arm, no target
            best = max(controls, key=lambda r: r["accuracy_mean"])
            d = best["delta_vs_classic"]
            line += (f"; the re-weighting control's best arm ({CONTROL}, no model) {best['plain_name']} "
                     f"{best['accuracy_mean']:.3f}, {d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}) "
                     "vs real+classic")
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
    parser.add_argument("--generators", default="dcgan,ddim",
                        help="comma separated (dcgan, ddim; augmented-copy: the re-weighting control, not a default: "
                             "asked for by name, beside the generators it checks), or 'none' (real arms only)")
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
    parser.add_argument("--select", action="store_true",
                        help="each scenario through the automatic choice (genaug evaluate --select), its test "
                             "score checked against every candidate's (the oracle); report <name>_select_<grid>")
    parser.add_argument("--select-grid", choices=["quick", "scenario"], default="quick",
                        help="with --select: genaug's quick image grid (small per-class VAEs) or the scenario's own "
                             "--generators")
    parser.add_argument("--search-seeds", default=None, help="with --select: the search's seeds (default --seeds)")
    parser.add_argument("--validation-size", type=int, default=VALIDATION_SIZE,
                        help="with --select: images in the validation pool (stratified, at most half of each class; "
                             "0 = half of every class)")
    args = parser.parse_args()
    if args.select and args.report_only:
        parser.error("--report-only reports the plain runs; --select reruns from its cache (computing only what is missing)")
    torch.set_num_threads(args.threads)
    started = time.time()
    name = "flowers_quick" if args.quick else "flowers"
    args.cache_root = args.cache / name

    def log(message: str) -> None:
        print(f"[{time.time() - started:7.0f}s] {message}", flush=True)

    default_restore = [RESULTS_DIR / f"{name}.json"] + \
        ([RESULTS_DIR / f"{select_report_name(name, args)}.json"] if args.select else [])
    restored = sum(restore_cells(path, args.cache_root) for path in args.restore_from or default_restore)
    if restored:
        log(f"restored {restored} cells from the committed results into {args.cache_root}")
    if args.select:
        write_select_report([select_scenario(number, args, classifier, log) for classifier in args.classifier.split(",")
                             for number in [int(s) for s in args.scenarios.split(",")]], args, name, started)
        return
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
        md += [f"- {p['sentence']}" for p in run["recommendation"]]
        md += warning_bullets(run["warnings"]) + ["", markdown_table(run["rows"]), "",
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
