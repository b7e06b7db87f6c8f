"""The downstream image classifier every arm trains: a small CNN with a fixed step budget.

Fairness rules (DESIGN.md, honest evaluation): the same network, optimiser, batch size and
number of steps for every arm; only the training data differs. No early stopping on test
data. To cut the classifier's own seed-to-seed noise (so a .02 difference is visible), the
model evaluated is an exponential moving average of the weights.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..generators.images import images_to_tensor


# Bump when the network or training loop changes: cached evaluation cells carry it.
# 3: every arm trains on ``batch_size`` examples per step (drawn with replacement), whatever its size.
CLASSIFIER_VERSION = 3


class TrainingLedger:
    """What a classifier's training loop actually consumed: steps and examples per step.

    The budget rule (every arm: same steps, same examples per step) is checked against this
    record, not against the config, so a loop that quietly shrinks its batch is caught.
    """

    def __init__(self) -> None:
        self.steps = 0
        self.examples = 0
        self.batch_sizes: set[int] = set()

    def record(self, batch_size: int) -> None:
        """Count one optimisation step on ``batch_size`` examples."""
        self.steps += 1
        self.examples += int(batch_size)
        self.batch_sizes.add(int(batch_size))

    def as_dict(self) -> dict:
        """``{"steps", "examples_per_step", "examples"}``; examples_per_step is a list when it varied."""
        sizes = sorted(self.batch_sizes)
        return {"steps": self.steps, "examples": self.examples,
                "examples_per_step": sizes[0] if len(sizes) == 1 else sizes}


class SmallCNN(nn.Module):
    """Three conv layers (w, 2w, 4w) with max pooling, a 4x4 spatial map flattened into a linear head.

    Flattening a small spatial map (rather than global average pooling) keeps where a
    stroke is; with 20 training images that is worth about .2 F1 on MNIST.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width * 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width * 2, width * 4, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(width * 4 * 16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for images in [0, 1]."""
        return self.head(self.dropout(self.features(x)))

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits, the flattened features the head reads) for images in [0, 1]."""
        features = self.features(x)
        return self.head(self.dropout(features)), features


@dataclass
class ClassifierBudget:
    """What every arm gets: steps, batch size, learning rate, EMA decay."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    ema_decay: float = 0.995
    width: int = 16


def batch_indices(rng: np.random.Generator, n_real: int, n_synthetic: int, batch: int,
                  real_fraction: Optional[float]) -> np.ndarray:
    """Indices into [real..., synthetic...]; with ``real_fraction`` a fixed share of each batch is real,
    so 20 real images are not drowned by 20,000 synthetic ones under a fixed step budget.

    Always ``batch`` indices, drawn with replacement: an arm of 20 images gets as many examples
    per step as an arm of 20,000 (the budget rule)."""
    if n_synthetic == 0 or real_fraction is None or n_real == 0:
        return rng.integers(0, n_real + n_synthetic, size=batch)
    n_r = int(round(batch * real_fraction))
    return np.concatenate([rng.integers(0, n_real, size=n_r),
                           n_real + rng.integers(0, n_synthetic, size=batch - n_r)])


def training_tensors(real: np.ndarray, real_labels: np.ndarray, synthetic: Optional[np.ndarray],
                     synthetic_labels: Optional[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(images [0, 1] NCHW, labels, how many real, how many synthetic): the real images first, then
    the synthetic ones (the order ``batch_indices`` draws from)."""
    x = images_to_tensor(real)
    y = torch.from_numpy(np.asarray(real_labels, dtype=np.int64))
    n_real, n_syn = len(x), 0
    if synthetic is not None and len(synthetic):
        x = torch.cat([x, images_to_tensor(synthetic)])
        y = torch.cat([y, torch.from_numpy(np.asarray(synthetic_labels, dtype=np.int64))])
        n_syn = len(synthetic)
    if n_real + n_syn == 0:
        raise ValueError("classifier: no training images")
    return x, y, n_real, n_syn


def train_image_classifier(real: np.ndarray, real_labels: np.ndarray, n_classes: int, *, seed: int,
                           budget: ClassifierBudget, synthetic: Optional[np.ndarray] = None,
                           synthetic_labels: Optional[np.ndarray] = None, augment: Optional[nn.Module] = None,
                           real_fraction: Optional[float] = 0.5,
                           ledger: Optional[TrainingLedger] = None) -> nn.Module:
    """Train the CNN on real (+ synthetic) uint8 images; ``augment`` is applied to every batch on the fly.

    Returns the EMA model in eval mode. ``ledger`` records every step's batch size.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y, n_real, n_syn = training_tensors(real, real_labels, synthetic, synthetic_labels)
    model = SmallCNN(x.shape[1], n_classes, budget.width)
    ema = copy.deepcopy(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=budget.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, budget.steps)
    model.train()
    for step in range(budget.steps):
        idx = torch.from_numpy(batch_indices(rng, n_real, n_syn, budget.batch_size, real_fraction))
        xb, yb = x[idx], y[idx]
        if augment is not None:
            with torch.no_grad():
                xb = augment(xb).clamp(0, 1)
        loss = F.cross_entropy(model(xb), yb)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if ledger is not None:
            ledger.record(len(yb))
        with torch.no_grad():
            # Warm-up: a short EMA horizon early on, so short budgets are not dominated by init weights.
            decay = min(budget.ema_decay, (1 + step) / (10 + step))
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.mul_(decay).add_(p.detach(), alpha=1 - decay)
            for b_ema, b in zip(ema.buffers(), model.buffers()):
                b_ema.copy_(b)
    return ema.eval()


class TrainedClassifier:
    """A trained image classifier as the runner uses it: ``outputs(images)`` gives (class logits,
    penultimate features) of uint8 NHWC images, as numpy arrays (the OOD scores read both); calling
    it gives the predicted class indices."""

    def __init__(self, outputs: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]):
        self.outputs = outputs

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Predicted class per uint8 image."""
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros(0, np.int64)
        return self.outputs(images)[0].argmax(1)


def module_classifier(model: nn.Module, batch: int = 1000) -> TrainedClassifier:
    """A network with ``embed(x) -> (logits, features)`` (the CNN, the supcon network) in eval mode,
    as a ``TrainedClassifier``."""
    model.eval()

    @torch.no_grad()
    def outputs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = [], []
        for start in range(0, len(images), batch):
            lg, ft = model.embed(images_to_tensor(images[start:start + batch]))
            logits.append(lg.numpy())
            features.append(ft.numpy())
        return np.concatenate(logits), np.concatenate(features)
    return TrainedClassifier(outputs)


@torch.no_grad()
def predict_images(model: nn.Module, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Predicted class per uint8 image."""
    out = []
    for start in range(0, len(images), batch):
        out.append(model(images_to_tensor(images[start:start + batch])).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)
