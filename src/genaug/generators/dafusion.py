"""DA-Fusion (Trabucco et al. 2023; seed 000 ch. 2.3, 3.1): Stable Diffusion learns one new word per
class by textual inversion, then varies your images by img2img with the prompt "a photo of a <word>".

Fit (textual inversion): every class gets ``num_vectors`` new tokens, initialised from the
embedding of ``initializer_token``. Only those rows of the text encoder's token-embedding matrix
learn -- the rest are restored after every step, and the UNet, the VAE and the rest of the text
encoder stay frozen -- with the usual diffusion loss on the class's images ("a photo of a <token>",
random horizontal flips). The VAE encodes every image once (mean and std of its latent; a step
draws from that distribution), which is what makes this affordable on a CPU. Only the learned
rows are saved (safetensors), with the training images (the img2img sources).

Sample (augmentation): a training image of the class, resized to ``resolution``, is noised to
strength t0 and denoised with the class prompt and classifier-free guidance
(``StableDiffusionImg2ImgPipeline``, DDIM): int(steps x t0) denoising steps. Source images are
used round-robin, so asking for M x (images of the class) per class gives M variations of every
image. ``augmentation="stacked"`` is DA-Fusion's stacking: each sample's strength is drawn from
{0.25, 0.5, 0.75, 1.0} with p = 0.25 each. The manifest records source, strength, guidance and
token.

The base model is a local diffusers folder (``model_path``, or ``$GENAUG_SD_MODEL``): referenced
by path and content fingerprint in the model's metadata, never copied, never downloaded. Settings
default to DA-Fusion's (512 px, 1,000 steps, batch 4, lr 5e-4 scaled by the batch, fp16 on a GPU);
``presets["quick"]`` is CPU-sized. Without a GPU it runs in fp32 (slowly) and says so.
"""
from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pydantic
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from ..data.datasets import LabelledData, LabelledImages
from ..progress import ProgressCallback, ProgressEvent
from ..training import Trainer, TrainingConfig
from .base import Generator, Samples, compute_device, options_from_config, register, seeded_torch

MODEL_ENV = "GENAUG_SD_MODEL"
# What a diffusers Stable Diffusion folder must hold (each part: one of the files listed).
REQUIRED_PARTS = {
    "model_index.json": ("",),
    "unet": ("config.json",),
    "vae": ("config.json",),
    "text_encoder": ("config.json",),
    "tokenizer": ("vocab.json", "tokenizer.json"),
    "scheduler": ("scheduler_config.json",),
}
STACKED_STRENGTHS = (0.25, 0.5, 0.75, 1.0)
# Consecutive steps with a non-finite loss (fp16 overflow) before the fit gives up.
MAX_NAN_STEPS = 20
_FINGERPRINTS: dict[tuple, str] = {}


