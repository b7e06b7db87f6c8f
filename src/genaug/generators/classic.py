"""Classic augmentation with kornia: the baseline every generative arm must beat.

Presets:
- ``mild``: the leak-safe set of seed 002 ch. 3.3.4 -- small rotation, translation and
  scale, brightness/contrast, optional horizontal flip. Nothing that changes the image so
  much that a generator trained on it would learn the augmentation ("augmentation leak").
- ``strong``: mild plus perspective, elastic distortion and random erasing.

No training: ``fit`` keeps the source images; ``sample`` draws source images of the
requested class and augments them, and the provenance names the source.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import kornia.augmentation as K
import numpy as np
import torch
from pydantic import Field
from torch import nn

from ..data.datasets import LabelledData
from ..progress import ProgressCallback
from .base import Generator, GeneratorConfig, Samples, register
from .images import images_to_tensor, tensor_to_images


class ClassicConfig(GeneratorConfig):
    """Settings of the classic augmentation generator."""

    preset: Literal["mild", "strong"] = Field("mild", description="mild: leak-safe small changes; strong: adds perspective, elastic, erasing")
    horizontal_flip: bool = Field(False, description="flip left-right (off for digits and text, on for flowers and most photos)")
    rotation_degrees: float = Field(10.0, ge=0, le=180, description="largest rotation in degrees")
    translate: float = Field(0.1, ge=0, le=0.5, description="largest shift as a fraction of the image size")
    scale: float = Field(0.1, ge=0, le=0.5, description="largest zoom in or out as a fraction")
    brightness: float = Field(0.2, ge=0, le=1, description="largest brightness change as a fraction")
    contrast: float = Field(0.2, ge=0, le=1, description="largest contrast change as a fraction")


def build_augmentation(config: ClassicConfig, image_size: int) -> nn.Module:
    """The kornia pipeline for ``config``; works on float (N, C, H, W) batches in [0, 1]."""
    steps: list[nn.Module] = [
        K.RandomAffine(degrees=config.rotation_degrees, translate=(config.translate, config.translate),
                       scale=(1 - config.scale, 1 + config.scale), p=0.9),
    ]
    if config.brightness or config.contrast:
        steps.append(K.ColorJitter(brightness=config.brightness, contrast=config.contrast, p=0.8))
    if config.horizontal_flip:
        steps.append(K.RandomHorizontalFlip(p=0.5))
    if config.preset == "strong":
        # The elastic kernel scales with the image: kornia's default 63 px kernel would
        # blur a 28 px digit into nothing and costs seconds per batch on a CPU.
        kernel = max(3, (image_size // 4) | 1)
        steps += [
            K.RandomPerspective(distortion_scale=0.2, p=0.3),
            K.RandomElasticTransform(kernel_size=(kernel, kernel), sigma=(kernel / 4, kernel / 4),
                                     alpha=(0.5, 0.5), p=0.3),
            K.RandomErasing(scale=(0.02, 0.12), p=0.3),
        ]
    return K.AugmentationSequential(*steps)


@register("classic")
class ClassicAugmentation(Generator):
    """Classic augmentation (kornia): affine, colour, flip; 'strong' adds perspective, elastic, erasing."""

    Config = ClassicConfig
    summary = "Classic augmentation (rotate, shift, zoom, colour): no training, the baseline to beat."
    description = ("Flips, crops, small rotations and colour changes of your own images. Nothing to train and "
                   "always safe: the baseline every other generator has to beat.")
    keeps_training_data = "images"
    preselected = ("evaluate",)  # the baseline every comparison shows

    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None) -> "ClassicAugmentation":
        """Keep the training images: classic augmentation learns nothing."""
        self._check_data(data)
        self.images = np.ascontiguousarray(data.images)
        self.labels = data.labels.copy()
        self.class_names = list(data.class_names)
        self.meta = {"sources": list(data.sources), "image_shape": list(data.image_shape)}
        self.fitted = True
        return self

    def _sample(self, counts: dict[int, int], seed: int, options) -> Samples:
        """Augment randomly drawn training images of each class (no options)."""
        rng = np.random.default_rng(seed)
        pipeline = build_augmentation(self.config, self.images.shape[1])
        chosen, labels = [], []
        for cls, count in counts.items():
            pool = np.flatnonzero(self.labels == cls)
            if count and len(pool) == 0:
                raise ValueError(f"classic: no training images of class '{self.class_names[cls]}'")
            chosen.extend(rng.choice(pool, size=count, replace=True))
            labels.extend([cls] * count)
        chosen = np.asarray(chosen, dtype=np.int64)
        if len(chosen) == 0:
            return Samples(np.zeros((0, *self.images.shape[1:]), np.uint8), np.zeros(0, np.int64),
                           list(self.class_names), [])
        with torch.random.fork_rng(devices=[]):
            # kornia draws from torch's global generator: fork it so the caller's stream is untouched.
            torch.manual_seed(int(rng.integers(2**31)))
            with torch.no_grad():
                augmented = pipeline(images_to_tensor(self.images[chosen])).clamp(0, 1)
        sources = self.meta.get("sources", [])
        provenance = [{"sampler": "classic", "preset": self.config.preset,
                       "source": sources[i] if i < len(sources) else int(i)} for i in chosen]
        return Samples(tensor_to_images(augmented), np.asarray(labels, np.int64), list(self.class_names), provenance)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The kept source images and their labels."""
        return {"images": torch.from_numpy(self.images), "labels": torch.from_numpy(self.labels)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the kept source images."""
        self.images = tensors["images"].numpy()
        self.labels = tensors["labels"].numpy()

    @classmethod
    def tiny_config(cls) -> ClassicConfig:
        """Strong preset: exercises every augmentation in tests."""
        return ClassicConfig(preset="strong", horizontal_flip=True)
