"""Waiting for a training in another process to write its first checkpoint (the kill tests)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Optional

from genaug.training import latest_checkpoint


def first_checkpoint(work_dir: Path, phase_glob: str, process: subprocess.Popen, seconds: float,
                     poll: float = 0.02) -> Optional[Path]:
    """The first checkpoint under ``work_dir/<phase_glob>`` once one exists; None when ``process``
    ended or ``seconds`` passed first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        phases = list(Path(work_dir).glob(phase_glob))
        checkpoint = latest_checkpoint(phases[0]) if phases else None
        if checkpoint is not None:
            return checkpoint
        time.sleep(poll)
    return None
