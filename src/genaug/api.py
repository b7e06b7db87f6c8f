"""The library's public calls: train a generator into the registry, list / load / delete
models, and generate a synthetic dataset from one.

The CLI, the REST service and the job workers call only these functions, so every rule
(name reuse, config validation, atomic artifacts, manifests) holds the same everywhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import pydantic

from .data.datasets import LabelledData, LabelledImages, LabelledTable, image_fingerprints
from .filters import MAX_ROUNDS as MAX_FILTER_ROUNDS
from .filters import REFERENCE_FILE, FilterReference, FilterStage, default_filters, needs_reference, parse_filters, \
    redraw_seed
from .generators import base as generator_base
from .generators.base import Generator, GeneratorConfig, get_generator_class
from .interrupts import ShutdownRequested
from .progress import ProgressCallback, ProgressReporter
from .quality.generated import GENERATE_QUALITY_PER_CLASS, QUALITY_FILE, QualitySubset, generated_quality
from .training import copy_training_record, process_rank, wait_for_other_processes
from .store.artifacts import remove_model_folders, write_artifact_atomically
from .store.manifest import SampleWriter, prepare_out_dir
from .store.registry import READY, ModelNotReadyError, ModelRow, Registry, genaug_home, json_safe, validate_name
from .data import ingest  # noqa: F401  (public: part of the API the CLI and service call)
from .generators.base import generator_kinds  # noqa: F401
from .store.datasets import DATASETS_DIR, dataset_dir, list_datasets, load_dataset, save_dataset  # noqa: F401

# Batch seeds: seed * 1_000_003 + batch index. The prime keeps the batch seeds of
# neighbouring user seeds apart for any realistic number of batches.
SEED_STRIDE = 1_000_003


# -- results -----------------------------------------------------------------

def _iso(moment: Optional[datetime]) -> Optional[str]:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


@dataclass
class ModelInfo:
    """What the registry knows about one model (a JSON-ready snapshot of its row)."""

    id: str
    name: str
    kind: str
    status: str
    class_names: list[str]
    config: dict[str, Any]
    data_fingerprint: Optional[str]
    data_summary: dict[str, Any]
    metrics: dict[str, Any]
    error: Optional[str]
    owner_pid: Optional[int]
    owner_host: Optional[str]
    parent_id: Optional[str]
    created_at: Optional[str]
    updated_at: Optional[str]
    artifact_dir: Optional[str]  # relative to GENAUG_HOME
    created_by: Optional[str] = None  # the service token that trained it (None: library or CLI)
    path: Optional[str] = None  # absolute artifact folder, for ready models
    # "images" | "encodings" | "none" (see Generator.keeps_training_data); "unknown" for a kind
    # that is not installed here.
    keeps_training_data: str = "unknown"
    training_data_note: Optional[str] = None  # the same, as one sentence for the people who share it
    # True when the model keeps its training images' features for the filters and quality.json.
    filter_reference: bool = False
    # True when the model trained the real-vs-noise network of the generative-classifier filter
    # (applied by default when it generates).
    generative_classifier: bool = False

    @classmethod
    def from_row(cls, row: ModelRow, home: Path) -> "ModelInfo":
        """Snapshot of a registry row."""
        reference = bool(row.artifact_dir and row.status == READY and (home / row.artifact_dir / REFERENCE_FILE).is_file())
        return cls(id=row.id, name=row.name, kind=row.kind, status=row.status,
                   class_names=list(row.class_names or []), config=dict(row.config or {}),
                   data_fingerprint=row.data_fingerprint, data_summary=dict(row.data_summary or {}),
                   metrics=dict(row.metrics or {}), error=row.error, owner_pid=row.owner_pid,
                   owner_host=row.owner_host, parent_id=row.parent_id, created_at=_iso(row.created_at),
                   updated_at=_iso(row.updated_at), artifact_dir=row.artifact_dir, created_by=row.created_by,
                   path=str(home / row.artifact_dir) if row.artifact_dir and row.status == READY else None,
                   keeps_training_data=_keeps_training_data(row.kind),
                   training_data_note=training_data_note(row.kind, (row.data_summary or {}).get("n"), reference),
                   filter_reference=reference,
                   generative_classifier=(row.config or {}).get("generative_classifier") is True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass
class GenerationResult:
    """What ``generate`` wrote: where, how many per class, from which model and seed."""

    out_dir: str
    manifest: str
    counts: dict[str, int]
    total: int
    kind: str
    seed: int
    model: Optional[str] = None
    model_id: Optional[str] = None
    data_file: Optional[str] = None  # samples.csv for table models
    label_column: Optional[str] = None  # its label column
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    filters: Optional[dict[str, Any]] = None  # the filter stage's counts (also in filters.json)
    quality: Optional[dict[str, Any]] = None  # what quality.json holds (None when skipped)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return json_safe(dataclasses.asdict(self))


# -- helpers -------------------------------------------------------------------

def _keeps_training_data(kind: str) -> str:
    cls = generator_kinds().get(kind)
    return "unknown" if cls is None else cls.keeps_training_data


REFERENCE_NOTE = ("It also keeps EfficientNet-Lite0 features (not pixels) of up to 100 training images per class "
                  "for the near-copy and confidence filters; such features allow nearest-neighbour checks against "
                  "your images (train with the quality card off, 0 samples, to keep none).")


def training_data_note(kind: str, n: Optional[int] = None, reference: bool = False) -> Optional[str]:
    """What a stored model of ``kind`` holds of its training data, as one sentence for whoever shares
    it (anyone with access to the registry can load the model); None for weights-only kinds without a
    stored filter reference (``reference``: the model keeps its training images' features)."""
    cls = generator_kinds().get(kind)
    if cls is None:
        return f"The kind {kind!r} is not installed here: what this model stores of its training data is unknown."
    items = f"training {'rows' if cls.data_kind == 'table' else 'images'}"
    items = f"its {n} {items}" if n else f"its {items}"
    note = None
    if cls.keeps_training_data == "images":
        note = f"This model stores copies of {items} (they are what it varies): share it only where those may be shared."
    elif cls.keeps_training_data == "encodings":
        note = (f"This model stores the latent codes of {items}, which decode to near-copies: share it only "
                f"where those may be shared.")
    if reference:
        note = f"{note} {REFERENCE_NOTE}" if note else f"This model stores no training images. {REFERENCE_NOTE}"
    return note


def _generator_class(kind: str) -> type[Generator]:
    """The class of ``kind``.

    ``get_generator_class`` imports every built-in kind; if one of them cannot be imported
    (an optional dependency missing), kinds that did register must still work, so fall back
    to the kinds registered so far and re-raise only when ``kind`` is not among them.
    """
    try:
        return get_generator_class(kind)
    except ImportError:
        registered = generator_base._KINDS
        if kind in registered:
            return registered[kind]
        raise


def _format_validation_error(error: pydantic.ValidationError) -> str:
    parts = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem.get("loc", ()))
        where = f"config field '{location}'" if location else "config"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


