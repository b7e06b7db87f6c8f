"""The evaluation harness: does synthetic data help, by how much, with which generator?

For every few-shot size n and seed: draw the few-shot subset from the training split, fit
each generator on that subset only (plus an unlabeled pool when a spec asks for one, reported
as such), sample, and train the same classifier with the same budget on every arm:

    real | real+classic | synthetic | real+synthetic | real+synthetic+classic

Every (dataset, n, seed, arm) cell is cached as JSON under ``cache_dir`` and skipped when
present, so a long benchmark resumes where it stopped and a partial run still reports. A cell
is reused only under the same identity (``identity.py``: validated configs with defaults, code
versions, data fingerprints); anything else recomputes it.

The budget rule: at a given n every arm trains the same classifier for ``classifier_steps``
steps on ``classifier_batch`` examples per step (drawn with replacement), the synthetic-only arm
and the table MLP included; each cell records what the training loop actually consumed
(``budget_used``). Arms that do not exist for the data (classic augmentation of table rows)
are refused.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

try:
    import fcntl
except ImportError:  # pragma: no cover -- not POSIX: pool fits run unlocked
    fcntl = None

from ..data.datasets import LabelledData, LabelledImages
from ..files import write_atomically
from ..filters import FilterReference, FilterStage, needs_reference, parse_filters, redraw_seed, \
    uses_generative_classifier
from ..generators.base import Samples, generator_kinds, get_generator_class
from ..generators.classic import ClassicConfig, build_augmentation
from ..hardware import cpu_description
from ..progress import RECOMPUTED_MARK, ProgressCallback, ProgressEvent
from ..training import remove_checkpoints
from .cell_cache import CellCache
from .classifiers import ClassifierChoice, resolve_classifier, train_and_predict, train_classifier
from .identity import (cell_identity, fit_identity, fitted_key, sample_key, sample_options, set_options,
                       validated_config)
from .sample_cache import load_samples, save_samples
from .image_classifier import ClassifierBudget
from .metrics import classification_metrics, encode_predictions

BASE_ARMS = ("real", "real+classic")
GENERATOR_ARMS = ("synthetic", "real+synthetic", "real+synthetic+classic")
ALL_ARMS = BASE_ARMS + GENERATOR_ARMS
# Classic augmentation transforms images; for table rows it does not exist.
TABLE_ARMS = ("real", "synthetic", "real+synthetic")


def default_arms(data: LabelledData) -> list[str]:
    """Every arm that exists for this kind of data."""
    return list(ALL_ARMS if isinstance(data, LabelledImages) else TABLE_ARMS)


class NearOODNegatives(BaseModel):
    """Near-OOD negatives for the ``supcon`` classifier (seed 000 ch. 3.1): drawn from the variant's
    fitted generator at settings that move a sample off its class (e.g. img2img at a higher
    strength, or across classes), they only enlarge the SupCon denominators of the anchors of
    their source class (or of every anchor); never anchors, never positives."""

    model_config = ConfigDict(extra="forbid")
    options: dict[str, Any] = Field(default_factory=dict, description="sample() options of the negatives, "
                                                                      "e.g. {'strength': 0.5}")
    per_class: int = Field(..., ge=1, description="negatives made from each class")
    cross_class: bool = Field(False, description="class A's images denoised toward the next class (the kind's "
                                                 "source_class option); their source is A")
    weight: float = Field(1.0, ge=0, description="weight of a negative in the denominators")
    to: Literal["source", "all"] = Field("source", description="whose denominators: the anchors of the "
                                                               "negative's source class, or every anchor")


class SampleVariant(BaseModel):
    """One way of sampling a trained generator: options, and how many samples."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field("default", description="name of this variant in the results")
    options: dict[str, Any] = Field(default_factory=dict, description="sample() options, e.g. sampler, alpha, filter")
    ratio: Optional[float] = Field(1.0, gt=0, description="synthetic:real ratio per class")
    per_class: Optional[int] = Field(None, ge=1, description="a fixed number per class (overrides ratio)")
    balance: bool = Field(False, description="as many synthetic as real examples in all, given to the smaller "
                                             "classes first so that real+synthetic is balanced (seed 001 'balance')")
    arms: Optional[list[str]] = Field(None, description="generator arms for this variant (default: the protocol's)")
    fill: Optional[Literal["mean", "largest"]] = Field(
        None, description="per sampled class, as many as it lacks to reach the mean (or largest) real count of "
                          "the classes the generator does not sample (all classes when it samples all): "
                          "'balance the small class'")
    replace_real: bool = Field(False, description="the generated examples replace the real ones of their classes "
                                                  "instead of joining them (seed 002's 'synthetic' arm)")
    filters: list[str] = Field(default_factory=list, description="post-sample filters ('confidence:0.6', "
                                                                 "'near-copy', fitted on the arm's real training "
                                                                 "images only; 'generative-classifier', the one the "
                                                                 "generator trained with; genaug.filters)")

    negatives: Optional[NearOODNegatives] = Field(None, description="near-OOD negatives from the same generator "
                                                                   "(supcon classifier only)")

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: list[str]) -> list[str]:
        return [str(spec) for spec in parse_filters(value)]

    def count(self, n_real_per_class: int) -> int:
        """Samples per class for a class with ``n_real_per_class`` real examples."""
        return self.per_class if self.per_class else max(1, int(round(self.ratio * n_real_per_class)))


