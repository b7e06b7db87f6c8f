"""Progress events: what long work reports, and the CLI/service render.

A progress callback is any callable taking one ``ProgressEvent``. Nothing below the CLI
prints; it reports events and lets the caller decide how to show them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class ProgressEvent:
    """One step of a long task: which stage, how far, the latest losses, the estimated time left."""

    stage: str
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    eta_seconds: Optional[float] = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]

# What an evaluation's progress message carries after the cell it names when that cell is cached
# but cannot be reused (``n=2 seed=0 real: recomputed, <why>``): the CLI prints such lines in full.
RECOMPUTED_MARK = ": recomputed, "


class ProgressReporter:
    """Turns (step, losses) into ``ProgressEvent``s with an ETA; silent when no callback is given."""

    def __init__(self, callback: Optional[ProgressCallback], stage: str, total: int, every: int = 1):
        self.callback, self.stage, self.total, self.every = callback, stage, max(int(total), 1), max(every, 1)
        self.started = time.monotonic()

    def __call__(self, step: int, losses: Optional[dict[str, float]] = None, message: str = "") -> None:
        if self.callback is None or (step % self.every and step != self.total):
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / step * (self.total - step) if step > 0 else None
        self.callback(ProgressEvent(self.stage, step, self.total, dict(losses or {}), eta, message))
