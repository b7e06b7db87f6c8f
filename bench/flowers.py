"""Seed 002 scenarios on the flowers set (ch. 4.2-4.4, tables 4.2-4.5), with DCGAN, DDIM and DDIM-img2img.

Data: ../shared/data/flowers (5 classes, 128 px JPEGs), ingested at 64 x 64 (the thesis trains at 64 px).
A fixed test split of 100 images per class (split seed 0) never reaches a generator or the classifier.

- Scenario 1: classifier on sunflower / tulip / dandelion; the generators learn the sunflowers
  (all training sunflowers, ~630); "synthetic" replaces the real sunflowers by as many generated
  ones, "mixed" adds 100 generated sunflowers to the real ones (thesis: 733 + 100).
- Scenario 2: classifier on tulip / daisy / rose with only 150 training tulips (drawn per seed);
  the generators learn those 150 tulips; "synthetic" = 150 generated tulips instead of the real
  ones, "mixed" = 150 real + 150 generated (thesis tables 4.4 / 4.5).
- Scenario 3: as scenario 2, but the generators learn from the 150 tulips expanded 15x by classic
  augmentation (2,250 images; the thesis had 2,235).

Every scenario also runs "real+classic" (classic augmentation on the fly, kornia 'strong') and
"balanced" (enough generated images of the small class to match the others' mean count), and
for DDIM-img2img a sweep over the strength. The thesis's "tulip-only" test set (1,000 tulips
from another source) is mirrored by the target-class recall on every target image that is in
neither the training nor the test split (scenario 2/3: ~730 tulips).

Every arm trains the same CNN with the same budget; accuracy and weighted F1 on the mixed test
set, mean and 95% interval over seeds. Resumable: fitted generators keep checkpoints under
bench/cache and their samples, and every classifier cell, are cached.

    python bench/flowers.py --scenarios 2 --seeds 0           # one scenario, one seed
    python bench/flowers.py                                   # everything (days on a CPU)
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from _common import CACHE_DIR, RESULTS_DIR, machine, setup, write_json
from genaug.data import LabelledImages, ingest
from genaug.data.builtin import find_data_file
from genaug.evaluate.image_classifier import ClassifierBudget, predict_images, train_image_classifier
from genaug.evaluate.metrics import classification_metrics, mean_interval
from genaug.generators.base import Samples, get_generator_class
from genaug.generators.classic import ClassicConfig, build_augmentation
from genaug.training import save_image_grid

THESIS = {  # accuracy, seed 002 tables 4.2/4.3 (scenario 1, DDIM) and 4.4/4.5 (scenario 3, DDIM)
    1: {"mixed test": {"real": 0.87, "synthetic": 0.84, "mixed": 0.89},
        "target-only test": {"real": 0.92, "synthetic": 0.80, "mixed": 0.95}},
    3: {"mixed test": {"real": 0.57, "synthetic": 0.57, "mixed": 0.65},
        "target-only test": {"real": 0.08, "synthetic": 0.09, "mixed": 0.22}},
}
SCENARIOS = {
    1: {"classes": ["sunflower", "tulip", "dandelion"], "target": "sunflower", "n_target": None, "mixed": 100,
        "augment_x": 0},
    2: {"classes": ["tulip", "daisy", "rose"], "target": "tulip", "n_target": 150, "mixed": 150, "augment_x": 0},
    3: {"classes": ["tulip", "daisy", "rose"], "target": "tulip", "n_target": 150, "mixed": 150, "augment_x": 15},
}
TEST_PER_CLASS = 100


# What a CPU affords at 64 px: a 1.1 M-parameter UNet (4 levels, attention at 8 px) and a DCGAN
# with 32 base channels. The thesis trained its DDIM (quickgrid/pytorch-diffusion) on an A100.
UNET_64_CPU = {"block_out_channels": [16, 32, 64, 64], "layers_per_block": 1, "attention_resolution": 8,
               "norm_num_groups": 8}


def generator_specs(quick: bool, budget_scale: float) -> dict[str, dict]:
    """The generators (kind, config, sample variants) at the stated CPU budgets."""
    s = (lambda steps: max(2, int(steps * budget_scale))) if not quick else (lambda steps: 3)
    unet = {"preset": "tiny"} if quick else UNET_64_CPU
    sample_steps = 4 if quick else 50
    return {
        "dcgan": {"kind": "dcgan", "config": {"mode": "per_class", "ngf": 32, "ndf": 32, "steps": s(2000),
                                              "batch_size": 32, "checkpoint_every": 250, "sample_every": 500},
                  "variants": {"dcgan": {}}},
        "ddim": {"kind": "ddim", "config": {"mode": "per_class", **unet, "steps": s(3000), "batch_size": 16,
                                            "checkpoint_every": 250, "sample_every": 1000},
                 "variants": {"ddim": {"steps": sample_steps},
                              **{f"ddim-img2img-{strength}": {"mode": "img2img", "strength": strength,
                                                              "steps": sample_steps}
                                 for strength in (0.3, 0.6)}}},
    }


def load_flowers() -> LabelledImages:
    """The flowers set at 64 px (ingested once, cached as .npz)."""
    cache = CACHE_DIR / "flowers64.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return LabelledImages(z["images"], z["labels"], [str(c) for c in z["class_names"]], [str(s) for s in z["sources"]])
    data = ingest(find_data_file("flowers"), image_size=64).data
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, images=data.images, labels=data.labels, class_names=np.array(data.class_names),
                        sources=np.array(data.sources))
    return data


def subset_classes(data: LabelledImages, classes: list[str]) -> LabelledImages:
    """Only ``classes``, relabelled 0..k-1 in that order."""
    keep = np.isin(np.array(data.class_names)[data.labels], classes)
    names = np.array(data.class_names)[data.labels[keep]]
    labels = np.array([classes.index(n) for n in names], np.int64)
    return LabelledImages(data.images[keep], labels, list(classes), [s for s, k in zip(data.sources, keep) if k])


def fixed_test_split(data: LabelledImages) -> tuple[np.ndarray, np.ndarray]:
    """(train pool indices, test indices): 100 test images per class, split seed 0, the same for every seed."""
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.choice(np.flatnonzero(data.labels == c), TEST_PER_CLASS, replace=False)
                           for c in range(len(data.class_names))])
    pool = np.setdiff1d(np.arange(len(data)), test)
    return pool, np.sort(test)


def scenario_data(data: LabelledImages, number: int, seed: int):
    """(classifier training set, target-class training images, test set, target-only test set)."""
    spec = SCENARIOS[number]
    data = subset_classes(data, spec["classes"])
    pool, test_idx = fixed_test_split(data)
    target = spec["classes"].index(spec["target"])
    target_pool = pool[data.labels[pool] == target]
    if spec["n_target"] is not None:
        chosen = np.sort(np.random.default_rng(1000 + seed).choice(target_pool, spec["n_target"], replace=False))
    else:
        chosen = target_pool
    train_idx = np.concatenate([pool[data.labels[pool] != target], chosen])
    unseen_target = np.setdiff1d(target_pool, chosen)  # never trained on, never in the test split
    if len(unseen_target) == 0:  # scenario 1 uses every training sunflower: score on the test sunflowers
        unseen_target = test_idx[data.labels[test_idx] == target]
    return (data.subset(train_idx), data.subset(chosen), data.subset(test_idx), data.subset(unseen_target), target)


def augmented_copies(images: LabelledImages, times: int, seed: int) -> LabelledImages:
    """The scenario 3 generator data: every image plus ``times - 1`` classic-augmented copies."""
    from genaug.generators.images import images_to_tensor, tensor_to_images

    torch.manual_seed(seed)
    augment = build_augmentation(ClassicConfig(preset="strong"), images.images.shape[1])
    x = images_to_tensor(images.images)
    parts = [images.images] + [tensor_to_images(augment(x)) for _ in range(times - 1)]
    return LabelledImages(np.concatenate(parts), np.tile(images.labels, times), list(images.class_names),
                          [f"{s}#aug{k}" for k in range(times) for s in images.sources])


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def variant_budget_keys(specs: dict[str, dict]) -> dict[str, str]:
    """Per sample variant, a hash of its generator's kind, training config and sampling options.

    A classifier cell of a generator arm is stored with this hash and reused only under the same
    one: the cell's path names scenario, seed, arm and classifier steps but not the generator's
    budgets, so without it a changed budget would silently reuse cells of the old generator."""
    return {variant: _key(spec["kind"], spec["config"], options)
            for spec in specs.values() for variant, options in spec["variants"].items()}


def arm_variant(arm: str) -> str | None:
    """The sample variant of a generator arm (``mixed[ddim-img2img-0.3]`` -> ``ddim-img2img-0.3``); None for real arms."""
    return arm.split("[", 1)[1].rstrip("]") if "[" in arm else None


def is_current(cell: dict, arm: str, keys: dict[str, str]) -> bool:
    """Whether a cached cell was computed under the present generator budgets (real arms have none)."""
    variant = arm_variant(arm)
    return variant is None or cell.get("generator_budget") == keys.get(variant)


def read_cell(cell_file: Path, arm: str, keys: dict[str, str]) -> dict | None:
    """The cached cell, or None when there is none or it was computed under other generator budgets."""
    if not cell_file.exists():
        return None
    cell = json.loads(cell_file.read_text())
    return cell if is_current(cell, arm, keys) else None


def fit_and_sample(name: str, spec: dict, target_data: LabelledImages, counts: dict[str, int], seed: int,
                   cache: Path, log) -> dict[str, Samples]:
    """Fit one generator on the target images (resuming from checkpoints) and draw every variant; cached."""
    key = _key(spec["kind"], spec["config"], target_data.fingerprint(), seed)
    folder = cache / f"{name}-{key}"
    samples_file = folder / "samples.npz"
    wanted = {v: n for v, n in counts.items()}
    if samples_file.exists():
        z = np.load(samples_file, allow_pickle=False)
        meta = json.loads((folder / "meta.json").read_text())
        if all(f"{v}:{n}" in z for v, n in wanted.items()):
            return {v: Samples(z[f"{v}:{n}"], np.zeros(n, np.int64), ["target"]) for v, n in wanted.items()}, meta
    cls = get_generator_class(spec["kind"])
    generator = cls({**spec["config"], "seed": seed})
    started = time.process_time()
    log(f"fit {name} on {len(target_data)} images (checkpoints: {folder / 'work'})")
    generator.fit(target_data, checkpoints=folder / "work",
                  progress=lambda e: log(f"  {e.message} {e.losses}") if e.step % 500 == 0 else None)
    meta = {"fit_cpu_seconds": round(time.process_time() - started, 1), "meta": generator.meta}
    arrays, drawn = {}, {}
    for variant, n in wanted.items():
        options = spec["variants"][variant]
        t0 = time.process_time()
        samples = generator.sample(n, label=0, seed=seed, **options)
        meta[f"sample_cpu_seconds:{variant}:{n}"] = round(time.process_time() - t0, 1)
        arrays[f"{variant}:{n}"] = samples.data
        drawn[variant] = Samples(samples.data, np.zeros(n, np.int64), ["target"])
        save_image_grid(samples.data[:32], folder / f"grid-{variant}.png", columns=8, scale=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    np.savez_compressed(samples_file, **arrays)
    return drawn, meta


def with_target_images(train: LabelledImages, target: int, extra: np.ndarray, replace: bool) -> LabelledImages:
    """The classifier's training set with generated target-class images added (or instead of the real ones)."""
    keep = train.labels != target if replace else np.ones(len(train), bool)
    images = np.concatenate([train.images[keep], extra])
    labels = np.concatenate([train.labels[keep], np.full(len(extra), target, np.int64)])
    return LabelledImages(images, labels, list(train.class_names))


def classifier_cell(train: LabelledImages, test: LabelledImages, unseen: LabelledImages, target: int, seed: int,
                    steps: int, classic: bool) -> dict:
    """Train the CNN on ``train`` and score it on the test set and on the unseen target images."""
    started = time.process_time()
    budget = ClassifierBudget(steps=steps, batch_size=64, lr=1e-3, ema_decay=0.995)
    augment = build_augmentation(ClassicConfig(preset="strong"), 64) if classic else None
    model = train_image_classifier(train.images, train.labels, len(train.class_names), seed=seed, budget=budget,
                                   augment=augment)
    cell = classification_metrics(test.labels, predict_images(model, test.images), test.class_names)
    unseen_pred = predict_images(model, unseen.images)
    cell["target_only_accuracy"] = float(np.mean(unseen_pred == target))
    cell["n_target_only"] = len(unseen)
    cell["cpu_seconds"] = round(time.process_time() - started, 1)
    cell["n_train"] = len(train)
    return cell


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--scenarios", default="2,3,1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--generators", default="dcgan,ddim")
    parser.add_argument("--classifier-steps", type=int, default=800)
    parser.add_argument("--budget-scale", type=float, default=1.0, help="scale every generator's training steps")
    parser.add_argument("--report-only", action="store_true",
                        help="compute nothing: write the report from every cell cached so far")
    parser.add_argument("--restore-from", type=Path, default=None,
                        help="results JSON whose cells go back into the cache first (default: the committed "
                             "bench/results file), so a fresh clone resumes instead of recomputing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - started:7.0f}s] {message}", flush=True)

    data = load_flowers()
    specs = generator_specs(args.quick, args.budget_scale)
    steps = 20 if args.quick else args.classifier_steps
    cache_root = args.cache / ("flowers_quick" if args.quick else "flowers")
    results = args.restore_from or RESULTS_DIR / ("flowers_quick.json" if args.quick else "flowers.json")
    keys = variant_budget_keys(specs)
    restored = restore_cells(results, cache_root, steps, keys)
    if restored:
        log(f"restored {restored} cells from {results} into {cache_root}")
    cells = []
    if args.report_only:
        write_results(cells, args, started)
        return
    for number in [int(s) for s in args.scenarios.split(",")]:
        scenario = SCENARIOS[number]
        for seed in [0] if args.quick else [int(s) for s in args.seeds.split(",")]:
            train, target_images, test, unseen, target = scenario_data(data, number, seed)
            if args.quick:
                test, unseen = test.subset(range(0, len(test), 10)), unseen.subset(range(min(20, len(unseen))))
            gen_data = target_images if not scenario["augment_x"] else augmented_copies(target_images, scenario["augment_x"], seed)
            gen_data = LabelledImages(gen_data.images, np.zeros(len(gen_data), np.int64), ["target"], gen_data.sources)
            n_target = int((train.labels == target).sum())
            others = [int((train.labels == c).sum()) for c in range(len(train.class_names)) if c != target]
            balance_n = max(0, int(np.mean(others)) - n_target)
            counts = {"synthetic": n_target, "mixed": scenario["mixed"], "balanced": balance_n}
            arms: list[tuple[str, LabelledImages, bool, dict]] = [
                ("real", train, False, {}), ("real+classic", train, True, {})]
            cells_dir = cache_root / f"s{number}-seed{seed}" / "cells"
            for gen_name in args.generators.split(","):
                spec = specs[gen_name]
                need = {v: max(counts.values()) for v in spec["variants"]}
                names = [f"{kind}[{v}]" for v in spec["variants"] for kind in ("synthetic", "mixed", "balanced+classic")]
                if all(read_cell(cells_dir / f"{a}-{steps}.json", a, keys) is not None for a in names):
                    # Every cell of this generator is there (e.g. restored from the results file): no refit.
                    arms += [(a, None, False, {}) for a in names]
                    continue
                drawn, meta = fit_and_sample(gen_name, spec, gen_data, need, seed, cache_root / f"s{number}-seed{seed}", log)
                for variant, samples in drawn.items():
                    info = {"generator": gen_name, "variant": variant, "generator_budget": keys[variant],
                            "fit_cpu_seconds": meta.get("fit_cpu_seconds"),
                            "diversity": (meta.get("meta") or {}).get("diversity")}
                    images = samples.data
                    # The thesis's two arms, and the one a user would pick to fix the imbalance.
                    arms += [(f"synthetic[{variant}]", with_target_images(train, target, images[:counts["synthetic"]], True), False, info),
                             (f"mixed[{variant}]", with_target_images(train, target, images[:counts["mixed"]], False), False, info),
                             (f"balanced+classic[{variant}]", with_target_images(train, target, images[:balance_n], False), True, info)]
            for arm, arm_train, classic, info in arms:
                cell_file = cells_dir / f"{arm}-{steps}.json"
                cell = read_cell(cell_file, arm, keys)
                if cell is None:
                    if cell_file.exists():
                        log(f"scenario {number} seed {seed}: {arm}: cached cell is from other generator budgets")
                    log(f"scenario {number} seed {seed}: {arm} ({len(arm_train)} training images)")
                    cell = classifier_cell(arm_train, test, unseen, target, seed, steps, classic)
                    cell.update(info)
                    cell_file.parent.mkdir(parents=True, exist_ok=True)
                    cell_file.write_text(json.dumps(cell))
                cells.append({"scenario": number, "seed": seed, "arm": arm, **cell})
                log(f"scenario {number} seed {seed}: {arm}: accuracy {cell['accuracy']:.3f}, "
                    f"target-only {cell['target_only_accuracy']:.3f}")
            write_results(cells, args, started)


def restore_cells(results: Path, cache_root: Path, classifier_steps: int, keys: dict[str, str]) -> int:
    """Write the cells of a results file back as cached cells (those not cached already).

    The cache lives outside git, the results file in it: a fresh clone resumes where the
    committed results stopped. Only cells at the same classifier budget and, for generator
    arms, the same generator budgets (``keys``) are taken."""
    if not results.exists():
        return 0
    payload = json.loads(results.read_text())
    if payload.get("budgets", {}).get("classifier_steps") != classifier_steps:
        return 0
    restored = 0
    for cell in payload.get("cells", []):
        path = cache_root / f"s{cell['scenario']}-seed{cell['seed']}" / "cells" / f"{cell['arm']}-{classifier_steps}.json"
        if not is_current(cell, cell["arm"], keys) or read_cell(path, cell["arm"], keys) is not None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: v for k, v in cell.items() if k not in ("scenario", "seed", "arm")}))
        restored += 1
    return restored


def collect_figures(cache_root: Path, out: Path) -> list[str]:
    """Copy every fitted generator's sample grid (32 consecutive samples, like seed 002 figs. 4.5 / 4.8 /
    4.11) and its training loss plot into ``out/flowers_figures``; returns every figure name there."""
    import shutil

    target = out / "flowers_figures"
    for folder in sorted(cache_root.glob("s*-seed*/*-*")):
        if not folder.is_dir() or folder.name == "cells":
            continue
        prefix = f"{folder.parent.name}-{folder.name.rsplit('-', 1)[0]}"
        sources = [(g, f"{folder.parent.name}-{g.stem[len('grid-'):]}.png") for g in folder.glob("grid-*.png")]
        sources += [(plot, f"{prefix}-{plot.parent.name}-losses.png") for plot in folder.glob("work/*/losses.png")]
        for source, name in sources:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    # Figures copied by earlier runs (their caches may be gone) stay listed.
    return sorted(p.name for p in target.glob("*.png")) if target.exists() else []


