"""``ingest(path)``: any supported input -> dataset + test part + the validation report.

What ``path`` is decides how it is read:

- a folder with one subfolder per class (png, jpg, bmp, webp, tiff, gif)
- a .zip / .tar / .tar.gz / .tgz (also .tar.bz2, .tar.xz) of such a folder, extracted safely
- an .npz with ``x_train, y_train[, x_test, y_test]``
- a .csv with a label column
- a PROBEN1 .dt file
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from ..progress import ProgressCallback, ProgressReporter
from .archives import (DEFAULT_MAX_DEPTH, DEFAULT_MAX_EXTRACTED_BYTES, DEFAULT_MAX_MEMBERS, DEFAULT_MAX_RATIO,
                       archive_kind, extract_archive, unwrap_single_folder)
from .datasets import LabelledImages, LabelledTable
from .ingest_images import ImagePolicy, ingest_image_folder, ingest_npz, junk_reason
from .ingest_tables import ingest_csv, read_proben1
from .report import IngestError, IngestReport

SUPPORTED = "a folder with one subfolder per class, .zip, .tar, .tar.gz/.tgz, .npz, .csv or PROBEN1 .dt"


@dataclass
class IngestResult:
    """What ``ingest`` returns: training data, the test part when the source has one, the report.

    Unpacks as ``data, test = result`` for callers that only want the data.
    """

    data: LabelledImages | LabelledTable
    test: LabelledImages | LabelledTable | None
    report: IngestReport

    def __iter__(self) -> Iterator[LabelledImages | LabelledTable | None]:
        return iter((self.data, self.test))


def ingest(path: str | Path, *, image_size: int | None = None, channels: Literal["auto", "L", "RGB"] = "auto",
           aspect: Literal["center_crop", "pad"] = "center_crop", max_pixels: int = 50_000_000,
           label_column: str = "label",
           progress: ProgressCallback | None = None,
           max_extracted_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES, max_ratio: float = DEFAULT_MAX_RATIO,
           max_members: int = DEFAULT_MAX_MEMBERS, max_depth: int = DEFAULT_MAX_DEPTH,
           work_dir: str | Path | None = None) -> IngestResult:
    """Read ``path`` into a labelled dataset, giving every file a verdict in the report.

    Image options (folders, archives, .npz): ``image_size`` (square side; None = keep a
    common size, else the most common one), ``channels`` ("auto", "L", "RGB"), ``aspect``
    ("center_crop" or "pad"), ``max_pixels`` (larger images are rejected from their
    header, undecoded). ``label_column`` names the CSV label column.
    Archives: ``max_extracted_bytes`` caps what one may expand to; an archive bomb (contents
    over ``max_ratio`` times the compressed size, over ``max_members`` members, or a member over
    ``max_depth`` folders deep) is refused whole. They are extracted into a temporary folder
    under ``work_dir`` (default: the system's temporary folder; the service passes a folder
    inside ``$GENAUG_HOME``). ``progress`` receives one event per file.

    Raises FileNotFoundError for a missing path and IngestError (a ValueError) when the
    input cannot become a dataset; the error's ``.report`` says what was seen.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ingest: {path} does not exist")
    policy = ImagePolicy(image_size, channels, aspect, max_pixels)
    report = IngestReport(source=str(path))
    try:
        limits = dict(max_bytes=max_extracted_bytes, max_ratio=max_ratio, max_members=max_members,
                      max_depth=max_depth)
        return _ingest(path, policy, report, label_column, progress, limits, work_dir)
    except IngestError as exc:
        # Every failure carries what was seen up to it, whichever reader raised it.
        if exc.report is None:
            exc.report = report
        raise


def _ingest(path: Path, policy: ImagePolicy, report: IngestReport, label_column: str,
            progress: ProgressCallback | None, limits: dict, work_dir) -> IngestResult:
    """Dispatch on what ``path`` is."""
    if path.is_dir():
        report.kind = "image-folder"
        root = unwrap_single_folder(path, lambda name: junk_reason(name) is not None)
        data = ingest_image_folder(root, path, policy, report, lambda rel: str(path / rel), progress)
        return IngestResult(data, None, report)
    kind = archive_kind(path)
    if kind is not None:
        report.kind = kind
        return IngestResult(_ingest_archive(path, policy, report, progress, limits, work_dir), None, report)
    suffix = path.suffix.lower()
    step = ProgressReporter(progress, "ingest", 1)
    if suffix == ".npz":
        report.kind = "npz"
        train, test = ingest_npz(path, policy, report)
    elif suffix == ".csv":
        report.kind = "csv"
        train, test = ingest_csv(path, label_column, report), None
    elif suffix == ".dt":
        report.kind = "proben1"
        train, test = read_proben1(path, report)
    else:
        raise IngestError(f"ingest: cannot read {path.name}: unsupported type {suffix or '(no suffix)'!r}; "
                          f"expected {SUPPORTED}", report)
    step(1, message=path.name)
    return IngestResult(train, test, report)


def _ingest_archive(path: Path, policy: ImagePolicy, report: IngestReport,
                    progress: ProgressCallback | None, limits: dict, work_dir) -> LabelledImages:
    """Extract into a private temporary folder (removed afterwards) and ingest that folder."""
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="genaug-ingest-", dir=work_dir) as tmp:
        extracted = Path(tmp)
        extract_archive(path, extracted, report, **limits)
        root = unwrap_single_folder(extracted, lambda name: junk_reason(name) is not None)
        # Report paths are archive member names; sources say which archive they came from.
        return ingest_image_folder(root, extracted, policy, report, lambda rel: f"{path}:{rel}", progress)
