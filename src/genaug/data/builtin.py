"""Bundled and shared real data: sklearn's 8x8 digits, MNIST, the PROBEN1 problems.

Nothing is downloaded: digits ship with scikit-learn, MNIST and PROBEN1 are read from the
shared data folder (``$GENAUG_DATA``, else a ``shared/data`` folder beside the repository).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .datasets import LabelledImages
from .ingest import IngestResult
from .ingest_images import ImagePolicy, ingest_npz
from .ingest_tables import read_proben1
from .report import IngestReport

DATA_ENV = "GENAUG_DATA"


def _candidate_roots() -> list[Path]:
    roots = []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    # Walk up from the package (src checkout) and from the working directory to a sibling shared/data.
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            roots.append(folder / "shared" / "data")
    return list(dict.fromkeys(roots))


def find_data_file(relative: str) -> Path:
    """The first ``<data root>/<relative>`` that exists; FileNotFoundError listing where it looked."""
    roots = _candidate_roots()
    for root in roots:
        if (root / relative).exists():
            return root / relative
    looked = ", ".join(str(r) for r in roots[:4]) + (", ..." if len(roots) > 4 else "")
    raise FileNotFoundError(f"{relative} not found under any data root (looked in {looked}); "
                            f"set ${DATA_ENV} to the folder holding it or pass its path")


def load_digits_dataset() -> LabelledImages:
    """sklearn's bundled 8x8 digits: 1,797 images (N, 8, 8, 1) uint8 0..255, classes "0".."9"."""
    from sklearn.datasets import load_digits  # imported here: only this loader needs it

    digits = load_digits()
    # Pixel values are counts 0..16 (ink in 4x4 blocks); stretch to the uint8 range.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    sources = [f"sklearn-digits[{i}]" for i in range(len(images))]
    return LabelledImages(images, digits.target.astype(np.int64), [str(d) for d in range(10)], sources)


def load_mnist(path: str | Path | None = None) -> tuple[LabelledImages, LabelledImages]:
    """(train 60,000, test 10,000) MNIST images (N, 28, 28, 1) uint8 from ``mnist.npz``.

    ``path`` defaults to ``mnist.npz`` in the shared data folder (see ``find_data_file``).
    """
    path = Path(path) if path is not None else find_data_file("mnist.npz")
    if not path.exists():
        raise FileNotFoundError(f"load_mnist: {path} does not exist")
    train, test = ingest_npz(path, ImagePolicy(), IngestReport(source=str(path), kind="npz"))
    if test is None:
        raise ValueError(f"load_mnist: {path} has no x_test / y_test")
    return train, test


def load_proben1(name: str, permutation: int = 1, root: str | Path | None = None) -> IngestResult:
    """A PROBEN1 problem: ``.data`` = training + validation examples, ``.test`` = test examples.

    Reads ``<root>/proben1/<name>/<name><permutation>.dt``; ``root`` defaults to the
    shared data folder. Unpacks as ``data, test = load_proben1("thyroid")``.
    """
    if permutation not in (1, 2, 3):
        raise ValueError(f"load_proben1: permutation must be 1, 2 or 3, got {permutation!r}")
    relative = f"proben1/{name}/{name}{permutation}.dt"
    if root is not None:
        path = Path(root) / relative
        if not path.exists():
            raise FileNotFoundError(_missing_proben1(name, Path(root) / "proben1", path))
    else:
        try:
            path = find_data_file(relative)
        except FileNotFoundError as exc:
            try:
                folder = find_data_file("proben1")
            except FileNotFoundError:
                raise exc from None
            raise FileNotFoundError(_missing_proben1(name, folder, folder / name)) from None
    report = IngestReport(source=str(path), kind="proben1")
    data, test = read_proben1(path, report)
    return IngestResult(data, test, report)


def _missing_proben1(name: str, folder: Path, path: Path) -> str:
    available = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return f"load_proben1: {path} not found for problem {name!r}; problems there: {available or 'none'}"
