"""Whole-or-nothing file writes, shared by everything that keeps state on disk between runs
(training checkpoints, the evaluation's cell cache, a pool fit's cost record)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], None], durable: bool = True) -> None:
    """Write ``path`` through ``write(temporary)`` and rename it into place: a reader sees the old
    file or the whole new one, never a torn one. The temporary is removed when ``write`` raises; a
    process killed mid-write leaves it behind (``.<name>.<hex>.tmp``, never read; safe to delete).
    The temporary's name is random, not the pid: two processes -- also on two hosts sharing a
    cache over a network file system -- that write the same file at once each rename a whole file
    of their own, and the last one stays. ``durable``: fsync the data before the rename, so a
    power cut leaves the old file or the whole new one, never an empty one."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(temporary)
        if durable:
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
