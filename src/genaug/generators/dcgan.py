"""DCGAN data augmentation for images: one GAN per class (the thesis's setup) or one conditional GAN.

Modes:
- ``per_class``: an unconditional DCGAN per class, each a training phase of its own
  (``dcgan-class0``, ``dcgan-class1``, ...); a sample's class is the GAN it came from.
- ``conditional`` (default): one DCGAN for all classes; G gets a class embedding concatenated to z,
  D is a projection discriminator (see ``dcgan_networks``). Two training terms make it work
  with these shallow nets. Measured on 200 MNIST digits per class, 1,500 steps, width 32
  (class check: a logistic regression on pixels): without them G either ignored z -- one
  image per class, diversity 0.16 -- (concatenation) or ignored the class -- 18% of samples
  classified as their label -- (multiplication). ``mode_seeking`` (Mao et al. 2019, MSGAN)
  adds ``w / (|G(z1,y) - G(z2,y)| / |z1 - z2|)`` to G's loss; ``mismatch_weight`` (Reed et al.
  2016, matching-aware D) shows D real images with a wrong label as fakes, so D learns what
  each class looks like instead of accepting any consistent image per label. Mode seeking
  alone: varied images but often a wrong digit per label (38%); matching alone: right digit
  (80%) but collapsed (0.14); both: 84% right class, diversity 0.55 and still rising
  (mode_seeking 0.05: 77%, 0.70). The per-class mode needs neither (97%, diversity 0.9-1.0).

Small data (under ``small_data_below`` = 1,000 images per class, switched on automatically;
each can be forced on or off): DiffAugment on real and fake images in both players' steps,
one-sided label smoothing (real target 0.9) and instance noise (Gaussian noise on D's inputs,
its std decaying linearly to 0). The model's metadata says which were on.

A mode-collapse monitor logs ``diversity`` every ``monitor_every`` steps: the mean pairwise
distance among a fixed batch of EMA-generator fakes over that among real training images
(~0 collapsed, ~1 as varied as the data); the final and the lowest values are kept in the
metadata. Samples come from the EMA generator in eval mode.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from ..data.datasets import LabelledData, LabelledImages
from ..progress import ProgressCallback
from ..training import Trainer, TrainingConfig, TrainingResult, load_matching_weights
from .base import Generator, SampleOptions, Samples, count_parameters, register, seeded_torch, tensors_under
from .groups import ALL_CLASSES, GroupedGenerator, class_group, group_class
from .dcgan_networks import DCGANDiscriminator, DCGANGenerator, diversity_ratio, image_features, size_plan
from .diffaugment import DEFAULT_POLICY, diff_augment, parse_policy
from .images import images_to_tensor, tensor_to_images

MONITOR_BATCH = 64  # fakes (and at most this many reals) per diversity measurement
SAMPLE_BATCH = 256  # images generated at once by sample(): keeps memory flat for any n


class DCGANSampleOptions(SampleOptions):
    """What ``DCGAN.sample`` takes."""

    truncation: Optional[float] = Field(None, gt=0, description="redraw noise entries beyond +-t: smaller = more typical, less varied images (empty = off)")


class DCGANConfig(TrainingConfig):
    """Settings of the DCGAN (training settings: see ``TrainingConfig``)."""

    mode: Literal["per_class", "conditional"] = Field("conditional", description="per_class: one GAN per class; conditional: one GAN with class embedding and projection discriminator")
    latent_dim: int = Field(100, ge=1, le=1024, description="length of the noise vector z (nz)")
    conditioning: Literal["concat", "multiply"] = Field("concat", description="conditional: how G gets the class: a class embedding concatenated to z, or z times a class embedding")
    mode_seeking: float = Field(0.02, ge=0, description="conditional: weight of the mode-seeking term (Mao et al. 2019) that makes G map different z of a class to different images (0 = off)")
    mismatch_weight: float = Field(0.5, ge=0, le=1, description="conditional: share of D's fake term given to real images paired with a wrong label (matching-aware D; 0 = off)")
    class_embed_dim: int = Field(50, ge=1, le=1024, description="conditional: length of the class embedding concatenated to z")
    ngf: int = Field(64, ge=1, le=1024, description="generator width at full resolution (doubles per level toward the small end)")
    ndf: int = Field(64, ge=1, le=1024, description="discriminator width at full resolution (doubles per level)")
    max_width_mult: int = Field(8, ge=1, le=64, description="cap on the doubling: widths stay <= max_width_mult * ngf/ndf")
    loss: Literal["bce", "hinge"] = Field("bce", description="bce: non-saturating BCE with logits (DCGAN); hinge: hinge loss")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1 (0.5 as in the DCGAN paper)")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    diffaugment: Optional[bool] = Field(None, description="DiffAugment on D's real and fake inputs (None: on when the data is small)")
    diffaugment_policy: str = Field(DEFAULT_POLICY, description="comma-separated DiffAugment transforms: color, translation, cutout")
    label_smoothing: Optional[bool] = Field(None, description="one-sided label smoothing, real target real_label (None: on when the data is small; bce only)")
    real_label: float = Field(0.9, gt=0.5, le=1, description="D's target for real images when label smoothing is on")
    use_instance_noise: Optional[bool] = Field(None, description="Gaussian instance noise on D's inputs (None: on when the data is small)")
    instance_noise: float = Field(0.1, ge=0, le=2, description="starting std of the instance noise (decays linearly to 0 over training)")
    small_data_below: int = Field(1000, ge=0, description="images per class under which the small-data options switch on automatically")
    monitor_every: int = Field(100, ge=0, description="log the mode-collapse measure 'diversity' every k steps (0 = never)")
    steps: int = Field(3000, ge=1, description="training steps (per GAN in per_class mode)")
    batch_size: int = Field(64, ge=1, description="batch size (capped at the number of training images of the GAN)")
    lr: float = Field(2e-4, gt=0, description="Adam learning rate of G and D")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of G's weights; samples come from the EMA generator (0 = off)")
    checkpoint_every: int = Field(500, ge=0, description="write a resumable checkpoint every k steps (0 = never)")

    @field_validator("diffaugment_policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        parse_policy(value)
        return value

    @model_validator(mode="after")
    def _smoothing_needs_bce(self) -> "DCGANConfig":
        if self.label_smoothing and self.loss == "hinge":
            raise ValueError("label_smoothing: only applies to loss 'bce' (the hinge loss has no targets)")
        return self


def small_data_options(config: DCGANConfig, class_counts: Sequence[int]) -> dict[str, Any]:
    """Which small-data options a training on classes of ``class_counts`` images uses.

    "Small" means the smallest non-empty class has fewer than ``small_data_below`` images;
    a config field set to True/False overrides the automatic choice.
    """
    counts = [int(c) for c in class_counts if c > 0]
    per_class = min(counts) if counts else 0
    small = per_class < config.small_data_below

    def choose(forced: Optional[bool]) -> bool:
        return small if forced is None else bool(forced)

    diffaugment = choose(config.diffaugment) and bool(parse_policy(config.diffaugment_policy))
    smoothing = choose(config.label_smoothing) and config.loss == "bce"
    noise = choose(config.use_instance_noise) and config.instance_noise > 0
    return {"images_per_class": per_class, "small_data": small, "diffaugment": diffaugment,
            "diffaugment_policy": config.diffaugment_policy if diffaugment else "",
            "label_smoothing": smoothing, "real_label": config.real_label if smoothing else 1.0,
            "instance_noise": config.instance_noise if noise else 0.0}


def _d_loss(real: torch.Tensor, fake: torch.Tensor, loss: str, real_target: float) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_target))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def _g_loss(fake: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return -fake.mean()
    # Non-saturating: G maximises log D(G(z)) (target 1, never smoothed) instead of minimising log(1 - D).
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


@register("dcgan")
class DCGAN(GroupedGenerator):
    """DCGAN augmentation: one GAN per class or one conditional GAN, with small-data training tricks."""

    Config = DCGANConfig
    SampleOptions = DCGANSampleOptions
    roles = {"generator": "generators", "discriminator": "discriminators"}
    supports_warm_start = True
    summary = ("DCGAN: adversarially trained generator, sharp new images (per class or conditional); "
               "needs more images and steps than a VAE, DiffAugment helps with few.")
    description = ("Sharper images than a VAE, but it needs a few hundred images per class and longer training "
                   "to work well.")
    presets = {
        "quick": {"steps": 400, "ngf": 16, "ndf": 16, "batch_size": 32, "monitor_every": 50},
        "standard": {"steps": 1500, "ngf": 32, "ndf": 32},
        "best": {"steps": 3000},
    }

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.generators = nn.ModuleDict()  # group key ("all" or "class<i>") -> EMA generator
        self.discriminators = nn.ModuleDict()  # kept so fine-tuning / transfer can continue
        self._parent: Optional[dict[str, Any]] = None

    # -- building ------------------------------------------------------------
    def _networks(self, image_shape) -> tuple[DCGANGenerator, DCGANDiscriminator]:
        size, _, channels = image_shape
        cfg = self.config
        n_classes = len(self.class_names) if cfg.mode == "conditional" else 0
        return (DCGANGenerator(size, channels, cfg.latent_dim, cfg.ngf, n_classes, cfg.max_width_mult,
                               cfg.class_embed_dim, cfg.conditioning),
                DCGANDiscriminator(size, channels, cfg.ndf, n_classes, cfg.max_width_mult))

    def parameter_count(self, image_shape, class_names) -> int:
        """Generator and discriminator, times the classes unless conditional (meta device)."""
        self.class_names = list(class_names)
        with torch.device("meta"):
            one = count_parameters(*self._networks(image_shape))
        return one * (1 if self.config.mode == "conditional" else len(class_names))

    def _groups(self, labels: np.ndarray) -> list[tuple[str, np.ndarray]]:
        return [(key, np.arange(len(labels)) if key == ALL_CLASSES else np.flatnonzero(labels == group_class(key)))
                for key in self.training_groups()]

    def _phase(self, key: str) -> str:
        return "dcgan-conditional" if key == ALL_CLASSES else f"dcgan-{key}"

    # -- fit -----------------------------------------------------------------
    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None) -> "DCGAN":
        """Train the GAN(s) on ``data`` (training split only); resumes from ``checkpoints`` if present."""
        self._check_data(data)
        assert isinstance(data, LabelledImages)
        cfg = self.config
        h, w, _ = data.image_shape
        if h != w:
            raise ValueError(f"dcgan: images must be square, got {h}x{w} (ingest with image_size=...)")
        base, levels = size_plan(h)  # fails early, before any training, for unsupported sizes
        self.class_names = list(data.class_names)
        counts = np.bincount(data.labels, minlength=len(self.class_names))
        if cfg.mode == "per_class" and (counts == 0).any():
            empty = [self.class_names[i] for i in np.flatnonzero(counts == 0)]
            raise ValueError(f"dcgan per_class: classes {empty} have no training images (one GAN per class)")
        if self._parent is not None and tuple(self._parent["image_shape"]) != tuple(data.image_shape):
            raise ValueError(f"parent: the parent dcgan was trained on images of shape "
                             f"{tuple(self._parent['image_shape'])}, this data has {tuple(data.image_shape)}; "
                             f"transfer needs the same image size and channels")
        options = small_data_options(cfg, counts)
        started = time.monotonic()
        rng = np.random.default_rng(cfg.seed)
        with seeded_torch(cfg.seed):
            images = images_to_tensor(data.images).mul_(2).sub_(1)  # the tanh range [-1, 1]
            labels = torch.from_numpy(data.labels)
            groups = self._groups(data.labels)
            self.generators, self.discriminators = nn.ModuleDict(), nn.ModuleDict()
            training, final, lowest, warm = {}, {}, {}, {}
            for index, (key, indices) in enumerate(groups):
                generator, discriminator = self._networks(data.image_shape)
                if self._parent is not None:
                    warm[key] = self._load_parent(generator, discriminator, key)
                result = self._train_one(generator, discriminator, key, images, labels, indices, rng, options,
                                         checkpoints, progress, index * cfg.steps, cfg.steps * len(groups))
                training[self._phase(key)] = result.summary()
                values = [row["diversity"] for row in result.history if "diversity" in row]
                final[key], lowest[key] = (values[-1], min(values)) if values else (None, None)
                self.generators[key] = generator.cpu().eval()
                self.discriminators[key] = discriminator.cpu().eval()
            self.fitted = True
            self.meta = {
                "image_shape": list(data.image_shape), "mode": cfg.mode,
                "architecture": {"base": base, "levels": levels},
                "small_data": options, "training": training,
                "diversity": {"final": final, "min": lowest, "feature_space": "pixels resized to 16x16",
                              "every": cfg.monitor_every},
                "train_seconds": round(time.monotonic() - started, 2),
            }
            if self._parent is not None:
                self.meta["warm_start"] = {
                    "parent_kind": self._parent["kind"], "parent_mode": self._parent["mode"],
                    "loaded": sum(w["loaded"] for w in warm.values()),
                    "skipped": sum(w["skipped"] for w in warm.values()), "groups": warm}
            return self

    def _train_one(self, generator: DCGANGenerator, discriminator: DCGANDiscriminator, key: str,
                   images: torch.Tensor, labels: torch.Tensor, indices: np.ndarray, rng: np.random.Generator,
                   options: dict, checkpoints: Optional[Path], progress: Optional[ProgressCallback],
                   offset: int, total: int) -> TrainingResult:
        """Train one G/D pair with the shared training helper; G ends up holding the EMA weights."""
        cfg = self.config
        batch = min(cfg.batch_size, len(indices))
        conditional = cfg.mode == "conditional"
        fixed = self._fixed_batch(images, labels, indices)
        betas = (cfg.beta1, cfg.beta2)
        monitors = {"diversity": (cfg.monitor_every, lambda: self._diversity(trainer, fixed))} if cfg.monitor_every else None
        trainer = Trainer(cfg, phase=self._phase(key), modules={"generator": generator, "discriminator": discriminator},
                          optimisers={"generator": torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=betas),
                                      "discriminator": torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=betas)},
                          rng=rng, work_dir=checkpoints, progress=progress, ema=("generator",), images_per_step=batch,
                          progress_offset=offset, progress_total=total, stage="train dcgan", monitors=monitors,
                          sample_fn=lambda: self._grid_samples(trainer, fixed, key))
        g, d = trainer.modules["generator"], trainer.modules["discriminator"]
        opt_g, opt_d = trainer.optimisers["generator"], trainer.optimisers["discriminator"]
        device = trainer.device
        if images.numel() * images.element_size() <= 2 ** 30:
            # Small enough to live on the device: no host-to-device copy of every batch.
            images, labels = images.to(device), labels.to(device)
        policy = parse_policy(options["diffaugment_policy"]) if options["diffaugment"] else []
        real_target, noise_start = options["real_label"], options["instance_noise"]
        n_classes = len(self.class_names)
        seeking = cfg.mode_seeking if conditional else 0.0
        mismatch = cfg.mismatch_weight if conditional and n_classes > 1 else 0.0

        def d_input(x: torch.Tensor, std: float) -> torch.Tensor:
            # The same policy for real and fake (each image its own random parameters): D
            # must never be able to tell them apart by the augmentation alone.
            if policy:
                x = diff_augment(x, policy)
            if std > 0:
                x = x + std * torch.randn_like(x)
            return x

        def step(number: int) -> dict[str, torch.Tensor]:
            chosen = torch.from_numpy(indices[rng.integers(0, len(indices), size=batch)])
            real = images[chosen.to(images.device)].to(device)
            y = labels[chosen.to(labels.device)].to(device) if conditional else None  # fakes get the reals' classes
            std = noise_start * max(0.0, 1.0 - (number - 1) / cfg.steps)
            z = torch.randn(batch, cfg.latent_dim, device=device)
            half = batch // 2 if seeking else 0
            y_fake = y
            if half and y is not None:
                y_fake = torch.cat([y[:half], y[:half], y[2 * half:]])  # pairs of fakes share a class
            with trainer.autocast():
                fake = g(z, y_fake)
                real_logits = d(d_input(real, std), y).float()
                fake_logits = d(d_input(fake.detach(), std), y_fake).float()
                d_loss = _d_loss(real_logits, fake_logits, cfg.loss, real_target)
                if mismatch:
                    # Matching-aware D: a real image with a wrong label is fake too, which
                    # teaches D the classes directly instead of only through G's mistakes.
                    wrong = (y + torch.randint(1, n_classes, y.shape, device=device)) % n_classes
                    wrong_logits = d(d_input(real, std), wrong).float()
                    d_loss = (1 - mismatch) * d_loss + mismatch * _d_loss(real_logits, wrong_logits, cfg.loss, real_target)
            opt_d.zero_grad(set_to_none=True)
            trainer.backward(d_loss)
            opt_d.step()
            with trainer.autocast():
                g_loss = _g_loss(d(d_input(fake, std), y_fake).float(), cfg.loss)
                if half:
                    # Mode seeking: image distance per latent distance of pairs (same class);
                    # its inverse is small only when different z give different images.
                    ratio = ((fake[:half] - fake[half:2 * half]).abs().flatten(1).mean(1)
                             / (z[:half] - z[half:2 * half]).abs().mean(1)).mean()
                    g_loss = g_loss + seeking / (ratio.float() + 1e-5)
            opt_g.zero_grad(set_to_none=True)
            trainer.backward(g_loss)
            opt_g.step()
            return {"d_loss": d_loss, "g_loss": g_loss, "d_real": torch.sigmoid(real_logits).mean(),
                    "d_fake": torch.sigmoid(fake_logits).mean()}

        result = trainer.run(step)
        generator.load_state_dict(trainer.sampling_module("generator").state_dict())
        return result

    # -- the mode-collapse monitor -------------------------------------------
    def _fixed_batch(self, images: torch.Tensor, labels: torch.Tensor, indices: np.ndarray) -> dict[str, Any]:
        """Fixed z (and labels) for the monitor and the grids, and the real images' features.

        Own seeded generators, not the trainer's: the monitor must not change which batches
        training draws (a run with and without monitor, or a resumed run, train the same).
        """
        cfg = self.config
        z = torch.randn(MONITOR_BATCH, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
        pick = np.random.default_rng(cfg.seed + 1)
        if cfg.mode == "conditional":
            k = len(self.class_names)
            fake_labels = np.arange(MONITOR_BATCH) % k
            # Reals round-robin over the classes, like the fakes' labels.
            pools = [pick.permutation(indices[labels.numpy()[indices] == c]).tolist() for c in range(k)]
            chosen: list[int] = []
            while len(chosen) < MONITOR_BATCH and any(pools):
                chosen += [pool.pop(0) for pool in pools if pool][:MONITOR_BATCH - len(chosen)]
            real_idx = np.asarray(chosen, dtype=np.int64)
            real_labels: Optional[np.ndarray] = labels.numpy()[real_idx]
        else:
            fake_labels, real_labels = None, None
            real_idx = pick.permutation(indices)[:MONITOR_BATCH]
        real_features = image_features((images[real_idx] + 1) / 2)
        return {"z": z, "y": None if fake_labels is None else torch.from_numpy(fake_labels),
                "fake_labels": fake_labels, "real_labels": real_labels, "real_features": real_features}

    @torch.no_grad()
    def _fixed_fakes(self, trainer: Trainer, fixed: dict) -> torch.Tensor:
        """The fixed batch from the EMA generator in eval mode, as float NCHW in [0, 1] (CPU)."""
        g = trainer.sampling_module("generator")
        was_training = g.training
        g.eval()
        y = None if fixed["y"] is None else fixed["y"].to(trainer.device)
        out = g(fixed["z"].to(trainer.device), y).float()
        g.train(was_training)
        return ((out + 1) / 2).cpu()

    def _grid_samples(self, trainer: Trainer, fixed: dict, key: str):
        """The fixed batch's images and their class names, for the training grids."""
        images = tensor_to_images(self._fixed_fakes(trainer, fixed))
        return images, self.grid_labels(key, len(images), None if fixed["y"] is None else fixed["y"].tolist())

    def _diversity(self, trainer: Trainer, fixed: dict) -> dict[str, float]:
        value = diversity_ratio(image_features(self._fixed_fakes(trainer, fixed)), fixed["real_features"],
                                fixed["fake_labels"], fixed["real_labels"])
        return {} if value is None else {"diversity": value}

    # -- transfer ------------------------------------------------------------
    def warm_start(self, parent: Generator) -> None:
        """Start the next ``fit`` from a fitted dcgan's G and D (weights whose names and shapes match)."""
        if not isinstance(parent, DCGAN):
            raise ValueError(f"parent: a dcgan can only start from another dcgan model, "
                             f"got '{getattr(parent, 'kind', type(parent).__name__)}'")
        if not parent.fitted:
            raise ValueError("parent: the parent dcgan is not fitted")
        # A copy of the tensors, not the model: the child must not change when the parent does.
        self._parent = {"kind": parent.kind, "mode": parent.config.mode, "class_names": list(parent.class_names),
                        "image_shape": list(parent.meta["image_shape"]),
                        "groups": list(parent.generators.keys()),
                        "tensors": {k: v.detach().cpu().clone() for k, v in parent.state_tensors().items()}}

    def _parent_group(self, key: str) -> str:
        """Which of the parent's GANs starts the child's GAN ``key``."""
        parent = self._parent
        if ALL_CLASSES in parent["groups"]:
            return ALL_CLASSES  # a conditional parent starts every child GAN
        if key != ALL_CLASSES:  # per_class -> per_class: the same class name where the parent has it
            name = self.class_names[group_class(key)]
            if name in parent["class_names"] and class_group(parent["class_names"].index(name)) in parent["groups"]:
                return class_group(parent["class_names"].index(name))
        return parent["groups"][0]  # any GAN of the same images beats a random start

    def _load_parent(self, generator: nn.Module, discriminator: nn.Module, key: str) -> dict[str, Any]:
        source = self._parent_group(key)
        tensors = self._parent["tensors"]
        counts = {"source": source, "loaded": 0, "skipped": 0, "skipped_names": []}
        for role, module in (("generator", generator), ("discriminator", discriminator)):
            prefix = f"{role}.{source}."
            state = tensors_under(tensors, prefix)
            result = load_matching_weights(module, state)  # ValueError "parent: ..." when nothing fits
            counts["loaded"] += len(result["loaded"])
            counts["skipped"] += len(result["skipped"])
            counts["skipped_names"] += [f"{role}.{name}" for name in result["skipped"]]
        return counts

    # -- sample --------------------------------------------------------------
    def _sample(self, counts: dict[int, int], seed: int, options: DCGANSampleOptions) -> Samples:
        """Images from the EMA generator(s); option ``truncation`` (float > 0): resample |z| > t."""
        truncation = options.truncation
        noise = torch.Generator().manual_seed(seed)
        # A GPU when there is one: sampling thousands of 64-px images on a CPU is slow. The noise
        # is drawn on the CPU either way, so a seed means the same z everywhere.
        device = self.device()
        h, w, c = self.meta["image_shape"]
        parts, part_labels = [], []
        for cls, count in counts.items():
            g = self.generators[self.group_of(cls)].to(device).eval()
            for start in range(0, count, SAMPLE_BATCH):
                m = min(SAMPLE_BATCH, count - start)
                z = self._draw_z(m, noise, truncation).to(device)
                y = torch.full((m,), cls, dtype=torch.long, device=device) if g.n_classes else None
                with torch.no_grad():
                    parts.append(tensor_to_images((g(z, y).float() + 1) / 2))
                part_labels.append(np.full(m, cls, np.int64))
        data = np.concatenate(parts) if parts else np.zeros((0, h, w, c), np.uint8)
        sample_labels = np.concatenate(part_labels) if part_labels else np.zeros(0, np.int64)
        provenance = [{"sampler": "dcgan", "mode": self.config.mode, "truncation": truncation}
                      for _ in range(len(sample_labels))]
        return Samples(data, sample_labels, list(self.class_names), provenance)

    def _draw_z(self, n: int, noise: torch.Generator, truncation: Optional[float]) -> torch.Tensor:
        """N(0, 1) noise; with truncation every entry beyond +-t is redrawn (the truncation trick)."""
        z = torch.randn(n, self.config.latent_dim, generator=noise)
        if truncation is not None:
            for _ in range(100):
                outside = z.abs() > truncation
                if not outside.any():
                    break
                z[outside] = torch.randn(int(outside.sum()), generator=noise)
            z.clamp_(-truncation, truncation)  # tiny t: whatever is still outside goes to the edge
        return z

    # -- persistence ---------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """``generator.<group>.*`` (EMA weights) and ``discriminator.<group>.*`` of every GAN."""
        return self.grouped_state_tensors()

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild every G/D pair (shape from the metadata) and load its weights."""
        shape = tuple(self.meta["image_shape"])
        self.load_grouped_state(tensors, lambda key: dict(zip(("generator", "discriminator"), self._networks(shape))))

    @classmethod
    def tiny_config(cls) -> DCGANConfig:
        """Width 8, latent 16, 20 steps, no checkpoints: seconds on a CPU."""
        return DCGANConfig(ngf=8, ndf=8, latent_dim=16, steps=20, batch_size=16, checkpoint_every=0,
                           monitor_every=10)

    @classmethod
    def tiny_variants(cls) -> dict[str, DCGANConfig]:
        """Both modes, tiny."""
        tiny = cls.tiny_config()
        return {"per_class": DCGANConfig(**{**tiny.model_dump(), "mode": "per_class"}), "conditional": tiny}
