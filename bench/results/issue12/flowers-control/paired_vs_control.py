"""Each generator arm against the augmented-copy control of the same form (mixed / balanced /
in place of the real ones), paired bootstrap over seeds and test images, from flowers.json here;
p-values Holm-corrected over the scenario's comparisons. Arguments: the results JSON (default:
flowers.json here) and the classifier (default cnn).

    cd bench && python results/issue12/flowers-control/paired_vs_control.py
    cd bench && python results/issue12/flowers-control/paired_vs_control.py \
        results/issue12/flowers-lite0-classic/flowers.json lite0-linear
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/
from flowers import load_flowers, scenario_split  # noqa: E402
from genaug.evaluate.metrics import decode_predictions  # noqa: E402
from genaug.evaluate.statistics import holm_adjust, paired_bootstrap_difference  # noqa: E402

report = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "flowers.json").read_text())
classifier = sys.argv[2] if len(sys.argv) > 2 else "cnn"
for scenario in sorted({int(c["dataset"][1]) for c in report["cells"]}):  # dataset "s<scenario>-<classifier>"
    _, test = scenario_split(load_flowers(), scenario)
    cells = [c for c in report["cells"] if c["dataset"] == f"s{scenario}-{classifier}"]
    by_arm = {}
    for c in cells:
        by_arm.setdefault(c["arm"], {})[c["seed"]] = decode_predictions(c["predictions"])
    lines = []
    for arm in sorted(by_arm):
        if "[" not in arm or "augmented-copy" in arm:
            continue
        form = arm.split("/")[1].split(":")[0]  # mixed, balanced or synthetic
        control = next((a for a in by_arm if "augmented-copy" in a and f"/{form}:" in a), None)
        if control is None:  # e.g. no balanced control under a classifier run without +classic arms
            continue
        seeds = sorted(set(by_arm[arm]) & set(by_arm[control]))
        d = paired_bootstrap_difference({s: by_arm[arm][s] for s in seeds}, {s: by_arm[control][s] for s in seeds},
                                        test.labels, len(test.class_names), "accuracy")
        lines.append((f"scenario {scenario} {arm} vs {control}: {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]",
                      d["p_value"], seeds))
    for (text, p, seeds), adjusted in zip(lines, holm_adjust([p for _, p, _ in lines])):
        print(f"{text} p={p:.3f} Holm p={adjusted:.3f} ({len(lines)} comparisons) seeds={seeds}")
