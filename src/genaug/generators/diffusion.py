"""Diffusion-model data augmentation: the ``ddim`` and ``ddpm`` generator kinds.

Both kinds share one implementation and differ only in the default sampler: a diffusers
``UNet2DModel`` is trained with a ``DDPMScheduler`` noise schedule (epsilon prediction, MSE
loss, AdamW, EMA weights for sampling) and sampled with DDIM (``ddim``: 50 steps by default)
or ancestral DDPM (``ddpm``: the full chain by default). Either sampler can be chosen per
``sample`` call (``scheduler="ddim"|"ddpm"``), with ``steps``, ``eta``, ``guidance_scale``,
``mode``, ``strength`` and ``upscale``.

Modes:
- ``conditional`` (default): one UNet with a class embedding of ``n_classes + 1`` entries; the
  last entry is the "null" class that ``label_dropout`` substitutes during training, so that
  generation can use classifier-free guidance (``guidance_scale``; 1 = plain conditional).
- ``per_class``: one unconditional UNet per class (the thesis's setup), one training phase
  ``unet-class<i>`` each.
- ``single``: one unconditional UNet (phase ``unet``) on all images, labels unused -- and on
  an *unlabeled pool* too when ``fit(data, unlabeled=images)`` is given one (uint8 N x H x W x
  C, the training images' shape; its size is recorded as ``meta["unlabeled_pool_size"]``,
  batches are drawn uniformly over labelled and pool images). A sample's class is the class
  of the labelled image it starts from, so this mode samples with img2img only (the default
  ``mode`` there), with ``strength`` < 1 and without guidance. ``use_examples(data)`` swaps
  the labelled source images afterwards (weights unchanged): the pool teaches the model what
  images look like, the few labelled examples decide what is sampled and with which class.

Sampling modes:
- ``mode="sample"`` (default of conditional / per_class): new images from pure noise.
- ``mode="img2img"`` (default and only mode of ``single``): a labelled training image of the
  class, noised to the timestep at fraction ``strength`` of the sampling schedule and denoised
  again with the class's model (the DA-Fusion idea, with our own small models instead of
  Stable Diffusion): small strengths give subtle variations, 1 a new image. For this the model
  keeps its labelled training images (uint8; never the unlabeled pool) and labels in
  ``weights.safetensors``; each sample's provenance names its source image. ``use_examples``
  replaces these source images in every mode.

Saved artifact (a folder): ``config.json`` and ``weights.safetensors`` (training images and
labels) as for every kind, plus diffusers folders that plain diffusers loads directly:
``unet/`` (``unet_class0/``, ... in ``per_class`` mode; EMA weights, safetensors) and
``scheduler/`` (the training ``DDPMScheduler``)::

    unet = UNet2DModel.from_pretrained("model/unet")
    scheduler = DDIMScheduler.from_pretrained("model/scheduler")
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pydantic
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from pydantic import Field, model_validator
from torch import nn

from ..data.datasets import LabelledData
from ..progress import ProgressCallback
from ..training import Trainer, TrainingConfig, load_matching_weights
from .base import Generator, SampleOptions, Samples, count_parameters, options_from_config, register, seeded_torch
from .groups import ALL_CLASSES, GroupedGenerator, group_class
from .diffusion_sampling import denoise, img2img_timesteps, resolve_precision, sampling_scheduler, upscale_images
from .diffusion_unet import (build_unet, flops_per_image_step, parameter_count, resolve_preset,
                             unet_architecture, unet_kwargs)
from .images import images_to_tensor, tensor_to_images

SCHEDULER_DIR = "scheduler"
GRID_SAMPLES = 32
GRID_STEPS = 25
MAX_SAMPLE_BATCH = 64
# The solvers of diffusion_sampling.SCHEDULERS (a Literal, so that the JSON schema lists them).
Solver = Literal["ddim", "ddpm", "dpm++2m", "dpm++2m-karras", "unipc", "euler"]
SOLVER_HELP = ("sampler (solver): ddim (few steps, the same image for the same seed), ddpm (many steps, each adds "
               "fresh noise), dpm++2m / dpm++2m-karras (DPM-Solver++ 2M: DDIM-50 quality in fewer steps), unipc, "
               "euler (Karras et al.'s ODE Euler)")
_SINGLE_STRENGTH = ("strength: mode 'single' needs a strength below 1 -- its unconditional UNet takes a "
                    "sample's class from the source image, and strength 1 ignores the source; got {}")


class DiffusionConfig(TrainingConfig):
    """Settings of the diffusion generators (training settings: see ``TrainingConfig``)."""

    mode: Literal["conditional", "per_class", "single"] = Field("conditional", description="conditional: one class-conditional UNet (classifier-free guidance); per_class: one unconditional UNet per class; single: one unconditional UNet on all images (plus an optional unlabeled pool), sampled by img2img only -- a sample's class is its source image's")
    # -- the UNet ----------------------------------------------------------------
    preset: Literal["auto", "tiny", "28", "32", "64"] = Field("auto", description="UNet size preset; auto picks by image size (<=28: '28', <=32: '32', else '64'); 'tiny' is for tests")
    block_out_channels: Optional[list[int]] = Field(None, min_length=1, max_length=6, description="UNet widths per resolution level (overrides the preset; levels = length, image size must be divisible by 2^(levels-1))")
    layers_per_block: Optional[int] = Field(None, ge=1, le=4, description="ResNet layers per level (overrides the preset)")
    attention_resolution: Optional[int] = Field(None, ge=0, description="self-attention on levels whose side is <= this many pixels (0 = none; overrides the preset)")
    norm_num_groups: Optional[int] = Field(None, ge=1, description="GroupNorm groups (must divide every width; overrides the preset)")
    attention_head_dim: Optional[int] = Field(None, ge=1, description="channels per attention head (overrides the preset)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout in the ResNet blocks")
    # -- the noise schedule ------------------------------------------------------------
    num_train_timesteps: int = Field(1000, ge=2, le=4000, description="diffusion timesteps T of the training schedule")
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = Field("squaredcos_cap_v2", description="noise schedule: cosine (better at small image sizes) or the original linear one")
    timestep_spacing: Literal["trailing", "leading", "linspace"] = Field("trailing", description="how sampling picks its timesteps; trailing starts at T-1 (pure noise), best for few steps")
    # -- training (defaults overridden for diffusion) -----------------------------------
    steps: int = Field(4000, ge=1, description="optimisation steps (per UNet in per_class mode)")
    batch_size: int = Field(32, ge=1, description="batch size (capped at the number of training images)")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up over this many steps (0 = none)")
    grad_clip: float = Field(1.0, ge=0, description="clip the gradient norm to this (0 = off)")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of the weights; samples come from the EMA UNet (0 = off)")
    checkpoint_every: int = Field(500, ge=0, description="write a resumable checkpoint every k steps (0 = never)")
    label_dropout: float = Field(0.1, ge=0, lt=1, description="conditional: share of training labels replaced by the null class (enables classifier-free guidance)")
    flip: bool = Field(True, description="random horizontal flips during training (turn off for digits, text, ...)")
    # -- sampling defaults (each can be overridden per sample() call) --------------------
    scheduler: Solver = Field("ddim", description=SOLVER_HELP)
    sample_steps: Optional[int] = Field(None, ge=1, description="denoising steps (None: 50 for ddim, num_train_timesteps for ddpm); sample option 'steps'")
    eta: float = Field(0.0, ge=0, le=1, description="DDIM noise: 0 = deterministic DDIM, 1 = DDPM-like")
    guidance_scale: float = Field(1.0, ge=0, description="conditional: classifier-free guidance weight (1 = plain conditional, 0 = unconditional, >1 = stronger class features)")
    strength: float = Field(0.5, gt=0, le=1, description="img2img: how far a training image is noised (1 = a new image, small = a subtle variation; below 1 in mode single)")
    upscale: int = Field(1, ge=1, le=8, description="enlarge the generated images by this factor (e.g. 64 -> 128 with 2)")
    upscale_method: Literal["bicubic", "lanczos"] = Field("bicubic", description="resampling filter of upscale")
    sample_batch_size: int = Field(MAX_SAMPLE_BATCH, ge=1, le=MAX_SAMPLE_BATCH, description="images denoised together")

    @model_validator(mode="after")
    def _guidance_needs_conditional(self) -> "DiffusionConfig":
        if self.mode != "conditional" and self.guidance_scale != 1.0:
            raise ValueError(f"guidance_scale: classifier-free guidance needs mode 'conditional' "
                             f"({self.mode} UNets have no class input)")
        if self.mode == "single" and self.strength >= 1:
            raise ValueError(_SINGLE_STRENGTH.format(self.strength))
        return self


class DDPMConfig(DiffusionConfig):
    """Settings of the ``ddpm`` kind: as ``ddim``, but sampling with DDPM by default."""

    scheduler: Solver = Field("ddpm", description=SOLVER_HELP)


class _SampleOptions(pydantic.BaseModel):
    """The options ``sample`` accepts (defaults from the config)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    scheduler: Solver
    steps: int = Field(ge=1)
    eta: float = Field(ge=0, le=1)
    guidance_scale: float = Field(ge=0)
    mode: Literal["sample", "img2img"]
    strength: float
    upscale: int = Field(ge=1, le=8)
    upscale_method: Literal["bicubic", "lanczos"]
    batch_size: int = Field(ge=1, le=MAX_SAMPLE_BATCH)
    source_class: Optional[int] = None
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False


