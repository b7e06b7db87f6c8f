"""Generated images kept beside the cell cache, so a draw is made once.

A run with another classifier, another protocol or new arms needs the same generated images
again (one draw per variant, fit and few-shot subset); drawing them can cost far more than
training the classifier (a DDIM's img2img variations of a few hundred flowers: ~10 minutes on
one CPU core). The runner keeps each draw as an ``.npz`` under ``<cache>/samples/`` and loads it
the next time the same draw is asked for.

A draw's key holds everything that decides its images: the finished fit's key (the kind, its
code version, the validated config, the data it learned, the seed and any classic augmentation
that expanded it), the few-shot images it varies (their fingerprint), the sample options the
call sets (validated; an option left out takes the config's value, which the fit key holds), the
class counts, the seed and the runner's own drawing rules (``identity.DRAW_VERSION``). Images
only (``uint8``, stored losslessly: a loaded draw is the drawn one, bit for bit); table rows are
cheap to draw and are not kept, nor are draws through filters (they judge with a classifier whose
precision depends on the machine), nor those of a stored registry model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..files import write_atomically
from ..generators.base import Samples
from .identity import SAMPLES_FORMAT as FORMAT  # the file layout; a draw's key is ``identity.sample_key``


def load_samples(path: Optional[Path], class_names: list[str], counts: dict[int, int]) -> Optional[tuple[Samples, float]]:
    """(samples, the fit's CPU seconds) kept at ``path``, or None when there is none or it cannot be
    read or does not hold the draw asked for (``counts``: class index -> number): it is then drawn
    again. A damaged file is never fatal."""
    if path is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            images, labels = stored["images"], stored["labels"].astype(np.int64)
        if meta.get("format") != FORMAT or meta.get("class_names") != list(class_names):
            return None
        held = dict(zip(*np.unique(labels, return_counts=True)))
        wanted = {int(c): int(k) for c, k in counts.items() if k > 0}
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels) or \
                {int(c): int(k) for c, k in held.items()} != wanted:
            return None
        samples = Samples(images, labels, list(class_names), list(meta["provenance"]), dict(meta["stats"]))
        return samples, float(meta["fit_cpu_seconds"])
    except Exception:  # noqa: BLE001 -- torn, truncated, emptied or foreign: drawn again, never fatal
        return None


def save_samples(path: Optional[Path], samples: Samples, fit_cpu_seconds: float) -> None:
    """Keep a draw of images at ``path`` (atomically: a killed run never leaves a torn file that
    is read back); nothing for tables or without a cache. A failed write only costs a redraw."""
    if path is None or not isinstance(samples.data, np.ndarray) or samples.data.dtype != np.uint8:
        return
    meta = {"format": FORMAT, "class_names": list(samples.class_names), "provenance": samples.provenance,
            "stats": samples.stats, "fit_cpu_seconds": fit_cpu_seconds}

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a handle: np.savez would add ".npz" to a path
            np.savez_compressed(handle, images=samples.data, labels=np.asarray(samples.labels),
                                meta=np.array(json.dumps(meta, default=str)))

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, write, durable=False)
    except OSError:
        pass