def _diversity(record) -> str:
    """The DCGAN's final diversity (generated vs real pairwise distance ratio; ~0 = collapse)."""
    if not record or "final" not in record:
        return ""
    return ", ".join(f"{v:.2f}" for v in record["final"].values())


def cached_cells(cache_root: Path, classifier_steps: int, keys: dict[str, str]) -> list[dict]:
    """Every classifier cell cached under ``cache_root`` (any scenario, any seed) at this classifier budget
    and, for generator arms, the present generator budgets."""
    cells = []
    suffix = f"-{classifier_steps}.json"
    for cell_file in sorted(cache_root.glob(f"s*-seed*/cells/*{suffix}")):
        scenario, seed = cell_file.parent.parent.name[1:].split("-seed")
        arm = cell_file.name[:-len(suffix)]
        cell = read_cell(cell_file, arm, keys)
        if cell is not None:
            cells.append({"scenario": int(scenario), "seed": int(seed), "arm": arm, **cell})
    return cells


def arm_order(arm: str) -> tuple:
    """real, real+classic, then per generator variant: synthetic, mixed, balanced+classic (as the run makes them)."""
    if arm in ("real", "real+classic"):
        return (0, arm == "real+classic", "", 0)
    kind, variant = arm.split("[", 1)
    return (1, 0, variant.rstrip("]"), ["synthetic", "mixed", "balanced+classic"].index(kind))


