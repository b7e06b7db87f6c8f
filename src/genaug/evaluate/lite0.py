"""Pretrained EfficientNet-Lite0 (ImageNet) as the downstream classifier: a linear probe and a fine-tune.

``lite0-linear``: the backbone is frozen; features are computed once per image array (cached by
content) and a linear head is trained on them. ``lite0-finetune``: the whole network plus a new
head is trained. Both follow the CNN's budget rule (``image_classifier.py``): ``budget.steps``
steps of exactly ``budget.batch_size`` examples drawn by ``batch_indices``, Adam with a cosine
schedule, an EMA of the weights as the evaluated model, ``ledger.record`` per step.

The backbone, its input policy and the feature cache: ``genaug.pretrained.lite0``.
"""
from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..generators.images import images_to_tensor
from ..pretrained.lite0 import (
    LITE0_FEATURE_DIM,
    Lite0Backbone,
    classifier_precision,
    lite0_autocast,
    lite0_features,
    load_lite0_backbone,
)
from .image_classifier import ClassifierBudget, TrainedClassifier, TrainingLedger, batch_indices, module_classifier

# Fine-tuning: a small rate for the pretrained backbone, a larger one for the new head (used
# instead of budget.lr; the usual transfer-learning choice, not tuned here).
LITE0_FINETUNE_BACKBONE_LR = 1e-4
LITE0_FINETUNE_HEAD_LR = 1e-3
LITE0_FINETUNE_DROPOUT = 0.2

def _training_data(real, real_labels, synthetic, synthetic_labels):
    real = np.asarray(real)
    y = np.asarray(real_labels, dtype=np.int64)
    n_syn = 0 if synthetic is None else len(synthetic)
    if n_syn:
        y = np.concatenate([y, np.asarray(synthetic_labels, dtype=np.int64)])
    if len(real) + n_syn == 0:
        raise ValueError("classifier: no training images")
    return real, n_syn, torch.from_numpy(y)


def _gather_images(real: np.ndarray, synthetic: Optional[np.ndarray], idx: np.ndarray) -> torch.Tensor:
    """Float [0, 1] NCHW batch for indices into [real..., synthetic...] (grayscale stays 1 channel)."""
    is_real = idx < len(real)
    if is_real.all():
        return images_to_tensor(real[idx])
    synthetic = np.asarray(synthetic)
    if synthetic.shape[1:] != real.shape[1:]:
        raise ValueError(f"lite0: real images are {real.shape[1:]}, synthetic ones {synthetic.shape[1:]}")
    batch = np.empty((len(idx),) + real.shape[1:], real.dtype)
    batch[is_real] = real[idx[is_real]]
    batch[~is_real] = synthetic[idx[~is_real] - len(real)]
    return images_to_tensor(batch)


