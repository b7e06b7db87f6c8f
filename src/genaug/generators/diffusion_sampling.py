"""The denoising loop of the diffusion generators, plus upscaling of the finished images.

Written in the style of diffusers' ``pipelines/ddpm/pipeline_ddpm.py`` but with what the
pipelines do not combine: class labels, classifier-free guidance, img2img from our own
training images, DDIM or DDPM on the same trained UNet, and one seeded ``torch.Generator``
threaded through every random draw so that a seed always gives the same images.
"""
from __future__ import annotations

import contextlib
import inspect
import warnings
from typing import Optional

import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                       UNet2DModel, UniPCMultistepScheduler)
from diffusers.utils.torch_utils import randn_tensor

# The solvers a trained UNet can sample with (all from diffusers, all on the training noise
# schedule): name -> (scheduler class, settings over the training scheduler's config).
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
    # DPM-Solver++ (Lu et al. 2022), second-order multistep: DDIM-50 quality in ~10-20 steps.
    "dpm++2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    # The same with Karras et al.'s (2022) sigma spacing: more steps at low noise.
    "dpm++2m-karras": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                     "use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),  # UniPC (Zhao et al. 2023), predictor-corrector multistep
    # Euler on the probability-flow ODE (Karras et al. 2022); it has no x0 clipping, so a weakly
    # trained model's images can saturate with it (the solver table in throughput.md shows it).
    "euler": (EulerDiscreteScheduler, {}),
}