class DiffusionSampleOptions(SampleOptions):
    """Base of the diffusion kinds' sample options (the fields come from each kind's config)."""

    aliases = {"sampler": "scheduler", "solver": "scheduler"}  # the CLI's generic names for it
    # Declared after the evaluation cells of the benchmarks were cached (batch_size was always
    # accepted; source_class, precision, channels_last and compile are new and off by default).
    identity_defaults_exclude = frozenset({"batch_size", "source_class", "precision", "channels_last", "compile"})


_SOURCE_CLASS = (Optional[int | str], Field(
    None, description="img2img across classes: start from an image of this class (name or index) and denoise it "
                      "toward the requested class -- images moved off their class, e.g. near-OOD negatives "
                      "(seed 000); empty: the requested class's own images"))
_PRECISION = (Literal["fp32", "bf16"], Field(
    "fp32", description="arithmetic of the UNet while sampling: bf16 autocast is ~1.5x faster on CPUs with native "
                        "bf16 (AVX-512 BF16, AMX) and GPUs that have it, at slightly different images; elsewhere it "
                        "falls back to fp32 with a warning"))
_CHANNELS_LAST = (bool, Field(False, description="channels-last memory format for the UNet (faster convolutions "
                                                 "on CPUs with oneDNN); the same images up to rounding"))