def _ema_update(ema: nn.Module, model: nn.Module, step: int, ema_decay: float) -> None:
    with torch.no_grad():
        # Same warm-up as the CNN: a short EMA horizon early on.
        decay = min(ema_decay, (1 + step) / (10 + step))
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def train_lite0_linear(real: np.ndarray, real_labels: np.ndarray, n_classes: int, *, seed: int,
                       budget: ClassifierBudget, synthetic: Optional[np.ndarray] = None,
                       synthetic_labels: Optional[np.ndarray] = None, augment: Optional[nn.Module] = None,
                       real_fraction: Optional[float] = 0.5, ledger: Optional[TrainingLedger] = None,
                       feature_cache: Optional[dict] = None, precision: Optional[str] = None) -> TrainedClassifier:
    """A linear head on frozen EfficientNet-Lite0 features, trained for ``budget.steps`` steps of
    ``budget.batch_size`` examples (Adam at ``budget.lr``, cosine schedule, EMA head).

    Without ``augment`` the features of the real and synthetic arrays are computed once (through
    ``feature_cache`` when given) and batches index into them; with it every batch is augmented
    and its features computed on the fly. Returns a ``TrainedClassifier`` (call it to predict;
    ``outputs`` gives logits and Lite0 features; test features also go through ``feature_cache``)."""
    real, n_syn, y = _training_data(real, real_labels, synthetic, synthetic_labels)
    n_real = len(real)
    # Loaded before seeding: building the network draws from torch's RNG on the first load only.
    backbone = load_lite0_backbone(classifier="lite0-linear")
    # Training, augmented and test features all at one precision (the classifier version names it;
    # None: this machine's, ``classifier_precision``).
    precision = precision or classifier_precision()
    features = None
    if augment is None:
        parts = [lite0_features(real, cache=feature_cache, precision=precision)]
        if n_syn:
            parts.append(lite0_features(synthetic, cache=feature_cache, precision=precision))
        features = torch.from_numpy(np.concatenate(parts))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = nn.Linear(LITE0_FEATURE_DIM, n_classes)
    ema = copy.deepcopy(head)
    optimiser = torch.optim.Adam(head.parameters(), lr=budget.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, budget.steps)
    for step in range(budget.steps):
        idx = batch_indices(rng, n_real, n_syn, budget.batch_size, real_fraction)
        if features is not None:
            fb = features[torch.from_numpy(idx)]
        else:
            with torch.no_grad():
                images = augment(_gather_images(real, synthetic, idx)).clamp(0, 1)
                with lite0_autocast(precision):
                    fb = backbone(images).float()
        yb = y[torch.from_numpy(idx)]
        loss = F.cross_entropy(head(fb), yb)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if ledger is not None:
            ledger.record(len(yb))
        _ema_update(ema, head, step, budget.ema_decay)
    ema.eval()

    def outputs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = lite0_features(np.asarray(images), cache=feature_cache, precision=precision)
        with torch.inference_mode():
            return ema(torch.from_numpy(features)).numpy(), features
    return TrainedClassifier(outputs)


class _Lite0Classifier(nn.Module):
    def __init__(self, backbone: Lite0Backbone, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(LITE0_FINETUNE_DROPOUT)
        self.head = nn.Linear(LITE0_FEATURE_DIM, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(x)))

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits, backbone features): the OOD scores read both."""
        features = self.backbone(x)
        return self.head(self.dropout(features)), features


def train_lite0_finetune(real: np.ndarray, real_labels: np.ndarray, n_classes: int, *, seed: int,
                         budget: ClassifierBudget, synthetic: Optional[np.ndarray] = None,
                         synthetic_labels: Optional[np.ndarray] = None, augment: Optional[nn.Module] = None,
                         real_fraction: Optional[float] = 0.5, ledger: Optional[TrainingLedger] = None,
                         feature_cache: Optional[dict] = None) -> TrainedClassifier:
    """EfficientNet-Lite0 (a copy of the pretrained backbone) plus a new head, all trained for
    ``budget.steps`` steps of ``budget.batch_size`` examples: Adam at ``LITE0_FINETUNE_BACKBONE_LR``
    (backbone) and ``LITE0_FINETUNE_HEAD_LR`` (head), cosine schedule, BatchNorm in train mode,
    EMA of all weights (BatchNorm statistics copied). ``feature_cache`` is accepted for a common
    signature and not used. Returns a ``TrainedClassifier`` (eval mode; call it to predict)."""
    del feature_cache
    real, n_syn, y = _training_data(real, real_labels, synthetic, synthetic_labels)
    n_real = len(real)
    # Loaded before seeding: building the network draws from torch's RNG on the first load only.
    backbone = copy.deepcopy(load_lite0_backbone(classifier="lite0-finetune")).requires_grad_(True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = _Lite0Classifier(backbone, n_classes)
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    optimiser = torch.optim.Adam([
        {"params": model.backbone.parameters(), "lr": LITE0_FINETUNE_BACKBONE_LR},
        {"params": model.head.parameters(), "lr": LITE0_FINETUNE_HEAD_LR}])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, budget.steps)
    model.train()
    for step in range(budget.steps):
        idx = batch_indices(rng, n_real, n_syn, budget.batch_size, real_fraction)
        xb, yb = _gather_images(real, synthetic, idx), y[torch.from_numpy(idx)]
        if augment is not None:
            with torch.no_grad():
                xb = augment(xb).clamp(0, 1)
        loss = F.cross_entropy(model(xb), yb)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if ledger is not None:
            ledger.record(len(yb))
        _ema_update(ema, model, step, budget.ema_decay)
    ema.eval()

    return module_classifier(ema, batch=64)