def validate_config(kind: str, config: GeneratorConfig | Mapping[str, Any] | None = None,
                    overrides: Optional[Mapping[str, Any]] = None) -> GeneratorConfig:
    """``config`` (a dict or Config) with ``overrides`` on top, validated by ``kind``'s Config.

    Errors are ValueErrors naming the field, e.g. "config field 'beta': Input should be
    greater than 0".
    """
    generator_class = _generator_class(kind)
    if config is None:
        values: dict[str, Any] = {}
    elif isinstance(config, pydantic.BaseModel):
        values = config.model_dump()
    elif isinstance(config, Mapping):
        values = dict(config)
    else:
        raise TypeError(f"config must be a dict or a {generator_class.Config.__name__}, got {type(config).__name__}")
    values.update(overrides or {})
    try:
        return generator_class.Config.model_validate(values)
    except pydantic.ValidationError as error:
        raise ValueError(_format_validation_error(error)) from error


def data_summary(data: LabelledData, source: Optional[str] = None) -> dict[str, Any]:
    """What the registry records about training data: counts per class, shape or columns, source."""
    summary: dict[str, Any] = {"data_kind": data.kind, "n": len(data), "counts": data.counts()}
    if isinstance(data, LabelledImages):
        summary["image_shape"] = list(data.image_shape)
    else:
        summary["columns"] = list(data.frame.columns)
    summary["source"] = str(source) if source else None
    return summary


def _check_data_kind(generator_class: type[Generator], data: LabelledData) -> None:
    expected = LabelledTable if generator_class.data_kind == "table" else LabelledImages
    if not isinstance(data, expected):
        raise TypeError(f"{generator_class.kind} trains on {generator_class.data_kind}, "
                        f"got {type(data).__name__}")


def _delete_ingested_data(home: Path, data_source: str | os.PathLike) -> bool:
    """Delete ``data_source`` if it lies inside ``<home>/datasets/``; True when deleted."""
    datasets = (home / DATASETS_DIR).resolve()
    source = Path(data_source).expanduser().resolve()
    # Only genaug's own ingested copies: never the user's original folder, never datasets/ itself.
    if source == datasets or datasets not in source.parents or not source.exists():
        return False
    if source.is_dir():
        shutil.rmtree(source)
    else:
        source.unlink()
    return True


# -- training and the registry -------------------------------------------------

WORK_DIR = "work"
TRAINING_ITEMS_FILE = "training_items.txt"


