"""The ``confidence`` filter (seed 002's outlook; the GAN Quality Index filters this way): a linear
classifier on the real training images' EfficientNet-Lite0 features (the ``lite0-linear``
probe) judges each generated image. A sample is rejected when the classifier's most likely class
is not the sample's label, or when its probability for the label is below the threshold.
"""
from __future__ import annotations

import numpy as np

from ..quality.reference import FilterReference

DEFAULT_CONFIDENCE = 0.5


class ConfidenceFilter:
    """Keeps a sample when the real-data classifier names its label with probability >= ``threshold``."""

    name = "confidence"
    score_name = "p_label"
    needs_features = True  # judges Lite0 features of images

    def __init__(self, reference: FilterReference, threshold: float = DEFAULT_CONFIDENCE, *, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"filter confidence: the threshold is a probability in [0, 1], got {threshold}")
        present = np.unique(reference.labels)
        if len(present) < 2:
            raise ValueError("filter confidence: needs real images of at least two classes to train its classifier")
        self.threshold = float(threshold)
        self.n_classes = len(reference.class_names)
        self.classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, random_state=seed))
        self.classifier.fit(reference.features, reference.labels)
        self.classes = self.classifier.classes_

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(class | image) for every class of the model (0 for a class without real images)."""
        out = np.zeros((len(features), self.n_classes))
        if len(features):
            out[:, self.classes] = self.classifier.predict_proba(features)
        return out

    def judge(self, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, the probability of each sample's own label)."""
        p = self.probabilities(features)
        labels = np.asarray(labels, dtype=np.int64)
        own = p[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
        keep = (p.argmax(1) == labels) & (own >= self.threshold) if len(labels) else np.zeros(0, bool)
        return keep, own
