"""Seed 000's system on our data (issue 15 item 5): supervised contrastive learning (SupCon) with
synthetic in-distribution positives and near-OOD synthetic negatives, judged by accuracy and by
out-of-distribution detection.

- mnist: digits 0-7 in distribution, 8 and 9 held out (near-OOD), flowers in grayscale at 28 px
  (far-OOD); n in {5, 20} per class.
- flowers (at 32 px, the CPU budget): daisy, dandelion, rose, sunflower in distribution, tulip held
  out (near-OOD), MNIST digits in RGB at 32 px (far-OOD); n in {10, 50} per class.

Arms, every one trained for the same steps on the same batch size: ``ce-real`` (the CNN with
cross-entropy), ``supcon-real``, ``supcon + positives`` (img2img of the n labelled images at
strength 0.2 by a class-conditional DDIM fitted on them: seed 000's in-distribution setting),
``supcon + positives + negatives 0.5`` (the same positives; negatives by img2img at strength 0.5,
seed 000's near-OOD setting) and ``supcon + positives + cross-class`` (negatives: a class's images
denoised toward the next class at 0.5), and ``lite0-linear`` on the real images as a pretrained
reference. The negatives' quality card (KID, precision, recall against their source class's
real images) says how near "near" is. Held-out classes and the far set reach no generator and
no training: only the OOD scores.

    python bench/contrastive_ood.py --datasets mnist            # resumes: every cell is cached
    python bench/contrastive_ood.py --datasets mnist --report-only
    python bench/contrastive_ood.py --quick                     # smoke test of the script
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from _common import RESULTS_DIR, machine, restore_cells, setup, warn_not_cached, write_json
from genaug.data import LabelledImages, load_mnist
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, summarise
from genaug.evaluate.ood_summary import better, ood_table, summarise_ood
from genaug.evaluate.protocol import NearOODNegatives
from genaug.evaluate.report import markdown_table

FLOWERS_IN = ["daisy", "dandelion", "rose", "sunflower"]
FLOWERS_NEAR = "tulip"
FAR_IMAGES = 1000
FLOWERS_TEST_PER_CLASS = 100
# Flowers at 32 px: at 64 px the DDIM fits and the supcon arms would take ~4x as long (about 3.5 h
# on one CPU core for the 36 cells); every arm and the OOD sets use the same size.
FLOWERS_SIZE = 32
# The UNets a CPU affords (mnist_fewshot.py's SMALL_UNET at 28 px; its three-level analogue at 32 px).
UNET = {"mnist": {"block_out_channels": [16, 32, 64], "layers_per_block": 1, "attention_resolution": 7,
                  "norm_num_groups": 8, "flip": False},
        "flowers": {"block_out_channels": [16, 32, 64], "layers_per_block": 1, "attention_resolution": 8,
                    "norm_num_groups": 8}}
# (steps, batch) of the DDIM fit.
FIT = {"mnist": (1500, 32), "flowers": (1500, 32)}
SHOTS = {"mnist": [5, 20], "flowers": [10, 50]}
PER_REAL = 10  # synthetic positives (and negatives) per real image
SAMPLE_STEPS = 20
NAMES = {"cnn/real": "ce-real (CNN, cross-entropy)", "supcon/real": "supcon-real",
         "lite0-linear/real": "lite0-linear on real (pretrained reference)",
         "supcon/real+synthetic[ddim/pos0.2]": "supcon + positives (img2img 0.2)",
         "supcon/real+synthetic[ddim/pos0.2+neg0.5]": "supcon + positives + negatives (img2img 0.5)",
         "supcon/real+synthetic[ddim/pos0.2+cross0.5]": "supcon + positives + cross-class negatives (0.5)"}


def resized(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 NHWC images at ``size`` px with ``channels`` channels (L by ITU-R 601 luma, or L repeated)."""
    out = []
    for image in images:
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        pil = pil.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
        array = np.asarray(pil)
        out.append(array[..., None] if channels == 1 else array)
    return np.stack(out).astype(np.uint8)


def _restrict(data: LabelledImages, classes: list[str]) -> LabelledImages:
    keep = np.flatnonzero(np.isin(np.array(data.class_names)[data.labels], classes))
    names = np.array(data.class_names)[data.labels[keep]]
    return LabelledImages(data.images[keep], np.array([classes.index(n) for n in names], np.int64), list(classes),
                          [data.sources[i] for i in keep])


