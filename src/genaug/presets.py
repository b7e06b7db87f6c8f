"""Training presets a non-expert can pick, and how long a training will take on this machine.

A preset ("quick look", "standard", "best quality") is a small set of config fields on top of
the kind's defaults, sized for a CPU: the kinds' own defaults are the seed theses' full budgets
(hours on a CPU), which nobody should start by accident from a web form.

The time estimate is measured, not guessed: the kind's real ``fit`` runs once, briefly, on random
data of the same shape and batch size, and every training step is timed. The real config's
time follows from the step counts (training time is linear in them). Measurements are cached per
process (the step counts are not part of the key), so trying other step counts costs nothing.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

PRESET_ORDER = ("quick", "standard", "best")
PRESET_LABELS = {"quick": "Quick look", "standard": "Standard", "best": "Best quality"}
PRESET_HELP = {
    "quick": "A first look within minutes on a CPU: small networks, few steps. The images are rough.",
    "standard": "Better images; tens of minutes on a CPU for a few classes.",
    "best": "The full settings of the research this tool comes from: hours on a CPU, best with a GPU.",
}
GRIDS_PER_TRAINING = 10  # sample grids written during a training when the config does not say
# Step-count fields that are not training work: sampling steps are a sampling setting.
_NOT_TRAINING_STEPS = {"sample_steps", "warmup_steps"}
_MAX_CALIBRATION_IMAGES_PER_CLASS = 64


def kind_presets(kind: str) -> list[dict[str, Any]]:
    """The presets of ``kind`` in order: ``[{"name", "label", "help", "config"}]`` (empty for kinds
    without training, e.g. classic augmentation). Each config validates for the kind."""
    from . import api

    cls = api.get_generator_class(kind)
    presets = getattr(cls, "presets", None) or {}
    out = []
    for name in PRESET_ORDER:
        if name in presets:
            # No sample_every here: the service sets it from the steps actually sent (check_params).
            out.append({"name": name, "label": PRESET_LABELS[name], "help": PRESET_HELP[name],
                        "config": dict(presets[name])})
    return out


def training_step_fields(config: dict[str, Any]) -> dict[str, int]:
    """The fields of a validated config that count training steps (``steps``, ``gc_steps``, ...)."""
    return {name: value for name, value in config.items()
            if (name == "steps" or name.endswith("_steps")) and name not in _NOT_TRAINING_STEPS
            and isinstance(value, int) and not isinstance(value, bool)}


def with_progress_grids(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``sample_every`` set so a training writes about ``GRIDS_PER_TRAINING`` sample
    grids, when the kind has grids and the config does not choose (a person watching a training
    wants to see it learn; the library's own default stays 0, grids only at the end)."""
    from . import api

    fields = api.get_generator_class(kind).Config.model_fields
    if "sample_every" not in fields or "sample_every" in config:
        return config
    steps = config.get("steps", fields["steps"].default if "steps" in fields else None)
    if not isinstance(steps, int) or steps < 1:
        return config
    return {**config, "sample_every": max(1, steps // GRIDS_PER_TRAINING)}


@dataclass(frozen=True)
class TrainingEstimate:
    """How long a training should take here: ``seconds`` in total, from one measured short run."""

    seconds: float
    fixed_seconds: float  # construction, start-up and the end of training: not per step
    seconds_per_step: float  # per step of the main networks (one per class in per-class modes)
    models: int  # networks trained one after another (the classes, in a per-class mode)
    steps: dict[str, int]
    measured_seconds: float  # what the measuring run took

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, seconds rounded."""
        out = asdict(self)
        for key in ("seconds", "fixed_seconds", "measured_seconds"):
            out[key] = round(out[key], 1)
        out["seconds_per_step"] = round(out["seconds_per_step"], 4)
        return out


@dataclass(frozen=True)
class _Measured:
    fixed: float  # seconds outside the steps, for the calibration's number of models
    main_rate: float  # seconds per main step
    secondary_rate: float  # seconds per step of other phases (the filter network); 0 if none ran
    grid_seconds: float  # one sample grid written during training
    models: int  # main networks the calibration trained
    calibration_classes: int
    seconds: float


class EstimateBusyError(RuntimeError):
    """Another estimate is being measured right now (HTTP 429: ask again in a few seconds)."""


class EstimateFailedError(RuntimeError):
    """The measuring run failed: out of memory, over its time limit, or an error of the kind's code."""


_CACHE_SIZE = 256
_cache: OrderedDict[str, _Measured] = OrderedDict()
_cache_lock = threading.Lock()
_measure_lock = threading.Lock()  # one measurement at a time: they would slow each other down
_CALIBRATION_STEPS = 40  # at most this many steps per phase ...
_CALIBRATION_SECONDS = 2.0  # ... and at most this long per phase (max_seconds stops it early)
_CALIBRATION_TIMEOUT = 120.0  # the measuring process is killed after this
_WARMUP_STEPS = 2  # the first steps of a phase allocate memory: not counted in the rate
# Config fields that do not change how fast a training runs (sampling, optimiser and loss values):
# left out of the cache key, so trying them costs no new measurement.
_SPEED_FREE = {"seed", "lr", "beta", "beta_normalise", "reconstruction", "sampler", "alpha", "k", "noise",
               "gc_sigma", "gc_early_fraction", "guidance_scale", "eta", "strength", "scheduler", "upscale",
               "upscale_method", "sample_batch_size", "weight_decay", "grad_clip", "label_smoothing", "real_label",
               "instance_noise", "mode_seeking", "mismatch_weight", "beta1", "beta2", "discrete_decoding",
               "sample_every", "checkpoint_every", "max_seconds"}


def estimate_training(kind: str, config: dict[str, Any], image_shape: tuple[int, ...], class_names: list[str],
                      images_per_class: int, threads: Optional[int] = None, *, wait: bool = True) -> TrainingEstimate:
    """Estimate the training time of ``kind`` with ``config`` on ``len(class_names)`` classes of
    ``images_per_class`` images of ``image_shape`` (H, W, C) on this machine, by measuring.

    One short real ``fit`` on random data of that shape (at most 40 steps or 2 seconds per
    network, in a child process with a time limit: a config too big for this machine's memory
    fails there, not in the caller) times every training step and every sample grid. The
    estimate is the median step time of the main networks times the config's steps (times the
    classes, when the mode trains a network per class), plus the filter network's steps at their
    own rate, plus the sample grids the config writes, plus the time outside the steps; capped
    by ``max_seconds``. Raises ``ValueError`` for an invalid config or a kind that does not train
    on images, ``EstimateBusyError`` when ``wait`` is false and another measurement runs, and
    ``EstimateFailedError`` when the measuring run fails. ``threads``: the torch threads the
    training will have (a job's; default: torch's own)."""
    from . import api

    cls = api.get_generator_class(kind)
    validated = api.validate_config(kind, config).model_dump(mode="json")
    steps = training_step_fields(validated)
    if "steps" not in steps:
        return TrainingEstimate(0.0, 0.0, 0.0, 0, steps, 0.0)  # nothing to train (classic augmentation)
    if cls.data_kind != "images":
        raise ValueError(f"kind: time estimates are for image generators; '{kind}' trains on tables")
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3):
        raise ValueError(f"image_shape: expected (height, width, 1 or 3), got {list(image_shape)}")
    if len(class_names) < 1:
        raise ValueError("class_names: at least one class")
    # Enough images for the real batch of every network, no more (memory): a per-class network's
    # batch is capped at its class's images, as in the real training.
    batch = int(validated.get("batch_size") or 64)
    per_class = max(1, min(int(images_per_class), batch, _MAX_CALIBRATION_IMAGES_PER_CLASS))
    speed_config = {k: v for k, v in validated.items() if k not in steps and k not in _SPEED_FREE}
    classes = min(len(class_names), 2)  # a per-class mode's networks are alike: two show the pattern
    key = json.dumps([kind, cls.version, speed_config, list(image_shape), classes, per_class,
                      sorted(k for k, v in steps.items() if v), threads], sort_keys=True)
    measured = _cached(key)
    if measured is None:
        if not _measure_lock.acquire(blocking=wait):
            raise EstimateBusyError("another training-time estimate is being measured; ask again in a few seconds")
        try:
            measured = _cached(key) or _measure_in_child(kind, validated, steps, tuple(image_shape), classes,
                                                         per_class, threads)
        finally:
            _measure_lock.release()
        with _cache_lock:
            _cache[key] = measured
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    # More classes than measured: a per-class mode (one network per class seen) trains one per class.
    models = len(class_names) if measured.models == measured.calibration_classes > 1 else measured.models
    scale = models / max(1, measured.models)
    per_model = measured.main_rate * steps["steps"]
    every = validated.get("sample_every") or 0
    if every:
        per_model += (steps["steps"] // every) * measured.grid_seconds
    if validated.get("max_seconds"):  # training stops then, keeping the model as it is
        per_model = min(per_model, float(validated["max_seconds"]))
    secondary = max([v for k, v in steps.items() if k != "steps"], default=0)
    seconds = measured.fixed * scale + per_model * models + measured.secondary_rate * secondary
    return TrainingEstimate(seconds, measured.fixed * scale, measured.main_rate, models, steps, measured.seconds)


def _cached(key: str) -> Optional[_Measured]:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def _measure_in_child(*args) -> _Measured:
    """``_measure`` in a fresh process, killed after ``_CALIBRATION_TIMEOUT`` seconds: the caller
    (the service) never holds the calibration's memory, and a crash there is an error here."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, args), daemon=True, name="genaug-estimate")
    process.start()
    send.close()
    try:
        if not receive.poll(_CALIBRATION_TIMEOUT):
            raise EstimateFailedError(f"measuring took over {_CALIBRATION_TIMEOUT:.0f} s; this config is too "
                                      "slow to estimate here (try fewer or narrower layers, or smaller images)")
        ok, value = receive.recv()
    except EOFError:
        raise EstimateFailedError("the measuring run stopped without an answer (most likely out of memory: "
                                  "this config needs more memory than this server has)") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)
        receive.close()
    if not ok:
        raise EstimateFailedError(value)
    return value


def _child(send, args) -> None:
    try:
        send.send((True, _measure(*args)))
    except BaseException as error:  # noqa: BLE001 -- reported to the parent as text, never raised there
        message = str(error.args[0]) if error.args else type(error).__name__
        send.send((False, f"measuring failed: {type(error).__name__}: {message}"[:500]))
    finally:
        send.close()


def _measure(kind: str, config: dict[str, Any], steps: dict[str, int], image_shape: tuple[int, int, int],
             n_classes: int, per_class: int, threads: Optional[int]) -> _Measured:
    """Time every step and grid of one short real fit on random data (see ``estimate_training``)."""
    import tempfile
    from statistics import median

    import torch

    from . import api
    from .data import LabelledImages
    from .training import GRID_STEP, STEP_OBSERVER

    if threads:  # the job's thread count: more threads than free cores makes every step slower
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(per_class * n_classes, *image_shape), dtype=np.uint8)
    labels = np.repeat(np.arange(n_classes), per_class)
    data = LabelledImages(images, labels, [f"class-{i}" for i in range(n_classes)])
    # One grid per network, halfway, to time it (it is written into a throwaway folder).
    run_config = {**config, **{name: _CALIBRATION_STEPS for name in steps}, "checkpoint_every": 0,
                  "sample_every": _CALIBRATION_STEPS // 2, "max_seconds": _CALIBRATION_SECONDS}
    timings: dict[str, list[float]] = {}
    grids: list[float] = []

    def observe(phase: str, step: int, seconds: float) -> None:
        (grids if step == GRID_STEP else timings.setdefault(phase, [])).append(seconds)

    token = STEP_OBSERVER.set(observe)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="genaug-estimate-") as folder:
            api.get_generator_class(kind)(run_config).fit(data, checkpoints=Path(folder))
    finally:
        STEP_OBSERVER.reset(token)
    total = time.perf_counter() - started
    if not timings:
        raise ValueError(f"kind: '{kind}' reported no training steps to measure")
    phases = list(timings)
    family = phases[0].split("-")[0]  # "vae-class0", "vae-class1" are the main networks; "gc" is not
    main = [p for p in phases if p.split("-")[0] == family]
    rate = lambda values: median(values[_WARMUP_STEPS:] or values)  # noqa: E731
    main_rate = median(rate(timings[p]) for p in main)
    others = [p for p in phases if p not in main]
    secondary_rate = sum(rate(timings[p]) for p in others)
    grid_seconds = median(grids) if grids else 0.0
    fixed = max(0.0, total - sum(sum(values) for values in timings.values()) - sum(grids))
    return _Measured(fixed, main_rate, secondary_rate, grid_seconds, len(main), n_classes, total)


def describe_seconds(seconds: Optional[float]) -> str:
    """``seconds`` as a person says it: "about 40 s", "about 12 min", "about 2.5 h"."""
    if seconds is None:
        return "unknown"
    if seconds <= 0:
        return "nothing to train"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
