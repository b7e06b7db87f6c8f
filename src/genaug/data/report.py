"""The ingest report: one verdict per file, plus the policies applied and the repairs made.

The report is what a user reads when the dataset is not what they expected ("why are there
only 40 roses?"), so every file the ingest saw gets a verdict with a reason a person can act
on, and every conversion policy is written down as a note.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

Status = Literal["loaded", "rejected", "skipped", "duplicate", "repaired"]
STATUSES: tuple[str, ...] = get_args(Status)


class IngestError(ValueError):
    """The input cannot become a dataset (no classes, missing label column, ...).

    ``report`` holds the verdicts collected up to the failure (None when the failure came
    before any file was looked at), so a caller can show why, e.g. that every image was
    rejected.
    """

    def __init__(self, message: str, report: "IngestReport | None" = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class FileVerdict:
    """What the ingest did with one file (or archive member, or folder) and why."""

    path: str
    status: Status
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"FileVerdict.status must be one of {STATUSES}, got {self.status!r}")

    def __str__(self) -> str:
        return f"{self.status}: {self.path}" + (f": {self.reason}" if self.reason else "")


@dataclass
class IngestReport:
    """Every file's verdict, the notes (policies applied, repairs, warnings), the classes kept.

    ``source`` is the path that was ingested and ``kind`` what it was read as
    ("image-folder", "zip", "tar", "npz", "csv", "proben1").
    """

    source: str = ""
    kind: str = ""
    entries: list[FileVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)

    # -- building ------------------------------------------------------------------
    def add(self, path: str, status: Status, reason: str = "") -> FileVerdict:
        """Record the verdict for one file and return it."""
        verdict = FileVerdict(str(path), status, reason)
        self.entries.append(verdict)
        return verdict

    def note(self, text: str) -> None:
        """Record a policy statement, repair or warning (once: repeated notes are dropped)."""
        if text not in self.notes:
            self.notes.append(text)

    # -- reading -------------------------------------------------------------------
    def _with(self, status: str) -> list[FileVerdict]:
        return [e for e in self.entries if e.status == status]

    @property
    def loaded(self) -> list[FileVerdict]:
        """Files loaded as they were (repaired ones are in ``repaired``)."""
        return self._with("loaded")

    @property
    def rejected(self) -> list[FileVerdict]:
        """Files that could not be used (corrupt, unsafe, over a limit)."""
        return self._with("rejected")

    @property
    def skipped(self) -> list[FileVerdict]:
        """Files deliberately left out (hidden files, unknown extensions, files outside class folders)."""
        return self._with("skipped")

    @property
    def duplicates(self) -> list[FileVerdict]:
        """Files identical to an earlier one (their reason names it); loaded once, not twice."""
        return self._with("duplicate")

    @property
    def repaired(self) -> list[FileVerdict]:
        """Files loaded after a repair (imputed values, ...); the notes say which."""
        return self._with("repaired")

    @property
    def counts(self) -> dict[str, int]:
        """Number of verdicts per status (every status present, zeros included)."""
        found = Counter(e.status for e in self.entries)
        return {status: found.get(status, 0) for status in STATUSES}

    def verdict_for(self, path: str) -> FileVerdict:
        """The verdict recorded for ``path`` (KeyError naming the path when there is none)."""
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise KeyError(f"no verdict for {path!r} in the ingest report of {self.source}")

    # -- output --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-ready dict (source, kind, counts, class_counts, entries, notes)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "counts": self.counts,
            "class_counts": dict(self.class_counts),
            "entries": [asdict(e) for e in self.entries],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, payload: dict) -> "IngestReport":
        """Inverse of ``to_dict`` (``counts`` is derived, so it is not read back)."""
        return cls(
            source=payload.get("source", ""),
            kind=payload.get("kind", ""),
            entries=[FileVerdict(**e) for e in payload.get("entries", [])],
            notes=list(payload.get("notes", [])),
            class_counts=dict(payload.get("class_counts", {})),
        )

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (UTF-8, non-ASCII file names kept readable); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "IngestReport":
        """Read a report written by ``save``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def summary_lines(self, limit: int | None = None) -> list[str]:
        """Short human text: one line per file not loaded as-is, the notes, then the totals.

        ``limit`` caps the per-file lines (a folder of 10,000 skipped thumbnails should
        not flood a terminal); the totals line always comes last.
        """
        problems = [str(e) for e in self.entries if e.status != "loaded"]
        if limit is not None and len(problems) > limit:
            problems = problems[:limit] + [f"... and {len(problems) - limit} more (see the full report)"]
        counts = self.counts
        totals = (f"totals: {len(self.entries)} files: {counts['loaded']} loaded, "
                  f"{counts['repaired']} repaired, {counts['rejected']} rejected, "
                  f"{counts['skipped']} skipped, {counts['duplicate']} duplicates")
        if self.class_counts:
            totals += f"; {len(self.class_counts)} classes, {sum(self.class_counts.values())} examples"
        return problems + [f"note: {n}" for n in self.notes] + [totals]

    def __str__(self) -> str:
        return "\n".join(self.summary_lines())