class StoredModel(BaseModel):
    """A model from the registry, evaluated as it was trained (``evaluate(..., stored=...)``)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    id: str


class GeneratorSpec(BaseModel):
    """A generator arm: kind, config, sampling variants, and whether it may use an unlabeled pool."""

    model_config = ConfigDict(extra="forbid")
    label: str
    kind: str
    config: dict[str, Any] = Field(default_factory=dict)
    variants: list[SampleVariant] = Field(default_factory=lambda: [SampleVariant()])
    unlabeled_pool: bool = Field(False, description="also train on the training split's images without labels (mode single of vae, ddim, ddpm)")
    classes: Optional[list[str]] = Field(None, description="the classes the generator learns and samples (default: all)")
    augment_copies: int = Field(1, ge=1, le=100, description="the generator learns from its images plus this many "
                                                             "minus one classic-augmented copies (seed 002 scenario 3)")
    model: Optional[StoredModel] = Field(None, description="a stored model: sampled as trained, never refitted")


class Protocol(BaseModel):
    """What to run: shots, seeds, arms, the classifier budget, the classic preset."""

    model_config = ConfigDict(extra="forbid")
    shots: list[Optional[int]] = Field(default_factory=lambda: [None], description="n per class; None = the whole training split")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    arms: Optional[list[str]] = Field(None, description="arms to run; None = every arm that exists for the data "
                                                        "(no classic augmentation for tables)")
    classifier: Optional[str] = Field(None, description="cnn, lite0-linear, lite0-finetune, supcon (images); mlp, gbm "
                                                        "(tables); or module:function (yours). None = cnn / mlp")
    classifier_steps: int = Field(1500, ge=1, description="optimisation steps (boosting iterations for gbm), every arm")
    classifier_batch: int = Field(64, ge=1, description="examples per step, every arm (drawn with replacement)")
    classifier_lr: float = 1e-3
    ema_decay: float = 0.995
    real_fraction: Optional[float] = Field(0.5, description="share of real images in every mixed batch; None = uniform over the union")
    classic: ClassicConfig = Field(default_factory=lambda: ClassicConfig(preset="strong"))
    metric: Literal["weighted_f1", "accuracy", "macro_f1"] = "weighted_f1"
    shot_classes: Optional[list[str]] = Field(None, description="the classes n applies to; the others keep every "
                                                                "training example (default: every class)")
    score_unused: bool = Field(False, description="also score every cell on the training examples the few-shot "
                                                  "draw left out (seen by no generator and no classifier)")
    quality_samples: int = Field(0, ge=0, le=1000, description="images: score at most this many synthetic images "
                                                               "per class of every generator arm against the arm's "
                                                               "real training images (KID, PRDC, near-copies; "
                                                               "0 = off)")


def arm_name(base: str, spec: Optional[GeneratorSpec] = None, variant: Optional[SampleVariant] = None) -> str:
    """``real``, ``real+classic`` or e.g. ``real+synthetic[vae-single/noise]``."""
    return base if spec is None else f"{base}[{spec.label}/{variant.label}]"


class _Trainer:
    """Trains and scores the protocol's classifier on one arm's data, under the one budget."""

    def __init__(self, protocol: Protocol, classifier: ClassifierChoice, test: LabelledData,
                 ood: Optional[dict[str, LabelledImages]] = None):
        self.protocol, self.classifier, self.test = protocol, classifier, test
        self.ood = dict(ood or {})
        self.feature_cache: dict = {}  # frozen-backbone features of arrays seen before (the test set, real images)

    def run(self, real: LabelledData, synthetic: Optional[Samples], classic: bool, seed: int,
            unused: Optional[LabelledData] = None, negatives: Optional[dict] = None) -> dict:
        """One cell: train on ``real`` (+ ``synthetic``; + near-OOD ``negatives`` for supcon), score on
        the test split and, when given, on ``unused`` (training examples the few-shot draw left out);
        with OOD sets, also how well the classifier's scores tell the test split from each of them."""
        started = time.process_time()
        p = self.protocol
        scored = self.test if unused is None or len(unused) == 0 else _concat(self.test, unused)
        budget = ClassifierBudget(steps=p.classifier_steps, batch_size=p.classifier_batch, lr=p.classifier_lr,
                                  ema_decay=p.ema_decay)
        n_classes = len(real.class_names)
        ood = None
        if isinstance(real, LabelledImages) and (self.ood or negatives is not None):
            augment = build_augmentation(p.classic, real.images.shape[1]) if classic else None
            model, used = train_classifier(
                self.classifier, real.images, real.labels, n_classes, seed=seed, budget=budget,
                synthetic_x=None if synthetic is None else synthetic.data,
                synthetic_y=None if synthetic is None else synthetic.labels,
                augment=augment, real_fraction=p.real_fraction, feature_cache=self.feature_cache,
                negatives=negatives)
            y_pred = np.asarray(model(scored.images))
            if self.ood:
                # Mahalanobis and k-NN are fitted on the arm's real training images; an arm that has
                # none (every class replaced by generated images) uses the generated ones.
                reference = real if len(real) or synthetic is None else synthetic.to_dataset()
                ood = ood_scores(model, reference.images, reference.labels, self.test.images, self.ood)
        elif isinstance(real, LabelledImages):
            augment = build_augmentation(p.classic, real.images.shape[1]) if classic else None
            y_pred, used = train_and_predict(
                self.classifier, real.images, real.labels, n_classes, scored.images, seed=seed, budget=budget,
                synthetic_x=None if synthetic is None else synthetic.data,
                synthetic_y=None if synthetic is None else synthetic.labels,
                augment=augment, real_fraction=p.real_fraction, feature_cache=self.feature_cache)
        else:
            from .table_classifiers import encode_tables

            tables = [real, scored] + ([synthetic.to_dataset()] if synthetic is not None else [])
            matrices = encode_tables(*tables)
            y_pred, used = train_and_predict(
                self.classifier, matrices[0], real.labels, n_classes, matrices[1], seed=seed, budget=budget,
                synthetic_x=None if synthetic is None else matrices[2],
                synthetic_y=None if synthetic is None else synthetic.labels)
        y_pred, unused_pred = y_pred[:len(self.test)], y_pred[len(self.test):]
        cell = classification_metrics(self.test.labels, y_pred, self.test.class_names)
        cell["predictions"] = encode_predictions(y_pred)
        if unused is not None and len(unused):
            cell["unused"] = {"accuracy": float(np.mean(unused_pred == unused.labels)), "n": len(unused),
                              "counts": unused.counts()}
        if ood is not None:
            cell["ood"] = ood
        cell["classifier"] = self.classifier.name
        cell["budget_used"] = used
        cell["cpu_seconds"] = round(time.process_time() - started, 2)
        cell["cpu"] = cpu_description()  # another CPU can differ in the last digits (genaug.hardware)
        cell["n_train_real"] = len(real)
        cell["n_train_synthetic"] = 0 if synthetic is None else len(synthetic)
        return cell


def ood_scores(model, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
               ood: dict[str, LabelledImages]) -> dict:
    """Every OOD score's AUROC / FPR95 / AUPR of the test split (in-distribution) against each OOD set,
    from the trained classifier's logits and features; Mahalanobis and k-NN are fitted on the arm's
    real training images (``{"sets": {name: {score: metrics}}, "knn_k": k}``)."""
    from .ood import knn_neighbours, ood_report

    train_logits, train_features = model.outputs(train_images)
    del train_logits
    in_logits, in_features = model.outputs(test_images)
    k = knn_neighbours(len(train_images))
    sets = {}
    for name, data in ood.items():
        out_logits, out_features = model.outputs(data.images)
        sets[name] = ood_report(in_logits, in_features, out_logits, out_features, train_features,
                                np.asarray(train_labels), k=k)
    return {"sets": sets, "knn_k": k, "n_in": len(test_images), "n_out": {n: len(d) for n, d in ood.items()}}