class DAFusionConfig(TrainingConfig):
    """Settings of DA-Fusion; the defaults are DA-Fusion's (a GPU's sizes); ``presets['quick']`` fits a CPU."""

    model_path: Optional[str] = Field(None, description=f"local diffusers Stable Diffusion folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); empty: ${MODEL_ENV}. Nothing is downloaded")
    resolution: int = Field(512, ge=8, le=1024, description="side (pixels) images are resized to for Stable Diffusion; a multiple of 8")
    steps: int = Field(1000, ge=1, description="textual-inversion steps (all classes together)")
    batch_size: int = Field(4, ge=1, description="images per step")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate of the new token rows")
    scale_lr: bool = Field(True, description="multiply lr by batch_size (as DA-Fusion and diffusers' textual inversion do)")
    num_vectors: int = Field(1, ge=1, le=16, description="new token vectors per class")
    initializer_token: str = Field("the", min_length=1, description="the word whose embedding the new tokens start from (must be one token); DA-Fusion: 'the'")
    prompt: str = Field("a photo of a {}", description="prompt template; {} becomes the class's new token(s)")
    flip: bool = Field(True, description="random horizontal flips while learning the tokens")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("fp16", description="fp16/bf16 on a GPU (the frozen UNet, VAE and text encoder in half precision); fp32 on a CPU whatever is set")
    checkpoint_every: int = Field(250, ge=0, description="write a resumable checkpoint every k steps (0 = never)")
    # -- sampling defaults (each can be overridden per sample() call) --------------------
    strength: float = Field(0.5, gt=0, le=1, description="img2img strength t0: how far a real image is noised before denoising (DA-Fusion: 0.5)")
    guidance_scale: float = Field(7.5, ge=1, description="classifier-free guidance weight (DA-Fusion: 7.5)")
    sample_steps: int = Field(50, ge=1, le=1000, description="DDIM steps of the full schedule; img2img runs int(steps x strength) of them; sample option 'steps'")
    augmentation: Literal["single", "stacked"] = Field("single", description="single: every sample at 'strength'; stacked: DA-Fusion's stacking, strength drawn from 0.25/0.5/0.75/1.0 (p = 0.25 each)")

    @field_validator("resolution")
    @classmethod
    def _multiple_of_eight(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (the VAE's downsampling), got {value}")
        return value

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if value.count("{}") != 1:
            raise ValueError("must contain '{}' exactly once: where the class's token goes")
        return value


def resolve_model_path(path: Optional[str]) -> Path:
    """The Stable Diffusion folder: ``path`` or ``$GENAUG_SD_MODEL``; a clear error naming what is
    missing when it is not a complete diffusers folder."""
    chosen = path or os.environ.get(MODEL_ENV)
    if not chosen:
        raise ValueError(f"model_path: dafusion needs a local Stable Diffusion folder in diffusers format; set "
                         f"--set model_path=/path/to/stable-diffusion or ${MODEL_ENV} (nothing is downloaded)")
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise ValueError(f"model_path: {folder} is not a folder")
    missing = []
    for part, files in REQUIRED_PARTS.items():
        target = folder / part
        if files == ("",):
            if not target.is_file():
                missing.append(part)
        elif not target.is_dir() or not any((target / name).is_file() for name in files):
            missing.append(f"{part}/ ({' or '.join(files)})")
    weights = [part for part in ("unet", "vae", "text_encoder") if (folder / part).is_dir()
               and not any(p.suffix in (".safetensors", ".bin") for p in (folder / part).iterdir())]
    missing += [f"{part}/ weights (*.safetensors)" for part in weights]
    if missing:
        raise ValueError(f"model_path: {folder} is not a complete diffusers Stable Diffusion folder; missing: "
                         f"{', '.join(missing)}")
    return folder


def model_fingerprint(folder: Path) -> str:
    """SHA-256 of every file's relative path and content (cached per process by path, sizes and
    modification times): the registry refers to the base model by this, not by a copy."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    key = (str(folder.resolve()), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(str(path.relative_to(folder)).encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


def _dtype(mixed_precision: str, device: torch.device) -> torch.dtype:
    if device.type != "cuda" or mixed_precision == "no":
        return torch.float32
    return torch.float16 if mixed_precision == "fp16" else torch.bfloat16


def load_components(folder: Path, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Tokenizer, text encoder, VAE, UNet and noise scheduler from a local folder (offline); the
    frozen parts in ``dtype``, the text encoder in fp32 (its embedding rows are trained)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "tokenizer": CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
        "text_encoder": CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True),
        "vae": AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True, torch_dtype=dtype),
        "unet": UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True, torch_dtype=dtype),
        "scheduler": DDPMScheduler.from_pretrained(folder / "scheduler", local_files_only=True),
    }


def _to_model_input(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 NHWC (1 or 3 channels) -> float NCHW RGB in [-1, 1] at ``resolution`` squared."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0, 1)
    return x * 2 - 1


def _from_model_output(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Float NHWC RGB in [0, 1] at the model's size -> uint8 at the training images' H x W x C."""
    h, w, c = shape
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
    if c == 1:
        x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@register("dafusion")
class DAFusion(Generator):
    """DA-Fusion: Stable Diffusion textual inversion per class, then img2img variations of your images."""

    Config = DAFusionConfig
    SampleOptions = options_from_config("DAFusionSampleOptions", DAFusionConfig, {
        "strength": "strength", "guidance_scale": "guidance_scale", "steps": "sample_steps",
        "augmentation": "augmentation", "prompt": "prompt"})
    summary = ("DA-Fusion: Stable Diffusion (a local model folder) learns a word per class, then varies your "
               "images by img2img (a GPU strongly recommended).")
    description = ("Realistic variations of your own photos made by Stable Diffusion, which learns a new word "
                   "for each of your classes. Needs a Stable Diffusion model on disk and, in practice, a GPU.")
    keeps_training_data = "images"
    version = "1"
    presets = {
        "quick": {"resolution": 128, "steps": 100, "batch_size": 2, "sample_steps": 20, "checkpoint_every": 50},
        "standard": {"resolution": 256, "steps": 400, "batch_size": 4, "sample_steps": 30},
        "best": {},
    }

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.token_embeddings = torch.zeros(0)
        self.train_images = np.zeros((0, 1, 1, 1), np.uint8)
        self.train_labels = np.zeros(0, np.int64)
        self._pipeline = None
        self._timing: dict[str, Any] = {}

    # -- tokens --------------------------------------------------------------------
    def class_tokens(self, index: int) -> list[str]:
        """The new tokens of class ``index``."""
        return [f"<genaug-c{index}-v{j}>" for j in range(self.config.num_vectors)]

    def class_prompt(self, index: int, template: Optional[str] = None) -> str:
        """The prompt of class ``index``: the template with the class's tokens in place of {}."""
        return (template or self.config.prompt).format(" ".join(self.class_tokens(index)))

    def _add_tokens(self, tokenizer, text_encoder) -> list[int]:
        """Add every class's tokens to the tokenizer and rows for them to the text encoder; returns their ids."""
        tokens = [t for c in range(len(self.class_names)) for t in self.class_tokens(c)]
        added = tokenizer.add_tokens(tokens)
        if added != len(tokens):
            raise ValueError("dafusion: the tokenizer already knows some of genaug's class tokens "
                             "(a model folder saved after a textual inversion?)")
        # No mean-resizing: it draws the new rows from the global RNG, and they are overwritten anyway.
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        return tokenizer.convert_tokens_to_ids(tokens)

    # -- fit -----------------------------------------------------------------------
    def fit(self, data: LabelledData, *, progress: Optional[ProgressCallback] = None,
            checkpoints: Optional[Path] = None) -> "DAFusion":
        """Learn every class's tokens by textual inversion on ``data`` (the training split)."""
        self._check_data(data)
        assert isinstance(data, LabelledImages)
        if data.image_shape[2] not in (1, 3):
            raise ValueError(f"dafusion: images need 1 or 3 channels, got {data.image_shape[2]}")
        folder = resolve_model_path(self.config.model_path)
        fingerprint = model_fingerprint(folder)
        with seeded_torch(self.config.seed):
            return self._fit(data, folder, fingerprint, progress, checkpoints)

    def _fit(self, data: LabelledImages, folder: Path, fingerprint: str, progress: Optional[ProgressCallback],
             checkpoints: Optional[Path]) -> "DAFusion":
        cfg = self.config
        started = time.monotonic()
        self.class_names = list(data.class_names)
        self._pipeline = None
        device = compute_device()
        precision = cfg.mixed_precision if device.type == "cuda" else "no"
        parts = load_components(folder, _dtype(precision, device))
        tokenizer, text_encoder, vae, unet, noise_scheduler = (parts[k] for k in (
            "tokenizer", "text_encoder", "vae", "unet", "scheduler"))
        init_ids = tokenizer.encode(cfg.initializer_token, add_special_tokens=False)
        if len(init_ids) != 1:
            raise ValueError(f"initializer_token: '{cfg.initializer_token}' is {len(init_ids)} tokens for this "
                             f"tokenizer; choose a single word it knows")
        new_ids = self._add_tokens(tokenizer, text_encoder)
        embeddings = text_encoder.get_input_embeddings()
        with torch.no_grad():
            embeddings.weight[new_ids] = embeddings.weight[init_ids[0]].clone()
        for module in (vae, unet, text_encoder):
            module.requires_grad_(False).eval()
        embeddings.weight.requires_grad_(True)
        original = embeddings.weight.detach().clone()
        keep = torch.ones(len(original), dtype=torch.bool)
        keep[new_ids] = False

        if device.type != "cuda" and progress is not None:
            progress(ProgressEvent(stage="fit dafusion", step=0, total=cfg.steps,
                                   message="no GPU: Stable Diffusion runs in fp32 on the CPU (slow); the ETA "
                                           "follows after the first steps"))
        vae.to(device)
        unet.to(device)
        text_encoder.to(device)
        original, keep = original.to(device), keep.to(device)
        latent_mean, latent_std = self._encode(vae, data.images, device)
        labels = torch.from_numpy(data.labels.astype(np.int64))
        prompt_ids = torch.stack([self._prompt_ids(tokenizer, c) for c in range(len(self.class_names))])
        rng = np.random.default_rng(cfg.seed)
        noise_generator = torch.Generator().manual_seed(cfg.seed)
        lr = cfg.lr * cfg.batch_size if cfg.scale_lr else cfg.lr
        optimiser = torch.optim.AdamW([embeddings.weight], lr=lr, weight_decay=0.0)
        settings = cfg.model_copy(update={"mixed_precision": precision, "ema_decay": 0.0})
        trainer = Trainer(settings, phase="dafusion-tokens", modules={"embeddings": embeddings},
                          optimisers={"embeddings": optimiser}, rng=rng, work_dir=checkpoints, progress=progress,
                          images_per_step=cfg.batch_size, stage="fit dafusion",
                          # The latent and noise draws travel in the checkpoints: a resumed run goes on
                          # exactly as an uninterrupted one would.
                          extra_state=(lambda: {"noise": noise_generator.get_state()},
                                       lambda state: noise_generator.set_state(state["noise"])))
        optimiser = trainer.optimisers["embeddings"]
        prediction = noise_scheduler.config.get("prediction_type", "epsilon")
        scaling = float(vae.config.get("scaling_factor", 0.18215))
        nan_steps = {"count": 0, "total": 0}

        def step(number: int) -> dict[str, torch.Tensor]:
            chosen = torch.from_numpy(rng.integers(0, len(labels), size=cfg.batch_size))
            flipped = torch.from_numpy(rng.random(cfg.batch_size) < 0.5) if cfg.flip else \
                torch.zeros(cfg.batch_size, dtype=torch.bool)
            source = chosen * 2 + flipped.long()  # even rows: the image, odd rows: its mirror
            eps = torch.randn(latent_mean[source].shape, generator=noise_generator)
            latents = (latent_mean[source] + latent_std[source] * eps) * scaling
            noise = torch.randn(latents.shape, generator=noise_generator)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (cfg.batch_size,),
                                      generator=noise_generator)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            target = noise_scheduler.get_velocity(latents, noise, timesteps) if prediction == "v_prediction" else noise
            with trainer.autocast():
                states = text_encoder(prompt_ids[labels[chosen]].to(device))[0]
                predicted = unet(noisy.to(device, unet.dtype), timesteps.to(device),
                                 states.to(unet.dtype)).sample
            loss = F.mse_loss(predicted.float(), target.to(device).float())
            optimiser.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                # fp16 overflow: skip the step (the rows stay as they were) and count it.
                nan_steps["count"] += 1
                nan_steps["total"] += 1
                if nan_steps["count"] >= MAX_NAN_STEPS:
                    raise RuntimeError(f"dafusion: {MAX_NAN_STEPS} steps in a row gave a non-finite loss in "
                                       f"{precision}; train with --set mixed_precision=no (fp32)")
                return {"loss": torch.tensor(float("nan"))}
            nan_steps["count"] = 0
            trainer.backward(loss)
            optimiser.step()
            with torch.no_grad():  # only the new rows learn: every other row goes back
                embeddings.weight[keep] = original[keep].to(embeddings.weight.dtype)
            return {"loss": loss}

        result = trainer.run(step)
        self.token_embeddings = embeddings.weight.detach()[new_ids].float().cpu().clone()
        self.train_images = np.ascontiguousarray(data.images).copy()
        self.train_labels = data.labels.astype(np.int64).copy()
        self.fitted = True
        self.meta = {
            "model_path": str(folder.resolve()), "model_fingerprint": fingerprint,
            "tokens": {name: self.class_tokens(i) for i, name in enumerate(self.class_names)},
            "image_shape": list(data.image_shape), "sources": list(data.sources),
            "initializer_token": cfg.initializer_token, "device": device.type, "precision": precision,
            "skipped_non_finite_steps": nan_steps["total"], "training": {"dafusion-tokens": result.summary()},
            "train_seconds": round(time.monotonic() - started, 2),
        }
        return self

    def _prompt_ids(self, tokenizer, index: int, template: Optional[str] = None) -> torch.Tensor:
        return tokenizer(self.class_prompt(index, template), padding="max_length", truncation=True,
                         max_length=tokenizer.model_max_length, return_tensors="pt").input_ids[0]

    @torch.no_grad()
    def _encode(self, vae, images: np.ndarray, device: torch.device, batch: int = 8):
        """Mean and std of every image's latent and of its mirror image (rows 2i and 2i+1), on the CPU."""
        means, stds = [], []
        for start in range(0, len(images), batch):
            x = _to_model_input(images[start:start + batch], self.config.resolution)
            x = torch.stack([x, x.flip(-1)], 1).flatten(0, 1)
            dist = vae.encode(x.to(device, vae.dtype)).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
        return torch.cat(means), torch.cat(stds)

    # -- sample --------------------------------------------------------------------
    def pipeline(self):
        """The img2img pipeline on the base model with the learned tokens (built once per model)."""
        if self._pipeline is not None:
            return self._pipeline
        from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

        folder = resolve_model_path(self.meta.get("model_path"))
        found = model_fingerprint(folder)
        if found != self.meta.get("model_fingerprint"):
            raise ValueError(f"model_path: the Stable Diffusion folder {folder} is not the one this model learned "
                             f"its tokens on (content fingerprint {found[:12]}, expected "
                             f"{str(self.meta.get('model_fingerprint'))[:12]})")
        device = compute_device()
        parts = load_components(folder, _dtype(self.config.mixed_precision, device))
        tokenizer, text_encoder = parts["tokenizer"], parts["text_encoder"]
        new_ids = self._add_tokens(tokenizer, text_encoder)
        with torch.no_grad():
            text_encoder.get_input_embeddings().weight[new_ids] = self.token_embeddings.to(
                text_encoder.get_input_embeddings().weight.dtype)
        if device.type == "cuda" and parts["unet"].dtype != torch.float32:
            text_encoder.to(parts["unet"].dtype)
        pipe = StableDiffusionImg2ImgPipeline(
            vae=parts["vae"], text_encoder=text_encoder, tokenizer=tokenizer, unet=parts["unet"],
            scheduler=DDIMScheduler.from_config(parts["scheduler"].config), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        self._pipeline = pipe.to(device)
        return self._pipeline

    def _sample(self, counts: dict[int, int], seed: int, options) -> Samples:
        """img2img variations of the training images of each class (round-robin over its images)."""
        overrides = {("sample_steps" if k == "steps" else k): v for k, v in options.overrides().items()}
        try:  # the config's validators (e.g. the prompt's {} placeholder) apply to the options too
            cfg = self.Config.model_validate({**self.config.model_dump(), **overrides})
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            name = "steps" if first["loc"][0] == "sample_steps" else first["loc"][0]
            raise ValueError(f"options.{name}: {first['msg']}") from None
        # Loading the pipeline and diffusers' internals may draw from torch's global RNG: seed it
        # with the call's seed (deterministic) and give the caller back its own state.
        with seeded_torch(seed % 2 ** 63):
            return self._sample_with(counts, seed, cfg)

    def _sample_with(self, counts: dict[int, int], seed: int, cfg: DAFusionConfig) -> Samples:
        rng = np.random.default_rng(seed)
        h, w, c = self.meta["image_shape"]
        self._timing = {"images": 0, "seconds": 0.0, "total": sum(counts.values()), "warned": False}
        parts = []
        for cls, count in counts.items():
            if count == 0:
                continue
            pool = np.flatnonzero(self.train_labels == cls)
            if not len(pool):
                raise ValueError(f"img2img: class {self.class_names[cls]!r} has no training images to start from")
            order = rng.permutation(pool)
            picked = order[np.arange(count) % len(order)]
            strengths = (rng.choice(STACKED_STRENGTHS, size=count) if cfg.augmentation == "stacked"
                         else np.full(count, cfg.strength))
            parts.append(self._vary(cls, picked, strengths, cfg, rng))
        if not parts:
            return Samples(np.zeros((0, h, w, c), np.uint8), np.zeros(0, np.int64), list(self.class_names), [])
        return Samples.concat(parts)

    def _vary(self, cls: int, picked: np.ndarray, strengths: np.ndarray, cfg: DAFusionConfig,
              rng: np.random.Generator) -> Samples:
        pipe = self.pipeline()
        prompt = self.class_prompt(cls, cfg.prompt)
        images = np.zeros((len(picked), *self.meta["image_shape"]), np.uint8)
        # One call per strength (the pipeline takes one), in batches of at most 8 images.
        for strength in np.unique(strengths):
            where = np.flatnonzero(strengths == strength)
            for start in range(0, len(where), 8):
                part = where[start:start + 8]
                source = (_to_model_input(self.train_images[picked[part]], cfg.resolution) + 1) / 2
                generator = torch.Generator().manual_seed(int(rng.integers(2 ** 63)))
                started = time.monotonic()
                output = pipe(prompt=[prompt] * len(part), image=source, strength=float(strength),
                              guidance_scale=cfg.guidance_scale, num_inference_steps=cfg.sample_steps,
                              generator=generator, output_type="np").images
                images[part] = _from_model_output(output, tuple(self.meta["image_shape"]))
                self._note_speed(len(part), time.monotonic() - started, pipe.device)
        names = self.meta.get("sources", [])
        provenance = [{"sampler": "dafusion-img2img", "source": names[i] if i < len(names) else f"index:{i}",
                       "strength": float(s), "guidance_scale": cfg.guidance_scale, "steps": cfg.sample_steps,
                       "denoising_steps": min(int(cfg.sample_steps * float(s)), cfg.sample_steps),
                       "token": " ".join(self.class_tokens(cls)), "prompt": prompt}
                      for i, s in zip(picked.tolist(), strengths.tolist())]
        return Samples(images, np.full(len(picked), cls, np.int64), list(self.class_names), provenance)

    def _note_speed(self, images: int, seconds: float, device: torch.device) -> None:
        """On a CPU, say once per call (after the first batch) how long the rest will take."""
        timing = self._timing
        timing["images"] += images
        timing["seconds"] += seconds
        left = timing["total"] - timing["images"]
        if device.type != "cuda" and not timing["warned"] and left > 0:
            timing["warned"] = True
            per_image = timing["seconds"] / timing["images"]
            warnings.warn(f"dafusion: no GPU, Stable Diffusion runs on the CPU at {per_image:.1f} s per image; the "
                          f"other {left} images take about {per_image * left / 60:.1f} more minutes", stacklevel=2)

    # -- persistence ---------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The learned token rows (classes x num_vectors, width) and the img2img source images."""
        return {"token_embeddings": self.token_embeddings.contiguous(),
                "train_images": torch.from_numpy(self.train_images), "train_labels": torch.from_numpy(self.train_labels)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the token rows and source images (the base model is read when sampling)."""
        self.token_embeddings = tensors["token_embeddings"].float()
        self.train_images = tensors["train_images"].numpy()
        self.train_labels = tensors["train_labels"].numpy().astype(np.int64)
        self._pipeline = None

    @classmethod
    def tiny_config(cls) -> DAFusionConfig:
        """A tiny random Stable Diffusion built offline from configs (``dafusion_tiny``), 32 px, 4 steps."""
        from .dafusion_tiny import tiny_stable_diffusion

        return DAFusionConfig(model_path=str(tiny_stable_diffusion()), resolution=32, steps=4, batch_size=2,
                              checkpoint_every=0, sample_steps=4, mixed_precision="no")

