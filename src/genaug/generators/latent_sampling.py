"""Latent samplers of seed 001 ch. 5.1, shared by the image VAE and the tabular VAE.

prior:         z ~ N(0, I)
noise:         z = mu(x) + eps,              eps ~ N(0, alpha^2 I)             (eq. 5.1)
interpolation: z = mu(x) + alpha * (mu(x_k) - mu(x))                          (eq. 5.2, +)
extrapolation: z = mu(x) - alpha * (mu(x_k) - mu(x))                          (eq. 5.2, -)
x_k is drawn from the k nearest latent neighbours of x within the same class; the
"+noise" variants add eq. 5.1 noise (strength ``noise``) on top.
"""
from __future__ import annotations

from typing import Literal, Optional

import numpy as np

SamplerName = Literal["prior", "noise", "interpolation", "extrapolation",
                      "interpolation+noise", "extrapolation+noise"]
SAMPLERS: tuple[str, ...] = ("prior", "noise", "interpolation", "extrapolation",
                             "interpolation+noise", "extrapolation+noise")


def nearest_neighbours(means: np.ndarray, k: int) -> np.ndarray:
    """Indices (n, min(k, n-1)) of each row's k nearest other rows (Euclidean)."""
    n = len(means)
    if n < 2:
        return np.zeros((n, 0), dtype=np.int64)
    sq = (means ** 2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * means @ means.T
    np.fill_diagonal(dist, np.inf)
    k = min(k, n - 1)
    return np.argsort(dist, axis=1)[:, :k]


def sample_latents(sampler: str, n: int, means: Optional[np.ndarray], rng: np.random.Generator,
                   latent_dim: int, *, alpha: float = 0.5, k: int = 5, noise: float = 0.2):
    """``n`` latent vectors by ``sampler``, plus the index of each one's source example (or -1).

    ``means`` are the encoder means of the class's training examples (all examples for
    the single-VAE mode, where the source fixes the class). With a single example, the
    neighbour-based samplers fall back to noise around it: there is no neighbour.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: '{sampler}' is not one of {', '.join(SAMPLERS)}")
    if sampler == "prior":
        return rng.standard_normal((n, latent_dim)).astype(np.float32), np.full(n, -1, dtype=np.int64)
    if means is None or len(means) == 0:
        raise ValueError(f"sampler '{sampler}' needs encoded training examples of the class")
    means = np.asarray(means, dtype=np.float32)
    source = rng.integers(0, len(means), size=n)
    base = means[source]
    if sampler == "noise":
        return (base + alpha * rng.standard_normal(base.shape)).astype(np.float32), source
    neighbours = nearest_neighbours(means, k)
    if neighbours.shape[1] == 0:
        return (base + alpha * rng.standard_normal(base.shape)).astype(np.float32), source
    partner = neighbours[source, rng.integers(0, neighbours.shape[1], size=n)]
    sign = 1.0 if sampler.startswith("interpolation") else -1.0
    z = base + sign * alpha * (means[partner] - base)
    if sampler.endswith("+noise"):
        z = z + noise * rng.standard_normal(z.shape)
    return z.astype(np.float32), source
