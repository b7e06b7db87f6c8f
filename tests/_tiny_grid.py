"""A tiny evaluation grid on real data (digits) for the executor tests: 2 n x 2 seeds x 2 arms,
classic augmentation as the generator (no fit), 8 classifier steps: seconds per cell."""
from __future__ import annotations

import json

from genaug.data import load_digits_dataset, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant

# What differs between runs of the same cell: timings and the cache's own bookkeeping.
VOLATILE = {"cpu_seconds", "generator_fit_cpu_seconds", "identity", "cpu"}


def tiny_grid():
    """(train, test, [spec], protocol)."""
    train, test = stratified_split(load_digits_dataset(), test_fraction=0.3, seed=0)
    spec = GeneratorSpec(label="classic", kind="classic", config={"preset": "mild"},
                         variants=[SampleVariant(label="copies", ratio=1.0, arms=["real+synthetic"])])
    protocol = Protocol(shots=[3, 5], seeds=[0, 1], classifier_steps=8, classifier_batch=16,
                        arms=["real", "real+synthetic"])
    return train, test, [spec], protocol


def comparable_cells(result) -> list[dict]:
    """The cells without their volatile fields, through JSON as the cache stores them (a cell read
    back has string keys where a fresh one has ints)."""
    return [json.loads(json.dumps({k: v for k, v in c.items() if k not in VOLATILE})) for c in result["cells"]]