def check_plan(train: LabelledData, test: LabelledData, generators: list[GeneratorSpec],
               protocol: Protocol, ood: Optional[dict[str, LabelledData]] = None) -> tuple[list[str], ClassifierChoice]:
    """Refuse, before any work, what cannot run: returns (arms, classifier).

    Unknown arms, classic augmentation of tables, an unknown classifier, an invalid generator
    config or sample option, a pool for a kind or mode that cannot use one, a generator kind
    for the other kind of data, near-OOD negatives without the supcon classifier, OOD sets
    that are not images of the training images' shape or a classifier without logits and features.
    """
    if train.class_names != test.class_names:
        raise ValueError("evaluate: training and test split have different class names")
    data_kind = "images" if isinstance(train, LabelledImages) else "table"
    arms = list(protocol.arms) if protocol.arms is not None else default_arms(train)
    unknown = set(arms) - set(ALL_ARMS)
    if unknown:
        raise ValueError(f"arms: unknown {sorted(unknown)}; choose from {', '.join(ALL_ARMS)}")
    variant_arms = {a for spec in generators for v in spec.variants for a in (v.arms or [])}
    if data_kind == "table":
        classic = sorted(a for a in set(arms) | variant_arms if "classic" in a)
        if classic:
            raise ValueError(f"arms: {', '.join(classic)} need(s) images: classic augmentation does not exist "
                             f"for table rows; use {', '.join(TABLE_ARMS)}")
    classifier = resolve_classifier(protocol.classifier, data_kind)
    _check_class_names("shot_classes", protocol.shot_classes, train.class_names)
    _check_ood_sets(ood, train, classifier)
    for spec in generators:  # fail before hours of work, not after
        _check_class_names(f"generator '{spec.label}': classes", spec.classes, train.class_names)
        if protocol.score_unused and spec.unlabeled_pool:
            raise ValueError(f"generator '{spec.label}': score_unused scores on training images a pool-trained "
                             "generator has seen; use one or the other")
        if spec.augment_copies > 1 and data_kind == "table":
            raise ValueError(f"generator '{spec.label}': augment_copies needs images (no classic augmentation "
                             "for table rows)")
        if spec.model is not None and (spec.unlabeled_pool or spec.augment_copies > 1 or spec.classes):
            raise ValueError(f"generator '{spec.label}': a stored model is sampled as trained; unlabeled_pool, "
                             "augment_copies and classes apply to fitting")
        cls = get_generator_class(spec.kind)
        if cls.data_kind != data_kind:
            raise ValueError(f"generator '{spec.label}': kind '{spec.kind}' trains on {cls.data_kind}, "
                             f"this data is {data_kind}")
        config = validated_config(spec)
        if spec.unlabeled_pool and config.get("mode") not in cls.uses_unlabeled_pool:
            able = [f"{kind} (mode {', '.join(k.uses_unlabeled_pool)})" for kind, k in sorted(generator_kinds().items())
                    if k.uses_unlabeled_pool]
            raise ValueError(f"generator '{spec.label}': an unlabeled pool needs a kind that can vary your "
                             f"labelled images after learning from unlabeled ones: {', '.join(able)}")
        for variant in spec.variants:
            sample_options(spec, variant)
            if data_kind == "table" and needs_reference(variant.filters):
                raise ValueError(f"generator '{spec.label}' variant '{variant.label}': filters confidence and "
                                 "near-copy judge images, not table rows (generative-classifier judges rows)")
            # (a stored model's spec carries the config it was trained with)
            if uses_generative_classifier(variant.filters) and config.get("generative_classifier") is not True:
                raise ValueError(f"generator '{spec.label}' variant '{variant.label}': the generative-classifier "
                                 f"filter needs a model trained with it (set generative_classifier=true)")
            bad = sorted(set(variant.arms or []) - set(GENERATOR_ARMS))
            if bad:
                raise ValueError(f"generator '{spec.label}' variant '{variant.label}': arms {bad} are not "
                                 f"generator arms ({', '.join(GENERATOR_ARMS)})")
            _check_precision(spec, variant)
            if variant.negatives is not None:
                _check_negatives(spec, variant, classifier, data_kind)
                if len(train.class_names) > NEGATIVE_SEED_OFFSET:
                    raise ValueError(f"generator '{spec.label}' variant '{variant.label}': negatives: at most "
                                     f"{NEGATIVE_SEED_OFFSET} classes (the negatives' seed stream)")
    return arms, classifier


def negatives_variant(spec: GeneratorSpec, variant: SampleVariant) -> SampleVariant:
    """The variant's near-OOD negatives as a sample variant of their own (their options, their count)."""
    negatives = variant.negatives
    return SampleVariant(label=f"{variant.label}/negatives", options=dict(negatives.options),
                         per_class=negatives.per_class)


def _check_precision(spec: GeneratorSpec, variant: SampleVariant) -> None:
    """A cell's identity names the precision it asked for; where bf16 would fall back to fp32, the
    cell would hold fp32 numbers under a bf16 identity (and another machine would reuse them)."""
    asked = [v.options.get("precision") for v in (variant, variant.negatives) if v is not None]
    if "bf16" in asked:
        import torch

        from ..generators.diffusion_sampling import bf16_supported

        if not bf16_supported(torch.device("cpu")) and not torch.cuda.is_available():
            raise ValueError(f"generator '{spec.label}' variant '{variant.label}': options.precision: bf16 is not "
                             "native on this machine; sampling would fall back to fp32 under a bf16 cell identity")


