"""OOD scores and metrics against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from genaug.evaluate.ood import KNNScore, MahalanobisScore, energy, max_softmax, ood_metrics, ood_report

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def test_metrics_match_a_hand_worked_case():
    # in: 0.9 0.8 0.7, out: 0.6 0.85. Pairs with in > out: 4 of 6.
    metrics = ood_metrics([0.9, 0.8, 0.7], [0.6, 0.85])
    assert metrics["auroc"] == pytest.approx(4 / 6)
    # Accepting all three in-distribution scores (TPR 1 >= .95) needs threshold 0.7: 0.85 passes too.
    assert metrics["fpr95"] == pytest.approx(0.5)
    # Ranked: 0.9 in, 0.85 out, 0.8 in, 0.7 in, 0.6 out -> precision at each in: 1, 2/3, 3/4.
    assert metrics["aupr_in"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # Negated, OOD first: 0.6 out, 0.7 in, 0.8 in, 0.85 out -> precision at each out: 1, 2/4.
    assert metrics["aupr_out"] == pytest.approx((1 + 2 / 4) / 2)
    perfect = ood_metrics([3, 4], [1, 2])
    assert perfect == {"auroc": 1.0, "fpr95": 0.0, "aupr_in": 1.0, "aupr_out": 1.0}
    with pytest.raises(ValueError, match="empty"):
        ood_metrics([1.0], [])


def test_softmax_and_energy_scores():
    logits = np.array([[1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(max_softmax(logits), [math.e ** 2 / (math.e + math.e ** 2), 0.5])
    np.testing.assert_allclose(energy(logits), [math.log(math.e + math.e ** 2), math.log(2)])
    np.testing.assert_allclose(energy(logits, temperature=2.0)[0], 2 * math.log(math.exp(0.5) + math.exp(1.0)))
    big = np.array([[1000.0, 0.0]])  # no overflow
    assert max_softmax(big)[0] == pytest.approx(1.0) and energy(big)[0] == pytest.approx(1000.0)


def test_mahalanobis_uses_class_means_and_the_shared_covariance():
    # Class 0 at -1, 1 (mean 0), class 1 at 9, 11 (mean 10); centred values -1, 1, -1, 1: variance 1.
    score = MahalanobisScore(np.array([[-1.0], [1.0], [9.0], [11.0]]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(score.score(np.array([[2.0], [5.0], [10.0]])), [-4.0, -25.0, 0.0], rtol=1e-4, atol=1e-6)


def test_knn_distance_on_normalised_features():
    bank = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 2.0]])
    query = np.array([[5.0, 0.0]])  # normalised: (1, 0)
    assert KNNScore(bank, k=1).score(query)[0] == pytest.approx(0.0, abs=1e-7)
    assert KNNScore(bank, k=2).score(query)[0] == pytest.approx(-math.sqrt(2 - math.sqrt(2)))
    assert KNNScore(bank, k=3).score(query)[0] == pytest.approx(-math.sqrt(2))
    assert KNNScore(bank, k=50).k == 3  # at most the bank's size


def test_report_separates_an_obvious_outlier_set():
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.normal(0, 1, (50, 4)) + [5, 0, 0, 0], rng.normal(0, 1, (50, 4)) + [0, 5, 0, 0]])
    labels = np.repeat([0, 1], 50)
    inside = np.concatenate([rng.normal(0, 1, (20, 4)) + [5, 0, 0, 0], rng.normal(0, 1, (20, 4)) + [0, 5, 0, 0]])
    outside = rng.normal(0, 1, (40, 4)) + [0, 0, 0, 6]
    logits_in, logits_out = inside[:, :2] * 2, outside[:, :2] * 2
    report = ood_report(logits_in, inside, logits_out, outside, train, labels, k=5)
    assert set(report) == {"max_softmax", "energy", "mahalanobis", "knn"}
    assert report["mahalanobis"]["auroc"] > 0.99 and report["knn"]["auroc"] > 0.99
    assert report["energy"]["auroc"] > 0.9


def test_fpr95_with_tied_scores_takes_the_first_threshold_that_accepts_95_percent():
    # 20 in-distribution scores: 18 high ones, then 5 and 3; the OOD set ties with those two.
    scores_in = list(range(10, 28)) + [5, 3]
    scores_out = [5, 3] + list(range(-20, -2))
    # 95 % of 20 = 19 accepted: threshold 5, which also accepts one OOD score (5): 1/20.
    assert ood_metrics(scores_in, scores_out)["fpr95"] == pytest.approx(1 / 20)


def test_mahalanobis_by_whitening_equals_the_precision_matrix_form_when_dims_exceed_examples():
    rng = np.random.default_rng(3)
    features, labels = rng.normal(size=(12, 40)), np.repeat(np.arange(3), 4)
    score = MahalanobisScore(features, labels)
    means = np.stack([features[labels == c].mean(0) for c in range(3)])
    centred = features - means[labels]
    covariance = centred.T @ centred / len(features)
    covariance += 1e-6 * np.trace(covariance) / 40 * np.eye(40)
    precision = np.linalg.pinv(covariance)
    x = rng.normal(size=(7, 40))
    expected = -np.min([np.einsum("nd,de,ne->n", x - m, precision, x - m) for m in means], axis=0)
    np.testing.assert_allclose(score.score(x), expected, rtol=1e-6)
