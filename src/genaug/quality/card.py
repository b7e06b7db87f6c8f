"""The quality card computed when a training finishes: a few samples per class from the new model,
scored against the training images (fidelity, diversity, near-copies) in the Lite0 space.

Small on purpose (``QUALITY_SAMPLES`` per class, fewer for a slow sampler; at most
``REFERENCE_PER_CLASS`` training images per class): seconds to a minute on a CPU. The training images' features are kept with the
model as its filter reference (``genaug.quality.reference``), so the near-copy and confidence
filters and ``quality.json`` work later without the training data. ``GENAUG_QUALITY_SAMPLES`` sets the number (0 = no
card). A card that cannot be computed never fails the training: it records why instead.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np

QUALITY_SAMPLES = 32
# The card's sampling is sized to take about this long at most (one sample is timed first): a
# slow sampler -- a diffusion model on a CPU -- gets a smaller card instead of a long wait, and
# the card says how many samples it scored and that time limited them.
SAMPLING_SECONDS = 30.0
# At most this many training images in all are scored (and kept as the filter reference).
MAX_REFERENCES = 2000
SAMPLES_ENV = "GENAUG_QUALITY_SAMPLES"


def samples_per_class(explicit: Optional[int] = None) -> int:
    """The card's samples per class: ``explicit``, else ``$GENAUG_QUALITY_SAMPLES``, else 32."""
    if explicit is not None:
        return max(0, int(explicit))
    raw = os.environ.get(SAMPLES_ENV, "").strip()
    try:
        return max(0, int(raw)) if raw else QUALITY_SAMPLES
    except ValueError:
        raise ValueError(f"{SAMPLES_ENV}: expected a whole number of samples per class (0 = off), got {raw!r}") \
            from None


def training_quality_card(generator, data, per_class: int, *, seed: int = 0):
    """(card, filter reference) of a fitted image ``generator`` and its training ``data`` (see the module)."""
    from .reference import REFERENCE_PER_CLASS, FilterReference
    from . import image_features, score_features

    started = time.monotonic()
    per_class_references = max(2, min(REFERENCE_PER_CLASS, MAX_REFERENCES // max(1, len(data.class_names))))
    reference = FilterReference.from_images(data.images, data.labels, list(data.class_names),
                                            per_class=per_class_references, seed=seed)
    fake_images, fake_labels, limited = _draw(generator, len(data.class_names), per_class, seed)
    fake = image_features(fake_images, "lite0")
    card = score_features(reference.features, reference.labels, fake, fake_labels, list(data.class_names),
                          space="lite0", reference="the training images")
    card["samples_per_class"] = int(np.bincount(fake_labels, minlength=len(data.class_names)).min())
    if limited:
        card["warnings"].append(f"a slow sampler on this machine: {card['samples_per_class']} samples per class "
                                f"scored instead of {per_class}, to keep the card within about "
                                f"{SAMPLING_SECONDS:.0f} s of sampling")
    card["references_per_class_at_most"] = per_class_references
    card["reference_images"] = int(len(reference.labels))
    card["training_images"] = int(len(data.labels))
    if len(reference.labels) < len(data.labels):
        card["warnings"].append(f"near-copies were looked for among {len(reference.labels):,} of the "
                                f"{len(data.labels):,} training images (at most {per_class_references} per "
                                "class): a copy of another one goes unnoticed")
    card["seconds"] = round(time.monotonic() - started, 2)
    return card, reference


def _draw(generator, n_classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``per_class`` samples of every class, or fewer when one sample (timed first) says they would
    take more than ``SAMPLING_SECONDS``; (images, labels, limited by time)."""
    # The first call pays one-off costs (allocation, lazy set-up): time the second one.
    first = np.asarray(generator.sample(1, label=0, seed=seed).data)
    started = time.monotonic()
    second = np.asarray(generator.sample(1, label=0, seed=seed + 1).data)
    per_sample = max(time.monotonic() - started, 1e-6)
    target = per_class
    if per_sample * per_class * n_classes > SAMPLING_SECONDS:
        target = max(1, min(per_class, int(SAMPLING_SECONDS / (per_sample * n_classes))))
    parts = [first, second][:target]
    labels = [np.zeros(len(p), np.int64) for p in parts]
    for c in range(n_classes):
        take = target - (len(parts) if c == 0 else 0)
        if take > 0:
            drawn = np.asarray(generator.sample(take, label=c, seed=seed + 2 + c).data)
            parts.append(drawn)
            labels.append(np.full(len(drawn), c, np.int64))
    return np.concatenate(parts), np.concatenate(labels), target < per_class
