"""Generated images kept beside the cell cache, so a draw is made once.

A run with another classifier, another protocol or new arms needs the same generated images
again (one draw per variant, fit and few-shot subset); drawing them can cost far more than
training the classifier (a DDIM's img2img variations of a few hundred flowers: ~10 minutes on
one CPU core). The runner keeps each draw as an ``.npz`` under ``<cache>/samples/`` and loads it
the next time the same draw is asked for.

A draw's key holds everything that decides its images: the finished fit's key (the kind, its
code version, the validated config, the data it learned, the seed and any classic augmentation
that expanded it), the few-shot images it varies (their fingerprint), the validated sample
options, the class counts and the seed. Images only (``uint8``, stored losslessly: a loaded draw
is the drawn one, bit for bit); table rows are cheap to draw and are not kept, nor are draws
through filters (they judge with a classifier whose precision depends on the machine), nor those
of a stored registry model.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..files import write_atomically
from ..generators.base import Samples

FORMAT = 1  # bumped when the file layout changes: older files are then drawn again


def sample_key(fit_key: str, real_fingerprint: str, options: dict, counts: dict[int, int], seed: int) -> str:
    """Identity of one draw: the finished fit, the images it varies, the options, counts and seed."""
    document = {"fit": fit_key, "real": real_fingerprint, "options": options,
                "counts": {str(c): int(k) for c, k in sorted(counts.items())}, "seed": seed, "format": FORMAT}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_samples(path: Optional[Path], class_names: list[str]) -> Optional[tuple[Samples, float]]:
    """(samples, the fit's CPU seconds) kept at ``path``, or None when there is none or it cannot
    be read (it is then drawn again; a damaged file is never fatal)."""
    if path is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta.get("format") != FORMAT or meta.get("class_names") != list(class_names):
                return None
            samples = Samples(stored["images"], stored["labels"].astype(np.int64), list(class_names),
                              meta["provenance"], meta["stats"])
        return samples, float(meta["fit_cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_samples(path: Optional[Path], samples: Samples, fit_cpu_seconds: float) -> None:
    """Keep a draw of images at ``path`` (atomically: a killed run never leaves a torn file that
    is read back); nothing for tables or without a cache. A failed write only costs a redraw."""
    if path is None or not isinstance(samples.data, np.ndarray) or samples.data.dtype != np.uint8:
        return
    meta = {"format": FORMAT, "class_names": list(samples.class_names), "provenance": samples.provenance,
            "stats": samples.stats, "fit_cpu_seconds": fit_cpu_seconds}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=samples.data, labels=np.asarray(samples.labels),
                        meta=np.array(json.dumps(meta, default=str)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: tmp.write_bytes(buffer.getvalue()), durable=False)
    except OSError:
        pass