def _check_negatives(spec: GeneratorSpec, variant: SampleVariant, classifier: ClassifierChoice,
                     data_kind: str) -> None:
    where = f"generator '{spec.label}' variant '{variant.label}': negatives"
    if classifier.name != "supcon":
        raise ValueError(f"{where}: near-OOD negatives enter the SupCon loss; they need --classifier supcon "
                         f"(this run trains {classifier.name})")
    if data_kind != "images":
        raise ValueError(f"{where}: near-OOD negatives need images")
    sample_options(spec, negatives_variant(spec, variant))  # unknown option names refused here
    if len(spec.classes or []) > NEGATIVE_SEED_OFFSET:
        raise ValueError(f"{where}: at most {NEGATIVE_SEED_OFFSET} classes (the negatives' seed stream)")
    if variant.negatives.cross_class:
        if spec.classes is not None and len(spec.classes) < 2:
            raise ValueError(f"{where}: cross_class needs a generator of at least two classes, '{spec.label}' "
                             f"learns {spec.classes}")
        if "source_class" not in get_generator_class(spec.kind).sample_options():
            raise ValueError(f"{where}: cross_class needs a kind that denoises one class's images toward another "
                             f"(a source_class sample option); {spec.kind} has none")
        if variant.negatives.options.get("source_class") is not None:
            raise ValueError(f"{where}: cross_class sets source_class itself; leave it out of the options")
        if spec.unlabeled_pool:
            raise ValueError(f"{where}: cross_class needs a class-conditional model, not a pool-trained one")


def _check_ood_sets(ood: Optional[dict[str, LabelledData]], train: LabelledData,
                    classifier: ClassifierChoice) -> None:
    if not ood:
        return
    if not isinstance(train, LabelledImages):
        raise ValueError("ood: OOD detection is measured on images only")
    if classifier.user_fn is not None or classifier.data_kind != "images":
        raise ValueError(f"ood: the OOD scores read a classifier's logits and features; classifier "
                         f"{classifier.name} does not give them (use cnn, supcon, lite0-linear or lite0-finetune)")
    for name, data in ood.items():
        if not name or not isinstance(data, LabelledImages) or len(data) == 0:
            raise ValueError(f"ood: set '{name}' must be a non-empty set of images")
        if data.images.shape[1:] != train.images.shape[1:]:
            raise ValueError(f"ood: set '{name}' has images of shape {data.images.shape[1:]}, the training "
                             f"images are {train.images.shape[1:]}; resize them first")


def _check_class_names(field: str, names: Optional[list[str]], class_names: list[str]) -> None:
    if names is None:
        return
    unknown = [c for c in names if c not in class_names]
    if unknown or not names:
        raise ValueError(f"{field}: {unknown or 'empty'} not among the classes {class_names}")


def _concat(first: LabelledData, second: LabelledData) -> LabelledData:
    if isinstance(first, LabelledImages):
        return first.concat(second)
    import pandas as pd

    from ..data.datasets import LabelledTable

    return LabelledTable(pd.concat([first.frame, second.frame], ignore_index=True),
                         np.concatenate([first.labels, second.labels]), list(first.class_names),
                         first.sources + second.sources)


def draw_training_set(train: LabelledData, n: Optional[int], seed: int,
                      shot_classes: Optional[list[str]] = None) -> tuple[LabelledData, LabelledData]:
    """(the few-shot training set, the training examples left out): ``n`` per class drawn by
    ``seed`` from the classes in ``shot_classes`` (default: every class), every example of the
    others. ``n=None``: the whole training split, nothing left out."""
    if n is None:
        return train, train.subset([])
    if n < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n}")
    _check_class_names("shot_classes", shot_classes, train.class_names)
    if shot_classes is None:
        chosen = _few_shot_indices(train, n, seed)
    else:
        shot = [train.class_names.index(c) for c in shot_classes]
        others = np.flatnonzero(~np.isin(train.labels, shot))
        chosen = np.sort(np.concatenate([others, _few_shot_indices(train, n, seed, set(shot))]))
    left_out = np.setdiff1d(np.arange(len(train)), chosen)
    return train.subset(chosen), train.subset(left_out)


