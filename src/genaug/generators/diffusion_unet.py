"""UNet size presets for the diffusion generators and the diffusers ``UNet2DModel`` they build.

A preset fixes the widths per resolution level (``block_out_channels``; the number of levels is
its length), the ResNet layers per level, the resolution at or below which a level gets
self-attention, and the GroupNorm group count. The presets follow the sizes of the usual
small-image DDPMs (MNIST-like 28x28, CIFAR-like 32x32, 64x64 as in the thesis), scaled down so
that training from a few hundred images on one GPU stays in the minutes-to-an-hour range.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import torch
from diffusers import UNet2DModel


@dataclass(frozen=True)
class UNetPreset:
    """Architecture of one preset (see the module docstring)."""

    block_out_channels: tuple[int, ...]
    layers_per_block: int
    attention_resolution: int  # levels whose feature map side is <= this get attention (0 = none)
    norm_num_groups: int
    attention_head_dim: int


PRESETS: dict[str, UNetPreset] = {
    # Tests only: two levels, a few thousand parameters, seconds on a CPU.
    "tiny": UNetPreset((8, 16), 1, 4, 4, 8),
    # 28x28 (and anything up to 28 divisible by 4): 28 -> 14 -> 7, attention at 7x7.
    "28": UNetPreset((32, 64, 128), 2, 7, 32, 32),
    # 32x32: 32 -> 16 -> 8 -> 4, attention at 8x8 and 4x4.
    "32": UNetPreset((64, 128, 256, 256), 2, 8, 32, 32),
    # 64x64 (the thesis's size): 64 -> ... -> 4, attention at 8x8 and 4x4.
    "64": UNetPreset((64, 128, 128, 256, 256), 2, 8, 32, 32),
}


def auto_preset(height: int, width: int) -> str:
    """The preset ``preset="auto"`` picks for an image size: the smallest whose nominal size fits."""
    side = max(height, width)
    if side <= 28:
        return "28"
    if side <= 32:
        return "32"
    return "64"


def resolve_preset(name: str, height: int, width: int, *, block_out_channels: Optional[list[int]] = None,
                   layers_per_block: Optional[int] = None, attention_resolution: Optional[int] = None,
                   norm_num_groups: Optional[int] = None, attention_head_dim: Optional[int] = None) -> tuple[str, UNetPreset]:
    """The preset for ``name`` (``auto``: by image size) with the explicit overrides applied."""
    chosen = auto_preset(height, width) if name == "auto" else name
    if chosen not in PRESETS:
        raise ValueError(f"preset: '{name}' is not one of auto, {', '.join(PRESETS)}")
    preset = PRESETS[chosen]
    overrides = {key: value for key, value in (
        ("block_out_channels", tuple(block_out_channels) if block_out_channels else None),
        ("layers_per_block", layers_per_block), ("attention_resolution", attention_resolution),
        ("norm_num_groups", norm_num_groups), ("attention_head_dim", attention_head_dim)) if value is not None}
    return chosen, replace(preset, **overrides)


def unet_kwargs(preset: UNetPreset, height: int, width: int, channels: int,
                num_class_embeds: Optional[int], dropout: float = 0.0) -> dict[str, Any]:
    """``UNet2DModel`` constructor arguments for images of ``height`` x ``width`` x ``channels``.

    Raises a clear ``ValueError`` when the image size cannot be halved ``levels - 1`` times
    without remainder (the up path must meet the skip connections at the same size) or the
    widths do not fit the GroupNorm groups.
    """
    if channels not in (1, 3):
        raise ValueError(f"diffusion: images must have 1 or 3 channels, got {channels}")
    levels = len(preset.block_out_channels)
    factor = 2 ** (levels - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"diffusion: image size {height}x{width} is not divisible by {factor} = 2^({levels}-1), which a "
            f"UNet with {levels} levels {tuple(preset.block_out_channels)} needs; resize the images on ingest "
            f"(image_size=...) or use fewer levels (block_out_channels)")
    bad = [c for c in preset.block_out_channels if c % preset.norm_num_groups]
    if bad:
        raise ValueError(f"norm_num_groups: {preset.norm_num_groups} does not divide the widths {bad} "
                         f"of block_out_channels {tuple(preset.block_out_channels)}")
    down, up = [], []
    for level in range(levels):
        # Attention is quadratic in the number of pixels: only the coarse levels get it.
        side = max(height, width) // 2 ** level
        attend = preset.attention_resolution > 0 and side <= preset.attention_resolution
        down.append("AttnDownBlock2D" if attend else "DownBlock2D")
        up.insert(0, "AttnUpBlock2D" if attend else "UpBlock2D")
    return {
        "sample_size": height if height == width else (height, width),
        "in_channels": channels, "out_channels": channels,
        "block_out_channels": tuple(preset.block_out_channels),
        "down_block_types": tuple(down), "up_block_types": tuple(up),
        "layers_per_block": preset.layers_per_block,
        "norm_num_groups": preset.norm_num_groups,
        "attention_head_dim": preset.attention_head_dim,
        "dropout": dropout,
        "num_class_embeds": num_class_embeds,
    }


def build_unet(kwargs: dict[str, Any]) -> UNet2DModel:
    """A freshly initialised ``UNet2DModel`` (initialised from the global torch RNG)."""
    return UNet2DModel(**kwargs)


def unet_architecture(unet: UNet2DModel) -> dict[str, Any]:
    """The constructor arguments that rebuild ``unet``'s architecture (from its diffusers config)."""
    keys = ("sample_size", "in_channels", "out_channels", "block_out_channels", "down_block_types",
            "up_block_types", "layers_per_block", "norm_num_groups", "attention_head_dim", "dropout",
            "num_class_embeds")
    config = dict(unet.config)
    out = {key: config[key] for key in keys if key in config}
    for key in ("block_out_channels", "down_block_types", "up_block_types"):
        out[key] = tuple(out[key])
    if isinstance(out.get("sample_size"), list):
        out["sample_size"] = tuple(out["sample_size"])
    return out


def parameter_count(unet: torch.nn.Module) -> int:
    """Number of parameters of ``unet``."""
    return int(sum(p.numel() for p in unet.parameters()))


def flops_per_image_step(unet: UNet2DModel, height: int, width: int) -> Optional[int]:
    """FLOPs of one UNet forward pass on one image (a denoising step), or None if not countable."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        parameter = next(unet.parameters())
        x = torch.zeros(1, unet.config.in_channels, height, width, device=parameter.device, dtype=parameter.dtype)
        t = torch.zeros(1, dtype=torch.long, device=parameter.device)
        labels = torch.zeros(1, dtype=torch.long, device=parameter.device) if unet.config.num_class_embeds else None
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            unet(x, t, class_labels=labels)
        return int(counter.get_total_flops())
    except Exception:  # an estimate only: never let it break a finished training
        return None
