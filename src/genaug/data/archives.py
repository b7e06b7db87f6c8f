"""Safe extraction of uploaded zip and tar archives.

Archives come from users (and through the service, from anyone), so nothing in one is
trusted: members are copied one by one (never ``extractall``), a member whose name would
land outside the destination (absolute path, ``..``), a link or a device file is refused
with a verdict, and the total number of bytes written is capped so that a small archive
cannot fill the disk. Refused members do not stop the rest from loading.
"""
from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator

from .report import IngestError, IngestReport

DEFAULT_MAX_EXTRACTED_BYTES = 8 * 1024**3
"""Generous: a few thousand full-size photos fit; a zip bomb does not."""

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20


def archive_kind(path: Path) -> str | None:
    """"zip", "tar" or None, from the file name (case-insensitive)."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if any(name.endswith(s) for s in ARCHIVE_SUFFIXES):
        return "tar"
    return None


def unsafe_name_reason(name: str) -> str | None:
    """Why an archive member name is unsafe to extract (absolute, drive letter, ``..``), or None."""
    # Archives made on Windows may use backslashes; treat them as separators too.
    normalised = name.replace("\\", "/")
    if normalised.startswith("/"):
        return f"unsafe archive member (zip-slip): absolute path {name!r}"
    if len(normalised) >= 2 and normalised[1] == ":":
        return f"unsafe archive member (zip-slip): drive-letter path {name!r}"
    if ".." in PurePosixPath(normalised).parts:
        return f"unsafe archive member (zip-slip): '..' path component in {name!r}"
    if "\x00" in name:
        return f"unsafe archive member: NUL byte in name {name!r}"
    return None


class _SizeBudget:
    """Counts bytes written across all members; raises once the cap is crossed."""

    def __init__(self, limit: int):
        self.limit, self.used = int(limit), 0

    def copy(self, source: IO[bytes], target: Path) -> None:
        with open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                # Count real bytes, not the header's declared size: headers can lie.
                self.used += len(chunk)
                if self.used > self.limit:
                    raise _BudgetExceeded()
                out.write(chunk)


class _BudgetExceeded(Exception):
    pass


def extract_archive(archive: Path, destination: Path, report: IngestReport,
                    max_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES) -> None:
    """Extract ``archive`` (zip or tar, any compression tarfile reads) into ``destination``.

    Unsafe members get a "rejected" verdict under their archive name; once ``max_bytes``
    have been written, the member being written and all later ones are rejected and a note
    says so. Raises IngestError when the archive cannot be opened at all.
    """
    kind = archive_kind(archive)
    members = _zip_members(archive) if kind == "zip" else _tar_members(archive)
    destination = destination.resolve()
    budget = _SizeBudget(max_bytes)
    written: set[str] = set()
    over_budget = False
    try:
        for name, member_type, opener in members:
            if over_budget:
                if member_type == "file":
                    report.add(name, "rejected", f"archive size limit: not extracted, the archive expands "
                                                 f"beyond max_extracted_bytes={max_bytes:,}")
                continue
            over_budget = _extract_member(name, member_type, opener, destination, report, budget, written)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        # A truncated archive: keep what came out intact, say where it stopped.
        report.note(f"archive {archive.name} is truncated or corrupt after {len(written)} members "
                    f"({type(exc).__name__}: {exc}); the remaining members could not be read")
    if over_budget:
        report.note(f"archive {archive.name} expands beyond max_extracted_bytes={max_bytes:,}: "
                    "extraction stopped there (possible zip bomb)")


def _extract_member(name: str, member_type: str, opener: Callable[[], IO[bytes]], destination: Path,
                    report: IngestReport, budget: _SizeBudget, written: set[str]) -> bool:
    """Extract one member (or record why not); returns True once the size budget is exhausted."""
    reason = unsafe_name_reason(name)
    if reason is None and member_type not in ("file", "dir"):
        reason = f"unsafe archive member ({member_type}): links and special files are never extracted"
    if reason is not None:
        report.add(name, "rejected", reason)
        return False
    relative = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in relative.parts if p not in ("", ".")]
    if not parts:
        if member_type != "dir":
            report.add(name, "rejected", "archive member with an empty name")
        return False
    target = destination.joinpath(*parts)
    # Belt and braces: whatever the name checks missed, the resolved path must stay inside.
    if not _is_inside(target, destination):
        report.add(name, "rejected", f"unsafe archive member (zip-slip): {name!r} resolves outside the archive")
        return False
    key = "/".join(parts)
    if key in written:
        report.add(name, "skipped", "duplicate archive member name: an earlier member with this name was kept")
        return False
    try:
        if member_type == "dir":
            target.mkdir(parents=True, exist_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        with opener() as source:
            budget.copy(source, target)
    except _BudgetExceeded:
        target.unlink(missing_ok=True)
        report.add(name, "rejected", f"archive size limit: extracting this member crosses "
                                     f"max_extracted_bytes={budget.limit:,}")
        return True
    except Exception as exc:  # noqa: BLE001 - bad CRC, encryption, a file where a folder must go: this member only
        if target.is_file():
            target.unlink()
        report.add(name, "rejected", f"corrupt or unextractable archive member ({type(exc).__name__}: {exc})")
        return False
    written.add(key)
    return False


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member name, decoded as UTF-8 even when the archiver forgot to set the UTF-8 flag."""
    name = info.filename
    if not info.flag_bits & 0x800:
        # zipfile decoded the raw bytes as cp437; most archivers actually wrote UTF-8.
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def _zip_member_type(info: zipfile.ZipInfo) -> str:
    # Unix archivers keep st_mode in the high 16 bits; many writers (Python's writestr
    # included) store permission bits only, with no file type: that is a plain file.
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir():
        return "dir"
    if file_type == stat.S_IFLNK:
        return "symlink"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file"
    return "file"


def _zip_members(archive: Path) -> Iterator[tuple[str, str, Callable[[], IO[bytes]]]]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{archive}: not a readable zip archive ({exc})") from exc

    def generate():
        with zf:
            for info in zf.infolist():
                yield _zip_name(info), _zip_member_type(info), (lambda info=info: zf.open(info))
    return generate()


def _tar_member_type(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "dir"
    if member.issym():
        return f"symlink to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.isdev():
        return "device file"
    if member.isfile():
        return "file"
    return "special file"


def _tar_members(archive: Path) -> Iterator[tuple[str, str, Callable[[], IO[bytes]]]]:
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IngestError(f"{archive}: not a readable tar archive ({exc})") from exc

    def generate():
        with tf:
            # Iterating the TarFile streams headers one by one (no full listing up front).
            for member in tf:
                yield member.name, _tar_member_type(member), (lambda m=member: tf.extractfile(m))
    return generate()


def unwrap_single_folder(root: Path, is_ignored: Callable[[str], bool]) -> Path:
    """Descend through lone wrapper folders: ``photos.zip/photos/{cat,dog}`` -> ``.../photos``.

    A folder is a wrapper when it is the only visible entry and itself holds folders; a
    folder that holds only files is a class, and stays.
    """
    while True:
        visible = [p for p in root.iterdir() if not is_ignored(p.name)]
        if len(visible) != 1 or not visible[0].is_dir() or visible[0].is_symlink():
            return root
        inner = visible[0]
        if not any(p.is_dir() and not is_ignored(p.name) for p in inner.iterdir()):
            return root
        root = inner

