"""``quality.json`` of a generated set: the quality card of a bounded subset of the written images
against the model's reference (its training images' features), computed while ``generate``
streams, so its cost does not grow with the number of images asked for.
"""
from __future__ import annotations

from typing import Any

import numpy as np

QUALITY_FILE = "quality.json"
GENERATE_QUALITY_PER_CLASS = 100


class QualitySubset:
    """Keeps the first ``per_class`` images written of every class (generation is seeded random,
    so the first ones are a random sample of the class)."""

    def __init__(self, class_names: list[str], per_class: int = GENERATE_QUALITY_PER_CLASS):
        self.class_names = list(class_names)
        self.per_class = int(per_class)
        self.parts: dict[int, list[np.ndarray]] = {}
        self.counts: dict[int, int] = {}

    def add(self, label: int, images: np.ndarray) -> None:
        """Offer a written batch of class ``label``; keeps what the class still lacks."""
        room = self.per_class - self.counts.get(label, 0)
        if room > 0 and len(images):
            self.parts.setdefault(label, []).append(np.asarray(images[:room]).copy())
            self.counts[label] = self.counts.get(label, 0) + min(room, len(images))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) kept so far."""
        labels = [np.full(sum(len(p) for p in self.parts[c]), c) for c in sorted(self.parts)]
        images = [np.concatenate(self.parts[c]) for c in sorted(self.parts)]
        return (np.concatenate(images), np.concatenate(labels)) if images else (np.zeros((0, 1, 1, 1), np.uint8),
                                                                                np.zeros(0, np.int64))


def generated_quality(subset: QualitySubset, reference, given: bool, kind: str) -> dict[str, Any]:
    """The card of ``subset`` against ``reference`` (a ``FilterReference`` or None: skipped, with why);
    ``given``: the reference came from the caller's images rather than the model's stored one."""
    from . import image_features, score_features

    if not subset.counts:
        return {"skipped": "no images were generated (table models are not scored; the card covers images)"}
    if reference is None:
        return {"skipped": "the model stored no reference of its training images (it was trained with the "
                           "quality card off, or before genaug kept one); give the training images as "
                           "the reference to score this set"}
    images, labels = subset.arrays()
    fake = image_features(images, "lite0")
    card = score_features(reference.features, reference.labels, fake, labels, subset.class_names, space="lite0",
                          reference="the training images you gave" if given else
                          "the model's training images (features stored with the model)")
    card["scored_samples_per_class_at_most"] = subset.per_class
    card["reference_images"] = int(len(reference.labels))
    if not given:
        card["warnings"].append(f"near-copies were looked for among the {len(reference.labels):,} training images "
                                "whose features the model kept (up to 100 per class), not all of them; give the "
                                "training images as the reference to check every one")
    card["kind"] = kind
    return card
