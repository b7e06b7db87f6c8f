"""The evaluation harness: does synthetic data help, by how much, with which generator?

For every few-shot size n and seed: draw the few-shot subset from the training split, fit
each generator on that subset only (plus an unlabeled pool when a spec asks for one, reported
as such), sample, and train the same classifier with the same budget on every arm:

    real | real+classic | synthetic | real+synthetic | real+synthetic+classic

Every (dataset, n, seed, arm) cell is cached as JSON under ``cache_dir`` and skipped when
present, so a long benchmark resumes where it stopped and a partial run still reports.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..data.datasets import LabelledData, LabelledImages
from ..data.splits import few_shot_subset
from ..generators.base import Samples, get_generator_class
from ..generators.classic import ClassicConfig, build_augmentation
from ..progress import ProgressCallback, ProgressEvent
from ..training import remove_checkpoints
from .image_classifier import CLASSIFIER_VERSION, ClassifierBudget, predict_images, train_image_classifier
from .metrics import classification_metrics

BASE_ARMS = ("real", "real+classic")
GENERATOR_ARMS = ("synthetic", "real+synthetic", "real+synthetic+classic")


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

    def count(self, n_real_per_class: int) -> int:
        """Samples per class for a class with ``n_real_per_class`` real examples."""
        return self.per_class if self.per_class else max(1, int(round(self.ratio * n_real_per_class)))


class GeneratorSpec(BaseModel):
    """A generator arm: kind, config, sampling variants, and whether it may use an unlabeled pool."""

    model_config = ConfigDict(extra="forbid")
    label: str
    kind: str
    config: dict[str, Any] = Field(default_factory=dict)
    variants: list[SampleVariant] = Field(default_factory=lambda: [SampleVariant()])
    unlabeled_pool: bool = Field(False, description="also train on the training split's images without labels (mode single of vae, ddim, ddpm)")


class Protocol(BaseModel):
    """What to run: shots, seeds, arms, the classifier budget, the classic preset."""

    model_config = ConfigDict(extra="forbid")
    shots: list[Optional[int]] = Field(default_factory=lambda: [None], description="n per class; None = the whole training split")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = Field(default_factory=lambda: list(BASE_ARMS + GENERATOR_ARMS))
    classifier_steps: int = Field(1500, ge=1)
    classifier_batch: int = Field(64, ge=1, description="capped at the number of real training examples")
    classifier_lr: float = 1e-3
    ema_decay: float = 0.995
    real_fraction: Optional[float] = Field(0.5, description="share of real images in every mixed batch; None = uniform over the union")
    classic: ClassicConfig = Field(default_factory=lambda: ClassicConfig(preset="strong"))
    table_classifier: str = Field("mlp", description="mlp or gbm (tables)")
    metric: str = "weighted_f1"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)


def arm_name(base: str, spec: Optional[GeneratorSpec] = None, variant: Optional[SampleVariant] = None) -> str:
    """``real``, ``real+classic`` or e.g. ``real+synthetic[vae-single/noise]``."""
    return base if spec is None else f"{base}[{spec.label}/{variant.label}]"


class CellCache:
    """One JSON file per (dataset, n, seed, arm); a missing directory means no caching."""

    def __init__(self, directory: Optional[Path], dataset: str):
        self.directory = None if directory is None else Path(directory) / _slug(dataset)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, n, seed, arm) -> Optional[Path]:
        if self.directory is None:
            return None
        return self.directory / f"n={n if n is not None else 'all'}" / f"seed={seed}" / f"{_slug(arm)}.json"

    def work_dir(self, spec: GeneratorSpec, identity: str, n, seed) -> Optional[Path]:
        """Checkpoint folder of one generator fit (None without a cache)."""
        if self.directory is None:
            return None
        return self.directory / "work" / f"{_slug(spec.label)}-{identity}" / f"n={n if n is not None else 'all'}-seed={seed}"

    def get(self, n, seed, arm, identity: str) -> Optional[dict]:
        """The cached cell, or None -- also when it was computed under other settings."""
        path = self._path(n, seed, arm)
        if path is None or not path.exists():
            return None
        cell = json.loads(path.read_text())
        return cell if cell.get("identity") == identity else None

    def restore(self, cell: dict) -> bool:
        """Put back a cell kept elsewhere (a committed results file: ``{"n", "seed", "arm", ...,
        "identity"}``) unless that cell is cached already; True when it was written. Its identity
        travels with it, so ``get`` still refuses it under other settings."""
        path = self._path(cell["n"], cell["seed"], cell["arm"])
        if path is None or path.exists() or "identity" not in cell:
            return False
        body = {k: v for k, v in cell.items() if k not in ("n", "seed", "arm", "identity")}
        self.put(cell["n"], cell["seed"], cell["arm"], body, cell["identity"])
        return True

    def put(self, n, seed, arm, cell: dict, identity: str) -> None:
        """Write a cell atomically (a killed run never leaves a half-written cell)."""
        path = self._path(n, seed, arm)
        if path is None:
            return
        cell["identity"] = identity
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cell, indent=1))
        tmp.replace(path)


def _identity(protocol: Protocol, spec: Optional[GeneratorSpec] = None,
              variant: Optional[SampleVariant] = None) -> str:
    """Hash of everything that decides a cell's value except n, seed and arm name: a cached
    cell computed under other settings is recomputed, never silently reused."""
    # Fields left at their defaults are left out, so adding a new option (with a default that
    # keeps the old behaviour) does not invalidate hours of cached cells.
    relevant = protocol.model_dump(mode="json", exclude={"shots", "seeds", "arms"}, exclude_defaults=True)
    relevant["classifier_version"] = CLASSIFIER_VERSION
    if spec is not None:
        relevant["spec"] = spec.model_dump(mode="json", exclude={"variants"}, exclude_defaults=True)
        relevant["variant"] = variant.model_dump(mode="json", exclude_defaults=True)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


class _Trainer:
    """Trains and scores the protocol's classifier on one arm's data."""

    def __init__(self, protocol: Protocol, test: LabelledData):
        self.protocol, self.test = protocol, test

    def run(self, real: LabelledData, synthetic: Optional[Samples], classic: bool, seed: int) -> dict:
        started = time.process_time()
        if isinstance(real, LabelledImages):
            y_pred = self._images(real, synthetic, classic, seed)
        else:
            y_pred = self._table(real, synthetic, seed)
        cell = classification_metrics(self.test.labels, y_pred, self.test.class_names)
        cell["cpu_seconds"] = round(time.process_time() - started, 2)
        cell["n_train_real"] = len(real)
        cell["n_train_synthetic"] = 0 if synthetic is None else len(synthetic)
        return cell

    def _images(self, real: LabelledImages, synthetic, classic: bool, seed: int) -> np.ndarray:
        p = self.protocol
        budget = ClassifierBudget(steps=p.classifier_steps, batch_size=min(p.classifier_batch, len(real)),
                                  lr=p.classifier_lr, ema_decay=p.ema_decay)
        augment = build_augmentation(p.classic, real.images.shape[1]) if classic else None
        # A real-only arm must not be starved: the real share applies only when there is synthetic data.
        model = train_image_classifier(
            real.images, real.labels, len(real.class_names), seed=seed, budget=budget,
            synthetic=None if synthetic is None else synthetic.data,
            synthetic_labels=None if synthetic is None else synthetic.labels,
            augment=augment, real_fraction=p.real_fraction)
        return predict_images(model, self.test.images)

    def _table(self, real, synthetic, seed: int) -> np.ndarray:
        from .table_classifiers import encode_tables, train_table_classifier

        p = self.protocol
        tables = [real, self.test] + ([synthetic.to_dataset()] if synthetic is not None else [])
        matrices = encode_tables(*tables)
        x_train, y_train = matrices[0], real.labels
        if synthetic is not None:
            x_train = np.concatenate([x_train, matrices[2]])
            y_train = np.concatenate([y_train, synthetic.labels])
        predict = train_table_classifier(p.table_classifier, x_train, y_train, len(real.class_names), seed,
                                         p.classifier_steps)
        return np.asarray(predict(matrices[1]))


def evaluate(train: LabelledData, test: LabelledData, generators: list[GeneratorSpec], protocol: Protocol, *,
             dataset_name: str = "data", cache_dir: Optional[Path] = None,
             progress: Optional[ProgressCallback] = None, keep_samples: bool = True,
             cached_only: bool = False) -> dict:
    """Run every (n, seed, arm) cell and return ``{"cells": [...], "samples": {...}, ...}``.

    ``train`` is the training split (few-shot subsets and unlabeled pools come from it);
    ``test`` is the fixed test split and reaches nothing but the final scoring.
    Summaries, tables and plots: ``genaug.evaluate.report``.

    ``cached_only``: compute nothing, report the cells already in the cache (a partial report
    of a benchmark that is still running or was stopped).
    """
    if train.class_names != test.class_names:
        raise ValueError("evaluate: training and test split have different class names")
    unknown = set(protocol.arms) - set(BASE_ARMS + GENERATOR_ARMS)
    if unknown:
        raise ValueError(f"arms: unknown {sorted(unknown)}; choose from {BASE_ARMS + GENERATOR_ARMS}")
    for spec in generators:  # fail before hours of work, not after
        cls = get_generator_class(spec.kind)
        if spec.unlabeled_pool and not hasattr(cls, "use_examples"):
            raise ValueError(f"generator '{spec.label}': kind '{spec.kind}' cannot learn from an unlabeled pool")
    cache = CellCache(cache_dir, dataset_name)
    trainer = _Trainer(protocol, test)
    gen_arms = [a for a in protocol.arms if a in GENERATOR_ARMS]
    plan = [(n, seed) for n in protocol.shots for seed in protocol.seeds]
    total = len(plan) * (sum(a in protocol.arms for a in BASE_ARMS)
                         + sum(1 for s in generators for v in s.variants for a in gen_arms
                               if v.arms is None or a in v.arms))
    done, cells, samples_for_grid, shared = 0, [], {}, {}

    def report(message: str) -> None:
        if progress is not None:
            progress(ProgressEvent("evaluate", done, total, message=message))

    for n, seed in plan:
        real = train if n is None else few_shot_subset(train, n, seed)
        for base in BASE_ARMS:
            if base not in protocol.arms:
                continue
            identity = _identity(protocol)
            cell = cache.get(n, seed, base, identity)
            if cell is None and cached_only:
                continue
            if cell is None:
                report(f"n={n} seed={seed} {base}")
                cell = trainer.run(real, None, base == "real+classic", seed)
                cache.put(n, seed, base, cell, identity)
            cells.append({"n": n, "seed": seed, "arm": base, **cell})
            done += 1
        for spec in generators:
            arms = [(arm_name(base, spec, v), base, v) for v in spec.variants for base in gen_arms
                    if v.arms is None or base in v.arms]
            cached = {name: cache.get(n, seed, name, _identity(protocol, spec, v)) for name, _, v in arms}
            generator, drawn = None, {}  # one fit per (spec, n, seed); one draw per variant
            for name, base, variant in arms:
                cell = cached[name]
                if cell is None and cached_only:
                    continue
                if cell is None:
                    if generator is None:
                        report(f"n={n} seed={seed} fit {spec.label}")
                        work = cache.work_dir(spec, _identity(protocol, spec, spec.variants[0]), n, seed)
                        generator, fit_seconds = _fit(spec, real, train, seed, shared, work)
                    if variant.label not in drawn:
                        counts = _counts(real, variant)
                        drawn[variant.label] = (counts, _sample(generator, counts, variant, seed))
                    counts, samples = drawn[variant.label]
                    if keep_samples:
                        samples_for_grid.setdefault(f"{spec.label}/{variant.label}", (samples, real))
                    report(f"n={n} seed={seed} {name}")
                    if base == "synthetic":
                        cell = trainer.run(samples.to_dataset(), None, False, seed)
                    else:
                        cell = trainer.run(real, samples, base.endswith("+classic"), seed)
                    cell.update({"generator": spec.label, "variant": variant.label, "kind": spec.kind,
                                 "generator_fit_cpu_seconds": fit_seconds,
                                 "filter_stats": samples.stats, "samples_per_class": counts,
                                 "unlabeled_pool": len(train) if spec.unlabeled_pool else 0})
                    cache.put(n, seed, name, cell, _identity(protocol, spec, variant))
                cells.append({"n": n, "seed": seed, "arm": name, **cell})
                done += 1
    report("done")
    return {"dataset": dataset_name, "protocol": protocol.model_dump(mode="json"),
            "generators": [g.model_dump(mode="json") for g in generators],
            "class_names": list(train.class_names), "n_test": len(test), "cells": cells,
            "samples": samples_for_grid}


def _counts(real: LabelledData, variant: SampleVariant) -> dict[int, int]:
    """Synthetic samples per class index for this variant."""
    per_class = np.bincount(real.labels, minlength=len(real.class_names))
    present = {c: int(k) for c, k in enumerate(per_class) if k > 0}
    if variant.balance:
        total = sum(present.values())
        target = 2 * total / len(present)
        deficit = {c: max(0.0, target - k) for c, k in present.items()}
        if sum(deficit.values()) > 0:
            return {c: int(round(total * d / sum(deficit.values()))) for c, d in deficit.items()}
    return {c: variant.count(k) for c, k in present.items()}


def _fit(spec: GeneratorSpec, real: LabelledData, train: LabelledData, seed: int, shared: dict,
         work_dir: Optional[Path] = None):
    """Fit the spec's generator on the few-shot subset; a pool-trained generator is fitted once per
    seed (its weights do not depend on n: the pool is the whole training split, labels unused).

    ``work_dir``: where the fit keeps its checkpoints, so a killed benchmark resumes a long
    fit where it stopped instead of starting it again."""
    cls = get_generator_class(spec.kind)
    config = {**spec.config}
    if "seed" in cls.Config.model_fields:
        config["seed"] = seed
    started = time.process_time()
    if spec.unlabeled_pool:
        key = (spec.label, seed)
        if key not in shared:
            generator = cls(config)
            # The pool fit does not depend on n: one folder per seed, found again from any n.
            pool_dir = None if work_dir is None else work_dir.parent / f"pool-seed={seed}"
            # Its final checkpoint is kept: a restarted benchmark loads it instead of refitting.
            generator.fit(real, unlabeled=train.images, checkpoints=pool_dir)
            shared[key] = (generator, time.process_time() - started)
        generator, seconds = shared[key]
        generator.use_examples(real)
        return generator, round(seconds, 2)
    generator = cls(config).fit(real, checkpoints=work_dir)
    remove_checkpoints(work_dir)  # the fit is done; its loss history and grids stay
    return generator, round(time.process_time() - started, 2)


def _sample(generator, counts: dict[int, int], variant: SampleVariant, seed: int) -> Samples:
    parts = [generator.sample(count, label=cls, seed=seed * 1000 + cls, **variant.options)
             for cls, count in counts.items() if count > 0]
    return Samples.concat(parts)
