"""The one training-loop helper every trainable generator uses.

A generator describes one optimisation step (a function of the step number that returns its
losses); ``Trainer.run`` does everything around it, the same way for every kind:

- device placement, mixed precision and multi-process training through Hugging Face accelerate:
  ``accelerate launch --multi_gpu --num_processes N -m genaug.cli train ...`` on N GPUs, or on
  a CPU (gloo). Each process draws its own batches (``batch_size`` is per process) from its own
  random stream, gradients are averaged every step, and only the main process writes files
  (checkpoints, grids, the registered model);
- checkpoints every ``checkpoint_every`` steps into the training's working folder (model,
  optimiser and EMA states, RNG states, step, loss history) and automatic resume from the
  latest one when the same training starts again -- also after SIGKILL;
- an exponential moving average of the weights (``ema_decay``; generators sample from it);
- progress events (step, total, losses, images/s, ETA) for the CLI's bar, also appended to
  ``progress.jsonl`` so the service can read them later;
- a sample grid PNG every ``sample_every`` steps, the loss history (``history.jsonl``) and its
  plot (``losses.png``, like seed 002 fig. 4.1);
- early stop on a wall-clock budget (``max_seconds``, counted across resumes).

Files of one training phase (a generator may train several, e.g. one GAN per class)::

    <work_dir>/<phase>/checkpoints/step-000500.pt
    <work_dir>/<phase>/history.jsonl     one row per step: step, losses, monitor values
    <work_dir>/<phase>/losses.png
    <work_dir>/<phase>/samples/step-000500.png
    <work_dir>/progress.jsonl

Checkpoints are written to a temporary file, fsynced and renamed, so a kill during a write
leaves the previous checkpoint intact. They are training state, not a model format: the
finished model is saved by ``Generator.save`` (safetensors / diffusers folders).
"""
from __future__ import annotations

import contextvars
import copy
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

import numpy as np
import torch
from pydantic import Field
from torch import nn

from .config import GeneratorConfig
from .files import write_atomically
from .progress import ProgressCallback, ProgressEvent

CHECKPOINT_DIR = "checkpoints"
HISTORY_FILE = "history.jsonl"
LOSS_PLOT_FILE = "losses.png"
SAMPLES_DIR = "samples"
PROGRESS_FILE = "progress.jsonl"
_CHECKPOINT_NAME = re.compile(r"step-(\d{6,})\.pt")
_KEEP_CHECKPOINTS = 2


class TrainingConfig(GeneratorConfig):
    """Settings every trainable generator shares (its own config adds the model's fields)."""

    steps: int = Field(2000, ge=1, description="optimisation steps (per model when a mode trains one model per class)")
    batch_size: int = Field(64, ge=1, description="batch size (capped at the number of training images)")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    seed: int = Field(0, description="training seed")
    ema_decay: float = Field(0.0, ge=0, lt=1, description="EMA of the weights used for sampling (0 = off)")
    checkpoint_every: int = Field(500, ge=0, description="write a resumable checkpoint every k steps (0 = never)")
    sample_every: int = Field(0, ge=0, description="write a sample grid PNG every m steps (0 = only at the end)")
    max_seconds: Optional[float] = Field(None, gt=0, description="stop early after this many seconds of training (the model as of then is kept)")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="mixed precision (accelerate); fp16 needs a GPU")


@dataclass
class TrainingResult:
    """What a finished (or budget-stopped) training phase reports."""

    phase: str
    steps_done: int
    total_steps: int
    resumed_from: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    processes: int = 1  # of a multi-process launch (each drew its own batches)

    def last(self, key: str) -> Optional[float]:
        """The latest logged value of ``key`` (None if it was never logged)."""
        for row in reversed(self.history):
            if key in row:
                return row[key]
        return None

    def summary(self) -> dict[str, Any]:
        """Steps, resume point, early stop and the final losses, for the model's metrics."""
        final = {k: v for k, v in (self.history[-1] if self.history else {}).items() if k != "step"}
        return {"steps_done": self.steps_done, "total_steps": self.total_steps, "resumed_from": self.resumed_from,
                "stopped_early": self.stopped_early, "seconds": round(self.seconds, 2), "final": final,
                **({"processes": self.processes} if self.processes > 1 else {})}


