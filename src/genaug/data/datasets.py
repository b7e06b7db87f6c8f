"""In-memory labelled datasets: images (uint8 NHWC) and tables (a DataFrame of features).

Both share one small interface (``labels``, ``class_names``, ``sources``, ``subset``,
``fingerprint``) so that splits, few-shot subsets, generators and the evaluation harness
do not care which one they hold.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd


def _check_labels(labels: np.ndarray, class_names: Sequence[str], n: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels: values must lie in [0, {len(class_names) - 1}] (one per class name)")
    return labels


def image_fingerprints(images: np.ndarray) -> list[str]:
    """One short SHA-256 per image of a uint8 (N, H, W, C) array: pixels and shape only."""
    return [hashlib.sha256(str(img.shape).encode() + np.ascontiguousarray(img).tobytes()).hexdigest()[:24]
            for img in images]


@dataclass
class LabelledImages:
    """Images as uint8 array (N, H, W, C) with C in {1, 3}, integer labels, class names.

    ``sources`` names where each image came from (a file path, ``npz:x_train[12]``, ...)
    so that samples derived from it can say so in their provenance.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    sources: list[str] = field(default_factory=list)

    kind = "images"

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim == 3:  # (N, H, W) grayscale
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images: expected (N, H, W, C) with C in 1 or 3, got shape {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"images: expected dtype uint8, got {images.dtype}")
        self.images = images
        self.class_names = [str(c) for c in self.class_names]
        self.labels = _check_labels(self.labels, self.class_names, len(images))
        if not self.sources:
            self.sources = [f"index:{i}" for i in range(len(images))]
        if len(self.sources) != len(images):
            raise ValueError("sources: one entry per image is required")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "LabelledImages":
        """The examples at ``indices`` (class names kept, so labels stay comparable)."""
        idx = np.asarray(indices, dtype=np.int64)
        return LabelledImages(self.images[idx], self.labels[idx], list(self.class_names),
                              [self.sources[i] for i in idx])

    def counts(self) -> dict[str, int]:
        """Number of examples per class name."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def fingerprint(self) -> str:
        """SHA-256 over pixels, shape, labels and class names: identifies the data a model saw."""
        h = hashlib.sha256()
        h.update(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype("<i8").tobytes())
        h.update("\x00".join(self.class_names).encode())
        return h.hexdigest()

    def item_fingerprints(self) -> list[str]:
        """One short SHA-256 per image (pixels and shape, not the label or the file name), so a
        model's training images can be matched against a test split by content."""
        return image_fingerprints(self.images)

    def concat(self, other: "LabelledImages") -> "LabelledImages":
        """This set followed by ``other`` (same class names and image shape required)."""
        if other.class_names != self.class_names:
            raise ValueError("concat: class names differ")
        if other.image_shape != self.image_shape:
            raise ValueError(f"concat: image shapes differ: {self.image_shape} vs {other.image_shape}")
        return LabelledImages(np.concatenate([self.images, other.images]),
                              np.concatenate([self.labels, other.labels]), list(self.class_names),
                              self.sources + other.sources)


@dataclass
class LabelledTable:
    """Table rows: a DataFrame of feature columns (numeric or categorical), labels, class names."""

    frame: pd.DataFrame
    labels: np.ndarray
    class_names: list[str]
    sources: list[str] = field(default_factory=list)

    kind = "table"

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            self.frame = pd.DataFrame(np.asarray(self.frame)).add_prefix("x")
        self.frame = self.frame.reset_index(drop=True)
        self.frame.columns = [str(c) for c in self.frame.columns]
        self.class_names = [str(c) for c in self.class_names]
        self.labels = _check_labels(self.labels, self.class_names, len(self.frame))
        if not self.sources:
            self.sources = [f"row:{i}" for i in range(len(self.frame))]
        if len(self.sources) != len(self.frame):
            raise ValueError("sources: one entry per row is required")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "LabelledTable":
        """The rows at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return LabelledTable(self.frame.iloc[idx].reset_index(drop=True), self.labels[idx],
                             list(self.class_names), [self.sources[i] for i in idx])

    def counts(self) -> dict[str, int]:
        """Number of rows per class name."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def fingerprint(self) -> str:
        """SHA-256 over the rows (as CSV text), labels and class names."""
        h = hashlib.sha256()
        h.update(self.frame.to_csv(index=False).encode())
        h.update(self.labels.astype("<i8").tobytes())
        h.update("\x00".join(self.class_names).encode())
        return h.hexdigest()

    def item_fingerprints(self) -> list[str]:
        """One 64-bit content hash per row (its values, not the label), hex."""
        hashes = pd.util.hash_pandas_object(self.frame, index=False).to_numpy()
        return [f"{int(h):016x}" for h in hashes]

    def numeric_matrix(self) -> np.ndarray:
        """Features as float32 matrix; categorical columns one-hot encoded (for classifiers)."""
        return np.asarray(pd.get_dummies(self.frame, dtype=np.float32), dtype=np.float32)

    def concat(self, other: "LabelledTable") -> "LabelledTable":
        """These rows followed by ``other``'s (same columns and class names required)."""
        if other.class_names != self.class_names:
            raise ValueError("concat: class names differ")
        if list(other.frame.columns) != list(self.frame.columns):
            raise ValueError("concat: columns differ")
        return LabelledTable(pd.concat([self.frame, other.frame], ignore_index=True),
                             np.concatenate([self.labels, other.labels]), list(self.class_names),
                             self.sources + other.sources)


LabelledData = LabelledImages | LabelledTable