_COMPILE = (bool, Field(False, description="torch.compile the UNet for sampling: faster steps once compiled, but "
                                          "the first batch of each size pays a compile warm-up (seconds to minutes; "
                                          "cached on disk for later runs); needs a C++ compiler on a CPU"))
_SAMPLE_MODE = (Literal["sample", "img2img"], Field(
    "sample", description="sample: new images from noise; img2img: noise a training image to 'strength' and "
                          "denoise it (variations of your images)"))


def diffusion_sample_options(name: str, config_class: type[pydantic.BaseModel]) -> type[SampleOptions]:
    """The sample options of a diffusion kind, from its config's sampling fields."""
    return options_from_config(name, config_class, {
        "scheduler": "scheduler", "steps": "sample_steps", "eta": "eta", "guidance_scale": "guidance_scale",
        "strength": "strength", "upscale": "upscale", "upscale_method": "upscale_method",
        "batch_size": "sample_batch_size"}, base=DiffusionSampleOptions, mode=_SAMPLE_MODE,
        source_class=_SOURCE_CLASS, precision=_PRECISION, channels_last=_CHANNELS_LAST, compile=_COMPILE)


def _folder(key: str) -> str:
    """Artifact subfolder of a UNet: ``unet`` (conditional, single) or ``unet_class<i>`` (per_class)."""
    return "unet" if key == ALL_CLASSES else f"unet_{key}"