def sampling_scheduler(name: str, train_scheduler: DDPMScheduler, steps: int):
    """A fresh scheduler of solver ``name`` with the training noise schedule, set to ``steps`` steps.

    Fresh per call: ``set_timesteps`` mutates a scheduler, and a shared one would make a
    sample depend on what was sampled before.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler: '{name}' is not one of {', '.join(SCHEDULERS)}")
    total = int(train_scheduler.config.num_train_timesteps)
    if not 1 <= steps <= total:
        raise ValueError(f"steps: must lie in [1, {total}] (the model was trained with {total} timesteps), got {steps}")
    cls, settings = SCHEDULERS[name]
    settings = dict(settings)
    if train_scheduler.config.get("clip_sample") and "thresholding" in inspect.signature(cls.__init__).parameters:
        # DDIM and DDPM clip each step's x0 prediction to the data range (clip_sample); the multistep
        # solvers do the same through thresholding at that range. Without it a weakly trained UNet's
        # x0 predictions run off the range and nearly every pixel saturates (measured on the flowers
        # DDIM: 99.96 % of pixels at 0 or 255 with DPM-Solver++, 1.7 % with thresholding).
        settings.update(thresholding=True, sample_max_value=float(train_scheduler.config.get("clip_sample_range", 1.0)))
    scheduler = cls.from_config(train_scheduler.config, **settings)
    scheduler.set_timesteps(steps)
    return scheduler


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 arithmetic is fast here: a CUDA device that has it, or a CPU whose oneDNN has
    native bf16 kernels (AVX-512 BF16 / AMX); elsewhere bf16 would be emulated, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a sampling run uses: ``bf16`` only where ``bf16_supported``, else ``fp32``
    (with a warning: the request is honoured as far as the hardware allows, never silently slower)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision: '{precision}' is not one of fp32, bf16")
    if precision == "bf16" and not bf16_supported(device):
        warnings.warn(f"precision: bf16 is not supported natively on this {device.type}; sampling in fp32",
                      RuntimeWarning, stacklevel=2)
        return "fp32"
    return precision


def img2img_timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The tail of the schedule img2img runs: the last ``max(1, int(steps * strength))`` timesteps.

    As in diffusers' img2img pipelines (``init_timestep = int(steps * strength)``, start at
    ``timesteps[steps - init_timestep]``), except that at least one step always runs, so a
    tiny strength gives a subtle variation rather than an error.
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength: must lie in (0, 1] (1 = a new image from pure noise, small = a subtle "
                         f"variation of a training image), got {strength}")
    init_timestep = min(max(int(steps * strength), 1), steps)
    return scheduler.timesteps[steps - init_timestep:]


@torch.inference_mode()  # cheaper than no_grad: no version counters on the loop's tensors
def denoise(unet: UNet2DModel, scheduler, *, batch: int, generator: torch.Generator,
            class_labels: Optional[torch.Tensor] = None, null_label: Optional[int] = None,
            guidance_scale: float = 1.0, eta: float = 0.0, init: Optional[torch.Tensor] = None,
            timesteps: Optional[torch.Tensor] = None, precision: str = "fp32",
            channels_last: bool = False) -> torch.Tensor:
    """Run the reverse diffusion for ``batch`` images; returns them in [-1, 1] (N, C, H, W).

    ``precision="bf16"``: the UNet runs under bf16 autocast (its output is cast back to fp32, so the
    solver's arithmetic stays fp32); use ``resolve_precision`` first. ``channels_last``: the UNet's
    input in channels-last memory format (faster convolutions with oneDNN).

    ``init`` (img2img): clean images in [-1, 1] that are noised to ``timesteps[0]`` first;
    without it the loop starts from pure noise over all of ``scheduler.timesteps``.
    ``guidance_scale`` != 1 (class-conditional UNets only) applies classifier-free guidance
    against ``null_label``.
    """
    parameter = next(unet.parameters())
    device, dtype = parameter.device, parameter.dtype
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    shape = (batch, unet.config.in_channels, height, width)
    timesteps = scheduler.timesteps if timesteps is None else timesteps
    guided = class_labels is not None and guidance_scale != 1.0
    if guided and null_label is None:
        raise ValueError("guidance_scale: classifier-free guidance needs a class-conditional model")
    accepted = inspect.signature(scheduler.step).parameters
    # Every random draw of a step comes from the seeded generator (UniPC's step draws none).
    step_kwargs = {"generator": generator} if "generator" in accepted else {}
    if isinstance(scheduler, DDIMScheduler):
        step_kwargs["eta"] = eta
    if hasattr(scheduler, "set_begin_index"):
        # Multistep solvers keep a step index: img2img starts it where its tail of the schedule begins.
        scheduler.set_begin_index(len(scheduler.timesteps) - len(timesteps))

    # 1. start: Gaussian noise, or (img2img) the source images noised to the first timestep.
    #    The noise is drawn on the generator's device (the CPU) so a seed gives the same
    #    starting point on every machine.
    noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    if init is None:
        image = noise * scheduler.init_noise_sigma
    else:
        start = timesteps[:1].repeat(batch).to(device)
        image = scheduler.add_noise(init.to(device, dtype), noise, start)

    if class_labels is not None:
        class_labels = class_labels.to(device)
        if guided:
            # One forward pass over [conditional; unconditional] instead of two.
            class_labels = torch.cat([class_labels, torch.full_like(class_labels, null_label)])

    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    for t in timesteps:
        # 2. predict the noise (epsilon), with classifier-free guidance when asked:
        #    eps = eps_uncond + g * (eps_cond - eps_uncond)
        model_input = torch.cat([image, image]) if guided else image
        model_input = scheduler.scale_model_input(model_input, t)
        t_batch = t.to(device).repeat(model_input.shape[0])
        if channels_last:
            model_input = model_input.contiguous(memory_format=torch.channels_last)
        with autocast:
            eps = unet(model_input, t_batch, class_labels=class_labels).sample
        eps = eps.to(dtype).contiguous()
        if guided:
            eps_cond, eps_uncond = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)

        # 3. compute the previous image: x_t -> x_t-1 (DDPM and DDIM with eta > 0 draw noise
        #    from the same generator, so the run stays reproducible).
        image = scheduler.step(eps, t, image, **step_kwargs).prev_sample

    # 4. the model works in [-1, 1]
    return image.clamp(-1, 1)


def upscale_images(images: np.ndarray, factor: int, method: str = "bicubic") -> np.ndarray:
    """uint8 NHWC images enlarged ``factor`` times (bicubic or Lanczos, per image with Pillow)."""
    if factor == 1 or len(images) == 0:
        return images
    from PIL import Image

    filters = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    if method not in filters:
        raise ValueError(f"upscale_method: '{method}' is not one of {', '.join(filters)}")
    n, h, w, c = images.shape
    out = np.empty((n, h * factor, w * factor, c), np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if c == 1 else image)
        big = np.asarray(pil.resize((w * factor, h * factor), filters[method]))
        out[i] = big[..., None] if c == 1 else big
    return out
