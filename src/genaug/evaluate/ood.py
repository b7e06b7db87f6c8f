"""Out-of-distribution detection: how well a classifier's scores tell its own classes from other images.

Scores (higher = more in-distribution), from a classifier's logits or features:
- ``max_softmax``: the largest softmax probability (Hendrycks & Gimpel 2017).
- ``energy``: the negative free energy T * logsumexp(logits / T) (Liu et al. 2020).
- ``mahalanobis``: minus the smallest squared Mahalanobis distance to a class mean of the training
  features, with one covariance shared by the classes (Lee et al. 2018).
- ``knn``: minus the distance to the k-th nearest training feature, every feature L2-normalised
  (Sun et al. 2022).

Metrics (scikit-learn), in-distribution as the positive class: AUROC, FPR at 95 % TPR (the share of
OOD images still accepted when 95 % of in-distribution images are), AUPR-in (average precision with
in-distribution positive) and AUPR-out (OOD positive, scores negated). Near-OOD: classes held out of
the same dataset; far-OOD: another dataset.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

SCORES = ("max_softmax", "energy", "mahalanobis", "knn")
# Bump when a score, a metric or knn_neighbours changes: evaluation cells that report OOD detection carry it.
OOD_VERSION = 1


def knn_neighbours(n_train: int) -> int:
    """k of the k-NN OOD score for a training set of ``n_train`` images: Sun et al. use k = 50 on
    CIFAR's 50,000 images and a fixed share of ImageNet; a few-shot set gets a tenth of its size,
    at least 1 and at most 50."""
    return max(1, min(50, n_train // 10))
TPR_LEVEL = 0.95


def ood_metrics(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
    """AUROC, FPR at 95 % TPR, AUPR-in and AUPR-out of scores where higher means in-distribution."""
    scores_in, scores_out = np.asarray(scores_in, float), np.asarray(scores_out, float)
    if not len(scores_in) or not len(scores_out):
        raise ValueError("ood_metrics: needs in-distribution and out-of-distribution scores (one of them is empty)")
    if not (np.isfinite(scores_in).all() and np.isfinite(scores_out).all()):
        raise ValueError("ood_metrics: scores must be finite")
    labels = np.concatenate([np.ones(len(scores_in)), np.zeros(len(scores_out))])
    scores = np.concatenate([scores_in, scores_out])
    # Every threshold kept: with ties, the dropped points can be the one where TPR first reaches 95 %.
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return {"auroc": float(roc_auc_score(labels, scores)),
            "fpr95": float(fpr[np.searchsorted(tpr, TPR_LEVEL, side="left")]),
            "aupr_in": float(average_precision_score(labels, scores)),
            "aupr_out": float(average_precision_score(1 - labels, -scores))}


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """The largest softmax probability per row."""
    logits = np.asarray(logits, float)
    return np.exp(logits.max(axis=1) - _logsumexp(logits))


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The negative free energy per row, T * logsumexp(logits / T)."""
    return temperature * _logsumexp(np.asarray(logits, float) / temperature)


class MahalanobisScore:
    """Class means and one shared (tied) covariance of training features; ``score(x)`` is minus the
    smallest squared Mahalanobis distance to a class mean."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, shrinkage: float = 1e-6):
        features, labels = np.asarray(features, float), np.asarray(labels)
        self.classes = np.unique(labels)
        self.means = np.stack([features[labels == c].mean(axis=0) for c in self.classes])
        centred = features - self.means[np.searchsorted(self.classes, labels)]
        covariance = centred.T @ centred / max(1, len(features))
        # A little ridge: few-shot features have fewer examples than dimensions.
        scale = np.trace(covariance) / len(covariance) if np.trace(covariance) > 0 else 1.0
        covariance = covariance + shrinkage * scale * np.eye(len(covariance))
        # Whitening W with W W^T = covariance^-1: the distance is a Euclidean one after x -> x W, so
        # scoring costs one (rows x dims x dims) product instead of one per class.
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        # (the ridge keeps every eigenvalue positive; the floor only guards against rounding)
        floor = np.finfo(float).eps * len(eigenvalues) * max(float(eigenvalues.max()), np.finfo(float).tiny)
        self.whiten = eigenvectors / np.sqrt(np.maximum(eigenvalues, floor))
        self.whitened_means = self.means @ self.whiten

    def score(self, features: np.ndarray) -> np.ndarray:
        """Minus the smallest squared Mahalanobis distance to a class mean, per row."""
        x = np.asarray(features, float) @ self.whiten
        distances = np.stack([((x - mean) ** 2).sum(axis=1) for mean in self.whitened_means], axis=1)
        return -distances.min(axis=1)


class KNNScore:
    """Minus the distance to the k-th nearest (L2-normalised) training feature (Sun et al. 2022)."""

    def __init__(self, features: np.ndarray, k: int = 50):
        features = np.asarray(features, float)
        if k < 1:
            raise ValueError(f"knn: k must be >= 1, got {k}")
        self.k = min(int(k), len(features))
        self.bank = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    def score(self, features: np.ndarray, batch: int = 1024) -> np.ndarray:
        """Minus the k-th smallest distance to the training features, per row."""
        x = np.asarray(features, float)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out = np.empty(len(x))
        for start in range(0, len(x), batch):
            part = x[start:start + batch]
            # |a - b|^2 = 2 - 2 a.b for unit vectors.
            distances = np.sqrt(np.maximum(2.0 - 2.0 * part @ self.bank.T, 0.0))
            out[start:start + batch] = -np.partition(distances, self.k - 1, axis=1)[:, self.k - 1]
        return out


def ood_report(in_logits: np.ndarray, in_features: np.ndarray, out_logits: np.ndarray, out_features: np.ndarray,
               train_features: np.ndarray, train_labels: np.ndarray, *, k: int = 50) -> dict[str, dict[str, float]]:
    """Every score's metrics for one in-distribution test set against one OOD set."""
    mahalanobis = MahalanobisScore(train_features, train_labels)
    knn = KNNScore(train_features, k=k)
    pairs = {"max_softmax": (max_softmax(in_logits), max_softmax(out_logits)),
             "energy": (energy(in_logits), energy(out_logits)),
             "mahalanobis": (mahalanobis.score(in_features), mahalanobis.score(out_features)),
             "knn": (knn.score(in_features), knn.score(out_features))}
    return {name: ood_metrics(*pair) for name, pair in pairs.items()}
