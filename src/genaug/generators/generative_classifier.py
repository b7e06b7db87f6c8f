"""The generative classifier of seed 001 ch. 5.4: the real-vs-noise network a model trains with itself.

A binary network learns "real example" vs "noise", where noise is uniform noise, Gaussian
noise around the sample mean (std ``sigma``, the filter's sensitivity) and -- for images --
the blurry reconstructions of an early snapshot of the VAE. It is trained with the model (its
weights travel in the model's file); the post-sample filter stage applies it as the
``generative-classifier`` filter (``GenerativeClassifierJudge``): a sample it judges to be
noise is rejected and redrawn, and the rejections are counted like every other filter's.

Works on uint8 images (N, H, W, C) and on float feature matrices (N, D) alike: both are
flattened, images scaled to [0, 1].
"""
from __future__ import annotations

import time

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..training import STEP_OBSERVER
from .base import seeded_torch, tensors_under


def _as_features(x: np.ndarray) -> torch.Tensor:
    x = np.asarray(x)
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / scale)


def _network(width: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden // 2),
                         nn.LeakyReLU(0.2), nn.Linear(hidden // 2, 1))


class GenerativeClassifier:
    """Real-vs-noise classifier; ``accepts(x)`` says which samples look like real data."""

    def __init__(self, sigma: float = 0.3, steps: int = 600, hidden: int = 128, threshold: float = 0.5,
                 seed: int = 0):
        self.sigma, self.steps, self.hidden, self.threshold, self.seed = sigma, steps, hidden, threshold, seed
        self.network: Optional[nn.Module] = None
        self.train_accuracy: Optional[float] = None

    def noise_examples(self, real: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Uniform noise over each feature's range and Gaussian noise around the sample mean."""
        n = len(real)
        low, high = real.min(0).values, real.max(0).values
        uniform = low + (high - low) * torch.from_numpy(rng.random(real.shape).astype(np.float32))
        gaussian = real.mean(0) + self.sigma * torch.from_numpy(rng.standard_normal(real.shape).astype(np.float32))
        if real.max() <= 1.0 and real.min() >= 0.0:
            gaussian = gaussian.clamp(0, 1)
        return torch.cat([uniform[: max(1, n // 2)], gaussian[: max(1, n - n // 2)]])

    def fit(self, real: np.ndarray, extra_noise: Optional[np.ndarray] = None) -> "GenerativeClassifier":
        """Train on ``real`` examples vs generated noise (plus ``extra_noise``, e.g. early reconstructions)."""
        rng = np.random.default_rng(self.seed)
        with seeded_torch(self.seed):  # seeded weights, the caller's RNGs untouched
            return self._fit(real, extra_noise, rng)

    def _fit(self, real: np.ndarray, extra_noise: Optional[np.ndarray], rng: np.random.Generator) -> "GenerativeClassifier":
        positives = _as_features(real)
        negatives = [self.noise_examples(positives, rng)]
        if extra_noise is not None and len(extra_noise):
            negatives.append(_as_features(extra_noise))
        negatives = torch.cat(negatives)
        x = torch.cat([positives, negatives])
        y = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
        # Weight the classes equally: there are usually more noise examples than real ones.
        weight = torch.where(y == 1, len(y) / (2 * len(positives)), len(y) / (2 * len(negatives)))
        self.network = _network(x.shape[1], self.hidden)
        optimiser = torch.optim.Adam(self.network.parameters(), lr=1e-3)
        batch = min(128, len(x))
        observer = STEP_OBSERVER.get()  # a speed measurement (genaug.presets) times these steps too
        for step in range(1, self.steps + 1):
            started = time.perf_counter()
            idx = torch.from_numpy(rng.integers(0, len(x), size=batch))
            logits = self.network(x[idx]).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, y[idx], weight=weight[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if observer is not None:
                observer("gc", step, time.perf_counter() - started)
        self.network.eval()
        with torch.no_grad():
            self.train_accuracy = float(((self.network(x).squeeze(1) > 0).float() == y).float().mean())
        return self

    @torch.no_grad()
    def real_probability(self, samples: np.ndarray) -> np.ndarray:
        """P(real) per sample."""
        if self.network is None:
            raise RuntimeError("generative classifier: call fit() first")
        return torch.sigmoid(self.network(_as_features(samples)).squeeze(1)).numpy()

    def accepts(self, samples: np.ndarray) -> np.ndarray:
        """Boolean mask: which samples the filter keeps."""
        return self.real_probability(samples) >= self.threshold

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Network weights plus its settings (as tensors, so they travel in safetensors)."""
        if self.network is None:
            raise RuntimeError("generative classifier: nothing to save before fit()")
        tensors = {f"net.{k}": v for k, v in self.network.state_dict().items()}
        tensors["settings"] = torch.tensor([self.sigma, self.threshold, float(self.hidden),
                                            float(self.train_accuracy or 0.0)], dtype=torch.float64)
        return tensors

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor]) -> "GenerativeClassifier":
        """Rebuild a trained filter from ``state_tensors``."""
        sigma, threshold, hidden, accuracy = tensors["settings"].tolist()
        gc = cls(sigma=sigma, hidden=int(hidden), threshold=threshold)
        width = tensors["net.0.weight"].shape[1]
        gc.network = _network(width, int(hidden))
        gc.network.load_state_dict(tensors_under(tensors, "net."))
        gc.network.eval()
        gc.train_accuracy = accuracy
        return gc
