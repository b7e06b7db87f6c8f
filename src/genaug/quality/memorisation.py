"""Does a generator hand out its training images? Nearest-neighbour distances of every sample.

For each sample, the distance to its nearest training image (d1) and to the second nearest (d2)
in a feature space. A sample whose ratio d1 / d2 is below ``NEAR_COPY_RATIO`` (1/3) lies far
closer to one training image than to any other: a near-copy of it (the test of the
"authenticity" literature; Meehan et al. 2020 and Alaa et al. 2022 use the same idea). An exact
copy has d1 = 0. For an img2img sample, the distance to its own source image is reported apart:
it is meant to be close to that one, and a copy of a *different* training image is what leaks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

NEAR_COPY_RATIO = 1 / 3


@dataclass(frozen=True)
class Memorisation:
    """Per sample: nearest training distance, the d1/d2 ratio, the nearest's index, near-copy flag,
    and (img2img) the distance to the sample's own source image."""

    nearest: np.ndarray
    ratio: np.ndarray
    nearest_index: np.ndarray
    near_copy: np.ndarray
    source_distance: Optional[np.ndarray] = None

    def share(self, mask: Optional[np.ndarray] = None) -> float:
        """The share of near-copies (among ``mask``'s samples)."""
        flags = self.near_copy if mask is None else self.near_copy[mask]
        return float(flags.mean()) if len(flags) else 0.0


def memorisation(samples, training, *, sources: Optional[np.ndarray] = None, ratio: float = NEAR_COPY_RATIO,
                 chunk: int = 1024) -> Memorisation:
    """Nearest-neighbour test of ``samples`` against ``training`` features (N x D each).

    ``sources``: for img2img samples, the index in ``training`` of each sample's source image
    (-1 for none); its distance is reported in ``source_distance`` and that image is left out of
    the neighbours, so a variation of its own source is not called a copy."""
    fake = np.asarray(samples, dtype=np.float64)
    real = np.asarray(training, dtype=np.float64)
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"memorisation: feature arrays of one size expected, got {fake.shape} and {real.shape}")
    if len(real) < 2:
        raise ValueError("memorisation: needs at least 2 training images (a nearest and a second nearest)")
    if sources is not None and len(sources) != len(fake):
        raise ValueError(f"memorisation: {len(sources)} sources for {len(fake)} samples")
    nearest = np.empty(len(fake))
    second = np.empty(len(fake))
    index = np.empty(len(fake), dtype=np.int64)
    source_distance = np.full(len(fake), np.nan) if sources is not None else None
    real_sq = (real ** 2).sum(1)
    for start in range(0, len(fake), chunk):
        part = fake[start:start + chunk]
        distances = np.sqrt(np.maximum((part ** 2).sum(1)[:, None] + real_sq[None, :] - 2 * part @ real.T, 0.0))
        if sources is not None:
            own = np.asarray(sources[start:start + chunk])
            rows = np.flatnonzero(own >= 0)
            source_distance[start + rows] = distances[rows, own[rows]]
            distances[rows, own[rows]] = np.inf  # its own source is not a neighbour here
        order = np.argpartition(distances, 1, axis=1)[:, :2]
        pair = np.take_along_axis(distances, order, axis=1)
        swap = pair[:, 0] > pair[:, 1]
        pair[swap] = pair[swap][:, ::-1]
        order[swap] = order[swap][:, ::-1]
        nearest[start:start + len(part)], second[start:start + len(part)] = pair[:, 0], pair[:, 1]
        index[start:start + len(part)] = order[:, 0]
    ratios = np.where(second > 0, nearest / np.where(second > 0, second, 1), 0.0)
    return Memorisation(nearest, ratios, index, ratios < ratio, source_distance)