def target_verdicts(rows: list[dict]) -> list[str]:
    """The issue's flowers targets, checked on the rows (3-seed means where the seeds are there)."""
    lines = []
    thesis = THESIS[3]
    for number in sorted({r["scenario"] for r in rows}):
        group = {r["arm"]: r for r in rows if r["scenario"] == number}
        if "real" not in group:
            continue
        seeds = ",".join(map(str, group["real"]["seeds"]))
        # Compare on the same seeds: an arm still missing a seed is left out while others have it.
        generated = [r for a, r in group.items() if a not in ("real", "real+classic")]
        generated = [r for r in generated if r["seeds"] == group["real"]["seeds"]] or generated
        if not generated:
            continue
        best = max(generated, key=lambda r: r["accuracy"]["mean"])
        line = (f"Scenario {number} (seeds {seeds}): best arm `{best['arm']}` {best['accuracy']['mean']:.3f} "
                f"(target-only {best['target_only_accuracy']['mean']:.3f})")
        if "real+classic" in group:
            rc = group["real+classic"]
            line += f"; real+classic {rc['accuracy']['mean']:.3f} (target-only {rc['target_only_accuracy']['mean']:.3f})"
        if number in (2, 3):
            beats = (best["accuracy"]["mean"] > thesis["mixed test"]["mixed"]
                     and best["target_only_accuracy"]["mean"] > thesis["target-only test"]["mixed"]
                     and "real+classic" in group and best["accuracy"]["mean"] > group["real+classic"]["accuracy"]["mean"])
            line += (f"; thesis mixed {thesis['mixed test']['mixed']:.2f} ({thesis['target-only test']['mixed']:.2f}): "
                     f"target {'met' if beats else 'NOT met'}")
        elif number in THESIS:  # no target here; the thesis's numbers for reference
            t = THESIS[number]
            line += f"; thesis mixed {t['mixed test']['mixed']:.2f} ({t['target-only test']['mixed']:.2f})"
        mixed_dcgan = group.get("mixed[dcgan]")
        if mixed_dcgan:
            better = mixed_dcgan["accuracy"]["mean"] > group["real"]["accuracy"]["mean"]
            line += (f"; mixed[dcgan] {mixed_dcgan['accuracy']['mean']:.3f} vs real {group['real']['accuracy']['mean']:.3f}"
                     f" ({'beats' if better else 'does not beat'} real)")
        lines.append(line + ".")
    return lines