def _ood_set(images: np.ndarray, name: str) -> LabelledImages:
    return LabelledImages(images, np.zeros(len(images), np.int64), ["ood"], [f"{name}#{i}" for i in range(len(images))])


def mnist_split(quick: bool):
    """(train 0-7, test 0-7, {"near": test 8/9, "far": flowers in gray at 28 px})."""
    from flowers import load_flowers

    train, test = load_mnist()
    inside = [str(d) for d in range(8)]
    near = test.subset(np.flatnonzero(test.labels >= 8))
    flowers = load_flowers()
    pick = np.sort(np.random.default_rng(0).choice(len(flowers), FAR_IMAGES, replace=False))
    far = resized(flowers.images[pick], 28, 1)
    test_in = _restrict(test, inside)
    if quick:
        test_in, near, far = test_in.subset(range(0, len(test_in), 20)), near.subset(range(0, len(near), 20)), far[:50]
    return _restrict(train, inside), test_in, {"near": _ood_set(near.images, "mnist-8-9"),
                                               "far": _ood_set(far, "flowers-gray")}


def flowers_split(quick: bool):
    """(train, test of the four in-distribution flowers -- 100 test images each, split seed 0 --,
    {"near": every tulip, "far": MNIST test digits in RGB}), all at FLOWERS_SIZE px."""
    from flowers import load_flowers

    data = load_flowers()
    data = LabelledImages(resized(data.images, FLOWERS_SIZE, 3), data.labels, data.class_names, data.sources)
    inside = _restrict(data, FLOWERS_IN)
    rng = np.random.default_rng(0)
    test_idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(inside.labels == c), FLOWERS_TEST_PER_CLASS,
                                                  replace=False) for c in range(len(FLOWERS_IN))]))
    train = inside.subset(np.setdiff1d(np.arange(len(inside)), test_idx))
    test = inside.subset(test_idx)
    tulips = data.images[data.labels == data.class_names.index(FLOWERS_NEAR)]
    _, mnist_test = load_mnist()
    far = resized(mnist_test.images[np.sort(np.random.default_rng(0).choice(len(mnist_test), FAR_IMAGES,
                                                                            replace=False))], FLOWERS_SIZE, 3)
    if quick:
        test, tulips, far = test.subset(range(0, len(test), 10)), tulips[:40], far[:40]
    return train, test, {"near": _ood_set(tulips, "tulip"), "far": _ood_set(far, "mnist-rgb")}


def ddim_spec(dataset: str, n: int, quick: bool) -> GeneratorSpec:
    """A class-conditional DDIM fitted on the n labelled images of the in-distribution classes, and
    three variants sharing its positives (same options, same seeds): alone, + negatives at strength
    0.5, + cross-class negatives at 0.5; PER_REAL positives and negatives per real image."""
    unet = {"preset": "tiny"} if quick else UNET[dataset]
    steps = 4 if quick else SAMPLE_STEPS
    positive = {"mode": "img2img", "strength": 0.2, "steps": steps}
    off = {"mode": "img2img", "strength": 0.5, "steps": steps}
    per_class = 2 if quick else PER_REAL * n
    alone = SampleVariant(label="pos0.2", options=positive, per_class=per_class, arms=["real+synthetic"])
    variants = [alone] + [alone.model_copy(update={"label": label, "negatives": NearOODNegatives(
        options=off, per_class=per_class, cross_class=cross)})
        for label, cross in (("pos0.2+neg0.5", False), ("pos0.2+cross0.5", True))]
    return GeneratorSpec(label="ddim", kind="ddim", variants=variants, config=dict(
        mode="conditional", **unet, steps=4 if quick else FIT[dataset][0], batch_size=16 if quick else FIT[dataset][1],
        label_dropout=0.1, checkpoint_every=250))


