"""The ``near-copy`` filter: rejects a sample that the memorisation test (``genaug.quality.memorisation``)
flags -- far closer to one training image than to any other (nearest / second-nearest distance
below the ratio) -- so a shared model's output does not hand out copies of its training images.
"""
from __future__ import annotations

import numpy as np

from ..quality.memorisation import NEAR_COPY_RATIO, memorisation
from ..quality.reference import FilterReference


class NearCopyFilter:
    """Keeps a sample whose d1/d2 ratio against the reference images is at least ``threshold``."""

    name = "near-copy"
    score_name = "ratio"
    needs_features = True  # judges Lite0 features of images

    def __init__(self, reference: FilterReference, threshold: float = NEAR_COPY_RATIO):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"filter near-copy: the ratio threshold lies in (0, 1], got {threshold}")
        if len(reference.features) < 2:
            raise ValueError("filter near-copy: needs at least two real images to compare with")
        self.reference = reference
        self.threshold = float(threshold)

    def judge(self, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, each sample's nearest/second-nearest distance ratio). All training images
        count, whatever their class: a copy of another class's image is a copy too."""
        if not len(features):
            return np.zeros(0, bool), np.zeros(0)
        result = memorisation(features, self.reference.features, ratio=self.threshold)
        return ~result.near_copy, result.ratio