class DiffusionGenerator(GroupedGenerator):
    """Denoising diffusion (diffusers UNet2DModel): class-conditional with guidance, one UNet per
    class, or one unconditional UNet (``single``, optionally also trained on an unlabeled pool).

    Shared by the ``ddim`` and ``ddpm`` kinds, which differ only in the default sampler.
    """

    Config = DiffusionConfig
    SampleOptions = diffusion_sample_options("DDIMSampleOptions", DiffusionConfig)
    roles = {"unet": "unets"}
    uses_unlabeled_pool = ("single",)
    supports_warm_start = True
    keeps_training_data = "images"  # the labelled training images are the img2img sources

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.unets = nn.ModuleDict()
        self.train_scheduler = self._new_train_scheduler()
        self.train_images = np.zeros((0, 1, 1, 1), np.uint8)
        self.train_labels = np.zeros(0, np.int64)
        self._parent: Optional[dict[str, Any]] = None
        self._without_unets = False  # set while save() writes weights.safetensors

    # -- building ------------------------------------------------------------------
    def _new_train_scheduler(self) -> DDPMScheduler:
        cfg = self.config
        # clip_sample keeps the predicted x0 in the data range [-1, 1] while sampling.
        return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                             prediction_type="epsilon", clip_sample=True, timestep_spacing=cfg.timestep_spacing)

    def _architecture(self, image_shape) -> tuple[str, dict[str, Any]]:
        """(preset name, UNet2DModel kwargs) for this config and image shape, or the parent's."""
        h, w, c = image_shape
        cfg = self.config
        classes = len(self.class_names) + 1 if cfg.mode == "conditional" else None
        if self._parent is not None:
            # Transfer keeps the parent's architecture so that its weights fit.
            kwargs = dict(self._parent["architecture"])
            kwargs.update(num_class_embeds=classes, dropout=cfg.dropout)
            return "parent", kwargs
        name, preset = resolve_preset(cfg.preset, h, w, block_out_channels=cfg.block_out_channels,
                                      layers_per_block=cfg.layers_per_block,
                                      attention_resolution=cfg.attention_resolution,
                                      norm_num_groups=cfg.norm_num_groups, attention_head_dim=cfg.attention_head_dim)
        return name, unet_kwargs(preset, h, w, c, classes, cfg.dropout)

    def parameter_count(self, image_shape, class_names) -> int:
        """One UNet's parameters, times the classes in per_class mode (built on the meta device)."""
        self.class_names = list(class_names)
        with torch.device("meta"):
            one = count_parameters(build_unet(self._architecture(image_shape)[1]))
        return one * (len(class_names) if self.config.mode == "per_class" else 1)

    # -- transfer ------------------------------------------------------------------
    def warm_start(self, parent: Generator) -> None:
        """Start the next ``fit`` from ``parent``'s UNet weights (same architecture, matching tensors).

        The class embedding is skipped when the class counts differ (or one side has none). A
        ``per_class`` model takes the parent's UNet of the same class where there is one, else
        its first UNet; a ``conditional`` or ``single`` model takes the parent's UNet ``unet``
        (of a conditional or single parent), else its first per-class one.
        The images must have the parent's size and channels (checked in ``fit``).
        """
        if not isinstance(parent, DiffusionGenerator):
            raise ValueError(f"parent: a '{parent.kind}' model is not a diffusion model; "
                             f"a '{self.kind}' model can only start from a ddim or ddpm model")
        if not parent.fitted or not len(parent.unets):
            raise ValueError("parent: the parent diffusion model is not trained")
        first = next(iter(parent.unets.values()))
        self._parent = {
            "kind": parent.kind, "mode": parent.config.mode,
            "image_shape": tuple(parent.meta["image_shape"]),
            "architecture": unet_architecture(first),
            "states": {key: {k: v.detach().cpu().clone() for k, v in unet.state_dict().items()}
                       for key, unet in parent.unets.items()},
        }

    def _parent_state(self, key: str) -> dict[str, torch.Tensor]:
        states = self._parent["states"]
        if key in states:
            return states[key]
        return states[ALL_CLASSES] if ALL_CLASSES in states else states[sorted(states, key=group_class)[0]]

    # -- fit -----------------------------------------------------------------------
    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None, unlabeled: Optional[np.ndarray] = None) -> "DiffusionGenerator":
        """Train the UNet(s) on ``data`` (training split only); keeps its images for img2img.

        ``unlabeled``: extra uint8 images (N, H, W, C, the shape of ``data``'s images) without
        labels, used only by mode ``single``: its UNet trains on ``data``'s pixels and the pool
        together (batches drawn uniformly over both). The pool is not kept: img2img starts
        from ``data``'s labelled images only. Its size is recorded as
        ``meta["unlabeled_pool_size"]``.
        """
        self._check_data(data)
        cfg = self.config
        started = time.monotonic()
        if unlabeled is not None:
            if cfg.mode != "single":
                raise ValueError("unlabeled: an unlabeled pool is only used by mode 'single'")
            unlabeled = np.asarray(unlabeled)
            if unlabeled.ndim != 4 or unlabeled.shape[1:] != tuple(data.image_shape):
                raise ValueError(f"unlabeled: the pool's images must have the training images' shape "
                                 f"{tuple(data.image_shape)} (H, W, C), got {tuple(unlabeled.shape[1:])} "
                                 f"(pool array shape {tuple(unlabeled.shape)})")
            if unlabeled.dtype != np.uint8:
                raise ValueError(f"unlabeled: the pool must be uint8 images (0-255), got dtype {unlabeled.dtype}")
        if self._parent is not None and tuple(data.image_shape) != self._parent["image_shape"]:
            raise ValueError(f"parent: the parent model was trained on {self._parent['image_shape']} (H, W, C) "
                             f"images, this data is {tuple(data.image_shape)}; transfer needs the same image "
                             f"size and channels (resize on ingest)")
        self.class_names = list(data.class_names)
        self.__dict__.pop("_compiled_unets", None)  # compiled forms of the UNets a refit replaces
        preset_name, arch = self._architecture(data.image_shape)  # validates the image size first
        keys = self.training_groups()
        if cfg.mode == "per_class":
            empty = [self.class_names[i] for i in range(len(self.class_names)) if not (data.labels == i).any()]
            if empty:
                raise ValueError(f"per_class: classes {empty} have no training images (one UNet is trained per class)")
        self.train_scheduler = self._new_train_scheduler()
        rng = np.random.default_rng(cfg.seed)
        with seeded_torch(cfg.seed):
            # uint8 pixels, converted per batch (a large pool would not fit as float32).
            pixels = data.images if unlabeled is None else np.concatenate([data.images, unlabeled])
            self.unets = nn.ModuleDict()
            results, transfer = {}, {}
            for index, key in enumerate(keys):
                unet = build_unet(arch)
                if self._parent is not None:
                    report = load_matching_weights(unet, self._parent_state(key))
                    transfer[key] = {"loaded": len(report["loaded"]), "skipped": len(report["skipped"]),
                                     "skipped_names": report["skipped"][:20]}
                # single: every labelled and pool image (the pool follows the labelled ones in ``pixels``).
                indices = np.arange(len(pixels)) if key == ALL_CLASSES else np.flatnonzero(data.labels == group_class(key))
                unet, result = self._train_one(unet, key, pixels, data.labels, indices, rng, checkpoints, progress,
                                               index * cfg.steps, cfg.steps * len(keys))
                results[result.phase] = result.summary()
                self.unets[key] = unet.eval().requires_grad_(False)
            self.train_images = np.ascontiguousarray(data.images).copy()
            self.train_labels = data.labels.astype(np.int64).copy()
            self.fitted = True
            h, w, _ = data.image_shape
            first = next(iter(self.unets.values()))
            self.meta = {
                "sources": list(data.sources), "image_shape": list(data.image_shape),
                "unlabeled_pool_size": 0 if unlabeled is None else int(len(unlabeled)),
                "preset": preset_name, "unet": _json_architecture(arch),
                "parameters": sum(parameter_count(u) for u in self.unets.values()),
                "parameters_per_unet": parameter_count(first), "unets": len(self.unets),
                "flops_per_image_step": flops_per_image_step(first, h, w),
                "training": results, "train_seconds": round(time.monotonic() - started, 2),
            }
            if self._parent is not None:
                self.meta["warm_start"] = {
                    "parent_kind": self._parent["kind"], "parent_mode": self._parent["mode"],
                    "loaded": sum(t["loaded"] for t in transfer.values()),
                    "skipped": sum(t["skipped"] for t in transfer.values()), "per_unet": transfer}
            return self

    def _train_one(self, unet: UNet2DModel, key: str, pixels: np.ndarray, labels: np.ndarray,
                   indices: np.ndarray, rng: np.random.Generator, checkpoints: Optional[Path],
                   progress: Optional[ProgressCallback], offset: int, total: int):
        """Train one UNet with the shared training helper; returns (EMA UNet, TrainingResult).

        ``pixels``: uint8 images (labelled first, then any unlabeled pool); ``labels`` covers
        the labelled ones and is read only by a class-conditional UNet; ``indices``: the rows of
        ``pixels`` this UNet trains on, drawn uniformly with ``rng``.
        """
        cfg = self.config
        batch = min(cfg.batch_size, len(indices))
        phase = "unet" if key == ALL_CLASSES else f"unet-{key}"
        optimiser = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        trainer = Trainer(cfg, phase=phase, modules={"unet": unet}, optimisers={"unet": optimiser}, rng=rng,
                          work_dir=checkpoints, progress=progress, ema=("unet",), images_per_step=batch,
                          progress_offset=offset, progress_total=total, stage="train diffusion",
                          sample_fn=lambda: self._grid_samples(trainer, key))
        model, optimiser = trainer.modules["unet"], trainer.optimisers["unet"]
        device = trainer.device
        scheduler = self.train_scheduler
        conditional = unet.config.num_class_embeds is not None
        null_label = len(self.class_names)

        def step(number: int) -> dict[str, torch.Tensor]:
            if cfg.warmup_steps:
                # Set from the step number (not an LR-scheduler object): resumes need no extra state.
                for group in optimiser.param_groups:
                    group["lr"] = cfg.lr * min(1.0, number / cfg.warmup_steps)
            chosen = indices[rng.integers(0, len(indices), size=batch)]
            x0 = images_to_tensor(pixels[chosen]).mul_(2).sub_(1)  # the model works in [-1, 1]
            if cfg.flip:
                flipped = torch.from_numpy(rng.random(batch) < 0.5)
                x0 = torch.where(flipped[:, None, None, None], x0.flip(-1), x0)
            x0 = x0.to(device)
            y = None
            if conditional:
                y_np = labels[chosen].astype(np.int64)
                # Label dropout teaches the null class: the unconditional half of guidance.
                y_np[rng.random(batch) < cfg.label_dropout] = null_label
                y = torch.from_numpy(y_np).to(device)
            # Noise and timesteps come from torch on the device (its RNG state is checkpointed).
            noise = torch.randn(x0.shape, device=device)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), device=device)
            noisy = scheduler.add_noise(x0, noise, t)
            with trainer.autocast():
                predicted = model(noisy, t, class_labels=y).sample
            loss = F.mse_loss(predicted.float(), noise)
            optimiser.zero_grad(set_to_none=True)
            trainer.backward(loss)
            if cfg.grad_clip:
                trainer.accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            return {"loss": loss}

        result = trainer.run(step)
        trained = trainer.unwrap("unet")
        # Samples come from the EMA weights when EMA is on.
        trained.load_state_dict(trainer.sampling_module("unet").state_dict())
        return trained, result

    @torch.no_grad()
    def _grid_samples(self, trainer: Trainer, key: str):
        """32 samples with fixed noise and a few DDIM steps from the current (EMA) UNet, for the grids."""
        unet = trainer.sampling_module("unet")
        was_training = unet.training
        unet.eval()
        steps = min(GRID_STEPS, self.config.num_train_timesteps)
        scheduler = sampling_scheduler("ddim", self.train_scheduler, steps)
        generator = torch.Generator("cpu").manual_seed(0)
        # Class-labelled grid for the conditional UNet; per_class and single UNets have no class input.
        conditional = self.config.mode == "conditional"
        labels = (torch.arange(GRID_SAMPLES) % len(self.class_names)) if conditional else None
        x = denoise(unet, scheduler, batch=GRID_SAMPLES, generator=generator, class_labels=labels)
        unet.train(was_training)
        images = tensor_to_images(x / 2 + 0.5)
        return images, self.grid_labels(key, len(images), None if labels is None else labels.tolist())

    # -- sample ------------------------------------------------------------------------
    def _sample_options(self, options: dict[str, Any]) -> _SampleOptions:
        cfg = self.config
        scheduler = options.get("scheduler", cfg.scheduler)
        default_steps = cfg.sample_steps or (cfg.num_train_timesteps if scheduler == "ddpm" else 50)
        single = cfg.mode == "single"
        if options.get("source_class") is not None:
            try:
                options = {**options, "source_class": self.label_index(options["source_class"])}
            except ValueError:
                raise ValueError(f"source_class: {options['source_class']!r} is not one of the classes "
                                 f"{self.class_names}") from None
        values = {"scheduler": scheduler, "steps": default_steps, "eta": cfg.eta,
                  "mode": "img2img" if single else "sample",
                  "guidance_scale": cfg.guidance_scale, "strength": cfg.strength, "upscale": cfg.upscale,
                  "upscale_method": cfg.upscale_method, "batch_size": cfg.sample_batch_size, **options}
        try:
            chosen = _SampleOptions.model_validate(values)
        except pydantic.ValidationError as error:
            raise ValueError(f"{self.kind}: invalid sample options: {error}") from None
        if single and chosen.mode != "img2img":
            raise ValueError("mode: a model of mode 'single' samples with mode='img2img' only -- its "
                             "unconditional UNet gives a pure-noise sample no class; a sample's class is "
                             "the class of the labelled image img2img starts from")
        if not 0 < chosen.strength <= 1:
            raise ValueError(f"strength: must lie in (0, 1] (1 = a new image from pure noise, small = a subtle "
                             f"variation of a training image), got {chosen.strength}")
        if single and chosen.strength >= 1:
            raise ValueError(_SINGLE_STRENGTH.format(chosen.strength))
        if chosen.guidance_scale != 1.0 and cfg.mode != "conditional":
            what = "one unconditional UNet per class" if cfg.mode == "per_class" else "one unconditional UNet"
            raise ValueError(f"guidance_scale: classifier-free guidance needs mode 'conditional' "
                             f"(this model of mode '{cfg.mode}' has {what})")
        if chosen.source_class is not None and (chosen.mode != "img2img" or single):
            raise ValueError("source_class: img2img across classes needs mode='img2img' and a model of mode "
                             "'conditional' or 'per_class' (a 'single' model has no class to denoise toward)")
        if chosen.steps > cfg.num_train_timesteps:
            raise ValueError(f"steps: at most {cfg.num_train_timesteps} (the model's training timesteps), "
                             f"got {chosen.steps}")
        return chosen

    def _sample(self, counts: dict[int, int], seed: int, options: SampleOptions) -> Samples:
        """Images per class; the same seed gives the same images.

        Options (defaults from the config): ``scheduler`` ("ddim" | "ddpm"; alias ``sampler``),
        ``steps``, ``eta`` (DDIM), ``guidance_scale`` (conditional mode), ``mode`` ("sample" |
        "img2img"; default "sample", but "img2img" -- the only one allowed -- in mode ``single``),
        ``strength`` (img2img, in (0, 1]; below 1 in mode ``single``), ``upscale`` (integer factor),
        ``upscale_method`` ("bicubic" | "lanczos"), ``batch_size`` (<= 64).

        img2img starts from the labelled images of the sample's class that ``fit`` (or
        ``use_examples``) stored, never from an unlabeled pool.
        """
        chosen = self._sample_options(options.overrides())
        # One numpy generator picks img2img sources, one torch generator draws every noise tensor.
        rng = np.random.default_rng(seed)
        generator = torch.Generator("cpu").manual_seed(seed % 2**64)
        parts = []
        for cls, count in counts.items():
            for start in range(0, count, chosen.batch_size):
                parts.append(self._draw(cls, min(chosen.batch_size, count - start), chosen, rng, generator))
        if not parts:
            h, w, c = self.meta["image_shape"]
            return Samples(np.zeros((0, h * chosen.upscale, w * chosen.upscale, c), np.uint8),
                           np.zeros(0, np.int64), list(self.class_names), [])
        return Samples.concat(parts)

    def _compiled(self, unet: UNet2DModel):
        """``torch.compile`` of a UNet, made once per UNet and kept for later batches (a new batch
        size or memory format recompiles inside it); never saved."""
        cache = self.__dict__.setdefault("_compiled_unets", {})
        if id(unet) not in cache:
            cache[id(unet)] = (unet, torch.compile(unet, dynamic=False))
        return cache[id(unet)][1]

    @torch.no_grad()
    def _draw(self, cls: int, n: int, chosen: _SampleOptions, rng: np.random.Generator,
              generator: torch.Generator) -> Samples:
        """One batch of ``n`` images of class ``cls``."""
        conditional = self.config.mode == "conditional"
        unet = self.unets[self.group_of(cls)].to(self.device())
        precision = resolve_precision(chosen.precision, self.device())
        scheduler = sampling_scheduler(chosen.scheduler, self.train_scheduler, chosen.steps)
        labels = torch.full((n,), cls, dtype=torch.long) if conditional else None
        init, timesteps, sources = None, None, [None] * n
        if chosen.mode == "img2img":
            start = cls if chosen.source_class is None else chosen.source_class
            candidates = np.flatnonzero(self.train_labels == start)
            if not len(candidates):
                raise ValueError(f"img2img: class {self.class_names[start]!r} has no training images to start from")
            picked = candidates[rng.integers(0, len(candidates), size=n)]
            init = images_to_tensor(self.train_images[picked]).mul_(2).sub_(1)
            timesteps = img2img_timesteps(scheduler, chosen.steps, chosen.strength)
            names = self.meta.get("sources", [])
            sources = [names[i] if i < len(names) else f"index:{i}" for i in picked]
        if chosen.channels_last:
            unet.to(memory_format=torch.channels_last)
        try:
            x = denoise(self._compiled(unet) if chosen.compile else unet, scheduler, batch=n, generator=generator,
                        class_labels=labels,
                        null_label=len(self.class_names) if conditional else None,
                        guidance_scale=chosen.guidance_scale, eta=chosen.eta, init=init, timesteps=timesteps,
                        precision=precision, channels_last=chosen.channels_last)
        finally:
            if chosen.channels_last:  # back to the layout training and saving expect, whatever happened
                unet.to(memory_format=torch.contiguous_format)
        images = upscale_images(tensor_to_images(x / 2 + 0.5), chosen.upscale, chosen.upscale_method)
        common = {"sampler": chosen.scheduler if chosen.mode == "sample" else f"{chosen.scheduler}-img2img",
                  "scheduler": chosen.scheduler, "steps": chosen.steps, "eta": chosen.eta,
                  "guidance_scale": chosen.guidance_scale, "mode": chosen.mode, "model_mode": self.config.mode,
                  "upscale": chosen.upscale}
        if chosen.precision != "fp32" or chosen.channels_last:  # (older manifests: fp32, contiguous)
            common.update(precision=precision, channels_last=chosen.channels_last)
        if chosen.compile:
            common["compiled"] = True
        provenance = []
        for source in sources:
            entry = dict(common)
            if chosen.mode == "img2img":
                entry.update(source=source, strength=chosen.strength, denoising_steps=len(timesteps))
                if chosen.source_class is not None:
                    entry["source_class"] = self.class_names[chosen.source_class]
            provenance.append(entry)
        return Samples(images, np.full(n, cls, np.int64), list(self.class_names), provenance)

    # -- examples ------------------------------------------------------------------------
    def use_examples(self, data: LabelledData) -> "DiffusionGenerator":
        """Make ``data``'s images the img2img sources (weights unchanged); returns ``self``.

        Replaces the stored source images, their labels and ``meta["sources"]``. For a
        ``single`` model trained on an unlabeled pool this is the point: the pool taught the
        UNet, the few labelled examples decide what is sampled and with which class. In the
        other modes it changes which images img2img starts from. The class names must be the
        model's and the images its size and channels.
        """
        self._require_fitted()
        self._check_data(data)
        if list(data.class_names) != list(self.class_names):
            raise ValueError(f"use_examples: class names differ from the training data's: the model has "
                             f"{list(self.class_names)}, the examples have {list(data.class_names)}")
        shape = tuple(self.meta.get("image_shape", data.image_shape))
        if tuple(data.image_shape) != shape:
            raise ValueError(f"use_examples: the model works on {shape} (H, W, C) images, the examples are "
                             f"{tuple(data.image_shape)}")
        self.train_images = np.ascontiguousarray(data.images).copy()
        self.train_labels = data.labels.astype(np.int64).copy()
        self.meta["sources"] = list(data.sources)
        return self

    # -- persistence ---------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Labelled training images and labels (img2img sources; never the unlabeled pool) and the
        UNet weights (``unet.<key>.<name>``).

        ``save`` writes the UNets as diffusers folders instead, so ``weights.safetensors``
        holds only the images and labels.
        """
        tensors = {"train_images": torch.from_numpy(self.train_images),
                   "train_labels": torch.from_numpy(self.train_labels)}
        if not self._without_unets:
            tensors.update(self.grouped_state_tensors())
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the training images and labels, and the UNets when their weights are included."""
        self.train_images = tensors["train_images"].numpy()
        self.train_labels = tensors["train_labels"].numpy().astype(np.int64)
        self.train_scheduler = self._new_train_scheduler()
        if any(name.startswith("unet.") for name in tensors):
            arch = {k: tuple(v) if isinstance(v, list) else v for k, v in self.meta["unet"].items()}
            self.load_grouped_state(tensors, lambda key: {"unet": build_unet(arch)})
            for unet in self.unets.values():
                unet.requires_grad_(False)

    def save(self, directory: str | Path) -> None:
        """``config.json`` and ``weights.safetensors`` (images, labels), plus diffusers ``unet*/`` and ``scheduler/``."""
        self._without_unets = True  # the UNets go into their diffusers folders, not twice
        try:
            super().save(directory)
        finally:
            self._without_unets = False
        directory = Path(directory)
        for key, unet in self.unets.items():
            unet.save_pretrained(directory / _folder(key), safe_serialization=True)
        self.train_scheduler.save_pretrained(directory / SCHEDULER_DIR)

    @classmethod
    def load(cls, directory: str | Path) -> "DiffusionGenerator":
        """Rebuild a saved model: the base files, then each UNet with ``UNet2DModel.from_pretrained``."""
        generator = super().load(directory)
        directory = Path(directory)
        generator.unets = nn.ModuleDict()
        for key in generator.training_groups():
            folder = directory / _folder(key)
            if not folder.is_dir():
                raise ValueError(f"{directory}: the UNet folder {folder.name}/ is missing")
            generator.unets[key] = UNet2DModel.from_pretrained(folder).eval().requires_grad_(False)
        if (directory / SCHEDULER_DIR).is_dir():
            generator.train_scheduler = DDPMScheduler.from_pretrained(directory / SCHEDULER_DIR)
        return generator

    # -- tests ---------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls) -> DiffusionConfig:
        """The tiny UNet, 10 steps of 8, 50 timesteps, 4 sampling steps: seconds on a CPU."""
        return cls.Config(preset="tiny", steps=10, batch_size=8, checkpoint_every=0, num_train_timesteps=50,
                          sample_steps=4, flip=False)

    @classmethod
    def tiny_variants(cls) -> dict[str, DiffusionConfig]:
        """Every mode: one conditional UNet, one UNet per class, and one unconditional UNet
        (``single``, sampled by img2img at the default strength 0.5; trained without a pool here)."""
        tiny = cls.tiny_config()
        return {mode: cls.Config(**{**tiny.model_dump(), "mode": mode})
                for mode in ("conditional", "per_class", "single")}


