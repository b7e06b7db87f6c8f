"""A tiny random Stable Diffusion, built offline from configs: what the ``dafusion`` kind's tests and
``tiny_config()`` run on (no real weights exist on this machine, and nothing may be downloaded).

UNet2DConditionModel with (32, 64) channels, AutoencoderKL with (32, 64), a CLIP text encoder of
width 32 and a byte-level CLIP tokenizer whose vocabulary is the 256 byte symbols (plus a few merges,
so that "the" -- DA-Fusion's initializer -- is one token). Saved with ``save_pretrained`` as a
regular diffusers folder, once per process and seed.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .base import seeded_torch

TINY_VERSION = "1"
# Merges that make a few words single tokens (the rest is spelled byte by byte).
_MERGES = [("t", "h"), ("th", "e</w>"), ("o", "f</w>")]
MAX_LENGTH = 77  # Stable Diffusion's prompt length


def _byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE uses for the bytes 0-255 (GPT-2's mapping: printable
    Latin-1 bytes stand for themselves, the others are shifted above 255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def tiny_tokenizer():
    """A CLIP tokenizer over the byte symbols, with end-of-word forms, a few merges and CLIP's specials."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for symbol in symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in _MERGES] + \
            ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(symbol, len(vocab))
    # transformers 5: vocab and merges as objects (the vocab_file= form silently gives 2 tokens).
    return CLIPTokenizer(vocab=vocab, merges=list(_MERGES), model_max_length=MAX_LENGTH)


def build_tiny_stable_diffusion(folder: Path, seed: int = 0) -> Path:
    """Write a tiny random Stable Diffusion (diffusers format) into ``folder``; returns it."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_tokenizer()
    with seeded_torch(seed):
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
            num_hidden_layers=2, max_position_embeddings=MAX_LENGTH, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
        unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=16,
                                    in_channels=4, out_channels=4, cross_attention_dim=32, attention_head_dim=8,
                                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
        vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=32)
    # Stable Diffusion's training schedule.
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, clip_sample=False, steps_offset=1)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + "-", dir=folder.parent))
    pipe.save_pretrained(staging, safe_serialization=True)
    try:
        staging.rename(folder)  # atomic: another process sees a complete folder or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / "model_index.json").is_file():
            raise
    return folder


def tiny_stable_diffusion(seed: int = 0) -> Path:
    """The tiny model's folder for this process (built on first use, in the temp folder)."""
    folder = Path(tempfile.gettempdir()) / f"genaug-tiny-sd-v{TINY_VERSION}-s{seed}-{os.getpid()}"
    if not (folder / "model_index.json").is_file():
        build_tiny_stable_diffusion(folder, seed)
        atexit.register(shutil.rmtree, folder, True)  # this process made it: it cleans it up
    return folder
