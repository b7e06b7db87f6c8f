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

import torch
import torch.nn.functional as F


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
