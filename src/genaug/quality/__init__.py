"""How good are the samples themselves? Fidelity, diversity and memorisation of a generated set
against real images, overall and per class (issue 14's first part).

``score_sets`` computes, in one feature space (``features.py``): KID (unbiased; mean and standard
deviation over random subsets), FID (with a warning below ``FID_RELIABLE_SAMPLES`` samples, where
it is biased and reports should lead with KID), precision / recall / density / coverage, and the
near-copy test of ``memorisation.py`` with the share of near-copies and its 95 % Wilson interval.
The reference set is stated in the result: the generator's own training images measure fidelity
and memorisation; a held-out real split measures generalisation. No test split of an evaluation
is ever passed here by genaug itself.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .distances import FID_RELIABLE_SAMPLES, KID, PRDC, fid, kid, prdc
from .features import FEATURE_SPACES, image_features
from .memorisation import NEAR_COPY_RATIO, Memorisation, memorisation

__all__ = ["FEATURE_SPACES", "FID_RELIABLE_SAMPLES", "KID", "NEAR_COPY_RATIO", "PRDC", "Memorisation", "fid",
           "image_features", "kid", "memorisation", "prdc", "score_features", "score_sets", "EXPLANATIONS"]

MIN_PER_CLASS = 10  # fewer samples or references in a class: its numbers are not computed
PRDC_K = 5

# One plain line per number, for every place a person reads them.
EXPLANATIONS = {
    "kid": "KID: how far the generated images are from the real ones in the feature space (0 = same "
           "distribution; lower is better). Unbiased, so fine for small sets; ± is its spread over subsets.",
    "fid": "FID: the usual distance between generated and real images (lower is better). Biased upwards "
           f"below about {FID_RELIABLE_SAMPLES:,} samples: compare FIDs only at equal sample counts.",
    "precision": "Precision: the share of generated images that look like some real image (fidelity).",
    "recall": "Recall: the share of real images that some generated image resembles (diversity).",
    "density": "Density: like precision, but counts how many real neighbours each generated image has "
               "(about 1 for a faithful generator; above 1 = crowded around typical images).",
    "coverage": "Coverage: the share of real images with a generated image close by (diversity, robust to outliers).",
    "inception_score": "Inception Score: high when each image is clearly one (ImageNet) class and the classes vary; "
                       "computed with EfficientNet-Lite0's ImageNet head, so compare it only within one report, "
                       "and for images far from ImageNet (digits, parts) trust KID more.",
    "near_copy_share": "Near-copies: the share of generated images far closer to one training image than to "
                       f"any other (nearest/second-nearest distance below {NEAR_COPY_RATIO:.2f}): copies of "
                       "your data, which a shared model hands out to anyone.",
}


def _wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def _block(real: np.ndarray, fake: np.ndarray, copies: np.ndarray, warnings: list[str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": int(len(fake)), "references": int(len(real))}
    share = float(copies.mean()) if len(copies) else 0.0
    low, high = _wilson(int(copies.sum()), int(len(copies)))
    out["near_copy_share"] = {"value": share, "low": low, "high": high}
    if min(len(real), len(fake)) < MIN_PER_CLASS:
        warnings.append(f"{where}: fewer than {MIN_PER_CLASS} samples or references; distances not computed")
        return out
    out["kid"] = kid(real, fake).to_dict()
    out["fid"] = fid(real, fake)
    if len(fake) < FID_RELIABLE_SAMPLES:
        warnings.append(f"{where}: FID from {len(fake):,} samples is biased upwards (reliable from about "
                        f"{FID_RELIABLE_SAMPLES:,}); read KID instead")
    if min(len(real), len(fake)) > PRDC_K:
        out.update(prdc(real, fake, k=PRDC_K).to_dict())
    return out


def score_features(real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
                   class_names: list[str], *, space: str, reference: str = "training images",
                   sources: Optional[np.ndarray] = None) -> dict[str, Any]:
    """The quality card from features already computed (see ``score_sets``)."""
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    copies = memorisation(fake, real, sources=sources)
    warnings: list[str] = []
    card: dict[str, Any] = {"feature_space": space, "reference": reference,
                            "overall": _block(real, fake, copies.near_copy, warnings, "overall"), "per_class": {}}
    for index, name in enumerate(class_names):
        mine = fake_labels == index
        card["per_class"][name] = _block(real[real_labels == index], fake[mine], copies.near_copy[mine], warnings,
                                         f"class {name}")
    if space == "lite0" and len(fake) >= 2 * MIN_PER_CLASS:
        from .inception_score import lite0_inception_score

        card["overall"]["inception_score"] = lite0_inception_score(fake)
    if sources is not None:
        own = copies.source_distance[~np.isnan(copies.source_distance)]
        card["overall"]["distance_to_own_source"] = float(np.median(own)) if len(own) else None
    card["warnings"] = warnings
    card["explanations"] = EXPLANATIONS
    return card


def score_sets(real_images: np.ndarray, real_labels: np.ndarray, fake_images: np.ndarray, fake_labels: np.ndarray,
               class_names: list[str], *, space: str = "lite0", reference: str = "training images",
               sources: Optional[np.ndarray] = None, progress=None) -> dict[str, Any]:
    """The quality card of generated images against real ones, overall and per class: KID, FID,
    precision / recall / density / coverage and the near-copy share, in feature ``space``
    (``lite0`` or ``inception``), with warnings where counts make a number unreliable.
    ``reference`` names what the real images are (e.g. "training images", "held-out images");
    ``sources``: img2img samples' source indices into the real images (-1: none)."""
    real = image_features(real_images, space, progress=progress)
    fake = image_features(fake_images, space, progress=progress)
    return score_features(real, real_labels, fake, fake_labels, class_names, space=space, reference=reference,
                          sources=sources)