def _few_shot_indices(train: LabelledData, n: int, seed: int, classes: Optional[set[int]] = None) -> np.ndarray:
    """The indices ``few_shot_subset`` draws (the same rng walk), optionally for some classes only."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(train.class_names)):
        idx = np.flatnonzero(train.labels == label)
        picked = rng.permutation(idx)[:n]
        if classes is None or label in classes:
            chosen.extend(picked)
    return np.sort(np.asarray(chosen, np.int64))


def evaluate(train: LabelledData, test: LabelledData, generators: list[GeneratorSpec], protocol: Protocol, *,
             dataset_name: str = "data", cache_dir: Optional[Path] = None,
             progress: Optional[ProgressCallback] = None, keep_samples: bool = True,
             cached_only: bool = False, stored: Optional[dict[str, Any]] = None,
             ood: Optional[dict[str, LabelledImages]] = None) -> dict:
    """Run every (n, seed, arm) cell and return ``{"cells": [...], "samples": {...}, ...}``.

    ``train`` is the training split (few-shot subsets and unlabeled pools come from it);
    ``test`` is the fixed test split and reaches nothing but the final scoring.
    Summaries, tables and plots: ``genaug.evaluate.report``.

    ``cached_only``: compute nothing, report the cells already in the cache (a partial report
    of a benchmark that is still running or was stopped). The result's ``not_cached`` then says
    how many cells were left out, and how many of those are cached under another identity (other
    settings or version, lite0-linear features at another precision) or without the quality
    numbers asked for, with the first few named.

    ``stored``: fitted generators by spec label, for specs with a ``model`` (a registry model
    evaluated as trained; ``genaug.api.evaluate_model`` loads it and checks the test split
    does not overlap its training data).

    ``ood``: named sets of images none of the classes describe (near-OOD: classes held out of the
    same dataset; far-OOD: another dataset), images of the training images' shape; every cell
    then also reports how well the classifier's scores (max softmax, energy, Mahalanobis, k-NN)
    tell the test split from each set (``ood_scores``). They reach no generator and no training.
    """
    arms, classifier = check_plan(train, test, generators, protocol, ood)
    stored = dict(stored or {})
    for spec in generators:
        if spec.model is not None:
            if spec.label not in stored:
                raise ValueError(f"generator '{spec.label}': stored model {spec.model.name} was not passed in `stored`")
            names = list(getattr(stored[spec.label], "class_names", None) or train.class_names)
            if names != list(train.class_names):
                raise ValueError(f"model {spec.model.name}: its classes {names} differ from the data's "
                                 f"{list(train.class_names)}")
    train_fp, test_fp = train.fingerprint(), test.fingerprint()
    cache = CellCache(cache_dir, dataset_name)
    trainer = _Trainer(protocol, classifier, test, ood)
    ood_fps = None if not ood else {name: data.fingerprint() for name, data in ood.items()}
    gen_arms = [a for a in arms if a in GENERATOR_ARMS]
    plan = [(n, seed) for n in protocol.shots for seed in protocol.seeds]
    total = len(plan) * (sum(a in arms for a in BASE_ARMS)
                         + sum(1 for s in generators for v in s.variants for a in gen_arms
                               if v.arms is None or a in v.arms))
    done, cells, samples_for_grid, shared = 0, [], {}, {}
    skipped: list[tuple] = []  # cached_only: (n, seed, arm, cached under another identity or without quality numbers?)
    started = time.monotonic()
    computed = 0

    def report(message: str) -> None:
        if progress is not None:
            elapsed = time.monotonic() - started
            # The ETA counts computed cells only: cached ones cost nothing and would make it lie.
            eta = None if computed == 0 else elapsed / computed * (total - done)
            progress(ProgressEvent("evaluate", done, total, message=message,
                                   eta_seconds=None if eta is None else round(eta, 1)))

    base_identity = cell_identity(protocol, classifier, train_fp, test_fp, ood=ood_fps)
    for n, seed in plan:
        real, left_out = draw_training_set(train, n, seed, protocol.shot_classes)
        real_fp = real.fingerprint()
        unused = left_out if protocol.score_unused else None
        for base in BASE_ARMS:
            if base not in arms:
                continue
            cell = cache.get(n, seed, base, base_identity)
            if cell is None and cached_only:
                skipped.append((n, seed, base, cache.why_not_reused(n, seed, base, base_identity) is not None))
                continue
            if cell is None:
                report(f"n={n} seed={seed} {base}{_recomputed_note(cache, n, seed, base, base_identity)}")
                cell = trainer.run(real, None, base == "real+classic", seed, unused)
                cache.put(n, seed, base, cell, base_identity)
                computed += 1
            cells.append({"n": n, "seed": seed, "arm": base, **cell})
            done += 1
        for spec in generators:
            spec_arms = [(arm_name(base, spec, v), base, v) for v in spec.variants for base in gen_arms
                         if v.arms is None or base in v.arms]
            identities = {name: cell_identity(protocol, classifier, train_fp, test_fp, spec, v, ood=ood_fps)
                          for name, _, v in spec_arms}
            cached = {name: cache.get(n, seed, name, identities[name]) for name, _, _ in spec_arms}
            if protocol.quality_samples:  # a cell cached without these quality numbers is computed again
                cached = {name: cell if cell is None or cell.get("quality_samples") == protocol.quality_samples
                          else None for name, cell in cached.items()}
            generator, drawn = None, {}  # one fit per (spec, n, seed); one draw per variant
            fit_seconds = 0.0
            fit_id = fit_classic = fit_key = None
            if spec.model is None:
                fit_id = fit_identity(spec, train_fp)
                # classic augmentation reaches the fit only through augmented copies
                fit_classic = protocol.classic.model_dump(mode="json") if spec.augment_copies > 1 else None
                fit_key = fitted_key(fit_id, "unlabeled pool" if spec.unlabeled_pool else real_fp, seed,
                                     fit_classic)

            def fitted_generator(arm: str):
                """The spec's generator for this (n, seed): fitted (or loaded) on first need only, by
                the cell of ``arm``, whose recompute note (if any) the fit's progress line carries:
                a fit can take long, and the user should not wait through it to learn why."""
                nonlocal generator, fit_seconds
                if generator is None and spec.model is not None:
                    generator, fit_seconds = stored[spec.label], 0.0
                elif generator is None:
                    note = _recomputed_note(cache, n, seed, arm, identities[arm], protocol.quality_samples)
                    report(f"n={n} seed={seed} fit {spec.label}" + (f" (for {arm}{note})" if note else ""))
                    work = cache.work_dir(spec, fit_id, n, seed)
                    if spec.unlabeled_pool:  # learns the whole training split: no few-shot subset in its key
                        fitted, pool = None, cache.pool_dir(spec, fit_id, seed, fit_classic)
                    else:
                        fitted, pool = cache.fitted_dir(spec, fit_key), None
                    generator, fit_seconds = _fit(
                        spec, real, train, seed, shared, work, protocol.classic, fitted, pool,
                        waiting=lambda: report(f"n={n} seed={seed} waiting for another run's fit of "
                                               f"{spec.label} (same cache)"))
                return generator

            for name, base, variant in spec_arms:
                cell = cached[name]
                if cell is None and cached_only:  # held elsewhere, or here without the quality numbers asked for
                    skipped.append((n, seed, name, cache.why_not_reused(
                        n, seed, name, identities[name], protocol.quality_samples) is not None))
                    continue
                if cell is None:
                    if variant.label not in drawn:
                        sampled = _sampled_classes(spec, real)
                        counts = _counts(real, variant, sampled)
                        # A draw is kept (sample_cache) unless filters judge it or a stored model makes it.
                        keep = None
                        if isinstance(real, LabelledImages) and not variant.filters and spec.model is None:
                            keep = cache.samples_path(spec, sample_key(
                                fit_key, real_fp, set_options(get_generator_class(spec.kind), variant.options),
                                counts, seed))
                        loaded = load_samples(keep, list(real.class_names), counts)
                        if loaded is not None:
                            samples, draw_fit_seconds = loaded
                        else:
                            samples = _sample(fitted_generator(name), counts, variant, seed, spec, real,
                                              trainer.feature_cache)
                            draw_fit_seconds = fit_seconds
                            save_samples(keep, samples, draw_fit_seconds)
                        quality = arm_quality(real, samples, protocol.quality_samples, seed,
                                              trainer.feature_cache) \
                            if protocol.quality_samples else None
                        negatives = None
                        if variant.negatives is not None:
                            negatives = _sample_negatives(fitted_generator(name), spec, variant, real, sampled, seed)
                            if protocol.quality_samples:  # how near is "near": the card against their source classes
                                negatives["quality"] = arm_quality(real, negatives["samples"], protocol.quality_samples,
                                                                   seed, trainer.feature_cache)
                        drawn[variant.label] = (counts, samples, quality, negatives, draw_fit_seconds)
                    counts, samples, quality, negatives, draw_fit_seconds = drawn[variant.label]
                    if keep_samples:
                        samples_for_grid.setdefault(f"{spec.label}/{variant.label}", (samples, real))
                    report(f"n={n} seed={seed} {name}"
                           f"{_recomputed_note(cache, n, seed, name, identities[name], protocol.quality_samples)}")
                    train_negatives = None if negatives is None else negatives["train"]
                    if base == "synthetic":
                        cell = trainer.run(samples.to_dataset(), None, False, seed, unused, train_negatives)
                    else:
                        kept = real
                        if variant.replace_real:  # the generated examples stand in for their classes' real ones
                            kept = real.subset(np.flatnonzero(~np.isin(real.labels, list(counts))))
                        cell = trainer.run(kept, samples, base.endswith("+classic"), seed, unused, train_negatives)
                    if negatives is not None:
                        cell["negatives"] = {"per_class": {int(c): int(k) for c, k in negatives["counts"].items()},
                                             "weight": variant.negatives.weight, "to": variant.negatives.to,
                                             "cross_class": variant.negatives.cross_class,
                                             **({"quality": negatives.get("quality")} if protocol.quality_samples
                                                else {})}
                    cell.update({"generator": spec.label, "variant": variant.label, "kind": spec.kind,
                                 "generator_fit_cpu_seconds": draw_fit_seconds,
                                 "filter_stats": samples.stats, "filters": list(variant.filters),
                                 **({"quality": quality, "quality_samples": protocol.quality_samples}
                                    if protocol.quality_samples else {}),
                                 # what the classifier got: a filter may leave a class short of the plan
                                 "samples_per_class": {int(c): int((samples.labels == c).sum()) for c in counts},
                                 "planned_per_class": {int(c): int(k) for c, k in counts.items()},
                                 "replace_real": variant.replace_real,
                                 "model": None if spec.model is None else spec.model.name,
                                 "unlabeled_pool": len(train) if spec.unlabeled_pool else 0})
                    cache.put(n, seed, name, cell, identities[name])
                    computed += 1
                cells.append({"n": n, "seed": seed, "arm": name, **cell})
                done += 1
    report("done")
    return {"dataset": dataset_name, "protocol": protocol.model_dump(mode="json"), "arms": arms,
            "data_kind": "images" if isinstance(train, LabelledImages) else "table",
            "classifier": {"name": classifier.name, "version": classifier.version,
                           "description": classifier.description},
            "generators": [g.model_dump(mode="json") for g in generators],
            "class_names": list(train.class_names), "n_test": len(test),
            "test_labels": np.asarray(test.labels).tolist(),
            "fingerprints": {"train": train_fp, "test": test_fp}, "cells": cells,
            "samples": samples_for_grid, **({"not_cached": _not_cached(skipped)} if cached_only else {})}


def _not_cached(skipped: list[tuple]) -> dict:
    """What a ``cached_only`` run left out: counts, and the first few cells by name."""
    other = [s for s in skipped if s[3]]
    return {"cells": len(skipped), "under_other_identity": len(other),
            "first": [f"n={n} seed={seed} {arm}" for n, seed, arm, _ in (other or skipped)[:5]]}


def not_cached_sentence(result: dict) -> Optional[str]:
    """One line for a partial (``cached_only``) report: how many cells are missing and why; None
    when nothing is."""
    missing = result.get("not_cached") or {}
    if not missing.get("cells"):
        return None
    sentence = f"{missing['cells']} cell(s) of this plan are not in the cache and were left out"
    if missing["under_other_identity"]:
        sentence += (f"; {missing['under_other_identity']} of them are cached under other settings (another "
                     "genaug version, generator or classifier config, or without the quality numbers asked for")
        if (result.get("classifier") or {}).get("name") == "lite0-linear":
            precision = "bf16" if (result["classifier"].get("version") or "").endswith("-bf16") else "fp32"
            sentence += (f"; or lite0-linear features at another precision: this run's is {precision}, "
                         "GENAUG_LITE0_PRECISION=fp32 or bf16 chooses it")
        sentence += ")"
    return sentence + f" -- e.g. {', '.join(missing['first'])}."


def _sampled_classes(spec: GeneratorSpec, real: LabelledData) -> list[int]:
    """Class indices the spec's generator samples: its ``classes``, else every class present."""
    present = [c for c, k in enumerate(np.bincount(real.labels, minlength=len(real.class_names))) if k > 0]
    if spec.classes is None:
        return present
    return [c for c in present if real.class_names[c] in spec.classes]


