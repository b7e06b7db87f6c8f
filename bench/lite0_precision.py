"""Lite0 frozen features in float32 and in bfloat16: speed, closeness, and the linear probe's accuracy.

Why: the `lite0-linear` classifier computes the features of every batch on the fly when an arm
has classic augmentation (1,000 steps x 64 images), which made those cells cost about an hour on
one core. bf16 autocast is the classifier's default where the CPU has native bf16
(`genaug.pretrained.lite0.classifier_precision`); this measures whether that is faster and
changes nothing that matters.

Two sets: the flowers (5 classes, 64 px; 1,200 images: a pool of 700 to draw training images from,
500 to test) and MNIST (10 classes, 28 px; 1,500 images: 1,000 pool, 500 test). Per precision:
features per wall second and per CPU second of `lite0_features` (batch 64, 160 px input; the CPU
seconds are this process's, so they hold when other work shares the machine, the wall seconds do
not), the relative difference to fp32
(||bf16 - fp32|| / ||fp32||), and a linear probe (sklearn logistic regression on the features)
trained on `--per-class` pool images per class, 5 draws, accuracy on the test images.

    python bench/lite0_precision.py --threads 1
"""
from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from _common import command_sentence, machine, setup, write_json
from genaug import load_mnist
from genaug.pretrained.lite0 import PRECISIONS, lite0_features

DRAWS = 5


def flowers_images() -> tuple[np.ndarray, np.ndarray]:
    from flowers import load_flowers  # the flowers benchmark's cached 64 px copy of the set

    data = load_flowers()
    return data.images, data.labels


def mnist_images() -> tuple[np.ndarray, np.ndarray]:
    train, _ = load_mnist()
    return train.images, train.labels


def measure(name: str, images: np.ndarray, labels: np.ndarray, pool: int, test: int, per_class: int) -> dict:
    """Speed, closeness and probe accuracy of one set at every precision."""
    pick = np.random.default_rng(0).permutation(len(labels))[:pool + test]
    x, y = images[pick], labels[pick]
    rows, reference = [], None
    for precision in PRECISIONS:
        lite0_features(x[:64], precision=precision)  # warm-up: the first batch loads the weights
        started, cpu_started = time.perf_counter(), time.process_time()
        features = lite0_features(x, precision=precision)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        reference = features if reference is None else reference
        accuracies = []
        for draw in range(DRAWS):
            rng = np.random.default_rng(draw)
            train = np.concatenate([rng.choice(np.flatnonzero(y[:pool] == c), per_class, replace=False)
                                    for c in np.unique(y)])
            probe = LogisticRegression(max_iter=3000).fit(features[train], y[train])
            accuracies.append(float((probe.predict(features[pool:]) == y[pool:]).mean()))
        rows.append({"set": name, "precision": precision, "images": len(x), "features_per_s": len(x) / seconds,
                     "features_per_cpu_s": len(x) / cpu_seconds,
                     "relative_difference": float(np.linalg.norm(features - reference) / np.linalg.norm(reference)),
                     "probe_accuracy": float(np.mean(accuracies)), "probe_accuracies": accuracies})
        print(f"{name} {precision}: {rate(rows[-1]['features_per_s'])} features/s "
              f"({rate(rows[-1]['features_per_cpu_s'])} per CPU s), relative difference "
              f"{rows[-1]['relative_difference']:.4f}, probe {rows[-1]['probe_accuracy']:.4f}", flush=True)
    return {"set": name, "per_class": per_class, "rows": rows}


def rate(value: float) -> str:
    """A features-per-second figure: whole from 100 up, one decimal below
    (emulated bf16 runs at 1-3 features per wall second: a whole number would hide the ratio)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--per-class", type=int, default=20, help="training images per class of each probe draw")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    if args.quick:  # MNIST alone (the flowers' 64 px copy is made by ingesting 4,317 JPEGs once)
        sets = [measure("mnist", *mnist_images(), pool=100, test=60, per_class=5)]
    else:
        sets = [measure("flowers", *flowers_images(), pool=700, test=500, per_class=args.per_class),
                measure("mnist", *mnist_images(), pool=1000, test=500, per_class=args.per_class)]
    payload = {"benchmark": "lite0 features: fp32 vs bf16", "machine": machine(), "sets": sets,
               "wall_seconds_this_invocation": round(time.time() - started, 1)}
    name = "lite0_precision_quick" if args.quick else "lite0_precision"
    write_json(args.out / f"{name}.json", payload)
    wall = f"Wall time: {payload['wall_seconds_this_invocation']} s (every number computed afresh)."
    md = ["# Lite0 frozen features: float32 against bfloat16", "", command_sentence(payload, wall, wall=False), "",
          f"Linear probe: logistic regression on the features of {sets[0]['per_class']} training images per class, "
          f"mean accuracy over {DRAWS} draws on the held-out images. Relative difference = ||bf16 - fp32|| / ||fp32|| "
          "over all feature vectors.", "",
          f"CPU: {payload['machine']['cpu']}; where it has no native bf16 (AVX-512 BF16 or AMX), torch emulates it.",
          "", "| set | precision | images | features/s (wall) | features per CPU s | × fp32 (CPU) | relative difference "
          "| probe accuracy (per draw) |",
          "|---|---|---|---|---|---|---|---|"]
    for entry in sets:
        base = entry["rows"][0]["features_per_cpu_s"]
        for row in entry["rows"]:
            md.append(f"| {row['set']} | {row['precision']} | {row['images']} | {rate(row['features_per_s'])} | "
                      f"{rate(row['features_per_cpu_s'])} | {row['features_per_cpu_s'] / base:.2f} | "
                      f"{row['relative_difference']:.4f} | "
                      f"{row['probe_accuracy']:.3f} ({', '.join(f'{a:.3f}' for a in row['probe_accuracies'])}) |")
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