def run_dataset(dataset: str, args, log) -> tuple[list[dict], dict]:
    """Every arm of one dataset: (cells, {classifier: runner result})."""
    train, test, ood = (mnist_split if dataset == "mnist" else flowers_split)(args.quick)
    shots = [3] if args.quick else SHOTS[dataset]
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    steps = 10 if args.quick else args.steps
    results, cells = {}, []
    for classifier in ("cnn", "lite0-linear", "supcon"):
        if classifier not in args.classifiers.split(","):
            continue
        name = f"{dataset}-{classifier}" + ("-quick" if args.quick else "")
        protocol = Protocol(shots=shots, seeds=seeds, arms=["real"] if classifier != "supcon" else
                            ["real", "real+synthetic"], classifier=classifier, classifier_steps=steps,
                            classifier_batch=64, metric="accuracy",
                            quality_samples=(4 if args.quick else args.quality_samples) if classifier == "supcon" else 0)
        merged = None
        for n in shots:  # one generator spec per n: its negatives are sized for it
            generators = [ddim_spec(dataset, n, args.quick)] if classifier == "supcon" else []
            result = evaluate(train, test, generators, protocol.model_copy(update={"shots": [n]}), dataset_name=name,
                              cache_dir=args.cache, keep_samples=False, cached_only=args.report_only, ood=ood,
                              progress=lambda e, c=classifier: log(f"{dataset} {c}: {e.step}/{e.total} {e.message}"))
            warn_not_cached(result, f"{name} n={n}")
            if merged is None:
                merged = result
            else:
                merged["cells"] += result["cells"]
        for cell in merged["cells"]:
            cell["dataset"] = name
        results[classifier] = merged
        cells += merged["cells"]
    return cells, results


def quality_table(cells: list[dict]) -> list[str]:
    """Per n: the positives' and the negatives' quality against their (source) class's real images."""
    lines = ["| n | variant | positives: KID / precision / recall | negatives: KID / precision / recall |",
             "|---|---|---|---|"]
    grouped: dict[tuple, list[dict]] = {}
    for c in cells:
        if c.get("classifier") == "supcon" and c.get("variant"):
            grouped.setdefault((c["n"], c["variant"]), []).append(c)

    def card(values: list[dict]) -> str:
        values = [v for v in values if v]
        if not values:
            return ""
        mean = lambda key: np.mean([v[key] for v in values if key in v])  # noqa: E731
        return f"{mean('kid'):.4f} / {mean('precision'):.2f} / {mean('recall'):.2f}"
    for (n, variant), group in sorted(grouped.items()):
        negatives = [c.get("negatives", {}).get("quality") for c in group]
        lines.append(f"| {n} | {variant} | {card([c.get('quality') for c in group])} | {card(negatives)} |")
    return lines


