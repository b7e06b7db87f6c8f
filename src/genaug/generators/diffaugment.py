"""Differentiable Augmentation (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

With a few hundred images a GAN's discriminator memorises the training set and its feedback
to the generator collapses. DiffAugment transforms *both* real and fake images with the same
random, differentiable transforms before the discriminator sees them -- in the
discriminator's step and in the generator's step -- so D cannot memorise exact pixels and the
gradient still flows through the transform into G.

Transforms (as in the authors' reference implementation, images in [-1, 1], NCHW):

- ``color``: brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) around the pixel's channel
  mean; a no-op for grayscale), contrast (x U(0.5, 1.5) around the image mean);
- ``translation``: shift by up to 1/8 of the size in each direction, zero padded;
- ``cutout``: one square of half the size set to zero, at a random position.

Each image of a batch draws its own parameters. Randomness comes from ``generator`` when
given (tests), else from torch's global RNG -- which the training checkpoints save, so a
resumed run draws the same augmentations.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy: str) -> list[str]:
    """The transform names of a comma-separated policy; ValueError naming unknown ones."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"diffaugment_policy: unknown transform(s) {unknown}; known: {', '.join(POLICIES)}")
    return names


def _uniform(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    # Drawn on the CPU with the (optional) generator, then moved: a CPU generator cannot
    # draw on a GPU, and the few numbers per batch cost nothing to copy.
    draw = torch.rand(x.size(0), 1, 1, 1, generator=generator, dtype=torch.float32)
    return draw.to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randint(low, high, (n, 1, 1), generator=generator).to(x.device)


def rand_brightness(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Add one random offset in [-0.5, 0.5) per image."""
    return x + (_uniform(x, generator) - 0.5)


def rand_saturation(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Scale each pixel's deviation from its channel mean by U(0, 2) (colour images only change)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, generator) * 2) + mean


def rand_contrast(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Scale each image's deviation from its mean by U(0.5, 1.5)."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def _grids(x: torch.Tensor):
    return torch.meshgrid(torch.arange(x.size(0), device=x.device), torch.arange(x.size(2), device=x.device),
                          torch.arange(x.size(3), device=x.device), indexing="ij")


def rand_translation(x: torch.Tensor, generator: Optional[torch.Generator] = None,
                     ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size (independently in x and y), zero padded."""
    shift_h, shift_w = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    dy = _randint(-shift_h, shift_h + 1, x.size(0), x, generator)
    dx = _randint(-shift_w, shift_w + 1, x.size(0), x, generator)
    batch, rows, cols = _grids(x)
    # Index into a copy padded by one zero pixel; clamping every out-of-range index onto that
    # border is what makes the shifted-in area zero (the reference implementation's trick).
    rows = torch.clamp(rows + dy + 1, 0, x.size(2) + 1)
    cols = torch.clamp(cols + dx + 1, 0, x.size(3) + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def rand_cutout(x: torch.Tensor, generator: Optional[torch.Generator] = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` times the size per image (it may hang over the border)."""
    size_h, size_w = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    top = _randint(0, x.size(2) + (1 - size_h % 2), x.size(0), x, generator)
    left = _randint(0, x.size(3) + (1 - size_w % 2), x.size(0), x, generator)
    batch, rows, cols = torch.meshgrid(torch.arange(x.size(0), device=x.device),
                                       torch.arange(size_h, device=x.device),
                                       torch.arange(size_w, device=x.device), indexing="ij")
    rows = torch.clamp(rows + top - size_h // 2, 0, x.size(2) - 1)
    cols = torch.clamp(cols + left - size_w // 2, 0, x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[batch, rows, cols] = 0
    return x * mask.unsqueeze(1)


_TRANSFORMS: dict[str, tuple[Callable[..., torch.Tensor], ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def diff_augment(x: torch.Tensor, policy: str | list[str] = DEFAULT_POLICY,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Apply the policy's transforms (in order) to a batch (N, C, H, W); differentiable in ``x``."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    for name in names:
        for transform in _TRANSFORMS[name]:
            x = transform(x, generator)
    return x
