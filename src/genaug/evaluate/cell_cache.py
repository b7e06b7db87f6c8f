"""The evaluation's cell cache: one JSON file per (dataset, n, seed, arm), keyed by the cell's
identity (``identity.cell_identity``), beside the kept generator fits and draws of the same root.

A cell is found only under its own identity; cells restored from committed results files keep
theirs, and one whose arm file holds another identity is kept beside it (``<arm>@<identity>.json``).
Every write is whole or nothing (``genaug.files``): a killed run never leaves a half-written cell.
"""
from __future__ import annotations

import glob
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..files import create_atomically, write_atomically
from .identity import fitted_key

if TYPE_CHECKING:
    from .protocol import GeneratorSpec


def slug(text: str) -> str:
    """``text`` as one safe file-name part (anything but letters, digits and ``._=+-`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text)


class CellCache:
    """One JSON file per (dataset, n, seed, arm); a missing directory means no caching."""

    def __init__(self, directory: Optional[Path], dataset: str):
        self.root = None if directory is None else Path(directory)
        self.directory = None if directory is None else Path(directory) / slug(dataset)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, n, seed, arm) -> Optional[Path]:
        if self.directory is None:
            return None
        return self.directory / f"n={n if n is not None else 'all'}" / f"seed={seed}" / f"{slug(arm)}.json"

    def work_dir(self, spec: GeneratorSpec, identity: str, n, seed) -> Optional[Path]:
        """Checkpoint folder of one generator fit (None without a cache)."""
        if self.directory is None:
            return None
        return self.directory / "work" / f"{slug(spec.label)}-{identity}" / f"n={n if n is not None else 'all'}-seed={seed}"

    def fitted_dir(self, spec: GeneratorSpec, key: str) -> Optional[Path]:
        """Folder of one finished fit, shared by every dataset name under the cache root (one run per
        classifier reuses it); None without a cache. ``key`` comes from ``identity.fitted_key``."""
        if self.root is None:
            return None
        return self.root / "fitted" / f"{slug(spec.label)}-{key}"

    def pool_dir(self, spec: GeneratorSpec, fit_id: str, seed: int, classic: Optional[dict]) -> Optional[Path]:
        """Checkpoint folder of one pool-trained fit (one per seed), shared like ``fitted_dir`` by
        every dataset name under the cache root, so a run with another classifier loads the fit
        instead of training it again; None without a cache.

        Earlier versions kept it under one dataset name (``<name>/work/<label>-<fit_id>/pool-seed=S``,
        keyed without the classic augmentation): found there under any name, it is moved here
        rather than refitted -- unless classic augmentation reaches the fit (augmented copies),
        which that old key cannot tell apart. A move that fails (another process moved it first,
        another file system) leaves the fit to be found or trained as usual, never fatal."""
        if self.root is None:
            return None
        key = fitted_key(fit_id, "unlabeled pool", seed, classic)
        folder = self.root / "fitted" / f"{slug(spec.label)}-pool-{key}"
        if classic is None and not folder.exists():
            for legacy in sorted(self.root.glob(f"*/work/{slug(spec.label)}-{fit_id}/pool-seed={seed}")):
                try:
                    folder.parent.mkdir(parents=True, exist_ok=True)
                    legacy.rename(folder)
                    break
                except OSError:
                    continue
        return folder

    def samples_path(self, spec: GeneratorSpec, key: str) -> Optional[Path]:
        """File of one kept draw of generated images (``sample_cache``), shared like ``fitted_dir``
        by every dataset name under the cache root; None without a cache."""
        if self.root is None:
            return None
        return self.root / "samples" / f"{slug(spec.label)}-{key}.npz"

    def why_not_reused(self, n, seed, arm, identity: str, quality_samples: int = 0) -> Optional[str]:
        """Why this (n, seed, arm) is cached yet computed again, or None (nothing cached, or its cell
        of ``identity`` is reused): ``"no quality numbers"`` (that cell lacks the ``quality_samples``
        asked for), ``"other settings"`` (a cell of another identity -- another version, budget,
        data, classifier or precision; restored ones kept beside the arm's file
        (``<arm>@<identity>.json``) count too) or ``"unreadable"`` (the arm's file cannot be read).
        The one answer behind both a computing run's progress note and a partial report's list."""
        cell = self.get(n, seed, arm, identity)
        if cell is not None:
            return "no quality numbers" if quality_samples and cell.get("quality_samples") != quality_samples else None
        path = self._path(n, seed, arm)
        if path is None:
            return None
        own = self._restored_path(n, seed, arm, identity)
        if any(other != own for other in path.parent.glob(f"{glob.escape(path.stem)}@*.json")):
            return "other settings"
        if not path.exists():
            return None
        try:
            return None if json.loads(path.read_text()).get("identity") == identity else "other settings"
        except (OSError, ValueError, AttributeError):  # AttributeError: a JSON file that holds no object
            return "unreadable"

    def _restored_path(self, n, seed, arm, identity: str) -> Optional[Path]:
        """Where ``restore`` keeps a cell whose (n, seed, arm) file holds another identity."""
        path = self._path(n, seed, arm)
        return None if path is None else path.with_name(f"{path.stem}@{slug(identity)}.json")

    def get(self, n, seed, arm, identity: str) -> Optional[dict]:
        """The cached cell, or None -- also when it was computed under other settings."""
        for path in (self._path(n, seed, arm), self._restored_path(n, seed, arm, identity)):
            if path is None or not path.exists():
                continue
            try:
                cell = json.loads(path.read_text())
            except (OSError, ValueError):  # an unreadable cell is computed again
                continue
            if cell.get("identity") == identity:
                return cell
        return None

    def restore(self, cell: dict) -> bool:
        """Put back a cell kept elsewhere (a committed results file: ``{"n", "seed", "arm", ...,
        "identity"}``) unless that cell is cached already; True when this call wrote it (False when
        it was there, or another process put the same cell back at the same moment -- except on a
        file system without hard links, where each of such processes writes it and says True). Its
        identity travels with it, so ``get`` still refuses it under other settings.

        Where the (n, seed, arm) file holds a cell of another identity (another results file of the
        same arm: fp32 and bf16 features, other budgets), the restored cell is kept beside it under
        its identity and both stay found: the first file restored no longer shadows the others. (A cell a
        run computes still replaces the arm's main file; the next restore puts the other back beside it.)"""
        if "identity" not in cell:
            return False
        n, seed, arm, identity = cell["n"], cell["seed"], cell["arm"], cell["identity"]
        path = self._path(n, seed, arm)
        if path is None or self.get(n, seed, arm, identity) is not None:
            return False
        body = {k: v for k, v in cell.items() if k != "identity"}
        body["identity"] = identity
        # Created only where no arm file exists (two processes restoring other identities of one arm
        # at once both keep theirs: the second finds the file and writes beside it).
        if self._create(path, body):
            return True
        if self.get(n, seed, arm, identity) is not None:  # the same cell, put back by another process
            return False
        # Created only once too: a file at this path can only hold this identity.
        return self._create(self._restored_path(n, seed, arm, identity), body)

    def put(self, n, seed, arm, cell: dict, identity: str) -> None:
        """Write a cell atomically (a killed run never leaves a half-written cell). The file names
        its (n, seed, arm) too: a file name is only a slug of the arm, and ``cells`` lists them."""
        path = self._path(n, seed, arm)
        if path is None:
            return
        cell["identity"] = identity
        self._write(path, {"n": n, "seed": seed, "arm": arm, **cell})

    def cells(self) -> tuple[list[dict], int]:
        """Every cell cached under this dataset name, each ``{"n", "seed", "arm", ..., "identity"}``
        as ``restore`` takes it (so an unfinished run's cells can be kept in a results file and
        resumed elsewhere), and how many files were left out: unreadable ones, and cells written
        before their files named their arm (the arm cannot be told from a file name)."""
        if self.directory is None:
            return [], 0
        found, left_out = [], 0
        for path in sorted(self.directory.glob("n=*/seed=*/*.json")):
            try:
                cell = json.loads(path.read_text())
            except (OSError, ValueError):
                left_out += 1
                continue
            if not isinstance(cell, dict) or not {"n", "seed", "arm", "identity"} <= cell.keys():
                left_out += 1
                continue
            found.append(cell)
        return found, left_out

    @staticmethod
    def _create(path: Path, cell: dict) -> bool:
        """Write a cell where no file is yet (never over another process's); False when one is."""
        return CellCache._write(path, cell, only_new=True)

    @staticmethod
    def _write(path: Path, cell: dict, only_new: bool = False) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(cell, indent=1)
        if only_new:
            return create_atomically(path, lambda tmp: tmp.write_text(text))
        # Two workers may write the same cell at once (a re-queued unit whose first run still goes
        # on); each write is whole, the last one stays. A lost cell is only computed again: no fsync.
        write_atomically(path, lambda tmp: tmp.write_text(text), durable=False)
        return True
