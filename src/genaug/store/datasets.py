"""Ingested datasets kept under ``$GENAUG_HOME/datasets/<name>/``: the validated copy of the
user's data (images as .npz, tables as CSV + column types, no pickle) and its ingest report.

Training a model from a stored dataset deletes this copy afterwards unless asked to keep it
(seed 002 ch. 3.3.8): see ``genaug.api.train``.
"""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..data.datasets import LabelledData, LabelledImages, LabelledTable
from .registry import genaug_home, validate_name

DATASETS_DIR = "datasets"
LABEL_COLUMN = "__genaug_label__"


def dataset_dir(name: str, home=None) -> Path:
    """Folder of the stored dataset ``name`` (the name is validated: no paths)."""
    return genaug_home(home) / DATASETS_DIR / validate_name(name)


def save_part(folder: Path, stem: str, data: LabelledData) -> None:
    """Write one split as ``<stem>.npz`` (images) or ``<stem>.csv`` + ``<stem>.columns.json`` (a table)."""
    if isinstance(data, LabelledImages):
        np.savez_compressed(folder / f"{stem}.npz", images=data.images, labels=data.labels,
                            class_names=np.asarray(data.class_names, dtype=str),
                            sources=np.asarray(data.sources, dtype=str))
        return
    frame = data.frame.copy()
    frame[LABEL_COLUMN] = data.labels
    frame.to_csv(folder / f"{stem}.csv", index=False)
    types = {c: ("category" if str(t) in ("category", "object", "str", "string") else str(t))
             for c, t in data.frame.dtypes.items()}
    (folder / f"{stem}.columns.json").write_text(json.dumps({"types": types, "class_names": data.class_names,
                                                             "sources": data.sources}))


def stored_dataset_shape(name: str, home=None) -> tuple[str, Optional[tuple[int, ...]], list[str]]:
    """``("images", (H, W, C), class names)`` or ``("table", None, class names)`` of a stored
    dataset, from the file headers: the arrays are not decompressed (cheap at any size)."""
    import zipfile

    folder = dataset_dir(name, home)
    if (folder / "train.npz").exists():
        with zipfile.ZipFile(folder / "train.npz") as archive:
            with archive.open("images.npy") as member:
                major, _ = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else \
                    np.lib.format.read_array_header_2_0
                shape, _, _ = read_header(member)
        with np.load(folder / "train.npz", allow_pickle=False) as z:
            classes = [str(c) for c in z["class_names"]]
        return "images", tuple(int(v) for v in shape[1:]), classes
    meta = json.loads((folder / "train.columns.json").read_text())
    return "table", None, list(meta["class_names"])


def load_part(folder: Path, stem: str) -> Optional[LabelledData]:
    """The split ``save_part`` wrote as ``stem`` in ``folder``; None when there is none."""
    if (folder / f"{stem}.npz").exists():
        with np.load(folder / f"{stem}.npz", allow_pickle=False) as z:
            return LabelledImages(z["images"], z["labels"], [str(c) for c in z["class_names"]],
                                  [str(s) for s in z["sources"]])
    if (folder / f"{stem}.csv").exists():
        meta = json.loads((folder / f"{stem}.columns.json").read_text())
        frame = pd.read_csv(folder / f"{stem}.csv", dtype={c: ("category" if t == "category" else None)
                                                            for c, t in meta["types"].items()})
        labels = frame.pop(LABEL_COLUMN).to_numpy()
        return LabelledTable(frame, labels, meta["class_names"], meta["sources"])
    return None


def save_dataset(name: str, data: LabelledData, test: Optional[LabelledData], report: dict,
                 home=None, replace: bool = False) -> Path:
    """Store an ingested dataset (written to a temp folder, then renamed: never half-written)."""
    target = dataset_dir(name, home)
    if target.exists() and not replace:
        raise FileExistsError(f"dataset '{name}' already exists in {target.parent} (use another name or replace)")
    tmp = target.parent / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        save_part(tmp, "train", data)
        if test is not None:
            save_part(tmp, "test", test)
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=str))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_dataset(name: str, home=None) -> tuple[LabelledData, Optional[LabelledData], dict]:
    """(training data, test data or None, ingest report) of a stored dataset."""
    folder = dataset_dir(name, home)
    data = load_part(folder, "train") if folder.exists() else None
    if data is None:
        raise FileNotFoundError(f"no stored dataset '{name}' in {folder.parent} (run `genaug ingest PATH --name {name}`)")
    report = json.loads((folder / "report.json").read_text()) if (folder / "report.json").exists() else {}
    return data, load_part(folder, "test"), report


def list_datasets(home=None) -> list[str]:
    """Names of the stored datasets."""
    root = genaug_home(home) / DATASETS_DIR
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []
