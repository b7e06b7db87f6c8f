"""Safe extraction of uploaded zip and tar archives.

Archives come from users (and through the service, from anyone), so nothing in one is
trusted: members are copied one by one (never ``extractall``), a member whose name would
land outside the destination (absolute path, ``..``), a link or a device file is refused
with a verdict, and the total number of bytes written is capped so that a small archive
cannot fill the disk. Refused members do not stop the rest from loading.

Archive bombs are refused whole, early and cheaply: a zip member that declares (or, when its
header lies, turns out while streaming) to expand more than ``max_ratio`` times its compressed
size, an archive whose contents grow beyond ``max_ratio`` times the archive's own size, more
than ``max_members`` members, or a member nested more than ``max_depth`` folders deep. Images
are stored compressed already, so a real image archive expands about 1:1; a 1.5 MB zip of
1.5 GiB of zeros expands 1000:1 and is refused from its directory, before a byte is written.
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
DEFAULT_MAX_RATIO = 200.0
"""Extracted : compressed. PNG and JPEG barely compress; even flat BMP line art stays far below."""
DEFAULT_MAX_MEMBERS = 100_000
DEFAULT_MAX_DEPTH = 32
_SMALL_MEMBER = 64 * 1024  # tiny members (a text file of zeros) may compress well: no ratio check below this

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


class ArchiveBomb(IngestError):
    """The archive expands far beyond its size (or has absurdly many or deep members): refused whole."""


class _SizeBudget:
    """Counts bytes written across all members; raises once the cap is crossed, and refuses
    the archive when what comes out outgrows the compression ratio any image archive has."""

    def __init__(self, limit: int, archive_bytes: int, max_ratio: float, archive_name: str):
        self.limit, self.used = int(limit), 0
        self.max_ratio, self.archive_name = float(max_ratio), archive_name
        self.total_allowed = max(_SMALL_MEMBER, int(archive_bytes * max_ratio))

    def copy(self, source: IO[bytes], target: Path, compressed_size: int | None = None) -> None:
        member_allowed = None if compressed_size is None else \
            max(_SMALL_MEMBER, int(compressed_size * self.max_ratio))
        written = 0
        with open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                # Count real bytes, not the header's declared size: headers can lie.
                written += len(chunk)
                self.used += len(chunk)
                if (member_allowed is not None and written > member_allowed) or self.used > self.total_allowed:
                    raise ArchiveBomb(f"{self.archive_name}: refused: it expands more than {self.max_ratio:g} times "
                                      "its compressed size (an archive bomb; image archives expand about 1:1)")
                if self.used > self.limit:
                    raise _BudgetExceeded()
                out.write(chunk)


class _BudgetExceeded(Exception):
    pass


def extract_archive(archive: Path, destination: Path, report: IngestReport,
                    max_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES, *, max_ratio: float = DEFAULT_MAX_RATIO,
                    max_members: int = DEFAULT_MAX_MEMBERS, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Extract ``archive`` (zip or tar, any compression tarfile reads) into ``destination``.

    Unsafe members get a "rejected" verdict under their archive name; once ``max_bytes``
    have been written, the member being written and all later ones are rejected and a note
    says so. Raises IngestError when the archive cannot be opened at all, and ``ArchiveBomb``
    (an IngestError; what was extracted is removed) for an archive bomb: see the module doc.
    """
    kind = archive_kind(archive)
    if kind == "zip":
        _check_zip_directory(archive, max_ratio, max_members, max_depth)
    members = _zip_members(archive) if kind == "zip" else _tar_members(archive)
    destination = destination.resolve()
    budget = _SizeBudget(max_bytes, archive.stat().st_size, max_ratio, archive.name)
    written: set[str] = set()
    over_budget = False
    count = 0
    try:
        for name, member_type, opener in members:
            count += 1
            if count > max_members:
                raise ArchiveBomb(f"{archive.name}: refused: more than {max_members:,} members")
            depth = len([p for p in name.replace("\\", "/").split("/") if p])
            if depth > max_depth:
                raise ArchiveBomb(f"{archive.name}: refused: member {name[:80]!r}... is nested {depth} folders deep "
                                  f"(at most {max_depth})")
            if over_budget:
                if member_type == "file":
                    report.add(name, "rejected", f"archive size limit: not extracted, the archive expands "
                                                 f"beyond max_extracted_bytes={max_bytes:,}")
                continue
            over_budget = _extract_member(name, member_type, opener, destination, report, budget, written)
    except ArchiveBomb:
        _empty(destination)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        # A truncated archive: keep what came out intact, say where it stopped.
        report.note(f"archive {archive.name} is truncated or corrupt after {len(written)} members "
                    f"({type(exc).__name__}: {exc}); the remaining members could not be read")
    if over_budget:
        report.note(f"archive {archive.name} expands beyond max_extracted_bytes={max_bytes:,}: "
                    "extraction stopped there (possible zip bomb)")


def _empty(folder: Path) -> None:
    """Remove what an archive bomb had written (the folder itself stays for its owner)."""
    import shutil

    for child in folder.iterdir() if folder.is_dir() else []:
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def _check_zip_directory(archive: Path, max_ratio: float, max_members: int, max_depth: int) -> None:
    """Refuse a zip bomb from its central directory alone: nothing is decompressed."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{archive.name}: not a readable zip archive ({exc})") from exc
    if len(infos) > max_members:
        raise ArchiveBomb(f"{archive.name}: refused: {len(infos):,} members, more than {max_members:,}")
    declared = sum(info.file_size for info in infos)
    if declared > max(_SMALL_MEMBER, archive.stat().st_size * max_ratio):
        raise ArchiveBomb(f"{archive.name}: refused: it declares {declared:,} bytes of contents, more than "
                          f"{max_ratio:g} times its own size (an archive bomb; image archives expand about 1:1)")
    for info in infos:
        depth = len([p for p in info.filename.replace("\\", "/").split("/") if p])
        if depth > max_depth:
            raise ArchiveBomb(f"{archive.name}: refused: member {info.filename[:80]!r}... is nested {depth} "
                              f"folders deep (at most {max_depth})")


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
            budget.copy(source, target, getattr(source, "compressed_size", None))
    except ArchiveBomb:
        target.unlink(missing_ok=True)
        raise
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


def _open_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """The member's stream, carrying its compressed size (zipfile reads exactly that many
    compressed bytes, so output beyond ratio x it is an expansion the header did not admit)."""
    stream = zf.open(info)
    stream.compressed_size = max(int(info.compress_size), 1)
    return stream


def _zip_members(archive: Path) -> Iterator[tuple[str, str, Callable[[], IO[bytes]]]]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{archive}: not a readable zip archive ({exc})") from exc

    def generate():
        with zf:
            for info in zf.infolist():
                yield _zip_name(info), _zip_member_type(info), (lambda info=info: _open_zip_member(zf, info))
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