def _counts(real: LabelledData, variant: SampleVariant, sampled: list[int]) -> dict[int, int]:
    """Synthetic samples per class index for this variant (only the classes in ``sampled``)."""
    per_class = np.bincount(real.labels, minlength=len(real.class_names))
    present = {c: int(per_class[c]) for c in sampled}
    if variant.fill is not None:
        others = [int(k) for c, k in enumerate(per_class) if k > 0 and c not in present] or list(present.values())
        target = float(np.mean(others)) if variant.fill == "mean" else float(max(others))
        return {c: max(0, int(round(target - k))) for c, k in present.items()}
    if variant.balance:
        total = sum(present.values())
        target = 2 * total / len(present)
        deficit = {c: max(0.0, target - k) for c, k in present.items()}
        if sum(deficit.values()) > 0:
            return {c: int(round(total * d / sum(deficit.values()))) for c, d in deficit.items()}
    return {c: variant.count(k) for c, k in present.items()}


def _generator_data(spec: GeneratorSpec, data: LabelledData, classic: ClassicConfig, seed: int) -> LabelledData:
    """What the spec's generator learns from: ``data`` restricted to its classes (relabelled in
    the spec's order) and expanded by ``augment_copies``."""
    if spec.classes is not None:
        index = [data.class_names.index(c) for c in spec.classes]
        keep = np.flatnonzero(np.isin(data.labels, index))
        part = data.subset(keep)
        labels = np.array([index.index(int(y)) for y in part.labels], np.int64)
        if isinstance(part, LabelledImages):
            data = LabelledImages(part.images, labels, list(spec.classes), part.sources)
        else:
            from ..data.datasets import LabelledTable

            data = LabelledTable(part.frame, labels, list(spec.classes), part.sources)
    if spec.augment_copies > 1:
        data = _augmented_copies(data, spec.augment_copies, classic, seed)
    return data


def _augmented_copies(data: LabelledImages, times: int, classic: ClassicConfig, seed: int) -> LabelledImages:
    """Every image plus ``times - 1`` classic-augmented copies (seeded)."""
    import torch

    from ..generators.images import images_to_tensor, tensor_to_images

    augment = build_augmentation(classic, data.images.shape[1])
    x = images_to_tensor(data.images)
    with torch.random.fork_rng():  # the caller's global RNG stays untouched
        torch.manual_seed(seed)
        parts = [data.images] + [tensor_to_images(augment(x)) for _ in range(times - 1)]
    return LabelledImages(np.concatenate(parts), np.tile(data.labels, times), list(data.class_names),
                          [f"{s}#aug{k}" for k in range(times) for s in data.sources])