# Called after every training step as observer(phase, step, seconds of that step), when set: how
# genaug.presets measures a kind's speed on this machine without timing anything but the steps.
# A sample grid written during training is reported with step GRID_STEP.
GRID_STEP = -1
STEP_OBSERVER: contextvars.ContextVar[Optional[Callable[[str, int, float], None]]] = \
    contextvars.ContextVar("genaug_step_observer", default=None)

_ACCELERATOR = None


def process_rank() -> tuple[int, int]:
    """(this process's rank, number of processes) of an ``accelerate launch`` / ``torchrun`` group,
    read from the environment those launchers set; (0, 1) in a plain run. Starts nothing."""
    try:
        world = max(1, int(os.environ.get("WORLD_SIZE") or 1))
        rank = int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0, 1
    return (rank, world) if 0 <= rank < world else (0, 1)


def _multi_process_on_cpu() -> bool:
    # accelerate treats a launch of several processes on a machine without a GPU as N unrelated
    # single-process runs unless told cpu=True (then: one gloo process group, DDP).
    return process_rank()[1] > 1 and not torch.cuda.is_available()


def wait_for_other_processes() -> None:
    """A barrier across the processes of a multi-process launch; nothing in a plain run."""
    if process_rank()[1] > 1:
        from accelerate import PartialState

        PartialState(cpu=_multi_process_on_cpu()).wait_for_everyone()


def accelerator(mixed_precision: str = "no"):
    """The process's accelerate ``Accelerator`` (created once: accelerate keeps global state)."""
    global _ACCELERATOR
    if _ACCELERATOR is None:
        from accelerate import Accelerator

        if mixed_precision == "fp16" and not torch.cuda.is_available():
            raise ValueError("mixed_precision: fp16 needs a GPU; use 'bf16' or 'no' on a CPU")
        _ACCELERATOR = Accelerator(mixed_precision=mixed_precision, cpu=_multi_process_on_cpu())
    elif mixed_precision != _ACCELERATOR.mixed_precision and mixed_precision != "no":
        raise ValueError(f"mixed_precision: this process already trains with "
                         f"'{_ACCELERATOR.mixed_precision}', cannot switch to '{mixed_precision}'")
    return _ACCELERATOR


class EMA:
    """Exponential moving average of a module's weights (with the usual warm-up)."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Move the average toward ``module``'s current weights."""
        self.updates += 1
        # Early on the average would be dominated by the random init: warm the decay up.
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.module.parameters(), module.parameters()):
            average.lerp_(current.detach(), 1 - decay)
        for average, current in zip(self.module.buffers(), module.buffers()):
            average.copy_(current)

    def state_dict(self) -> dict:
        """Averaged weights plus the update count."""
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def image_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """uint8 NHWC images tiled into one uint8 HWC image (1-pixel gaps), grayscale as RGB."""
    if len(images) == 0:
        raise ValueError("image_grid: no images")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n, h, w, c = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    grid = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = image
    return grid


