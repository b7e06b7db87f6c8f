"""The DCGAN's networks (PyTorch DCGAN tutorial, Radford et al. 2015) and its mode-collapse measure.

Generator: ConvTranspose2d-BatchNorm-ReLU blocks, then ConvTranspose2d + Tanh (images in
[-1, 1]). Discriminator: Conv2d-BatchNorm-LeakyReLU(0.2) blocks (no BatchNorm on the first),
then one conv to a single logit. Weights start at N(0, 0.02), BatchNorm scales at N(1, 0.02).

Any square size ``base * 2**k`` with base 4 or 7 and k >= 1 works (8, 16, 32, 64, 128 from
4x4; 28, 56 from 7x7): the generator's first block makes a base x base map from the latent
vector and every further block doubles it; the discriminator mirrors that. Channel widths
are ``width`` at the full-resolution end and double per level toward the small end, capped
at ``max_mult * width`` (the tutorial's 64-px nets: 512-256-128-64).

Conditioning (``n_classes > 0``):
- G concatenates a learned class embedding (N(0, 1), ``embed_dim``) to z: [z, e_y], the usual
  cGAN input (``conditioning="concat"``, the default). Only G's first conv and the embeddings
  differ from the unconditional net, so everything else transfers between the per-class and
  the conditional mode. ``conditioning="multiply"`` (z * e_y) keeps even the first conv's
  shape, but for a symmetric z it only rescales the noise per dimension, a class signal the
  shallow first block barely picks up (samples matched their label far less often).
  The concatenated embedding gives G a z-free path to one image per class; the training
  terms in ``dcgan.py`` (mode seeking, matching-aware D) keep it from taking it.
- D is a projection discriminator (Miyato & Koyama 2018): logit = head(h) + <e_y, sum-pooled h>,
  h the last feature map; ``head`` is the tutorial's final conv, shared with the
  unconditional D for the same reason.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BASES = (4, 7)
FEATURE_SIZE = 16


def size_plan(size: int) -> tuple[int, int]:
    """(base, levels) with ``size == base * 2**levels``; ValueError for sizes the nets cannot make."""
    for base in BASES:
        ratio, rest = divmod(int(size), base)
        if rest == 0 and ratio >= 2 and ratio & (ratio - 1) == 0:
            return base, ratio.bit_length() - 1
    examples = sorted(b * 2 ** k for b in BASES for k in range(1, 6))
    raise ValueError(f"dcgan: image size {size} is not base * 2**k with base 4 or 7 and k >= 1 "
                     f"(e.g. {', '.join(map(str, examples))}); resize the images when ingesting (image_size=...)")


def level_widths(width: int, levels: int, max_mult: int) -> list[int]:
    """Channels per level, smallest map first: width * min(2**(levels-1-i), max_mult)."""
    return [width * min(2 ** (levels - 1 - i), max_mult) for i in range(levels)]


def _init_dcgan(module: nn.Module) -> None:
    # The DCGAN paper's init: every conv N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) [and labels (N,)] -> images (N, C, S, S) in [-1, 1]."""

    def __init__(self, image_size: int, channels: int, latent_dim: int = 100, width: int = 64,
                 n_classes: int = 0, max_mult: int = 8, embed_dim: int = 50, conditioning: str = "multiply"):
        super().__init__()
        if conditioning not in ("multiply", "concat"):
            raise ValueError(f"conditioning: expected 'multiply' or 'concat', got {conditioning!r}")
        base, levels = size_plan(image_size)
        self.image_size, self.channels, self.latent_dim, self.n_classes = image_size, channels, latent_dim, n_classes
        self.conditioning = conditioning
        widths = level_widths(width, levels, max_mult)
        concat = n_classes and conditioning == "concat"
        inputs = latent_dim + (embed_dim if concat else 0)
        layers: list[nn.Module] = [nn.ConvTranspose2d(inputs, widths[0], base, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        _init_dcgan(self)
        # N(0, 1) (the default), on the scale of z, so the class is as loud as the noise from the start.
        self.embed = nn.Embedding(n_classes, embed_dim if concat else latent_dim) if n_classes else None

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images in [-1, 1]; ``labels`` are required by a conditional generator."""
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            e = self.embed(labels.long()).to(z.dtype)
            z = torch.cat([z, e], dim=1) if self.conditioning == "concat" else z * e
        return self.main(z.reshape(len(z), -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Images (N, C, S, S) in [-1, 1] [and labels] -> one real/fake logit per image (N,)."""

    def __init__(self, image_size: int, channels: int, width: int = 64, n_classes: int = 0, max_mult: int = 8):
        super().__init__()
        base, levels = size_plan(image_size)
        self.n_classes = n_classes
        widths = list(reversed(level_widths(width, levels, max_mult)))
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]
        self.main = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 1, base, 1, 0, bias=False)
        _init_dcgan(self)
        self.embed = nn.Embedding(n_classes, widths[-1]) if n_classes else None
        if self.embed is not None:
            # Small, like the convs: the projection term starts near 0 instead of swamping head(h).
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits (N,); with classes the projection term <e_y, sum-pooled features> is added."""
        h = self.main(x)
        logit = self.head(h).flatten(1).sum(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            logit = logit + (self.embed(labels.long()).to(h.dtype) * h.sum(dim=(2, 3))).sum(1)
        return logit


# -- mode-collapse measure ------------------------------------------------------------
# Feature space: the images resized to 16x16 (bilinear, antialiased) and flattened, in [0, 1].
# Chosen over a random conv net because it needs no weights (nothing to store or seed),
# means the same for every run, kind and size, and reads directly: collapse makes the fakes
# (near) pixel-identical, so their distances go to 0, and a generator as varied as the data
# has pairwise pixel distances like the data's.

def image_features(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, C*16*16) float32: the monitor's fixed feature space."""
    x = images.detach().float()
    if x.shape[-2:] != (FEATURE_SIZE, FEATURE_SIZE):
        x = F.interpolate(x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > FEATURE_SIZE)
    return x.flatten(1)


def mean_pairwise_distance(features: torch.Tensor, labels: Optional[np.ndarray] = None) -> Optional[float]:
    """Mean L2 distance over pairs i < j (same-label pairs only when ``labels`` is given); None without pairs."""
    n = len(features)
    if n < 2:
        return None
    distances = torch.cdist(features.double(), features.double())
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    if labels is not None:
        labels = np.asarray(labels)
        upper &= labels[:, None] == labels[None, :]
    if not upper.any():
        return None
    return float(distances.cpu().numpy()[upper].mean())


def diversity_ratio(fake_features: torch.Tensor, real_features: torch.Tensor,
                    fake_labels: Optional[np.ndarray] = None, real_labels: Optional[np.ndarray] = None) -> Optional[float]:
    """Mean pairwise distance among fakes / among reals: ~0 = mode collapse, ~1 = as varied as the data.

    With labels, only pairs of the same class count (a conditional GAN that makes one image
    per class is collapsed even though its classes differ); where a side has no same-class
    pair, all pairs are used. None when the real images have no pair at all (one image).
    """
    fake = mean_pairwise_distance(fake_features, fake_labels)
    real = mean_pairwise_distance(real_features, real_labels)
    if fake is None or real is None:
        fake = mean_pairwise_distance(fake_features)
        real = mean_pairwise_distance(real_features)
    if fake is None or not real:
        return None
    return fake / real