# The progress note's words for each of ``CellCache.why_not_reused``'s answers.
_NOT_REUSED = {
    "no quality numbers": "its cached cell lacks the quality numbers asked for",
    "unreadable": "its cached file cannot be read",
    "other settings": "a cached cell of other settings (e.g. another version, budget, data, classifier or "
                      "lite0 precision) is not reused",
}


def _recomputed_note(cache: CellCache, n, seed, arm: str, identity: str, quality_samples: int = 0) -> str:
    """What a progress line adds after the cell it starts when that cell is cached but cannot be
    reused (``CellCache.why_not_reused``): restored or earlier cells of other settings (a bf16
    report's lite0-linear cells read on a CPU that computes fp32, another budget or version), a cell
    without the quality numbers asked for, an unreadable file. The user learns it as the cell
    starts, not from the finished report. Empty when nothing of the kind is cached."""
    why = cache.why_not_reused(n, seed, arm, identity, quality_samples)
    return "" if why is None else f"{RECOMPUTED_MARK}{_NOT_REUSED[why]}"


FIT_RECORD = "fit.json"


def _fit(spec: GeneratorSpec, real: LabelledData, train: LabelledData, seed: int, shared: dict,
         work_dir: Optional[Path] = None, classic: Optional[ClassicConfig] = None,
         fitted_dir: Optional[Path] = None, pool_dir: Optional[Path] = None,
         waiting: Optional[Callable[[], None]] = None):
    """Fit the spec's generator on the few-shot subset; a pool-trained generator is fitted once per
    seed on the whole training split, labels unused (mode 'single'), so its weights depend
    neither on n nor on which n ran first; it then varies the n labelled examples.

    ``work_dir``: where the fit keeps its checkpoints, so a killed benchmark resumes a long
    fit where it stopped instead of starting it again. ``fitted_dir``: where a finished few-shot
    fit is kept (``CellCache.fitted_dir``); a later run that needs the same fit (another
    classifier, new variants) loads it instead of training again, with the original CPU seconds.
    ``pool_dir``: the checkpoint folder of a pool-trained fit (``CellCache.pool_dir``); its final
    checkpoint is kept, so any later run with the same pool fit resumes it at its last step; a run
    that finds another process training it waits for that fit (``waiting`` is told) and loads it."""
    cls = get_generator_class(spec.kind)
    if fitted_dir is not None and (fitted_dir / FIT_RECORD).exists():
        try:
            record = json.loads((fitted_dir / FIT_RECORD).read_text())
            return cls.load(fitted_dir), float(record["cpu_seconds"])
        except Exception:  # noqa: BLE001 -- a damaged or outdated kept fit is refitted, never fatal
            import shutil

            shutil.rmtree(fitted_dir, ignore_errors=True)
    config = {**spec.config}
    if "seed" in cls.Config.model_fields:
        config["seed"] = seed
    classic = classic or ClassicConfig(preset="strong")
    started = time.process_time()
    if spec.unlabeled_pool:
        key = (spec.label, seed)
        if key not in shared:
            generator = cls(config)
            # The pool fit depends neither on n nor on the classifier: one folder per seed, found
            # again from any n and any run; its final checkpoint is kept, so it is loaded, not refitted.
            with _pool_fit_lock(pool_dir, waiting):
                started = time.process_time()  # the wait for another run's fit is not this fit's cost
                generator.fit(_generator_data(spec, train, classic, seed), checkpoints=pool_dir)
                shared[key] = (generator, _pool_fit_seconds(generator, pool_dir, time.process_time() - started))
        generator, seconds = shared[key]
        generator.use_examples(_generator_data(spec, real, classic, seed))
        return generator, round(seconds, 2)
    generator = cls(config).fit(_generator_data(spec, real, classic, seed), checkpoints=work_dir)
    remove_checkpoints(work_dir)  # the fit is done; its loss history and grids stay
    seconds = round(time.process_time() - started, 2)
    if fitted_dir is not None:
        _keep_fit(generator, fitted_dir, seconds)
    return generator, seconds


