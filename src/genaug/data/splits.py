"""Stratified train/test splits and few-shot subsets, all by seed.

The test split is fixed per dataset and seed-independent by convention (callers pass
one split seed); few-shot subsets are drawn from the training split only.
"""
from __future__ import annotations

import numpy as np

from .datasets import LabelledData


def stratified_split(data: LabelledData, test_fraction: float = 0.2, seed: int = 0):
    """Split into (train, test) keeping each class's share; every class keeps >= 1 training example.

    Classes with a single example go entirely to the training split (a test example
    with no training counterpart would measure nothing).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for label in range(len(data.class_names)):
        idx = np.flatnonzero(data.labels == label)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(n_test, len(idx) - 1) if len(idx) > 1 else 0
        test_idx.extend(idx[:n_test])
        train_idx.extend(idx[n_test:])
    return data.subset(np.sort(train_idx)), data.subset(np.sort(test_idx))


def few_shot_subset(data: LabelledData, n_per_class: int, seed: int) -> LabelledData:
    """``n_per_class`` examples of every class drawn by ``seed`` (all of a class that has fewer).

    Pass the training split: the test split must never reach a generator.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(data.class_names)):
        idx = np.flatnonzero(data.labels == label)
        chosen.extend(rng.permutation(idx)[:n_per_class])
    return data.subset(np.sort(chosen))