def save_image_grid(images: np.ndarray, path: Path, columns: int = 8, scale: int = 1,
                    labels: Optional[list[str]] = None) -> Path:
    """Write ``image_grid(images)`` as a PNG (optionally enlarged ``scale`` times, nearest).

    With ``labels`` (a class name per image) the grid has one row per class, in order of first
    appearance, with the class name at the left of its row: a person sees which class is which."""
    from PIL import Image

    if labels is not None:
        if len(labels) != len(images):
            raise ValueError(f"save_image_grid: {len(labels)} labels for {len(images)} images")
        grid = _labelled_grid(images, [str(label) for label in labels], columns, scale)
    else:
        grid = Image.fromarray(image_grid(images, columns))
        if scale > 1:
            grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def _labelled_grid(images: np.ndarray, labels: list[str], columns: int, scale: int):
    """A block of rows per class (``columns`` images a row, every image kept), its name in a
    margin on the left of the block's first row."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(dict.fromkeys(labels))
    rows = []
    for name in names:
        chosen = images[[i for i, label in enumerate(labels) if label == name]]
        row = Image.fromarray(image_grid(chosen, columns))
        rows.append(row.resize((row.width * scale, row.height * scale), Image.NEAREST) if scale > 1 else row)
    try:  # a scalable font (Pillow's own, FreeType) sized to the rows; else the small bitmap one
        font = ImageFont.load_default(size=max(11, min(28, rows[0].height // 3)))
    except (TypeError, OSError, ImportError):
        font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    shown = [name if len(name) <= 24 else name[:23] + "…" for name in names]
    margin = 8 + max(int(measure.textlength(text, font=font)) for text in shown)
    width = margin + max(row.width for row in rows)
    canvas = Image.new("RGB", (width, sum(row.height for row in rows)), "white")
    draw = ImageDraw.Draw(canvas)
    top = 0
    for text, row, count in zip(shown, rows, [labels.count(name) for name in names]):
        canvas.paste(row, (margin, top))
        first_row = row.height // -(-count // columns)  # the block's first row: the name sits beside it
        box = draw.textbbox((0, 0), text, font=font)
        draw.text((4, top + (first_row - (box[3] - box[1])) // 2 - box[1]), text, fill="black", font=font)
        top += row.height
    return canvas


def plot_history(history: list[dict[str, float]], path: Path, title: str = "") -> Optional[Path]:
    """Loss curves (one line per loss) and, below, monitor values; None when nothing was logged."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in history for k in row if k != "step"})
    losses = [k for k in keys if "loss" in k or k in ("reconstruction", "kl")]
    monitors = [k for k in keys if k not in losses]
    panels = [group for group in (losses, monitors) if group]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3 * len(panels)), squeeze=False)
    for ax, group in zip(axes[:, 0], panels):
        for key in group:
            points = [(row["step"], row[key]) for row in history if key in row]
            steps, values = zip(*points)
            ax.plot(steps, values, label=key, linewidth=0.8)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def latest_checkpoint(phase_dir: Path) -> Optional[Path]:
    """The newest complete checkpoint of a phase, or None."""
    folder = phase_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name)))
    return found[-1][1] if found else None


def _to_float(value: Any) -> float:
    return float(value.detach().item()) if isinstance(value, torch.Tensor) else float(value)


