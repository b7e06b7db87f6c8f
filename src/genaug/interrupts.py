"""Why a run stops before it ends: its user cancelled it, or its process is being shut down.

The two must never be confused. A user's cancel ends the run for good (a training's model is
marked failed). A shutdown (SIGTERM to the service's process group, as systemd sends it) is
nobody's decision about the run: the run stops where it is, keeps its checkpoints, and is
queued again to resume from them. Both are ``BaseException`` so that no ``except Exception``
in a generator or a library swallows them.
"""
from __future__ import annotations


class ShutdownRequested(BaseException):
    """Raised inside a run when its process must stop for a shutdown; the run is resumed later."""