def write_results(cells: list[dict], args, started: float) -> None:
    """Summaries (mean and 95% interval over seeds) beside the thesis's numbers: JSON and markdown.

    The cells of this invocation are merged with every other cell cached at the same classifier budget, so a
    run of one scenario never drops the others from the report."""
    name = "flowers_quick" if args.quick else "flowers"
    steps = 20 if args.quick else args.classifier_steps
    specs = generator_specs(args.quick, args.budget_scale)
    seen = {(c["scenario"], c["seed"], c["arm"]) for c in cells}
    cells = cells + [c for c in cached_cells(args.cache / name, steps, variant_budget_keys(specs))
                     if (c["scenario"], c["seed"], c["arm"]) not in seen]
    cells.sort(key=lambda c: (c["scenario"], arm_order(c["arm"]), c["seed"]))
    rows = []
    for number in sorted({c["scenario"] for c in cells}):
        arms = list(dict.fromkeys(c["arm"] for c in cells if c["scenario"] == number))
        base = {c["seed"]: c for c in cells if c["scenario"] == number and c["arm"] == "real"}
        for arm in arms:
            group = [c for c in cells if c["scenario"] == number and c["arm"] == arm]
            acc = mean_interval([c["accuracy"] for c in group])
            target_only = mean_interval([c["target_only_accuracy"] for c in group])
            deltas = [c["accuracy"] - base[c["seed"]]["accuracy"] for c in group if c["seed"] in base]
            rows.append({"scenario": number, "arm": arm, "seeds": sorted(c["seed"] for c in group),
                         "accuracy": acc, "target_only_accuracy": target_only,
                         "weighted_f1": mean_interval([c["weighted_f1"] for c in group]),
                         "delta_accuracy_vs_real": mean_interval(deltas) if deltas else None,
                         "diversity": group[0].get("diversity")})
    payload = {"benchmark": "seed 002 flowers scenarios", "machine": machine(),
               "wall_seconds_this_invocation": round(time.time() - started, 1),
               "budgets": {"classifier_steps": steps, "generators": specs},
               "summary": rows, "cells": cells, "thesis": THESIS}
    write_json(args.out / f"{name}.json", payload)
    md = ["# Flowers: seed 002 scenarios (tables 4.2-4.5)", "",
          f"Cells computed by `python bench/flowers.py --scenarios N --seeds 0,1,2` (resumable: fitted generators, "
          f"samples and classifier cells are cached; every run merges all cached cells into this report). This file "
          f"written by `{payload['machine']['command']}`; CPU, {payload['machine']['threads']} torch thread(s) per "
          "process. Budgets (generator steps, classifier steps) are in the JSON; per-cell CPU seconds in its cells.", "",
          "Accuracy on the fixed mixed test set (100 images per class) and on every unseen image of the target class "
          "(the thesis's 'target-only' test set), mean ± 95% t-interval over the seeds listed.", "",
          "| scenario | arm | seeds | accuracy | target-only accuracy | Δ accuracy vs real | DCGAN diversity (final) |",
          "|---|---|---|---|---|---|---|"]
    fmt = lambda m: "" if not m else (f"{m['mean']:.3f}" + ("" if m['n'] < 2 else f" ± {m['ci95']:.3f}"))  # noqa: E731
    for r in rows:
        md.append(f"| {r['scenario']} | {r['arm']} | {','.join(map(str, r['seeds']))} | {fmt(r['accuracy'])} | "
                  f"{fmt(r['target_only_accuracy'])} | {fmt(r['delta_accuracy_vs_real'])} | {_diversity(r['diversity'])} |")
    md += ["", "## Targets (issue 3)", ""] + [f"- {line}" for line in target_verdicts(rows)]
    md += ["", "## The thesis (DDIM, one run, hand-picked synthetic images)", "",
           "| scenario | test set | real | synthetic | mixed |", "|---|---|---|---|---|"]
    for number, tables in THESIS.items():
        for test_set, values in tables.items():
            md.append(f"| {number} | {test_set} | {values['real']:.2f} | {values['synthetic']:.2f} | {values['mixed']:.2f} |")
    figures = collect_figures(args.cache / name, args.out)
    if figures:
        md += ["", "## Sample grids and loss curves", "",
               "32 consecutive samples of each generator (fixed seed, no selection) and each generator's training "
               "losses (the DCGAN's with its diversity monitor), in `flowers_figures/`:", ""]
        md += [f"- [{f}](flowers_figures/{f})" for f in figures]
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
