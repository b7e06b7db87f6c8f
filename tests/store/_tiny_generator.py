"""A tiny, real generator for the store and API tests (kinds "test_tiny" and "test_tiny_table").

A linear autoencoder whose latent space is pulled toward one learned point per class;
sampling decodes that point plus Gaussian noise. It trains for ``steps`` real optimiser
steps on a real loss, can sleep per step (so a test can kill it mid-training), sleep
after writing its files (so a test can kill it mid-artifact-write), or fail at a given
step. Import this module once per process (always as ``_tiny_generator``): registering
the kinds twice under different module names is refused by ``register``.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from genaug.data.datasets import LabelledData, LabelledImages, LabelledTable
from genaug.generators.base import Generator, GeneratorConfig, Samples, register
from genaug.progress import ProgressCallback, ProgressReporter


class TinyConfig(GeneratorConfig):
    """Settings of the tiny test generator."""

    steps: int = Field(5, ge=1, description="optimiser steps")
    batch_size: int = Field(16, ge=1, description="examples per step")
    latent_dim: int = Field(4, ge=1, description="latent size")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate")
    noise: float = Field(0.5, ge=0, description="default latent noise when sampling")
    step_sleep: float = Field(0.0, ge=0, description="seconds to sleep per step (kill tests)")
    save_sleep: float = Field(0.0, ge=0, description="seconds to sleep after writing files in save (kill tests)")
    fail_at_step: Optional[int] = Field(None, description="raise at this step (failure tests)")
    seed: int = 0


class _TinyNet(nn.Module):
    def __init__(self, features: int, latent_dim: int, n_classes: int):
        super().__init__()
        self.encoder = nn.Linear(features, latent_dim)
        self.decoder = nn.Linear(latent_dim, features)
        self.class_points = nn.Parameter(torch.zeros(n_classes, latent_dim))


@register("test_tiny")
class TinyGenerator(Generator):
    """Tiny linear autoencoder on images, one latent point per class."""

    Config = TinyConfig
    data_kind = "images"
    summary = "test fixture: tiny linear autoencoder"

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.net: Optional[_TinyNet] = None
        self.shape: tuple[int, ...] = ()
        self.columns: list[str] = []

    # -- data <-> float matrix -------------------------------------------------
    def _to_matrix(self, data: LabelledData) -> torch.Tensor:
        self.shape = tuple(data.image_shape)
        return torch.from_numpy(data.images.reshape(len(data), -1).astype(np.float32) / 255.0)

    def _from_matrix(self, values: np.ndarray) -> np.ndarray | pd.DataFrame:
        pixels = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
        return pixels.reshape((len(values), *self.shape))

    # -- the contract ------------------------------------------------------------
    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints=None) -> "TinyGenerator":
        self._check_data(data)
        config = self.config
        torch.manual_seed(config.seed)
        x = self._to_matrix(data)
        y = torch.from_numpy(data.labels)
        self.class_names = list(data.class_names)
        self.net = _TinyNet(x.shape[1], config.latent_dim, len(self.class_names))
        optimiser = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        report = ProgressReporter(progress, "train", config.steps)
        generator = torch.Generator().manual_seed(config.seed)
        loss = torch.tensor(0.0)
        for step in range(1, config.steps + 1):
            if config.fail_at_step is not None and step == config.fail_at_step:
                raise RuntimeError(f"tiny generator failed at step {step} as configured")
            batch = torch.randint(len(x), (min(config.batch_size, len(x)),), generator=generator)
            z = self.net.encoder(x[batch])
            reconstruction = torch.sigmoid(self.net.decoder(z))
            loss = ((reconstruction - x[batch]) ** 2).mean() + ((z - self.net.class_points[y[batch]]) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            report(step, {"loss": loss.item()})
            if config.step_sleep:
                time.sleep(config.step_sleep)
        self.meta = {"final_loss": loss.item(), "steps": config.steps, "n_train": len(data)}
        self.fitted = True
        return self

    def sample(self, n: int, *, label: int | str | None = None, seed: Optional[int] = None,
               noise: Optional[float] = None, **options: Any) -> Samples:
        self._require_fitted()
        if options:
            raise ValueError(f"unknown sample options: {', '.join(options)}")
        noise = self.config.noise if noise is None else float(noise)
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed) % 2**63)
        labels = np.concatenate([np.full(count, c, dtype=np.int64)
                                 for c, count in self.split_counts(n, label).items()])
        with torch.no_grad():
            points = self.net.class_points[torch.from_numpy(labels)]
            z = points + noise * torch.randn(points.shape, generator=generator)
            values = torch.sigmoid(self.net.decoder(z)).numpy()
        provenance = [{"sampler": "prior", "noise": noise, "source": None} for _ in labels]
        return Samples(self._from_matrix(values), labels, list(self.class_names), provenance)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        tensors["shape"] = torch.tensor(self.shape or (0,), dtype=torch.int64)
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.shape = tuple(int(v) for v in tensors["shape"])
        features, latent_dim = tensors["net.encoder.weight"].shape[1], tensors["net.encoder.weight"].shape[0]
        self.net = _TinyNet(features, latent_dim, tensors["net.class_points"].shape[0])
        self.net.load_state_dict({k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")})

    def save(self, directory) -> None:
        super().save(directory)
        if self.config.save_sleep:  # files written, folder not yet renamed: the riskiest moment
            time.sleep(self.config.save_sleep)

    @classmethod
    def tiny_config(cls) -> TinyConfig:
        return TinyConfig(steps=5)


@register("test_tiny_table")
class TinyTableGenerator(TinyGenerator):
    """The same tiny model on numeric table rows (scaled to [0, 1] per column)."""

    data_kind = "table"

    def _to_matrix(self, data: LabelledData) -> torch.Tensor:
        values = data.frame.to_numpy(dtype=np.float32)
        self.columns = list(data.frame.columns)
        self.low, self.high = values.min(0), values.max(0)
        return torch.from_numpy((values - self.low) / np.maximum(self.high - self.low, 1e-6))

    def _from_matrix(self, values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(self.low + values * np.maximum(self.high - self.low, 1e-6), columns=self.columns)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        tensors["low"], tensors["high"] = torch.from_numpy(self.low), torch.from_numpy(self.high)
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        tensors = {**tensors, "shape": torch.tensor((0,))}
        super().load_state_tensors(tensors)
        self.low, self.high = tensors["low"].numpy(), tensors["high"].numpy()
        self.columns = list(self.meta.get("columns", []))

    def fit(self, data: LabelledData, **kwargs: Any) -> "TinyTableGenerator":
        super().fit(data, **kwargs)
        self.meta["columns"] = self.columns
        return self


def tiny_images(n_per_class: tuple[int, ...] = (10, 6), size: int = 8, channels: int = 1,
                seed: int = 0) -> LabelledImages:
    """A small labelled image set: class i is noise around a brightness level."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, n in enumerate(n_per_class):
        level = 60 + 120 * c
        images.append(np.clip(rng.normal(level, 30, (n, size, size, channels)), 0, 255).astype(np.uint8))
        labels += [c] * n
    names = ["cat", "dog", "eel", "fox"][: len(n_per_class)]
    return LabelledImages(np.concatenate(images), np.array(labels), names)


def tiny_table(n_per_class: tuple[int, ...] = (12, 5), seed: int = 0) -> LabelledTable:
    """A small numeric table with two classes."""
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for c, n in enumerate(n_per_class):
        frames.append(pd.DataFrame({"x0": rng.normal(c, 1, n), "x1": rng.normal(-c, 2, n)}))
        labels += [c] * n
    return LabelledTable(pd.concat(frames, ignore_index=True), np.array(labels), ["low", "high"][: len(n_per_class)])


# -- shared by the store and API tests ------------------------------------------------

def vae_import_error() -> Optional[str]:
    """Why ``genaug.generators.vae`` cannot be imported, or None when it can."""
    try:
        import genaug.generators.vae  # noqa: F401
    except Exception as error:  # being written by someone else: any import failure skips
        return f"{type(error).__name__}: {error}"
    return None


def kind_params() -> list:
    """``["test_tiny", "vae"]`` for ``pytest.mark.parametrize``; "vae" skipped while it cannot be imported."""
    import pytest

    reason = vae_import_error()
    return ["test_tiny", pytest.param("vae", marks=pytest.mark.skipif(
        reason is not None, reason=f"genaug.generators.vae cannot be imported: {reason}"))]


def quick_config(kind: str, **changes: Any) -> dict[str, Any]:
    """A config of ``kind`` that trains in about a second."""
    return {**_base_config(kind), **changes}


def _base_config(kind: str) -> dict[str, Any]:
    if kind.startswith("test_tiny"):
        return {"steps": 5}
    from genaug.api import _generator_class

    return {**_generator_class(kind).tiny_config().model_dump(mode="json"), "steps": 5, "batch_size": 8}


def long_config(kind: str) -> dict[str, Any]:
    """A config of ``kind`` that trains far longer than any test waits (it gets killed)."""
    if kind.startswith("test_tiny"):
        return {"steps": 100_000, "step_sleep": 0.01}
    return {**_base_config(kind), "steps": 10_000_000}
