"""Distances between two sets of image features: FID, KID, precision / recall / density / coverage.

All take feature arrays (N x D, float), so one pass of a feature network serves every number.

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two sets. It is
  biased upwards for small sets (a few thousand samples are needed for stable values).
- KID (Bińkowski et al. 2018): the squared maximum mean discrepancy with the polynomial kernel
  k(x, y) = (x.y / D + 1)^3, estimated without bias on random subsets; its mean and standard
  deviation over the subsets are reported. Unbiased: two halves of one set score about 0, and
  small sets are fine, which is why reports lead with KID below a few thousand samples.
- Precision, recall, density, coverage (Naeem et al. 2020) with k nearest neighbours among the
  real features: precision and density measure fidelity (do samples fall where real data is),
  recall and coverage diversity (is the real data's range covered).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FID_RELIABLE_SAMPLES = 2000  # below this, FID's bias dominates differences between generators


def _as_features(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"{name}: expected at least 2 feature vectors (N x D), got shape {array.shape}")
    if not np.isfinite(array).all():  # e.g. a diverged generator's images: say so, not "SVD did not converge"
        raise ValueError(f"{name}: {int((~np.isfinite(array)).any(axis=1).sum())} of {len(array)} feature vectors "
                         "are not finite (NaN or infinity)")
    return array


def _covariance_root(features: np.ndarray) -> np.ndarray:
    """A D x k matrix F with F F^T = the covariance of ``features`` (as np.cov scales it), k = min(N, D):
    the centred vectors themselves when there are fewer than dimensions, else V sqrt(eigenvalues)."""
    centred = features - features.mean(0)
    if len(features) <= features.shape[1]:
        return centred.T / np.sqrt(len(features) - 1)
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(features) - 1))
    return vectors * np.sqrt(np.clip(values, 0, None))


def _trace_sqrt_product(root_a: np.ndarray, root_b: np.ndarray) -> float:
    """trace(sqrtm(cov_a @ cov_b)) from the covariance roots of two feature sets, exactly, without a D x D matrix square root.

    With F_a F_a^T = cov_a and F_b F_b^T = cov_b, the non-zero eigenvalues of cov_a cov_b are
    those of (F_a^T F_b)(F_a^T F_b)^T: the squared singular values of F_a^T F_b, a
    min(m, D) x min(n, D) matrix. So the trace of the square root is the sum of those singular
    values -- a dozen-by-a-dozen problem for a per-class block of a quality card, and never more
    memory than D x D. scipy's ``sqrtm`` of the D x D product took seconds per call and is
    unstable on the singular products small sets give."""
    return float(np.linalg.svd(root_a.T @ root_b, compute_uv=False).sum())


def fid(real, fake) -> float:
    """The Fréchet distance between Gaussians fitted to ``real`` and ``fake`` features."""
    a, b = _as_features("real", real), _as_features("fake", fake)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"fid: feature sizes differ ({a.shape[1]} and {b.shape[1]})")
    mean_gap = ((a.mean(0) - b.mean(0)) ** 2).sum()
    root_a, root_b = _covariance_root(a), _covariance_root(b)
    # trace(cov) = trace(F F^T) = the sum of F's squared entries
    trace_a, trace_b = (root_a ** 2).sum(), (root_b ** 2).sum()
    return float(max(0.0, mean_gap + trace_a + trace_b - 2 * _trace_sqrt_product(root_a, root_b)))


@dataclass(frozen=True)
class KID:
    """KID's mean and standard deviation over the random subsets it was estimated on."""

    mean: float
    std: float
    subsets: int
    subset_size: int

    def to_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    m, n = len(x), len(y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def kid(real, fake, *, subsets: int = 50, subset_size: int = 500, seed: int = 0) -> KID:
    """Unbiased KID of ``fake`` against ``real`` features on ``subsets`` random subsets of
    ``min(subset_size, len(real), len(fake))`` vectors each."""
    a, b = _as_features("real", real), _as_features("fake", fake)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: feature sizes differ ({a.shape[1]} and {b.shape[1]})")
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [_mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return KID(float(np.mean(values)), float(np.std(values)), subsets, size)


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    squared = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.maximum(squared, 0.0))


@dataclass(frozen=True)
class PRDC:
    """Precision, recall, density and coverage (Naeem et al. 2020) with ``k`` neighbours."""

    precision: float
    recall: float
    density: float
    coverage: float
    k: int

    def to_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


def prdc(real, fake, *, k: int = 5) -> PRDC:
    """Precision, recall, density and coverage of ``fake`` against ``real`` features."""
    a, b = _as_features("real", real), _as_features("fake", fake)
    if len(a) <= k or len(b) <= k:
        raise ValueError(f"prdc: needs more than k = {k} vectors in each set (got {len(a)} and {len(b)})")
    real_real = _pairwise(a, a)
    fake_fake = _pairwise(b, b)
    real_fake = _pairwise(a, b)
    # k-th nearest neighbour radius of each point within its own set (index 0 is the point itself)
    real_radius = np.sort(real_real, axis=1)[:, k]
    fake_radius = np.sort(fake_fake, axis=1)[:, k]
    inside_real = real_fake < real_radius[:, None]  # real i's ball holds fake j
    precision = float(inside_real.any(axis=0).mean())
    recall = float((real_fake < fake_radius[None, :]).any(axis=1).mean())
    density = float(inside_real.sum(axis=0).mean() / k)
    coverage = float((real_fake.min(axis=1) < real_radius).mean())
    return PRDC(precision, recall, density, coverage, k)
