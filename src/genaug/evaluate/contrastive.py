"""Supervised contrastive learning (Khosla et al. 2020) with synthetic positives and near-OOD negatives
(seed 000 ch. 2.4, 3.1): the loss. Our own code; the seed's implementation had two bugs this one
avoids by construction (each has a test):

1. Its near-OOD images were labelled ``-class``, so those made from class 0 got label 0 and counted
   as *positives* of class 0. Here negatives travel in their own tensor with their source class
   (``negative_sources``): they can never be anchors or positives.
2. It masked logits with ``logits *= mask``, which turns a removed entry into exp(0) = 1 inside the
   denominator. Here removed entries are dropped from the sums (set to -inf before the exp).

For anchor i (every in-distribution view) with positives P(i) (the other views of its class) and
near-OOD negatives N(i) (those made from class y_i, or all of them with ``negatives_for="all"``)::

    loss_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip) / (sum_{a != i} exp(s_ia) + w sum_{n in N(i)} exp(s_in)) )

with s = z_i . z_j / temperature on L2-normalised features, w = ``negative_weight``; the loss is the
mean over anchors that have a positive.
"""
from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..generators.images import images_to_tensor
from .image_classifier import ClassifierBudget, SmallCNN, TrainingLedger, batch_indices, training_tensors


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.1,
                negatives: Optional[torch.Tensor] = None, negative_sources: Optional[torch.Tensor] = None,
                negative_weight: float = 1.0, negatives_for: Literal["source", "all"] = "source") -> torch.Tensor:
    """SupCon over ``features`` (N, D) -- every view of every image, in-distribution -- with class
    ``labels`` (N,); optional near-OOD ``negatives`` (M, D) made from the classes ``negative_sources``
    (M,), which only ever enlarge the denominators (see the module docstring)."""
    if features.ndim != 2 or labels.shape != (len(features),):
        raise ValueError(f"supcon: features must be (N, D) and labels (N,), got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"supcon: temperature must be > 0, got {temperature}")
    if (negatives is None) != (negative_sources is None):
        raise ValueError("supcon: negatives and negative_sources go together")
    if negative_weight < 0:
        raise ValueError(f"supcon: negative_weight must be >= 0, got {negative_weight}")
    z = F.normalize(features, dim=1)
    n = len(z)
    logits = z @ z.T / temperature
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    positive = (labels[:, None] == labels[None, :]) & ~self_pair
    # Bug 2 avoided: the anchor itself leaves the denominator (-inf -> exp = 0), not logit 0 (exp = 1).
    parts = [logits.masked_fill(self_pair, float("-inf"))]
    if negatives is not None and len(negatives):
        if negatives.ndim != 2 or negatives.shape[1] != features.shape[1] or negative_sources.shape != (len(negatives),):
            raise ValueError(f"supcon: negatives must be (M, {features.shape[1]}) with M sources, got "
                             f"{tuple(negatives.shape)} and {tuple(negative_sources.shape)}")
        negative_logits = z @ F.normalize(negatives, dim=1).T / temperature
        if negatives_for == "source":
            applies = labels[:, None] == negative_sources[None, :]
        elif negatives_for == "all":
            applies = torch.ones_like(negative_logits, dtype=torch.bool)
        else:
            raise ValueError(f"supcon: negatives_for must be 'source' or 'all', got {negatives_for!r}")
        if negative_weight == 0:
            applies = torch.zeros_like(applies)
        # w * exp(s) = exp(s + log w): the weight joins the logit, so one logsumexp does the sum.
        weighted = negative_logits + torch.log(torch.tensor(max(negative_weight, 1e-30), dtype=logits.dtype))
        parts.append(weighted.masked_fill(~applies, float("-inf")))
    log_denominator = torch.logsumexp(torch.cat(parts, dim=1), dim=1)
    log_probability = logits - log_denominator[:, None]
    counts = positive.sum(dim=1)
    has_positive = counts > 0
    if not has_positive.any():
        raise ValueError("supcon: no anchor has a positive (every class needs at least two views)")
    per_anchor = -(log_probability * positive).sum(dim=1)[has_positive] / counts[has_positive]
    return per_anchor.mean()


# -- the supcon classifier ------------------------------------------------------------------
# Bump when the encoder, the views or the probe change: cached evaluation cells carry it.
SUPCON_VERSION = 1
SUPCON_TEMPERATURE = 0.1
PROJECTION_DIM = 128


class SupConNetwork(nn.Module):
    """The small CNN's convolutional body as encoder, an MLP projection head for the loss, and a
    linear probe on the encoder's features for the predictions."""

    def __init__(self, in_channels: int, n_classes: int, width: int):
        super().__init__()
        self.encoder = SmallCNN(in_channels, n_classes, width).features
        features = width * 4 * 16
        self.projection = nn.Sequential(nn.Linear(features, features), nn.ReLU(), nn.Linear(features, PROJECTION_DIM))
        self.probe = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of the linear probe."""
        return self.probe(self.encoder(x))

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probe logits, encoder features): the OOD scores read both."""
        features = self.encoder(x)
        return self.probe(features), features


def train_supcon_classifier(real: np.ndarray, real_labels: np.ndarray, n_classes: int, *, seed: int,
                            budget: ClassifierBudget, synthetic: Optional[np.ndarray] = None,
                            synthetic_labels: Optional[np.ndarray] = None, augment: Optional[nn.Module] = None,
                            real_fraction: Optional[float] = 0.5, ledger: Optional[TrainingLedger] = None,
                            negatives: Optional[np.ndarray] = None, negative_sources: Optional[np.ndarray] = None,
                            negative_weight: float = 1.0, negatives_for: Literal["source", "all"] = "source",
                            temperature: float = SUPCON_TEMPERATURE) -> SupConNetwork:
    """SupCon, then a linear probe, under the CNN's budget rule.

    Stage 1 (``budget.steps`` steps of ``budget.batch_size`` images drawn by ``batch_indices``):
    two augmented views of every image (the arm's classic augmentation, else the strong preset),
    encoder + projection head trained with ``supcon_loss``; synthetic images join their class as
    extra views (positives); near-OOD ``negatives`` (made from the classes ``negative_sources``),
    when given, add ``budget.batch_size // 2`` of them per step to their source class's
    denominators (every anchor's with ``negatives_for="all"``). Stage 2: the encoder is frozen and a linear probe learns on one view of the
    same batches for ``budget.steps`` steps. Returns the network in eval mode."""
    from ..generators.classic import ClassicConfig, build_augmentation

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, y, n_real, n_syn = training_tensors(real, real_labels, synthetic, synthetic_labels)
    views = augment if augment is not None else build_augmentation(ClassicConfig(preset="strong"), x.shape[-1])
    negative_x = None if negatives is None or not len(negatives) else images_to_tensor(negatives)
    # The negatives' draws (which, their views) come from streams of their own, so adding them
    # changes the run only through the loss (weight 0 trains exactly as without negatives).
    negative_rng = np.random.default_rng([seed, 1])
    negative_y = None if negative_x is None else torch.from_numpy(np.asarray(negative_sources, dtype=np.int64))
    model = SupConNetwork(x.shape[1], n_classes, budget.width)
    optimiser = torch.optim.Adam([*model.encoder.parameters(), *model.projection.parameters()], lr=budget.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, budget.steps)
    model.train()
    for _ in range(budget.steps):
        idx = torch.from_numpy(batch_indices(rng, n_real, n_syn, budget.batch_size, real_fraction))
        xb, yb = x[idx], y[idx]
        with torch.no_grad():
            both = views(torch.cat([xb, xb])).clamp(0, 1)
        projected = model.projection(model.encoder(both))
        kwargs = {}
        if negative_x is not None:
            pick = torch.from_numpy(negative_rng.integers(0, len(negative_x), size=max(1, budget.batch_size // 2)))
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(negative_rng.integers(2 ** 31)))
                negative_views = views(negative_x[pick]).clamp(0, 1)
            kwargs = dict(negatives=model.projection(model.encoder(negative_views)), negative_sources=negative_y[pick],
                          negative_weight=negative_weight, negatives_for=negatives_for)
        loss = supcon_loss(projected, torch.cat([yb, yb]), temperature=temperature, **kwargs)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if ledger is not None:
            ledger.record(len(yb))
    model.eval()
    model.encoder.requires_grad_(False)
    probe_optimiser = torch.optim.Adam(model.probe.parameters(), lr=budget.lr)
    for _ in range(budget.steps):
        idx = torch.from_numpy(batch_indices(rng, n_real, n_syn, budget.batch_size, real_fraction))
        with torch.no_grad():
            features = model.encoder(views(x[idx]).clamp(0, 1))
        loss = F.cross_entropy(model.probe(features), y[idx])
        probe_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        probe_optimiser.step()
    return model.eval()
