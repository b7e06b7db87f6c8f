"""Whole-or-nothing file writes, shared by everything that keeps state on disk between runs
(training checkpoints, the evaluation's cell cache, a pool fit's cost record)."""
from __future__ import annotations

import errno
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
    temporary = _temporary(path)
    try:
        write(temporary)
        if durable:
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# What ``os.link`` raises where the file system has no hard links (FAT, some network mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


def create_atomically(path: Path, write: Callable[[Path], None]) -> bool:
    """Write ``path`` through ``write(temporary)`` only where no file is yet, whole or not at all;
    False when one exists (another process's stays untouched). The whole temporary is hard-linked
    into place, which fails when the name exists, so of two processes creating one file at once
    exactly one succeeds. Where the file system has no hard links, an ordinary rename (the last
    writer wins, as ``write_atomically``); any other error is raised. Not fsynced: for caches,
    where a lost file is only computed again."""
    if path.exists():
        return False
    temporary = _temporary(path)
    try:
        write(temporary)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            os.replace(temporary, path)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _temporary(path: Path) -> Path:
    # Random, not the pid: two hosts sharing a file system never pick the same name.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