@contextlib.contextmanager
def _pool_fit_lock(pool_dir: Optional[Path], waiting: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Hold ``<pool_dir>.lock`` while a pool fit trains or loads: two runs sharing a cache root (the
    benchmarks run one script per core, one dataset name per classifier) would otherwise train the
    same fit into one checkpoint folder at once, each resuming from the other's checkpoints. The
    second run waits (``waiting`` is called once, when it has to) and then loads the finished fit.
    An advisory ``flock``: released by the kernel when its holder dies, so a killed run never
    leaves the fit locked. Where there is no lock to be had (not POSIX, a file system that refuses
    ``flock``, a lock file that cannot be created) the fit runs unlocked, as it did before."""
    if pool_dir is None or fcntl is None:
        yield
        return
    try:
        pool_dir.parent.mkdir(parents=True, exist_ok=True)
        # read-only is enough for flock, so a cache shared by several users locks as well
        handle = os.open(pool_dir.parent / f"{pool_dir.name}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        locked = True
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # e.g. ENOLCK, EOPNOTSUPP: this file system has no flock
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _pool_fit_seconds(generator, pool_dir: Optional[Path], seconds: float) -> float:
    """The CPU seconds of a pool fit, for its cells: the process that trained it records them beside
    its checkpoint, and every later run, which only loads the finished fit, reads them back -- so a
    cell reports what the fit cost, not what loading it did. A record, once there, is replaced only
    by a fit trained from its first step. (A fit resumed after a kill records the last process's
    seconds only; one kept by an earlier version, without a record, reports the load time, all
    that is known.)"""
    if pool_dir is None:
        return seconds
    record = pool_dir / FIT_RECORD
    runs = list(generator.meta.get("training", {}).values())
    trained = any(run.get("resumed_from", 0) < run.get("steps_done", 0) for run in runs)
    from_scratch = bool(runs) and all(run.get("resumed_from", 0) == 0 for run in runs)
    if trained and (from_scratch or not record.exists()):
        text = json.dumps({"cpu_seconds": round(seconds, 2)})
        write_atomically(record, lambda tmp: tmp.write_text(text))
        return seconds
    try:
        return float(json.loads(record.read_text())["cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return seconds


def _keep_fit(generator, fitted_dir: Path, seconds: float) -> None:
    """Save a finished fit atomically: written into a folder of this process's own, record last,
    then renamed into place. A killed save is never loaded; when two runs finish the same fit at
    once, the first rename wins and the other copy is discarded (both are the same fit)."""
    import shutil
    import tempfile

    fitted_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=fitted_dir.parent, prefix=f"{fitted_dir.name}.tmp-"))
    try:
        generator.save(tmp)
        (tmp / FIT_RECORD).write_text(json.dumps({"cpu_seconds": seconds}))
        if not (fitted_dir / FIT_RECORD).exists():
            shutil.rmtree(fitted_dir, ignore_errors=True)  # a torn folder without its record
            tmp.rename(fitted_dir)
    except OSError:
        pass  # another run put the same fit in place first; keeping it is not this run's job
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sample(generator, counts: dict[int, int], variant: SampleVariant, seed: int, spec: GeneratorSpec,
            real: LabelledData, feature_cache: Optional[dict] = None) -> Samples:
    """Draw ``counts`` (class index of the data -> number); a generator fitted on some classes
    only is asked by its own label index, and the labels are mapped back."""
    own = (lambda c: c) if spec.classes is None else (lambda c: spec.classes.index(real.class_names[c]))
    stage = None
    if variant.filters:
        reference = None
        if needs_reference(variant.filters):
            if not isinstance(real, LabelledImages):
                raise ValueError(f"generator '{spec.label}' variant '{variant.label}': filters confidence and "
                                 "near-copy judge images, not tables (generative-classifier judges rows)")
            # Fitted on the arm's own real training images: never the test split.
            reference = FilterReference.from_images(real.images, real.labels, list(real.class_names), per_class=None,
                                                    cache=feature_cache)
        try:
            stage = FilterStage(variant.filters, reference, list(real.class_names), seed=seed, generator=generator)
        except ValueError as error:
            raise ValueError(f"generator '{spec.label}' variant '{variant.label}': {error}") from None
    parts = []
    for cls, count in counts.items():
        if count <= 0:
            continue
        if stage is None:
            part = generator.sample(count, label=own(cls), seed=seed * 1000 + cls, **variant.options)
        else:
            part = stage.draw(lambda k, r, c=cls: _relabelled(generator.sample(
                k, label=own(c), seed=redraw_seed(seed * 1000 + c, r), **variant.options), c, real), count,
                real.class_names[cls])
            if part is None:
                continue
        parts.append(Samples(part.data, np.full(len(part), cls, np.int64), list(real.class_names),
                             part.provenance, part.stats))
    if not parts:  # e.g. fill with nothing to fill: an empty draw of the right shape
        empty = generator.sample(1, label=own(next(iter(counts))), seed=seed, **variant.options) if counts else None
        if empty is None:
            raise ValueError("evaluate: no class to sample")
        result = Samples(empty.data[:0], np.zeros(0, np.int64), list(real.class_names))
    else:
        result = Samples.concat(parts)
    if stage is not None:
        result.stats = {**result.stats, "filter_stage": stage.summary()}
    return result


def _relabelled(part: Samples, cls: int, real: LabelledData) -> Samples:
    """A generator's draw labelled with the data's class index (the filters judge by it)."""
    return Samples(part.data, np.full(len(part), cls, np.int64), list(real.class_names), part.provenance, part.stats)


# Negatives draw from a seed stream of their own (offset from the positives' seed * 1000 + class);
# at most this many classes. Changing it, or the cross-class rule (class c's images toward the next
# sampled class), changes what a negatives cell computes: bump NEGATIVES_VERSION (identity.py).
NEGATIVE_SEED_OFFSET = 500
NEGATIVES_VERSION = 1


def _sample_negatives(generator, spec: GeneratorSpec, variant: SampleVariant, real: LabelledImages,
                      sampled: list[int], seed: int) -> dict:
    """The variant's near-OOD negatives: ``per_class`` made from each sampled class c -- with its
    options, or with ``cross_class`` c's images denoised toward the next sampled class. Labelled
    by their source class c (the SupCon loss keeps them out of every anchor and positive)."""
    negatives = variant.negatives
    own = (lambda c: c) if spec.classes is None else (lambda c: spec.classes.index(real.class_names[c]))
    parts, counts = [], {}
    for i, cls in enumerate(sampled):
        options = dict(negatives.options)
        target = cls
        if negatives.cross_class:
            if len(sampled) < 2:
                raise ValueError(f"generator '{spec.label}' variant '{variant.label}': cross_class negatives need "
                                 "at least two classes")
            target = sampled[(i + 1) % len(sampled)]
            options["source_class"] = own(cls)
        part = generator.sample(negatives.per_class, label=own(target),
                                seed=seed * 1000 + NEGATIVE_SEED_OFFSET + cls, **options)
        parts.append(Samples(part.data, np.full(len(part), cls, np.int64), list(real.class_names),
                             part.provenance, part.stats))
        counts[cls] = len(part)
    samples = Samples.concat(parts)
    return {"samples": samples, "counts": counts,
            "train": {"images": np.asarray(samples.data), "sources": samples.labels, "weight": negatives.weight,
                      "to": negatives.to}}


def arm_quality(real: LabelledData, samples: Samples, per_class: int, seed: int,
                feature_cache: Optional[dict] = None) -> Optional[dict[str, Any]]:
    """KID, precision / recall / density / coverage and the near-copy share of at most ``per_class``
    synthetic images per class against the arm's real training images (Lite0 features, through
    the runner's ``feature_cache``); None for tables."""
    from ..quality.reference import subset_per_class
    from ..quality import image_features, score_features

    if not isinstance(real, LabelledImages) or len(samples) == 0:
        return None
    keep = subset_per_class(samples.labels, len(real.class_names), per_class, seed)
    card = score_features(image_features(real.images, "lite0", cache=feature_cache), real.labels,
                          image_features(np.asarray(samples.data)[keep], "lite0"), samples.labels[keep],
                          list(real.class_names), space="lite0", reference="the arm's real training images")
    overall = card["overall"]
    out = {"samples": overall["samples"], "references": overall["references"],
           "near_copy_share": overall["near_copy_share"]["value"]}
    if "kid" in overall:
        out["kid"] = overall["kid"]["mean"]
    for key in ("precision", "recall", "density", "coverage"):
        if key in overall:
            out[key] = overall[key]
    if "inception_score" in overall:
        out["inception_score"] = overall["inception_score"]["mean"]
    return out