def targets(rows: list[dict], accuracy_rows: list[dict], dataset: str, cells: list[dict]) -> list[str]:
    """The issue's two targets, read off the tables (the negatives against positives alone per
    seed: ``cells`` summarised once more with the positives-only arm as the baseline)."""
    out = []
    by = {(r["classifier"], r["n"], r["arm"]): r for r in rows}
    against_positives = {(r["n"], r["arm"]): r for r in summarise_ood(
        cells, baselines={"supcon": "real+synthetic[ddim/pos0.2]"}) if r["classifier"] == "supcon"}
    acc = {(r["n"], r["arm"]): r for r in accuracy_rows}
    for n in sorted({r["n"] for r in rows}):
        pos = by.get(("supcon", n, "real+synthetic[ddim/pos0.2]"))
        a = acc.get((n, "real+synthetic[ddim/pos0.2]"))
        if pos and a and "delta" in pos:
            d = a.get("delta_vs_real")
            near = pos["delta"].get("near", {})
            auroc = {s: near[s]["auroc"] for s in near}
            improved = [s for s, e in auroc.items() if e["consistent"] and e["mean"] > 0]
            out.append(f"{dataset} n={n} ({len(pos['seeds'])} seed(s)): supcon + positives vs supcon-real: "
                       f"accuracy {d['mean']:+.3f} "
                       f"[{d['low']:+.3f}, {d['high']:+.3f}]{' (noise)' if d.get('within_noise') else ''}; "
                       f"near-OOD AUROC Δ " + ", ".join(f"{s} {e['mean']:+.3f}" for s, e in auroc.items())
                       + f" (every seed better: {', '.join(improved) or 'none'}).")
        for variant in ("pos0.2+neg0.5", "pos0.2+cross0.5"):
            neg = by.get(("supcon", n, f"real+synthetic[ddim/{variant}]"))
            if not (neg and pos) or "near" not in neg["sets"] or "near" not in pos["sets"]:
                continue
            wins, everywhere = [], []
            per_seed = against_positives.get((n, f"real+synthetic[ddim/{variant}]"), {}).get("delta", {}).get("near", {})
            for score in neg["sets"]["near"]:
                for metric in ("auroc", "fpr95"):
                    diff = neg["sets"]["near"][score][metric]["mean"] - pos["sets"]["near"][score][metric]["mean"]
                    if better(metric, diff):
                        wins.append(f"{score} {metric} {diff:+.3f}")
                        if per_seed.get(score, {}).get(metric, {}).get("consistent"):
                            everywhere.append(f"{score} {metric}")
            out.append(f"{dataset} n={n} ({len(neg['seeds'])} seed(s)): {variant} vs positives alone, near-OOD "
                       f"(mean over seeds; improvements only): "
                       + (", ".join(wins) if wins else "no score improves")
                       + f" (every seed better: {', '.join(everywhere) or 'none'}).")
    return out


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--datasets", default="mnist,flowers")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000, help="classifier steps per arm (every arm)")
    parser.add_argument("--classifiers", default="cnn,lite0-linear,supcon")
    parser.add_argument("--quality-samples", type=int, default=50, help="per class, for the quality cards")
    parser.add_argument("--report-only", action="store_true", help="compute nothing: report the cached cells")
    parser.add_argument("--made-by", default="", help="with --report-only: how the cells were made (printed)")
    parser.add_argument("--restore-from", type=Path, default=None,
                        help="results JSON whose cells go back into the cache first (default: the committed file)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "contrastive_ood_quick" if args.quick else "contrastive_ood"
    results_file = args.restore_from or RESULTS_DIR / f"{name}.json"
    restored = restore_cells(results_file, args.cache)
    if restored:
        print(f"restored {restored} cells from {results_file} into {args.cache}")
    started = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - started:7.0f}s] {message}", flush=True)

    md = ["# Seed 000: SupCon with synthetic positives and near-OOD negatives, and OOD detection", ""]
    all_cells, summaries = [], {}
    for dataset in args.datasets.split(","):
        cells, results = run_dataset(dataset, args, log)
        all_cells += cells
        order = list(NAMES)
        rows = sorted(summarise_ood(cells, baselines={"supcon": "real"}),
                      key=lambda r: (r["n"], order.index(f"{r['classifier']}/{r['arm']}")
                                     if f"{r['classifier']}/{r['arm']}" in order else len(order)))
        accuracy = {c: summarise(r) for c, r in results.items() if r["cells"]}
        summaries[dataset] = {"ood": rows, "accuracy": accuracy}
        md += [f"## {dataset}", "", "### Targets", ""]
        md += [f"- {line}" for line in targets(rows, accuracy.get("supcon", []), dataset, cells)] + [""]
        for classifier, acc_rows in accuracy.items():
            md += [f"### Accuracy, classifier {classifier} (Δ vs that classifier's `real` arm)", "",
                   markdown_table(acc_rows), ""]
        for set_name, what in (("near", "near-OOD (held-out classes)"), ("far", "far-OOD (another dataset)")):
            for metric in ("auroc", "fpr95"):
                md += [f"### {what}: {metric.upper()} (mean [min, max] over seeds)", "",
                       ood_table(rows, set_name, metric, NAMES), ""]
        md += ["### How near is near: quality of the positives and the negatives", "",
               "Lite0 features; each against the real training images of its (source) class; KID lower = closer.",
               ""] + quality_table(cells) + [""]
    payload = {"benchmark": "seed 000: supcon + synthetic positives / near-OOD negatives, OOD detection",
               "machine": machine(), "wall_seconds_this_invocation": round(time.time() - started, 1),
               "budgets": {"classifier_steps": 10 if args.quick else args.steps, "classifier_batch": 64,
                           "ddim_fit_steps_batch": FIT, "unet": UNET, "per_real_image": PER_REAL,
                           "sample_steps": SAMPLE_STEPS, "far_images": FAR_IMAGES,
                           "flowers_size": FLOWERS_SIZE},
               "summary": summaries, "cells": all_cells}
    write_json(args.out / f"{name}.json", payload)
    intro = [f"Command: `{payload['machine']['command']}`; CPU, {payload['machine']['threads']} torch thread(s). "
             "Resumable (rerun the same command). Budgets in the JSON, per-cell CPU seconds in its cells.", "",
             *([args.made_by, ""] if args.made_by else []),
             "Accuracy: mean and 95% bootstrap interval over seeds and test images, Δ paired. OOD: AUROC / FPR95 "
             "of each score (max softmax, energy, Mahalanobis on the arm's real training features, k-NN with "
             "k = a tenth of the training set, at most 50), computed per seed on the whole test split against the "
             "whole OOD set; shown as mean [min, max] over seeds, differences per seed to supcon-real ('mixed' = "
             "not every seed on the same side of 0: within noise).", ""]
    (args.out / f"{name}.md").write_text("\n".join(md[:2] + intro + md[2:]) + "\n")
    print("\n".join(md[:2] + intro + md[2:]))


if __name__ == "__main__":
    main()