def training_work_dir(home: Path, name: str, kind: str, config: Mapping[str, Any], fingerprint: Optional[str],
                      parent_id: Optional[str] = None) -> Path:
    """``$GENAUG_HOME/work/<name>-<hash>``: where a training keeps checkpoints, grids and its loss history.

    The hash covers the kind, the validated config, the data's fingerprint and the parent
    model, so starting the *same* training again (after a crash or a kill) finds its
    checkpoints and resumes, and a changed setting starts afresh.
    """
    identity = json.dumps({"kind": kind, "config": json_safe(dict(config)), "data": fingerprint,
                           "parent": parent_id}, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return home / WORK_DIR / f"{name}-{digest}"


def _quality_card(generator, data: LabelledData, per_class: int):
    """(the new model's quality card, its filter reference), or (None, None) for tables or when
    switched off; an error is recorded in the card, never raised: a good model is not lost to
    its report."""
    from .quality.card import training_quality_card

    if per_class == 0 or not isinstance(data, LabelledImages):
        return None, None
    try:
        return training_quality_card(generator, data, per_class)
    except Exception as error:  # noqa: BLE001 -- the card is a report; the model stays good
        return {"error": f"the quality card could not be computed: {type(error).__name__}: {error}"}, None


def _train_beside_main_process(data: LabelledData, kind: str, name: str, validated: GeneratorConfig,
                               home_path: Path, parent: Optional[str], unlabeled: Optional[np.ndarray]) -> None:
    """``train`` in an extra process of ``accelerate launch --num_processes N``: it trains on batches
    of its own (the gradients are averaged with the other processes' each step) and writes nothing;
    the main process (rank 0) owns the registry row, the checkpoints and the saved model. Returns
    None as soon as the training loop ends: the main process then saves, scores and registers the
    model alone (the launcher waits for it), so no process waits at a barrier that could time out
    during a long quality card. Every process must see the same ``GENAUG_HOME`` (checkpoints) and
    database."""
    parent_row, parent_generator = (None, None)
    if parent is not None:
        with Registry.open(home_path) as registry:
            parent_row, parent_generator = _load_ready(registry, parent)
    work_dir = training_work_dir(home_path, name, kind, validated.model_dump(mode="json"), data.fingerprint(),
                                 parent_row.id if parent_row else None)
    wait_for_other_processes()  # the main process has claimed the name (and removed stale checkpoints)
    _fitted(_generator_class(kind), validated, parent_generator, data, work_dir, None, unlabeled)
    return None


def _fitted(generator_class, validated: GeneratorConfig, parent_generator, data: LabelledData, work_dir: Path,
            progress: Optional[ProgressCallback], unlabeled: Optional[np.ndarray]) -> Generator:
    """A new generator of ``validated``'s config, started from ``parent_generator`` when given, fitted
    on ``data`` with its checkpoints in ``work_dir`` (every process of a training runs this)."""
    generator = generator_class(validated)
    if parent_generator is not None:
        generator.warm_start(parent_generator)
    generator.fit(data, progress=progress, checkpoints=work_dir, **({} if unlabeled is None else {"unlabeled": unlabeled}))
    return generator


def train(data: LabelledData, kind: str, name: str, *,
          config: GeneratorConfig | Mapping[str, Any] | None = None,
          overrides: Optional[Mapping[str, Any]] = None, progress: Optional[ProgressCallback] = None,
          home: str | os.PathLike | None = None, keep_data: bool = False,
          data_source: Optional[str] = None, replace: bool = False,
          unlabeled: Optional[np.ndarray] = None, parent: Optional[str] = None,
          resume: bool = True, created_by: Optional[str] = None,
          quality_samples: Optional[int] = None) -> Optional[ModelInfo]:
    """Train a ``kind`` generator on ``data`` (the training split) and register it as ``name``.

    Under ``accelerate launch --num_processes N`` every process trains (each on batches of its own);
    the main process registers the model and returns it, the others return None when the training
    loop ends (see ``_train_beside_main_process``).

    Steps: validate the name and the config (``config`` with ``overrides`` on top; errors
    name the field), create a ``training`` row, fit, save the artifacts atomically, mark the
    row ``ready`` with metrics (the generator's ``meta`` plus ``training_seconds``). On any
    error the row is marked ``failed`` with the error text, its files are removed, and the
    error is re-raised. Name reuse rules: see ``Registry.begin_training`` (``replace``
    overwrites a ready model of the same name).

    Checkpoints: trainable kinds write them into ``training_work_dir(...)``; when the same
    training (same name, kind, config, data and parent) is started again after a crash, kill
    or failure, it resumes from the latest one (``resume=False`` starts afresh). The loss
    plot, the loss history and the sample grids are copied into the model's folder
    (``training/``); the checkpoints are deleted once the model is ready.

    ``parent``: name of a ready model of the same kind to start from (transfer: weights
    trained on a larger related set, fine-tuned on ``data``); recorded as the model's parent.
    ``created_by``: the service token name that asked for this training (the model's owner).

    ``quality_samples``: samples per class of the quality card computed after training and kept
    in the model's metrics (``metrics["quality"]``: KID, FID, precision/recall/density/coverage
    and near-copies against the training images; ``genaug.quality.card``); default
    ``$GENAUG_QUALITY_SAMPLES`` or 32, 0 = no card. Images only.

    ``unlabeled``: extra images without labels (uint8 N x H x W x C) for generators that can
    learn from them (mode single of vae, ddim and ddpm); their number is recorded in the model's data summary.

    ``data_source`` records where the data came from. When it is genaug's own ingested copy
    -- a folder (or file) inside ``$GENAUG_HOME/datasets/`` -- it is deleted after successful
    training to free the space (seed 002 ch. 3.3.8), unless ``keep_data=True``. Anything
    outside that folder is never deleted, and nothing is deleted when training fails (so
    the user can retry).
    """
    from .quality.card import samples_per_class

    validate_name(name)
    card_samples = samples_per_class(quality_samples)  # a bad setting fails now, not after training
    generator_class = _generator_class(kind)
    validated = validate_config(kind, config, overrides)
    _check_data_kind(generator_class, data)
    mode = getattr(validated, "mode", None)
    if unlabeled is not None and mode not in generator_class.uses_unlabeled_pool:
        kinds = [f"{k} (mode {', '.join(c.uses_unlabeled_pool)})" for k, c in sorted(generator_kinds().items())
                 if c.uses_unlabeled_pool]
        raise ValueError(f"unlabeled: a '{kind}' model{f' of mode {mode!r}' if mode else ''} does not learn from "
                         f"images without labels; these do: {', '.join(kinds)}")
    home_path = genaug_home(home)
    if process_rank()[0] != 0:
        return _train_beside_main_process(data, kind, name, validated, home_path, parent, unlabeled)
    with Registry.open(home_path) as registry:
        parent_row, parent_generator = (None, None)
        if parent is not None:
            parent_row, parent_generator = _load_ready(registry, parent)
            if parent_row.kind != kind:
                raise ValueError(f"parent: model {parent_row.name} is a '{parent_row.kind}' model; "
                                 f"a '{kind}' model can only start from a '{kind}' model")
            if not generator_class.supports_warm_start:
                able = ", ".join(k for k, c in sorted(generator_kinds().items()) if c.supports_warm_start)
                raise ValueError(f"parent: a '{kind}' model cannot start from another model (no transfer support); "
                                 f"kinds that can: {able}")
        summary = data_summary(data, data_source)
        if unlabeled is not None:
            summary["unlabeled_pool"] = int(len(unlabeled))
        config_document = validated.model_dump(mode="json")
        work_dir = training_work_dir(home_path, name, kind, config_document, data.fingerprint(),
                                     parent_row.id if parent_row else None)
        if not resume and work_dir.exists():
            shutil.rmtree(work_dir)
        row = registry.begin_training(name, kind, config_document, data.fingerprint(),
                                      summary, class_names=list(data.class_names),
                                      replace=replace, parent_id=parent_row.id if parent_row else None,
                                      created_by=created_by)
        try:
            wait_for_other_processes()  # a multi-process launch: they start once stale checkpoints are gone
            started = time.monotonic()
            generator = _fitted(generator_class, validated, parent_generator, data, work_dir, progress, unlabeled)
            seconds = time.monotonic() - started
            card, reference = _quality_card(generator, data, card_samples)

            def write(folder: Path) -> None:
                generator.save(folder)
                if reference is not None:  # what the filters and quality.json compare with later
                    reference.save(folder)
                copy_training_record(work_dir, folder)
                # Content hashes of every training item: `evaluate --model` refuses a test split
                # that shares an item with them (the model has seen those images).
                items = data.item_fingerprints() + ([] if unlabeled is None else image_fingerprints(unlabeled))
                (folder / TRAINING_ITEMS_FILE).write_text("\n".join(items) + "\n")

            folder = write_artifact_atomically(home_path, row.id, write)
            metrics = {**json_safe(generator.meta), "training_seconds": round(seconds, 3)}
            if card is not None:
                metrics["quality"] = json_safe(card)
            if parent_row is not None:
                metrics["parent_model"] = parent_row.name
            row = registry.mark_ready(row.id, folder.relative_to(home_path).as_posix(), metrics)
        except ShutdownRequested:
            # Nobody's verdict on this training: drop the unfinished row (never "failed"), keep
            # the checkpoints in work_dir; the same training started again resumes from them.
            try:
                registry.abandon_training(row.id)
            finally:
                remove_model_folders(home_path, row.id)
            raise
        except BaseException as error:  # KeyboardInterrupt too: the row must not stay "training"
            try:
                registry.mark_failed(row.id, f"{type(error).__name__}: {error}")
            finally:
                remove_model_folders(home_path, row.id)
            raise
    # The model is complete: its checkpoints are no longer needed.
    shutil.rmtree(work_dir, ignore_errors=True)
    if data_source and not keep_data:
        try:
            _delete_ingested_data(home_path, data_source)
        except OSError as error:  # the model is ready: a leftover copy must not fail the training
            warnings.warn(f"could not delete the ingested data {data_source}: {error}", stacklevel=2)
    return ModelInfo.from_row(row, home_path)


def list_models(include_all: bool = False, home: str | os.PathLike | None = None) -> list[ModelInfo]:
    """Ready models, oldest first; with ``include_all`` also those training or failed."""
    home_path = genaug_home(home)
    with Registry.open(home_path) as registry:
        rows = registry.list() if include_all else registry.list(status=READY)
    return [ModelInfo.from_row(row, home_path) for row in rows]


def get_model(name: str, home: str | os.PathLike | None = None) -> ModelInfo:
    """The model named ``name`` (or with that id), whatever its status; ``ModelNotFoundError`` if none."""
    home_path = genaug_home(home)
    with Registry.open(home_path) as registry:
        return ModelInfo.from_row(registry.get(name), home_path)


def _load_ready(registry: Registry, name: str) -> tuple[ModelRow, Generator]:
    row = registry.get(name)
    if row.status != READY:
        detail = f": {row.error}" if row.error else ""
        raise ModelNotReadyError(f"model {row.name} is not ready (status: {row.status}{detail})")
    return row, _generator_class(row.kind).load(registry.artifact_path(row))


def load_model(name: str, home: str | os.PathLike | None = None) -> Generator:
    """The fitted generator of the ready model ``name``; refuses models still training or failed."""
    with Registry.open(home) as registry:
        return _load_ready(registry, name)[1]


def model_training_items(name: str, home: str | os.PathLike | None = None) -> Optional[set[str]]:
    """Content hashes of every item the ready model ``name`` was trained on (its unlabeled pool
    included); None for a model trained before genaug recorded them."""
    with Registry.open(home) as registry:
        row = registry.get(name)
        if row.status != READY:
            raise ModelNotReadyError(f"model {row.name} is not ready (status: {row.status})")
        path = registry.artifact_path(row) / TRAINING_ITEMS_FILE
    return set(path.read_text().split()) if path.exists() else None


def check_no_overlap(name: str, test: LabelledData, home: str | os.PathLike | None = None) -> None:
    """Refuse (ValueError naming the overlap) a test split sharing an item with the model's training data."""
    items = model_training_items(name, home)
    if items is None:
        raise ValueError(f"model {name}: it was trained before genaug recorded what it was trained on, so a test "
                         "split cannot be checked against its training data; retrain it to evaluate it")
    shared = [Path(source).name for source, item in zip(test.sources, test.item_fingerprints()) if item in items]
    if shared:
        raise ValueError(f"model {name} was trained on {len(shared)} of the {len(test)} test items "
                         f"(e.g. {', '.join(shared[:3])}): a score on them would flatter it. Evaluate on images it "
                         "has never seen: another dataset with the same classes, or one with its own test "
                         "split (an .npz with x_test and y_test) whose training split trained the model")


def evaluate_model(train: LabelledData, test: LabelledData, name: str, *, protocol: Any = None,
                   per_class: Optional[int] = None, ratio: float = 1.0,
                   options: Optional[Mapping[str, Any]] = None, dataset_name: str = "data",
                   cache_dir: str | os.PathLike | None = None, progress: Optional[ProgressCallback] = None,
                   home: str | os.PathLike | None = None, filters: Optional[list] = None) -> dict:
    """Does this stored model's data help? The protocol's classifier trains on ``train`` alone,
    with classic augmentation, and with samples drawn from the ready model ``name`` (never
    refitted), scored on ``test``. Refuses a ``test`` that shares an item with the model's
    training data (by per-item content hashes) or whose classes differ from the model's.

    ``protocol``: a ``genaug.evaluate.Protocol`` (default: the whole training split, seeds
    0, 1, 2, the arms real / real+classic / real+synthetic / real+synthetic+classic). ``filters``
    as in ``generate``: None draws the samples as ``generate`` does by default (a model trained
    with the generative classifier applies it), ``[]`` unfiltered. Returns the runner's result (``genaug.evaluate.write_report`` turns it into a report).
    """
    from .evaluate import GeneratorSpec, Protocol, SampleVariant, StoredModel, default_arms, evaluate

    check_no_overlap(name, test, home)
    with Registry.open(home) as registry:
        row, generator = _load_ready(registry, name)
    if list(row.class_names or []) != list(train.class_names):
        raise ValueError(f"model {name}: its classes {list(row.class_names or [])} differ from the data's "
                         f"{list(train.class_names)}")
    spec = GeneratorSpec(label=name, kind=row.kind, config=dict(row.config or {}),
                         model=StoredModel(name=row.name, id=row.id),
                         # as the model generates by default: with its own generative classifier, if any
                         variants=[SampleVariant(per_class=per_class, ratio=None if per_class else ratio,
                                                 options=dict(options or {}),
                                                 filters=default_filters(generator) if filters is None else filters)])
    if protocol is None:
        protocol = Protocol(shots=[None], arms=[a for a in default_arms(train) if a != "synthetic"])
    return evaluate(train, test, [spec], protocol, dataset_name=dataset_name,
                    cache_dir=None if cache_dir is None else Path(cache_dir), progress=progress,
                    stored={name: generator})


def delete_model(name: str, home: str | os.PathLike | None = None, *, force: bool = False) -> ModelInfo:
    """Delete the model's row and artifact folder; returns what was deleted.

    A model being trained by a live process is refused unless ``force``.
    """
    home_path = genaug_home(home)
    with Registry.open(home_path) as registry:
        return ModelInfo.from_row(registry.delete(name, force=force), home_path)


def cleanup(home: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Mark trainings whose process died as failed and remove stale artifact folders."""
    with Registry.open(home) as registry:
        return registry.cleanup()


# -- generation -----------------------------------------------------------------

def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def plan_counts(class_names: list[str], *, n_per_class: Optional[int] = None,
                counts: Optional[Mapping[str, int]] = None, balance: bool = False,
                reference_counts: Optional[Mapping[str, int]] = None) -> dict[str, int]:
    """How many samples of each class to make; exactly one of the three ways must be given.

    ``n_per_class``: the same number for every class. ``counts``: per class name (classes
    left out get none). ``balance``: fill every class up to the largest class of
    ``reference_counts`` (the training data's counts per class).
    """
    given = [name for name, value in (("n_per_class", n_per_class), ("counts", counts))
             if value is not None] + (["balance"] if balance else [])
    if len(given) != 1:
        raise ValueError("give exactly one of n_per_class, counts or balance"
                         + (f" (got {', '.join(given)})" if given else ""))
    if n_per_class is not None:
        if not _is_count(n_per_class):
            raise ValueError(f"n_per_class must be an integer >= 0, got {n_per_class!r}")
        return {name: int(n_per_class) for name in class_names}
    if counts is not None:
        unknown = [str(name) for name in counts if name not in class_names]
        if unknown:
            raise ValueError(f"counts: unknown class {', '.join(map(repr, unknown))}; "
                             f"the model's classes are {class_names}")
        for name, value in counts.items():
            if not _is_count(value):
                raise ValueError(f"counts[{name!r}] must be an integer >= 0, got {value!r}")
        return {name: int(counts.get(name, 0)) for name in class_names}
    if not reference_counts:
        raise ValueError("balance needs the training data's counts per class: the model's "
                         "registry row has none, so pass reference_counts")
    missing = [name for name in class_names if name not in reference_counts]
    if missing:
        raise ValueError(f"reference_counts: no count for class {', '.join(map(repr, missing))}")
    largest = max(int(reference_counts[name]) for name in class_names)
    return {name: largest - int(reference_counts[name]) for name in class_names}


FILTERS_FILE = "filters.json"


def _filter_reference(given: Optional[LabelledImages], stored: Optional[FilterReference], class_names: list[str],
                      needed: bool) -> Optional[FilterReference]:
    """What filters and quality.json compare with: the caller's images, else the model's stored
    reference; a clear error when filters need one and there is none."""
    if given is not None:
        if not isinstance(given, LabelledImages):
            raise ValueError("reference: filters and the quality card compare images; give the training images")
        if list(given.class_names) != list(class_names):
            raise ValueError(f"reference: its classes {list(given.class_names)} are not the model's {class_names}")
        return FilterReference.from_images(given.images, given.labels, class_names, per_class=None)  # all of them
    if stored is None and needed:
        raise ValueError("filters confidence and near-copy need the model's training images to compare with: "
                         "this model stored no reference (it makes table rows, or it was trained with the quality "
                         "card off, or before genaug kept one); give the training images as the reference")
    return stored


def _take(data: np.ndarray | pd.DataFrame, n: int):
    return data.iloc[:n] if isinstance(data, pd.DataFrame) else data[:n]


def generate(name_or_generator: str | Generator, out_dir: str | os.PathLike, *,
             n_per_class: Optional[int] = None, counts: Optional[Mapping[str, int]] = None,
             balance: bool = False, reference_counts: Optional[Mapping[str, int]] = None,
             seed: int = 0, batch_size: int = 256, progress: Optional[ProgressCallback] = None,
             home: str | os.PathLike | None = None, filters: Optional[list] = None,
             reference: Optional[LabelledImages] = None, quality: bool = True,
             max_filter_rounds: int = MAX_FILTER_ROUNDS, **options: Any) -> GenerationResult:
    """Generate samples from a registered model (by name or id) or a fitted generator into ``out_dir``.

    Say how many with exactly one of ``n_per_class``, ``counts`` (per class name) or
    ``balance`` (fill every class up to the training data's largest class; counts from the
    model's registry row or ``reference_counts``). ``options`` go to ``sample`` (sampler
    and its settings).

    Writes ``out_dir/<class>/<index>.png`` (grayscale stays 1-channel) -- or, for table
    models, ``out_dir/samples.csv`` with a label column appended -- and
    ``out_dir/manifest.jsonl``, one line per sample (file or row, label, model name and id,
    kind, seed, batch seed, sampler and options, source example and filter verdicts when
    the provenance has them). ``out_dir`` must be new or empty.

    Works in batches of ``batch_size`` per ``sample`` call, each written before the next is
    made, so memory does not grow with the number of samples. Batch ``i`` (counted over
    all classes) uses seed ``seed * 1_000_003 + i``: the same seed, counts and batch size
    give the same output.

    ``filters``: post-sample filters by spec (``["confidence:0.6", "near-copy"]``,
    ``"generative-classifier"``; ``genaug.filters.stage``). None (the default) applies the
    model's own filter, the generative classifier, when it was trained with one; ``[]`` applies
    none. A rejected sample is redrawn, at most ``max_filter_rounds``
    rounds per batch; a class that still lacks samples then is reported as short (never filled
    with rejects). Verdicts and scores go into each manifest line, the counts into
    ``filters.json`` and ``result.filters``. Filters compare with ``reference`` (the model's
    training images, if you have them) or else with the reference the model stored at training.

    ``quality``: write ``quality.json`` (images only): the quality card of up to
    ``GENERATE_QUALITY_PER_CLASS`` generated images per class against the same reference; it is
    skipped, with the reason in the file, when there is no reference.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    row: Optional[ModelRow] = None
    stored: Optional[FilterReference] = None
    if isinstance(name_or_generator, Generator):
        generator = name_or_generator
    else:
        with Registry.open(home) as registry:
            row, generator = _load_ready(registry, name_or_generator)
            stored = FilterReference.load(registry.artifact_path(row))
        if reference_counts is None:
            reference_counts = (row.data_summary or {}).get("counts")
    class_names = list(generator.class_names)
    plan = plan_counts(class_names, n_per_class=n_per_class, counts=counts, balance=balance,
                       reference_counts=reference_counts)
    specs = parse_filters(default_filters(generator) if filters is None else filters)
    if not isinstance(max_filter_rounds, int) or isinstance(max_filter_rounds, bool) or max_filter_rounds < 1:
        raise ValueError(f"max_filter_rounds must be an integer >= 1, got {max_filter_rounds!r}")
    filter_reference = _filter_reference(reference, stored, class_names, needed=needs_reference(specs))
    stage = FilterStage(specs, filter_reference, class_names, seed=int(seed), max_rounds=max_filter_rounds,
                        generator=generator) if specs else None
    scored = QualitySubset(class_names, GENERATE_QUALITY_PER_CLASS) if quality else None

    started = time.monotonic()
    out = prepare_out_dir(out_dir)
    writer = SampleWriter(out, class_names, {"model": row.name if row else None,
                                             "model_id": row.id if row else None,
                                             "kind": generator.kind, "seed": int(seed)})
    # Filled in only where a sample's provenance does not say it itself.
    defaults = {key: value for key, value in (("sampler", options.get("sampler")),
                                              ("options", dict(options) or None)) if value is not None}
    report = ProgressReporter(progress, "generate", sum(plan.values()))
    batch_index = 0
    try:
        for class_index, class_name in enumerate(class_names):
            remaining = plan[class_name]
            while remaining > 0:
                batch_seed = int(seed) * SEED_STRIDE + batch_index
                asked = min(batch_size, remaining)
                if stage is None:
                    samples = generator.sample(asked, label=class_index, seed=batch_seed, **options)
                else:
                    samples = stage.draw(lambda count, round_index, c=class_index, b=batch_seed: generator.sample(
                        count, label=c, seed=redraw_seed(b, round_index), **options), asked, class_name)
                    if samples is None:  # not one sample passed the filters: the class stays short
                        break
                if len(samples) == 0:
                    raise RuntimeError(f"{generator.kind}: sample() returned no samples for class "
                                       f"{class_name!r} (seed {batch_seed})")
                if list(samples.class_names) != class_names:
                    raise RuntimeError(f"{generator.kind}: samples name classes {samples.class_names}, "
                                       f"the model has {class_names}")
                wrong = np.asarray(samples.labels) != class_index
                if wrong.any():
                    raise RuntimeError(f"{generator.kind}: asked for class {class_name!r}, got samples of "
                                       f"class {class_names[int(np.asarray(samples.labels)[wrong][0])]!r}")
                take = min(len(samples), remaining)  # a filter may return fewer: ask again
                remaining -= writer.write(_take(samples.data, take), samples.labels[:take],
                                          samples.provenance[:take],
                                          extra={"batch": batch_index, "batch_seed": batch_seed},
                                          defaults=defaults)
                if scored is not None and isinstance(samples.data, np.ndarray):
                    scored.add(class_index, samples.data[:take])
                batch_index += 1
                report(writer.total)
                if stage is not None and take < asked:  # the filters ran out of rounds: short, move on
                    break
        filter_summary = None
        if stage is not None:
            # A class whose filters ran out of rounds stops there: all it still lacks is short
            # (the stage itself only saw the batch it was asked for).
            stage.short = {name: plan[name] - writer.counts.get(name, 0) for name in class_names
                           if plan[name] > writer.counts.get(name, 0)}
            filter_summary = {**stage.summary(), "planned": dict(plan), "written": dict(writer.counts)}
            if stage.needs_features:
                filter_summary.update({"reference_images": int(len(filter_reference.labels)),
                                       "reference": "the training images you gave" if reference is not None else
                                       "the training images whose features the model kept (up to 100 per class)"})
            (out / FILTERS_FILE).write_text(json.dumps(json_safe(filter_summary), indent=2) + "\n")
        quality_card = None
        if scored is not None:
            try:
                quality_card = generated_quality(scored, filter_reference, reference is not None, generator.kind)
            except Exception as error:  # noqa: BLE001 -- a report; the images written stay good
                quality_card = {"error": f"quality.json could not be computed: {type(error).__name__}: {error}"}
            (out / QUALITY_FILE).write_text(json.dumps(json_safe(quality_card), indent=2) + "\n")
        manifest = writer.close()
    except BaseException:
        writer.abort()
        raise
    return GenerationResult(out_dir=str(out), manifest=str(manifest), counts=dict(writer.counts),
                            total=writer.total, kind=generator.kind, seed=int(seed),
                            model=row.name if row else None, model_id=row.id if row else None,
                            data_file=str(out / "samples.csv") if writer.label_column else None,
                            label_column=writer.label_column, seconds=round(time.monotonic() - started, 3),
                            options=json_safe(dict(options)), filters=filter_summary, quality=quality_card)


# -- datasets ------------------------------------------------------------------

def safe_dataset_name(path: str | os.PathLike) -> str:
    """A valid dataset name derived from a file or folder name (``my flowers.zip`` -> ``my_flowers``)."""
    stem = Path(path).name
    for suffix in (".tar.gz", ".tgz", ".zip", ".tar", ".npz", ".csv", ".dt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "dataset"
    return cleaned[:64]


def evaluate_request(train: LabelledData, test: LabelledData, request: Any, out_dir: Path, *,
                     dataset_name: str = "data", title: Optional[str] = None, cache_dir: Optional[Path] = None,
                     progress: Optional[ProgressCallback] = None, home: Optional[Path] = None,
                     executor: Optional[str] = None) -> dict:
    """Run an ``evaluate.request.EvaluationRequest`` (what ``genaug evaluate`` / ``recommend`` and the
    service's evaluate jobs ask for) on ``train`` (everything is fitted and chosen on it) and ``test`` (scored
    once), write the report into ``out_dir`` and return ``write_report``'s answer plus
    ``"mode"`` (compare / quick / select / model) and, for ``select``, ``"selection"``.

    ``executor``: ``local`` (default), ``dask`` or ``dask://HOST:PORT`` (``evaluate.executors``: the
    grid's units fanned out over dask workers), or a grid runner with ``run_on_dask``'s arguments
    (``genaug.jobs.grid.jobs_executor(home)``: the units as jobs for ``genaug worker``s); a fanned-out
    run needs ``cache_dir`` and is a compare or quick run."""
    from .evaluate.executors import parse_executor, run_on_dask
    from .evaluate.protocol import evaluate
    from .evaluate.report import write_report

    runner = executor if callable(executor) else None
    where, address = (getattr(runner, "name", "custom"), None) if runner else parse_executor(executor)
    if where == "jobs" and runner is None:
        raise ValueError("executor jobs: pass executor=genaug.jobs.grid.jobs_executor(home) (the job table "
                         "lives above the library API)")
    if where != "local" and (request.model is not None or request.select):
        raise ValueError(f"executor: --model and --select run locally; the {where} executor runs a compare or "
                         "--quick grid")
    if where != "local" and cache_dir is None:
        raise ValueError(f"executor {where}: give --cache, a folder every worker can read and write")
    protocol = request.protocol(train)
    title = title or f"genaug evaluation: {dataset_name}"
    selection = None
    if request.model is not None:
        result = evaluate_model(train, test, request.model, protocol=protocol, per_class=request.per_class,
                                dataset_name=dataset_name, cache_dir=cache_dir, progress=progress, home=home)
        mode = "model"
    elif request.select:
        from .evaluate.select import default_grid, select_recipe

        candidates = default_grid(train, quick=request.quick, kinds=request.select_kinds)
        pool = {} if request.validation_size is None else {"validation_size": request.validation_size}
        if request.search_seeds is not None:
            pool["search_seeds"] = request.search_seeds
        selection = select_recipe(train, test, protocol, candidates, dataset_name=dataset_name,
                                  cache_dir=cache_dir, progress=progress, **pool)
        result = selection["final"]
        mode = "select"
    elif where != "local":
        run = runner or (lambda *args, **kwargs: run_on_dask(*args, address=address, **kwargs))
        result = run(train, test, request.generator_specs(train), protocol, dataset_name=dataset_name,
                     cache_dir=Path(cache_dir), progress=progress)
        mode = "quick" if request.quick else "compare"
    else:
        result = evaluate(train, test, request.generator_specs(train), protocol, dataset_name=dataset_name,
                          cache_dir=cache_dir, progress=progress)
        mode = "quick" if request.quick else "compare"
    written = write_report(result, Path(out_dir), title=title, selection=selection)
    return {**written, "mode": mode, "selection": None if selection is None else
            {"choices": selection["choices"], "cost": selection["cost"]}}
