"""VAE data augmentation for images (seed 001 ch. 5, 8.2.1).

Modes:
- ``single``: one VAE on all images (optionally plus an unlabeled pool, recorded in the
  model's metadata); a sample's class is the class of the example it was derived from, so
  only the example-based samplers (noise, interpolation, extrapolation) apply.
- ``per_class``: one VAE per class ("Multi-VAE"), optionally with ``mix_data`` -- a share of
  examples of the other classes mixed into each class's training set (seed 001 ch. 5.3).
- ``conditional``: one CVAE, the label one-hot into encoder and decoder.

Every mode can train a generative-classifier filter (seed 001 ch. 5.4): samples it judges
to be noise are rejected and redrawn, and the rejection rate is reported.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from ..data.datasets import LabelledData, LabelledImages
from .generative_classifier import GenerativeClassifier
from ..progress import ProgressCallback
from ..training import Trainer, TrainingConfig
from .base import Samples, count_parameters, options_from_config, register, seeded_torch, tensors_under
from .groups import ALL_CLASSES, GroupedGenerator, class_group, group_class
from .images import images_to_tensor, tensor_to_images
from .latent_sampling import SAMPLERS, sample_latents
from .vae_networks import ConvVAE, vae_loss


class VAEConfig(TrainingConfig):
    """Settings of the image VAE (training settings: see ``TrainingConfig``)."""

    mode: Literal["single", "per_class", "conditional"] = Field("per_class", description="single: one VAE, class from the source example; per_class: one VAE per class; conditional: one CVAE")
    channels: list[int] = Field([64, 128, 256], min_length=1, max_length=6, description="conv channels per encoder level (depth = length)")
    hidden: int = Field(128, ge=4, description="width of the fully connected layer")
    latent_dim: int = Field(16, ge=1, le=1024, description="latent dimension d")
    reconstruction: Literal["bce", "mse"] = Field("bce", description="reconstruction loss")
    beta: float = Field(1.0, gt=0, description="weight of the KL term")
    beta_normalise: bool = Field(False, description="scale the KL weight by latent size over pixel count (beta * d / N), so one beta suits every image size")
    batchnorm: bool = Field(True, description="BatchNorm between layers (GroupNorm when off, better for 1-4 images per class)")
    steps: int = Field(3000, ge=1, description="training steps (per VAE in per_class mode)")
    batch_size: int = Field(64, ge=1, description="batch size (capped at the number of training images)")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    seed: int = Field(0, description="training seed")
    mix_data: float = Field(0.0, ge=0, lt=1, description="per_class: share of other classes' examples mixed into each VAE's data (0.2 helps with very few images)")
    sampler: Optional[Literal["prior", "noise", "interpolation", "extrapolation", "interpolation+noise", "extrapolation+noise"]] = Field(None, description="default latent sampler (None: prior for per_class/conditional, noise for single)")
    alpha: float = Field(0.5, ge=0, description="noise std (noise) or interpolation/extrapolation strength")
    k: int = Field(5, ge=1, description="nearest latent neighbours to interpolate toward")
    noise: float = Field(0.2, ge=0, description="noise std added on top of interpolation/extrapolation (+noise samplers)")
    generative_classifier: bool = Field(False, description="train the generative-classifier filter and reject samples it judges to be noise")
    gc_sigma: float = Field(0.3, gt=0, description="std of the Gaussian noise examples around the sample mean (filter sensitivity)")
    gc_steps: int = Field(600, ge=1, description="training steps of the filter network")
    gc_early_fraction: float = Field(0.05, gt=0, lt=1, description="when to snapshot the early VAE whose blurry reconstructions teach the filter")

    @model_validator(mode="after")
    def _single_has_no_prior(self) -> "VAEConfig":
        if self.mode == "single" and self.sampler == "prior":
            raise ValueError("sampler 'prior' needs a class per VAE: use mode per_class or conditional, "
                             "or an example-based sampler with mode single")
        return self


def _training_sets(data: LabelledImages, mode: str, mix_data: float, rng: np.random.Generator):
    """(group key, training indices) of every VAE this mode trains: one group, or one per class."""
    if mode != "per_class":
        return [(ALL_CLASSES, np.arange(len(data)))]
    groups = []
    for cls in range(len(data.class_names)):
        own = np.flatnonzero(data.labels == cls)
        others = np.flatnonzero(data.labels != cls)
        n_mix = int(round(len(own) * mix_data / (1 - mix_data))) if mix_data else 0
        mixed = rng.choice(others, size=min(n_mix, len(others)), replace=False) if n_mix and len(others) else []
        groups.append((class_group(cls), np.concatenate([own, np.asarray(mixed, dtype=np.int64)])))
    return groups


SAMPLE_OPTIONS = ("sampler", "alpha", "k", "noise")


@register("vae")
class ImageVAE(GroupedGenerator):
    """Convolutional VAE augmentation: single, per-class or conditional, with four latent samplers."""

    Config = VAEConfig
    SampleOptions = options_from_config("VAESampleOptions", VAEConfig, {name: name for name in SAMPLE_OPTIONS})
    roles = {"vae": "vaes"}
    preselected = ("train", "evaluate")  # the first thing to try on images
    uses_unlabeled_pool = ("single",)
    summary = "VAE: learns a smooth latent space; samples are variations of your images (good from a few images per class)."
    description = ("Fast to train; its images come out a little blurry. Good for digits and simple shapes, and "
                   "when you have only a few images per class.")
    keeps_training_data = "encodings"
    presets = {
        "quick": {"mode": "conditional", "steps": 400, "channels": [16, 32, 64], "hidden": 64, "latent_dim": 8,
                  "batch_size": 32},
        "standard": {"mode": "per_class", "steps": 1000, "channels": [32, 64, 128]},
        "best": {"mode": "per_class", "steps": 3000, "generative_classifier": True},
    }

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.vaes = nn.ModuleDict()
        self.filter: Optional[GenerativeClassifier] = None

    # -- building ------------------------------------------------------------
    def _new_vae(self, image_shape) -> ConvVAE:
        h, w, c = image_shape
        cfg = self.config
        n_classes = len(self.class_names) if cfg.mode == "conditional" else 0
        return ConvVAE(h, c, list(cfg.channels), cfg.hidden, cfg.latent_dim, n_classes, cfg.batchnorm)

    def parameter_count(self, image_shape, class_names) -> int:
        """One VAE's parameters, times the classes in per_class mode (built on the meta device)."""
        self.class_names = list(class_names)
        with torch.device("meta"):
            one = count_parameters(self._new_vae(image_shape))
        return one * (len(class_names) if self.config.mode == "per_class" else 1)

    def _beta(self, image_shape) -> float:
        cfg = self.config
        return cfg.beta * cfg.latent_dim / float(np.prod(image_shape)) if cfg.beta_normalise else cfg.beta

    # -- fit -----------------------------------------------------------------
    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None, unlabeled: Optional[np.ndarray] = None) -> "ImageVAE":
        """Train the VAE(s) on ``data`` (training split only).

        ``unlabeled``: extra uint8 images (N, H, W, C) without labels, used only by the
        single mode's VAE (self-supervised, seed 001 ch. 5.2); recorded in the metadata.
        """
        self._check_data(data)
        cfg = self.config
        if data.images.shape[1] != data.images.shape[2]:
            raise ValueError(f"vae: images must be square, got {data.images.shape[1:3]} (ingest with image_size=...)")
        if unlabeled is not None and cfg.mode != "single":
            raise ValueError("unlabeled: an unlabeled pool is only used by mode 'single'")
        self.class_names = list(data.class_names)
        self.filter = None  # a refit on other data must not keep the last fit's filter
        started = time.monotonic()
        rng = np.random.default_rng(cfg.seed)
        with seeded_torch(cfg.seed):
            groups = _training_sets(data, cfg.mode, cfg.mix_data, rng)
            pool = data.images if unlabeled is None else np.concatenate([data.images, unlabeled])
            pool_tensor = images_to_tensor(pool)
            labels_tensor = torch.from_numpy(data.labels)
            early_states, losses, results = {}, {}, {}
            self.vaes = nn.ModuleDict()
            for g_index, (key, indices) in enumerate(groups):
                if cfg.mode == "single" and unlabeled is not None:
                    indices = np.arange(len(pool))
                vae = self._new_vae(data.image_shape)
                early_states[key], result = self._train_one(
                    vae, key, pool_tensor, labels_tensor, indices, rng, data.image_shape, checkpoints, progress,
                    g_index * cfg.steps, cfg.steps * len(groups))
                losses[key], results[key] = result.history[-1] if result.history else {}, result.summary()
                self.vaes[key] = vae.eval()
            self.fitted = True
            self._encode_training_set(data)
            if cfg.generative_classifier:
                self.filter = self._train_filter(data, early_states, rng)
            self.meta = {
                "sources": list(data.sources), "image_shape": list(data.image_shape),
                "unlabeled_pool_size": 0 if unlabeled is None else int(len(unlabeled)),
                "final_loss": {k: v for k, v in losses.items()}, "beta_used": self._beta(data.image_shape),
                "training": results,
                "train_seconds": round(time.monotonic() - started, 2),
            }
            if self.filter is not None:
                self.meta["filter_train_accuracy"] = self.filter.train_accuracy
            return self

    def _train_one(self, vae: ConvVAE, key: str, images: torch.Tensor, labels: torch.Tensor,
                   indices: np.ndarray, rng: np.random.Generator, image_shape, checkpoints: Optional[Path],
                   progress: Optional[ProgressCallback], offset: int, total: int):
        """Train one VAE with the shared training helper; returns (early snapshot, TrainingResult)."""
        cfg = self.config
        batch = min(cfg.batch_size, len(indices))
        beta = self._beta(image_shape)
        early_step = max(1, int(cfg.steps * cfg.gc_early_fraction))
        early: dict[str, Any] = {"state": None}
        trainer = Trainer(cfg, phase=f"vae-{key}", modules={"vae": vae},
                          optimisers={"vae": torch.optim.Adam(vae.parameters(), lr=cfg.lr)}, rng=rng,
                          work_dir=checkpoints, progress=progress, ema=("vae",), images_per_step=batch,
                          progress_offset=offset, progress_total=total, stage="train vae",
                          sample_fn=lambda: self._grid_samples(trainer, key),
                          # The early snapshot teaches the filter: a resumed run must still have it.
                          extra_state=(lambda: {"early": early["state"]} if early["state"] else {},
                                       lambda state: early.update(state=state.get("early"))))
        model, optimiser = trainer.modules["vae"], trainer.optimisers["vae"]
        device = trainer.device

        def step(number: int) -> dict[str, torch.Tensor]:
            chosen = indices[rng.integers(0, len(indices), size=batch)]
            x = images[chosen].to(device)
            # Only the single mode sees the unlabeled pool, and it never uses labels.
            y = labels[chosen].to(device) if vae.n_classes else None
            if batch == 1 and any(isinstance(m, nn.BatchNorm2d) for m in vae.modules()):
                x = torch.cat([x, x])  # BatchNorm needs two values per channel
                y = None if y is None else torch.cat([y, y])
            with trainer.autocast():
                logits, mu, logvar = model(x, y)
                total_loss, rec, kl = vae_loss(logits.float(), x, mu.float(), logvar.float(), beta,
                                               cfg.reconstruction)
            optimiser.zero_grad(set_to_none=True)
            trainer.backward(total_loss)
            optimiser.step()
            if number == early_step:
                early["state"] = copy.deepcopy(trainer.unwrap("vae").state_dict())
            return {"loss": total_loss, "reconstruction": rec, "kl": kl}

        result = trainer.run(step)
        # Sampling uses the EMA weights when EMA is on.
        vae.load_state_dict(trainer.sampling_module("vae").state_dict())
        return early["state"], result

    @torch.no_grad()
    def _grid_samples(self, trainer: Trainer, key: str):
        """32 prior samples from the current (EMA) weights and their class names, for the grids."""
        vae = trainer.sampling_module("vae")
        was_training = vae.training
        vae.eval()
        z = torch.from_numpy(np.random.default_rng(0).standard_normal((32, self.config.latent_dim)).astype(np.float32))
        y = torch.arange(32) % len(self.class_names) if vae.n_classes else None
        images = tensor_to_images(vae.decode(z.to(trainer.device), None if y is None else y.to(trainer.device)))
        vae.train(was_training)
        return images, self.grid_labels(key, len(images), None if y is None else y.tolist())

    @torch.no_grad()
    def _encode_training_set(self, data: LabelledImages) -> None:
        """Keep the latent means of the labelled examples: the example-based samplers start there."""
        means = np.zeros((len(data), self.config.latent_dim), np.float32)
        x = images_to_tensor(data.images)
        labels = torch.from_numpy(data.labels)
        for cls_key, vae in self.vaes.items():
            if cls_key == ALL_CLASSES:
                idx = np.arange(len(data))
            else:
                idx = np.flatnonzero(data.labels == group_class(cls_key))
            for start in range(0, len(idx), 512):
                part = idx[start:start + 512]
                mu, _ = vae.encode(x[part], labels[part] if vae.n_classes else None)
                means[part] = mu.numpy()
        self.train_means, self.train_labels = means, data.labels.copy()

    def use_examples(self, data: LabelledImages) -> "ImageVAE":
        """Make ``data`` the examples the example-based samplers start from (weights unchanged).

        For a single-mode VAE trained on an unlabeled pool: the pool teaches the latent
        space, the few labelled examples decide what is sampled and with which class.
        """
        self._require_fitted()
        if data.class_names != self.class_names:
            raise ValueError("use_examples: class names differ from the training data's")
        self._encode_training_set(data)
        self.meta["sources"] = list(data.sources)
        return self

    def _train_filter(self, data: LabelledImages, early_states: dict, rng) -> GenerativeClassifier:
        """The generative classifier: real images vs uniform noise, Gaussian noise and early blurry reconstructions."""
        reconstructions = []
        with torch.no_grad():
            for key, state in early_states.items():
                early = self._new_vae(data.image_shape)
                early.load_state_dict(state)
                early.eval()
                idx = np.arange(len(data)) if key == ALL_CLASSES else np.flatnonzero(data.labels == group_class(key))
                x = images_to_tensor(data.images[idx])
                y = torch.from_numpy(data.labels[idx]) if early.n_classes else None
                mu, _ = early.encode(x, y)
                reconstructions.append(tensor_to_images(early.decode(mu, y)))
        gc = GenerativeClassifier(sigma=self.config.gc_sigma, steps=self.config.gc_steps,
                                        seed=int(rng.integers(2**31)))
        return gc.fit(data.images, np.concatenate(reconstructions))

    # -- sample --------------------------------------------------------------
    def _sample(self, counts: dict[int, int], seed: int, options) -> Samples:
        """Images per class; options sampler, alpha, k, noise override the config. The generative
        classifier trained with the model is applied by the filter stage (``generative-classifier``)."""
        settings = self._sampler_settings(options.overrides())
        rng = np.random.default_rng(seed)
        parts = []
        for cls, count in counts.items():
            if count == 0:
                continue
            parts.append(self._draw(cls, count, rng, settings))
        if not parts:
            h, w, c = self.meta["image_shape"]
            return Samples(np.zeros((0, h, w, c), np.uint8), np.zeros(0, np.int64), list(self.class_names), [])
        return Samples.concat(parts)

    def _sampler_settings(self, options: dict) -> dict:
        cfg = self.config
        default = "noise" if cfg.mode == "single" else "prior"
        sampler = options.get("sampler") or cfg.sampler or default
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: '{sampler}' is not one of {', '.join(SAMPLERS)}")
        if cfg.mode == "single" and sampler == "prior":
            raise ValueError("sampler 'prior' is not available in mode 'single': a prior sample has no class")
        return {"sampler": sampler, "alpha": float(options.get("alpha", cfg.alpha)),
                "k": int(options.get("k", cfg.k)), "noise": float(options.get("noise", cfg.noise))}

    @torch.no_grad()
    def _draw(self, cls: int, n: int, rng: np.random.Generator, settings: dict) -> Samples:
        cfg = self.config
        # single mode: the class comes from the source example, so neighbours are searched among
        # that class only (as in the other modes).
        vae, candidates = self.vaes[self.group_of(cls)], np.flatnonzero(self.train_labels == cls)
        means = self.train_means[candidates] if len(candidates) else None
        z, source = sample_latents(settings["sampler"], n, means, rng, cfg.latent_dim, alpha=settings["alpha"],
                                   k=settings["k"], noise=settings["noise"])
        y = torch.full((n,), cls, dtype=torch.long) if vae.n_classes else None
        images = tensor_to_images(vae.decode(torch.from_numpy(z), y))
        sources = self.meta.get("sources", [])
        provenance = [{"sampler": settings["sampler"], "mode": cfg.mode, "alpha": settings["alpha"],
                       "k": settings["k"], "noise": settings["noise"],
                       "source": (sources[candidates[s]] if s >= 0 and candidates[s] < len(sources) else None)}
                      for s in source]
        return Samples(images, np.full(n, cls, np.int64), list(self.class_names), provenance)

    # -- persistence ---------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """VAE weights per group, the latent means of the training set, the filter's weights."""
        tensors = self.grouped_state_tensors()
        tensors["train_means"] = torch.from_numpy(self.train_means)
        tensors["train_labels"] = torch.from_numpy(self.train_labels)
        if self.filter is not None:
            tensors.update({f"filter.{k}": v for k, v in self.filter.state_tensors().items()})
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild the VAE(s) and the filter from saved tensors."""
        shape = tuple(self.meta["image_shape"])
        self.load_grouped_state(tensors, lambda key: {"vae": self._new_vae(shape)})
        self.train_means = tensors["train_means"].numpy()
        self.train_labels = tensors["train_labels"].numpy()
        filter_tensors = tensors_under(tensors, "filter.")
        self.filter = GenerativeClassifier.from_state(filter_tensors) if filter_tensors else None

    def generative_classifier(self):
        """The real-vs-noise network trained with the model (``generative_classifier=true``): it judges pixels."""
        return None if self.filter is None else (self.filter, lambda data: data)

    @classmethod
    def tiny_config(cls) -> VAEConfig:
        """Two small conv levels, 30 steps, with the filter: seconds on a CPU."""
        return VAEConfig(channels=[4, 8], hidden=16, latent_dim=2, steps=30, batch_size=16,
                         generative_classifier=True, gc_steps=20)

    @classmethod
    def tiny_variants(cls) -> dict[str, VAEConfig]:
        """Every mode, tiny: one VAE per class (with the filter), one conditional VAE, one VAE for all."""
        tiny = cls.tiny_config()
        return {"per_class": tiny, "conditional": cls.Config(**{**tiny.model_dump(), "mode": "conditional"}),
                "single": cls.Config(**{**tiny.model_dump(), "mode": "single", "generative_classifier": False})}
