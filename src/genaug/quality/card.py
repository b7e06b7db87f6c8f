"""The quality card computed when a training finishes: a few samples per class from the new model,
scored against the training images (fidelity, diversity, near-copies) in the Lite0 space.

Small on purpose (``QUALITY_SAMPLES`` per class, at most ``MAX_REFERENCES`` training images per
class): seconds on a CPU for small images. ``GENAUG_QUALITY_SAMPLES`` sets the number (0 = no
card). A card that cannot be computed never fails the training: it records why instead.
"""
from __future__ import annotations

import os
import time
from typing import Any, Optional

import numpy as np

QUALITY_SAMPLES = 32
MAX_REFERENCES = 200
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


def training_quality_card(generator, data, per_class: int, *, seed: int = 0) -> dict[str, Any]:
    """The card of a fitted image ``generator`` against its training ``data`` (see the module)."""
    from . import image_features, score_features

    started = time.monotonic()
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(data.labels == c))[:MAX_REFERENCES]
                           for c in range(len(data.class_names))])
    samples = [generator.sample(per_class, label=c, seed=seed + c) for c in range(len(data.class_names))]
    fake_images = np.concatenate([np.asarray(s.data) for s in samples])
    fake_labels = np.concatenate([np.full(len(s), c) for c, s in enumerate(samples)])
    real = image_features(data.images[keep], "lite0")
    fake = image_features(fake_images, "lite0")
    card = score_features(real, data.labels[keep], fake, fake_labels, list(data.class_names), space="lite0",
                          reference="the training images")
    card["samples_per_class"] = per_class
    card["seconds"] = round(time.monotonic() - started, 2)
    return card
