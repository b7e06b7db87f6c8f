"""Artifact folders: written to a temporary folder, made durable, then renamed into place.

Layout under ``$GENAUG_HOME/models``::

    <id>/                 a complete artifact folder (what ``Generator.save`` wrote)
    .tmp-<id>-<uuid>/     a folder being written; never read, removed when stale

The rename is atomic on POSIX filesystems, so ``models/<id>`` either does not exist or is
complete; the registry marks the row ready only after the rename, so a killed process
never leaves a ready model without complete files.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable

MODELS_DIR = "models"
TMP_PREFIX = ".tmp-"
# Model ids are uuids; anything else (a slash, "..") must never reach a path.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def _check_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not _SAFE_ID.fullmatch(model_id):
        raise ValueError(f"model id {model_id!r} is not a safe folder name")
    return model_id


def model_dir(home: str | os.PathLike, model_id: str) -> Path:
    """``<home>/models/<id>``: where a model's complete artifacts live."""
    return Path(home) / MODELS_DIR / _check_id(model_id)


def _fsync_path(path: Path) -> None:
    # Directories cannot be opened for fsync on Windows; there the rename is what we have.
    if path.is_dir() and os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (deepest first), then ``root`` itself."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def write_artifact_atomically(home: str | os.PathLike, model_id: str,
                              write_fn: Callable[[Path], object]) -> Path:
    """Let ``write_fn(tmp_dir)`` write a model's files, then move them to ``models/<id>`` atomically.

    Steps: write into ``models/.tmp-<id>-<uuid>/``; fsync every file and the folder; rename
    the folder to ``models/<id>``; fsync ``models/``. Returns the final folder. On any error
    the temporary folder is removed and the error re-raised. Only after this returns may
    the caller mark the row ready.
    """
    models = Path(home) / MODELS_DIR
    models.mkdir(parents=True, exist_ok=True)
    final = model_dir(home, model_id)
    if final.exists():
        # os.rename would silently replace an empty folder: refuse instead.
        raise FileExistsError(f"artifact folder {final} already exists")
    tmp = models / f"{TMP_PREFIX}{model_id}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        write_fn(tmp)
        fsync_tree(tmp)
        os.rename(tmp, final)
        _fsync_path(models)  # makes the rename itself durable
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def temp_folders(home: str | os.PathLike, model_id: str | None = None) -> list[Path]:
    """The ``.tmp-*`` folders under ``models/`` (of one model when ``model_id`` is given)."""
    models = Path(home) / MODELS_DIR
    if not models.is_dir():
        return []
    prefix = TMP_PREFIX + (f"{_check_id(model_id)}-" if model_id else "")
    return sorted(p for p in models.iterdir() if p.name.startswith(prefix) and p.is_dir())


def _tmp_owner(folder_name: str) -> str:
    # ".tmp-<uuid with dashes>-<hex>": the id is everything between the prefix and the last dash.
    return folder_name[len(TMP_PREFIX):].rsplit("-", 1)[0]


def remove_model_folders(home: str | os.PathLike, model_id: str) -> list[str]:
    """Remove ``models/<id>`` and every ``models/.tmp-<id>-*``; returns the folder names removed."""
    removed = []
    for folder in [model_dir(home, model_id), *temp_folders(home, model_id)]:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def cleanup_stale_folders(home: str | os.PathLike, keep_ids: Iterable[str]) -> list[str]:
    """Remove every folder under ``models/`` that belongs to no model in ``keep_ids``.

    ``keep_ids`` are the rows still training or ready; their folders (temporary ones
    included: a live training may be writing) stay.
    """
    keep = set(keep_ids)
    models = Path(home) / MODELS_DIR
    if not models.is_dir():
        return []
    removed = []
    for folder in sorted(models.iterdir()):
        if not folder.is_dir():
            continue
        owner = _tmp_owner(folder.name) if folder.name.startswith(TMP_PREFIX) else folder.name
        if owner not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
