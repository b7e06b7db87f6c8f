"""Writing generated samples: an ImageFolder of PNGs or a CSV, plus ``manifest.jsonl``.

Output layout::

    out_dir/<class folder>/<index>.png    images (index zero-padded to 6 digits, per class)
    out_dir/samples.csv                   table rows, a label column appended
    out_dir/manifest.jsonl                one JSON line per sample: where it is and how it was made

The manifest is written as ``manifest.jsonl.part`` while samples are added and renamed to
``manifest.jsonl`` by ``close()``: a folder without ``manifest.jsonl`` is incomplete.
Samples are written batch by batch, so memory does not grow with the number of samples.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from PIL import Image

from .registry import json_safe

MANIFEST_FILE = "manifest.jsonl"
TABLE_FILE = "samples.csv"
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f/\\:*?"<>|]')


def class_folder_names(class_names: list[str]) -> dict[str, str]:
    """A safe, unique folder name for every class name.

    Class names come from users' folders and CSV labels and may hold slashes, ``..`` or
    characters Windows refuses. Safe names are used as they are; others get unsafe
    characters replaced plus a short hash, so two classes never share a folder (also on
    case-insensitive filesystems). The manifest keeps the real class name.
    """
    folders: dict[str, str] = {}
    taken: set[str] = set()
    for name in class_names:
        folder = _UNSAFE_CHARS.sub("_", name).strip(" .")
        if folder != name or not folder or folder.lower() in taken:
            digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
            folder = f"{folder or 'class'}-{digest}"
        taken.add(folder.lower())
        folders[name] = folder
    return folders


def image_to_pil(image: np.ndarray) -> Image.Image:
    """A uint8 (H, W, C) image as PIL: 1 channel stays grayscale ("L"), 3 channels RGB."""
    if image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"expected an (H, W, 1) or (H, W, 3) image, got shape {image.shape}")
    return Image.fromarray(np.ascontiguousarray(image))


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir``; refuse one that already holds files (outputs must not mix)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"out_dir {out} is not empty; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


class SampleWriter:
    """Appends batches of samples to ``out_dir`` and their lines to the manifest.

    ``base_record`` goes into every manifest line (model name and id, kind, seed); each
    sample's provenance (sampler and its options, source example, filter verdicts) is
    merged in, without overriding the base fields.
    """

    def __init__(self, out_dir: Path, class_names: list[str], base_record: dict[str, Any]):
        self.out_dir = Path(out_dir)
        self.class_names = list(class_names)
        self.base_record = json_safe(base_record)
        self.folders = class_folder_names(self.class_names)
        self.counts = {name: 0 for name in self.class_names}
        self.rows_written = 0
        self.label_column: Optional[str] = None
        self._manifest_part = self.out_dir / (MANIFEST_FILE + ".part")
        self._manifest = open(self._manifest_part, "w", encoding="utf-8")

    @property
    def total(self) -> int:
        """Samples written so far."""
        return sum(self.counts.values())

    def write(self, data: np.ndarray | pd.DataFrame, labels: np.ndarray, provenance: list[dict],
              extra: Optional[dict[str, Any]] = None, defaults: Optional[dict[str, Any]] = None) -> int:
        """Write one batch (images or rows) and its manifest lines; returns how many were written.

        Each line is ``defaults``, then the sample's provenance, then ``extra``, then the
        base record and the sample's location and label (later ones win).
        """
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(data):
            raise ValueError(f"a batch has {len(data)} samples but {len(labels)} labels")
        provenance = list(provenance) if provenance else [{}] * len(labels)
        if len(provenance) != len(labels):
            raise ValueError(f"a batch has {len(labels)} samples but {len(provenance)} provenance records")
        if isinstance(data, pd.DataFrame):
            locations = self._write_rows(data, labels)
        else:
            locations = self._write_images(np.asarray(data), labels)
        for location, label, record in zip(locations, labels, provenance):
            line = {**(json_safe(defaults) if defaults else {}), **json_safe(record or {}),
                    **(json_safe(extra) if extra else {}),
                    **self.base_record, **location, "label": self.class_names[int(label)]}
            self._manifest.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
        self._manifest.flush()
        return len(labels)

    def _write_images(self, images: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
        locations = []
        for image, label in zip(images, labels):
            class_name = self.class_names[int(label)]
            folder = self.out_dir / self.folders[class_name]
            folder.mkdir(exist_ok=True)
            index = self.counts[class_name]
            relative = f"{self.folders[class_name]}/{index:06d}.png"
            image_to_pil(image).save(self.out_dir / relative, format="PNG")
            self.counts[class_name] += 1
            locations.append({"file": relative})
        return locations

    def _write_rows(self, frame: pd.DataFrame, labels: np.ndarray) -> list[dict[str, Any]]:
        if self.label_column is None:
            # A feature may itself be called "label": never overwrite it.
            self.label_column = next(c for c in ("label", "genaug_label", "genaug_label_")
                                     if c not in frame.columns)
        frame = frame.reset_index(drop=True).copy()
        frame[self.label_column] = [self.class_names[int(label)] for label in labels]
        first = self.rows_written == 0
        frame.to_csv(self.out_dir / TABLE_FILE, mode="w" if first else "a", header=first, index=False)
        start = self.rows_written
        self.rows_written += len(frame)
        for label in labels:
            self.counts[self.class_names[int(label)]] += 1
        return [{"file": TABLE_FILE, "row": start + i} for i in range(len(frame))]

    def close(self) -> Path:
        """Finish the manifest (rename ``.part`` into place); returns its path."""
        self._manifest.close()
        final = self.out_dir / MANIFEST_FILE
        os.replace(self._manifest_part, final)
        return final

    def abort(self) -> None:
        """Close the manifest without marking the output complete (it stays ``.part``)."""
        self._manifest.close()
