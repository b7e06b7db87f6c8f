"""What the post-sample filters compare generated images with: the generator's training images, as
EfficientNet-Lite0 features (1280-d) with their labels.

A model stores this reference beside its weights when its quality card is computed at the end of
training (``REFERENCE_FILE``, at most ``REFERENCE_PER_CLASS`` images per class, float16), so
anyone can filter its samples later without the training data. A caller that has the training
images can pass them instead (``FilterReference.from_images``); the test split of an evaluation
never becomes a reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

REFERENCE_FILE = "filter_reference.safetensors"
REFERENCE_PER_CLASS = 100
FEATURE_SPACE = "lite0"


@dataclass
class FilterReference:
    """Lite0 features (N x 1280) of real training images, their labels and the class names."""

    features: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.features.ndim != 2 or len(self.features) != len(self.labels):
            raise ValueError(f"filter reference: {self.features.shape} features for {len(self.labels)} labels")

    @classmethod
    def from_images(cls, images: np.ndarray, labels: np.ndarray, class_names: list[str], *,
                    per_class: Optional[int] = REFERENCE_PER_CLASS, seed: int = 0,
                    progress=None, cache: Optional[dict] = None) -> "FilterReference":
        """The reference of real ``images`` (uint8 NHWC): at most ``per_class`` per class, drawn by
        ``seed``; ``cache`` as in ``quality.features.image_features``."""
        from .features import image_features

        labels = np.asarray(labels, dtype=np.int64)
        keep = subset_per_class(labels, len(class_names), per_class, seed)
        return cls(image_features(np.asarray(images)[keep], FEATURE_SPACE, progress=progress, cache=cache), labels[keep],
                   list(class_names))

    def save(self, folder: str | Path) -> Path:
        """Write ``REFERENCE_FILE`` into ``folder`` (float16 features: half the size, same neighbours)."""
        import torch
        from safetensors.torch import save_file

        path = Path(folder) / REFERENCE_FILE
        save_file({"features": torch.from_numpy(self.features.astype(np.float16)),
                   "labels": torch.from_numpy(self.labels)}, str(path),
                  metadata={"class_names": "\n".join(self.class_names), "space": FEATURE_SPACE})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Optional["FilterReference"]:
        """The reference stored in a model's ``folder``, or None when it has none."""
        from safetensors import safe_open

        path = Path(folder) / REFERENCE_FILE
        if not path.is_file():
            return None
        with safe_open(str(path), framework="np") as handle:
            names = (handle.metadata() or {}).get("class_names", "")
            return cls(handle.get_tensor("features").astype(np.float32), handle.get_tensor("labels"),
                       names.split("\n") if names else [])

    def check_classes(self, class_names: list[str]) -> None:
        """Refuse a reference whose classes are not the model's (a clear message, not wrong verdicts)."""
        if list(class_names) != list(self.class_names):
            raise ValueError(f"filter reference: its classes {self.class_names} are not the model's {list(class_names)}")


def subset_per_class(labels: np.ndarray, n_classes: int, per_class: Optional[int], seed: int) -> np.ndarray:
    """Indices of at most ``per_class`` items of every class (all when None), drawn by ``seed``, sorted."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    parts = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(n_classes)]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