def _json_architecture(arch: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()}


# A small UNet for a first look (0.2 M parameters at 3 levels) and a middle one; "best" is the
# kind's full defaults (the size preset picked by image size, 4,000 steps).
DIFFUSION_PRESETS = {
    "quick": {"steps": 300, "batch_size": 16, "block_out_channels": [16, 32, 64], "layers_per_block": 1,
              "attention_resolution": 0, "norm_num_groups": 8},
    "standard": {"steps": 1500, "block_out_channels": [32, 64, 128], "layers_per_block": 1,
                 "norm_num_groups": 8},
    "best": {"steps": 4000},
}


@register("ddim")
class DDIMDiffusion(DiffusionGenerator):
    """Diffusion generator sampling with DDIM by default (50 steps)."""

    Config = DiffusionConfig
    summary = ("Diffusion (DDIM sampling): a class-conditional, per-class or single UNet (single can also "
               "learn from unlabeled images); sharp, varied images and img2img variations of your images "
               "(a GPU and hundreds of steps recommended).")
    description = ("Diffusion: the best image quality and the slowest to train. It can also make variations of "
                   "your own images (the strength setting says how far they may move from the original).")
    presets = DIFFUSION_PRESETS


@register("ddpm")
class DDPMDiffusion(DiffusionGenerator):
    """Diffusion generator sampling with ancestral DDPM by default (the full chain)."""

    Config = DDPMConfig
    SampleOptions = diffusion_sample_options("DDPMSampleOptions", DDPMConfig)
    summary = ("Diffusion (DDPM sampling): as ddim, but ancestral sampling over the full noise chain by "
               "default -- slower generation, sometimes more varied images.")
    description = ("Diffusion like ddim, but every image takes many more denoising steps: slower to generate, "
                   "sometimes more varied.")
    presets = DIFFUSION_PRESETS