class Trainer:
    """Runs one training phase: ``run(step_fn)`` calls ``step_fn(step)`` for the remaining steps.

    ``modules`` and ``optimisers`` are prepared with accelerate; use ``trainer.modules[name]``
    in the step function and call ``trainer.backward(loss)`` instead of ``loss.backward()``.
    ``rng`` is the numpy generator the step function draws batches with: its state is saved
    in checkpoints, so a resumed run draws the same batches an uninterrupted one would (in a
    multi-process run only the main process's state is saved and the per-process streams are split
    from it again on resume: deterministic, but not the uninterrupted run's batches).
    ``sample_fn()`` returns uint8 NHWC images for the grids (use the EMA weights and fixed
    noise there), or ``(images, class names)`` for a grid with a labelled row per class. ``monitors`` map a name to ``(every, fn)``; ``fn()`` returns values logged
    with that step's losses (e.g. the DCGAN's mode-collapse monitor).
    """

    def __init__(self, settings: TrainingConfig, *, phase: str, modules: Mapping[str, nn.Module],
                 optimisers: Mapping[str, torch.optim.Optimizer], rng: np.random.Generator,
                 work_dir: Optional[Path] = None, progress: Optional[ProgressCallback] = None,
                 ema: tuple[str, ...] = (), sample_fn: Optional[Callable[[], np.ndarray]] = None,
                 monitors: Optional[Mapping[str, tuple[int, Callable[[], Mapping[str, float]]]]] = None,
                 total_steps: Optional[int] = None, images_per_step: int = 0,
                 progress_offset: int = 0, progress_total: Optional[int] = None, stage: str = "train",
                 progress_every: int = 10,
                 extra_state: Optional[tuple[Callable[[], dict], Callable[[dict], None]]] = None):
        self.settings = settings
        self.extra_state = extra_state
        self.phase = phase
        self.total_steps = int(total_steps or settings.steps)
        self.accelerator = accelerator(settings.mixed_precision)
        names, objects = list(modules), list(modules.values())
        opt_names, opt_objects = list(optimisers), list(optimisers.values())
        prepared = self.accelerator.prepare(*objects, *opt_objects)
        if len(objects) + len(opt_objects) == 1:
            prepared = (prepared,)
        self.modules = dict(zip(names, prepared[:len(objects)]))
        self.optimisers = dict(zip(opt_names, prepared[len(objects):]))
        if self.accelerator.scaler is None and self.accelerator.num_processes == 1:
            # accelerate's optimiser wrapper only matters for fp16 scaling and multi-process
            # runs; elsewhere it costs ~0.15 ms per step, which small models notice.
            self.optimisers = {n: getattr(o, "optimizer", o) for n, o in self.optimisers.items()}
        self.ema = {name: EMA(self.unwrap(name), settings.ema_decay) for name in ema if settings.ema_decay > 0}
        self.rng = rng
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.phase_dir = self.work_dir / phase if self.work_dir is not None else None
        self.progress, self.stage, self.progress_every = progress, stage, max(1, progress_every)
        self.progress_offset = progress_offset
        self.progress_total = progress_total or self.total_steps
        self.sample_fn, self.monitors = sample_fn, dict(monitors or {})
        self.images_per_step = images_per_step
        self.history: list[dict[str, float]] = []
        self.step = 0
        self.previous_seconds = 0.0
        self.resumed_from = 0

    # -- helpers for the step function ----------------------------------------
    @property
    def device(self) -> torch.device:
        """Where batches must go (the accelerator's device)."""
        return self.accelerator.device

    @property
    def writes_files(self) -> bool:
        """Only the main process of a multi-GPU run writes checkpoints and plots."""
        return self.phase_dir is not None and self.accelerator.is_main_process

    def unwrap(self, name: str) -> nn.Module:
        """The plain module behind ``modules[name]`` (no DDP wrapper)."""
        return self.accelerator.unwrap_model(self.modules[name])

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` with accelerate's gradient scaling for mixed precision."""
        self.accelerator.backward(loss)

    def autocast(self):
        """Context manager: the forward pass in the configured mixed precision."""
        return self.accelerator.autocast()

    def sampling_module(self, name: str) -> nn.Module:
        """The EMA copy when EMA is on, else the trained module (unwrapped)."""
        return self.ema[name].module if name in self.ema else self.unwrap(name)

    # -- checkpoints ------------------------------------------------------------
    def _checkpoint_state(self, elapsed: float) -> dict:
        return {
            "step": self.step, "total_steps": self.total_steps, "seconds": elapsed,
            "modules": {n: self.unwrap(n).state_dict() for n in self.modules},
            "optimisers": {n: o.state_dict() for n, o in self.optimisers.items()},
            "ema": {n: e.state_dict() for n, e in self.ema.items()},
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": json.dumps(random.getstate()),
            "history": self.history,
            "extra": self.extra_state[0]() if self.extra_state else {},
        }

    def save_checkpoint(self, elapsed: float) -> Optional[Path]:
        """Write ``checkpoints/step-N.pt`` atomically and keep the newest two."""
        if not self.writes_files:
            return None
        folder = self.phase_dir / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step-{self.step:06d}.pt"
        state = self._checkpoint_state(elapsed)
        write_atomically(path, lambda tmp: torch.save(state, tmp))
        old = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_NAME.fullmatch(p.name)))
        for _, stale in old[:-_KEEP_CHECKPOINTS]:
            stale.unlink(missing_ok=True)
        self._write_history()
        return path

    def try_resume(self) -> int:
        """Load the latest checkpoint of this phase, if any; returns the step it resumes after."""
        if self.phase_dir is None:
            return 0
        path = latest_checkpoint(self.phase_dir)
        if path is None:
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        if int(state["total_steps"]) != self.total_steps:
            # A different budget is a different training: start over rather than mix them.
            return 0
        for name, weights in state["modules"].items():
            self.unwrap(name).load_state_dict(weights)
        for name, opt_state in state["optimisers"].items():
            self.optimisers[name].load_state_dict(opt_state)
        for name, ema_state in state["ema"].items():
            if name in self.ema:
                self.ema[name].load_state_dict(ema_state)
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        py_state = json.loads(state["python_rng"])
        random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
        if self.extra_state and state.get("extra"):
            self.extra_state[1](state["extra"])
        self.step = int(state["step"])
        self.previous_seconds = float(state["seconds"])
        # Rows logged after this checkpoint (before a kill) are dropped: the resumed run
        # logs those steps again, so the history has neither a gap nor a duplicate.
        self.history = list(state["history"])
        self.resumed_from = self.step
        self._write_history()
        return self.step

    # -- the loop -----------------------------------------------------------------
    def run(self, step_fn: Callable[[int], Mapping[str, Any]]) -> TrainingResult:
        """Resume if possible, then call ``step_fn(step)`` until the budget is spent."""
        self.try_resume()
        if self.accelerator.num_processes > 1:
            self._split_random_streams()
        for module in self.modules.values():
            module.train()
        started = time.monotonic()
        first_step = self.step
        stopped_early = False
        cfg = self.settings
        observer = STEP_OBSERVER.get()
        while self.step < self.total_steps:
            self.step += 1
            step_started = time.perf_counter()
            losses = {k: _to_float(v) for k, v in step_fn(self.step).items()}
            for name, average in self.ema.items():
                average.update(self.unwrap(name))
            row = {"step": self.step, **losses}
            for name, (every, monitor) in self.monitors.items():
                if every and (self.step % every == 0 or self.step == self.total_steps):
                    row.update({k: _to_float(v) for k, v in monitor().items()})
            self.history.append(row)
            elapsed = self.previous_seconds + time.monotonic() - started
            self._report(losses, started, first_step)
            if observer is not None:  # the whole step (EMA, monitors, progress), not grids or checkpoints
                observer(self.phase, self.step, time.perf_counter() - step_started)
            out_of_time = cfg.max_seconds is not None and elapsed >= cfg.max_seconds
            if cfg.max_seconds is not None and self.accelerator.num_processes > 1:
                out_of_time = self._any_process(out_of_time)  # all stop at the same step, or DDP hangs
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                grid_started = time.perf_counter()
                self._write_grid()
                if observer is not None:
                    observer(self.phase, GRID_STEP, time.perf_counter() - grid_started)
            if (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or out_of_time:
                self.save_checkpoint(elapsed)
            if out_of_time and self.step < self.total_steps:
                stopped_early = True
                break
        elapsed = self.previous_seconds + time.monotonic() - started
        if self.writes_files:
            finished = latest_checkpoint(self.phase_dir)
            if finished is None or not finished.name.endswith(f"{self.step:06d}.pt"):
                self.save_checkpoint(elapsed)  # a finished phase is skipped when restarted
            self._write_grid()
            self._write_history()
            plot_history(self.history, self.phase_dir / LOSS_PLOT_FILE, title=self.phase)
        for module in self.modules.values():
            module.eval()
        self._release()
        return TrainingResult(self.phase, self.step, self.total_steps, self.resumed_from, stopped_early,
                              elapsed, list(self.history), self.accelerator.num_processes)

    def _split_random_streams(self) -> None:
        """Give each process of a multi-process run batches and noise of its own.

        Every process starts from the same state (the generator's seed, or the main process's
        checkpoint after a resume), so without this they would all draw the same batch and the
        extra processes would add nothing. Each now continues on stream ``rank`` derived from
        that shared state: deterministic for a given number of processes, also after a resume.
        """
        base = int(self.rng.integers(0, 2**62))
        rank = self.accelerator.process_index
        bit_generator = type(self.rng.bit_generator)(np.random.SeedSequence([base, rank]))
        self.rng.bit_generator.state = bit_generator.state
        torch.manual_seed(base + rank)
        random.seed(base + rank)

    def _any_process(self, flag: bool) -> bool:
        """True on every process when it is true on any (one all-reduce, on the accelerator's device:
        NCCL reduces GPU tensors only)."""
        value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item())

    def _release(self) -> None:
        # accelerate keeps every prepared object in lists; a benchmark that fits hundreds of
        # models in one process would keep them all alive.
        ours = [*self.modules.values(), *self.optimisers.values()]
        for name in ("_models", "_optimizers"):
            holder = getattr(self.accelerator, name, None)
            if isinstance(holder, list):
                holder[:] = [kept for kept in holder
                             if not any(kept is obj or getattr(kept, "optimizer", None) is obj for obj in ours)]

    def _report(self, losses: dict, started: float, first_step: int) -> None:
        if self.step % self.progress_every and self.step != self.total_steps:
            return
        elapsed = time.monotonic() - started
        done_here = self.step - first_step
        rate = done_here / elapsed if elapsed > 0 else 0.0
        info = dict(losses)
        if self.images_per_step and rate:
            info["images_per_s"] = round(rate * self.images_per_step, 1)
        overall = self.progress_offset + self.step
        eta = (self.progress_total - overall) / rate if rate else None
        event = ProgressEvent(self.stage, overall, self.progress_total, info, eta,
                              message=f"{self.phase}: step {self.step}/{self.total_steps}")
        if self.progress is not None:
            self.progress(event)
        if self.work_dir is not None and self.accelerator.is_main_process:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            with open(self.work_dir / PROGRESS_FILE, "a") as handle:
                handle.write(json.dumps({"time": time.time(), "phase": self.phase, "step": self.step,
                                         "stage": event.stage, "overall_step": overall, "total": event.total,
                                         "losses": info, "eta_seconds": eta}) + "\n")

    def _write_grid(self) -> None:
        if self.sample_fn is None or not self.writes_files:
            return
        images = self.sample_fn()
        # A sample function may name each image's class: (images, class names) -> a labelled grid.
        images, labels = images if isinstance(images, tuple) else (images, None)
        if len(images):
            save_image_grid(images, self.phase_dir / SAMPLES_DIR / f"step-{self.step:06d}.png",
                            scale=max(1, 64 // images.shape[1]), labels=labels)

    def _write_history(self) -> None:
        if not self.writes_files:
            return
        self.phase_dir.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(row) + "\n" for row in self.history)
        write_atomically(self.phase_dir / HISTORY_FILE, lambda tmp: tmp.write_text(text))


def read_history(phase_dir: Path) -> list[dict[str, float]]:
    """The loss history a phase wrote (``history.jsonl``)."""
    path = Path(phase_dir) / HISTORY_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def remove_checkpoints(work_dir: Optional[Path]) -> None:
    """Delete every phase's checkpoints under ``work_dir`` (histories, plots and grids stay)."""
    import shutil

    if work_dir is None or not Path(work_dir).is_dir():
        return
    for folder in Path(work_dir).glob(f"*/{CHECKPOINT_DIR}"):
        shutil.rmtree(folder, ignore_errors=True)


def copy_training_record(work_dir: Optional[Path], target: Path) -> None:
    """Copy every phase's loss plot, history and latest sample grid into ``target/training``."""
    import shutil

    if work_dir is None or not Path(work_dir).is_dir():
        return
    out = Path(target) / "training"
    for phase_dir in sorted(p for p in Path(work_dir).iterdir() if p.is_dir()):
        files = [phase_dir / HISTORY_FILE, phase_dir / LOSS_PLOT_FILE]
        grids = sorted((phase_dir / SAMPLES_DIR).glob("step-*.png")) if (phase_dir / SAMPLES_DIR).is_dir() else []
        for source in files + grids:
            if source.exists():
                destination = out / phase_dir.name / source.relative_to(phase_dir)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


def load_matching_weights(module: nn.Module, parent_state: Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
    """Copy every tensor of ``parent_state`` whose name and shape match into ``module`` (transfer).

    Tensors that do not fit -- e.g. a class embedding when the parent had another number of
    classes -- keep their fresh initialisation. Returns the names loaded and skipped, which
    the generator records in its metadata.
    """
    own = module.state_dict()
    loaded, skipped = [], []
    for name, value in own.items():
        source = parent_state.get(name)
        if source is not None and tuple(source.shape) == tuple(value.shape):
            own[name] = source.detach().to(value.dtype).clone()
            loaded.append(name)
        else:
            skipped.append(name)
    if not loaded:
        raise ValueError("parent: no weight of the parent model fits this model's architecture "
                         "(different image size, channels or network widths)")
    module.load_state_dict(own)
    return {"loaded": loaded, "skipped": skipped}
