"""Streaming multipart uploads: every file part goes straight to disk as it arrives.

The thesis's service sent images as base64 inside JSON and took over ten minutes for three
large photos (seed 002 ch. 5.1.3). Here the request body is parsed chunk by chunk
(python-multipart's push parser), file parts are written to a temporary folder under
``$GENAUG_HOME/uploads`` and never held in memory, and the limits are enforced while the
bytes arrive: a 5 GB body is refused after the first 500 MB, not after it was stored.

Nothing the client names becomes a path as it is: a file part's name ``tulip/IMG 1.jpg``
gives the class ``tulip`` (its folder) and a file name made of safe characters, inside the
temporary folder. An upload cut off mid-stream leaves nothing behind.
"""
from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..data.archives import ARCHIVE_SUFFIXES
from ..data.ingest_images import IMAGE_EXTENSIONS

# Loose files the ingest can read (the one list; the UI reads it from GET /api/limits).
IMAGE_SUFFIXES = tuple(sorted(IMAGE_EXTENSIONS))
MAX_FIELD_BYTES = 64 * 1024
UPLOADS_DIR = "uploads"
STALE_UPLOAD_SECONDS = 3600


class UploadError(ValueError):
    """An upload the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass
class ReceivedUpload:
    """What arrived: form fields, saved images by class, saved archives, and files left out."""

    folder: Path
    fields: dict[str, str] = field(default_factory=dict)
    images: int = 0
    archives: list[Path] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def image_folder(self) -> Path:
        """The class folders of the uploaded images."""
        return self.folder / "images"

    def discard(self) -> None:
        """Remove everything this upload wrote."""
        shutil.rmtree(self.folder, ignore_errors=True)


def safe_part(text: str, fallback: str) -> str:
    """``text`` as one harmless path component (no separators, no leading dots, <= 64 chars)."""
    cleaned = re.sub(r"[^\w .,+()-]", "_", text, flags=re.UNICODE).strip(" .")[:64]
    return cleaned or fallback


def split_client_name(filename: str) -> tuple[Optional[str], str]:
    """``("tulip", "IMG 1.jpg")`` from ``tulip/IMG 1.jpg`` (also ``a\\b`` and deeper paths).

    The class is the file's own folder; ``..``, ``.`` and empty components are dropped, so
    a hostile name can never climb out of the upload folder.
    """
    parts = [p for p in re.split(r"[\\/]+", filename) if p not in ("", ".", "..")]
    if not parts:
        return None, ""
    return (parts[-2] if len(parts) >= 2 else None), parts[-1]


class _UploadParser:
    """Callbacks of the push parser: routes each part to a field buffer or a file on disk."""

    def __init__(self, upload: ReceivedUpload, max_files: int):
        self.upload, self.max_files = upload, max_files
        self.headers: dict[bytes, bytes] = {}
        self.header_field = b""
        self.header_value = b""
        self.field_name: Optional[str] = None
        self.field_value: Optional[bytearray] = None
        self.file = None
        self.file_count = 0
        self.finished = False

    # header parsing
    def on_part_begin(self) -> None:
        self.headers, self.header_field, self.header_value = {}, b"", b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self.field_name, self.field_value = name, bytearray()
            return
        self.file_count += 1
        if self.file_count > self.max_files:
            raise UploadError(f"files: more than {self.max_files} files in one upload; "
                              "split it or send one zip", 413)
        self.file = self._open_file(filename.decode("utf-8", "replace"))

    def _open_file(self, client_name: str):
        upload = self.upload
        class_name, base = split_client_name(client_name)
        lower = base.lower()
        archive = next((s for s in ARCHIVE_SUFFIXES if lower.endswith(s)), None)
        if archive:
            path = upload.folder / "archives" / f"{len(upload.archives):04d}{archive}"
            upload.archives.append(path)
        elif lower.endswith(IMAGE_SUFFIXES):
            if class_name is None:
                upload.skipped.append({"file": client_name, "reason": "no class folder in the file name: send "
                                       "CLASS/FILE (e.g. tulip/1.jpg) or a zip with one folder per class"})
                return None
            stem, dot, suffix = base.rpartition(".")
            path = (upload.image_folder / safe_part(class_name, "class")
                    / f"{self.file_count:05d}_{safe_part(stem, 'image')}.{suffix.lower()}")
            upload.images += 1
        else:
            upload.skipped.append({"file": client_name, "reason": "not a .png, .jpg or .jpeg image "
                                   f"or a {'/'.join(ARCHIVE_SUFFIXES[:4])} archive"})
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.file.write(data[start:end])
        elif self.field_value is not None:
            self.field_value += data[start:end]
            if len(self.field_value) > MAX_FIELD_BYTES:
                raise UploadError(f"{self.field_name}: form field longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        elif self.field_value is not None:
            self.upload.fields[self.field_name or ""] = self.field_value.decode("utf-8", "replace")
            self.field_name, self.field_value = None, None

    def on_end(self) -> None:
        self.finished = True

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def callbacks(self) -> dict:
        return {name: getattr(self, name) for name in ("on_part_begin", "on_header_field", "on_header_value",
                                                       "on_header_end", "on_headers_finished", "on_part_data",
                                                       "on_part_end", "on_end")}


async def receive_upload(request: Request, home: Path, *, max_bytes: int, max_files: int) -> ReceivedUpload:
    """Parse a multipart request body to disk under ``home/uploads/<random>``.

    Raises ``UploadError`` (413 over a limit, 422 malformed) and lets ``ClientDisconnect``
    through; either way the partial upload is removed first.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadError("body: send multipart/form-data (files in parts named 'files'), "
                          f"not {content_type.decode() or 'nothing'}", 415)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise UploadError(f"body: {int(declared):,} bytes is over this service's upload limit of {max_bytes:,} "
                          "bytes; send fewer or smaller files", 413)
    upload = ReceivedUpload(Path(home) / UPLOADS_DIR / uuid.uuid4().hex)
    upload.folder.mkdir(parents=True)
    handler = _UploadParser(upload, max_files)
    parser = MultipartParser(options[b"boundary"], handler.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise UploadError(f"body: over this service's upload limit of {max_bytes:,} bytes; "
                                  "send fewer or smaller files", 413)
            parser.write(chunk)
        parser.finalize()
        if not handler.finished:
            raise UploadError("body: the multipart upload ended before its closing boundary (cut off?)")
    except UploadError:
        handler.close()
        upload.discard()
        raise
    except ClientDisconnect:
        handler.close()
        upload.discard()
        raise
    except Exception as error:  # the parser's own errors: a malformed body
        handler.close()
        upload.discard()
        raise UploadError(f"body: malformed multipart data ({error})") from None
    handler.close()
    return upload


def remove_stale_uploads(home: Path, older_than: float = STALE_UPLOAD_SECONDS) -> list[str]:
    """Remove upload folders a crashed server left behind (untouched for ``older_than`` seconds).

    Only old ones: another server process sharing this home may be receiving an upload now.
    """
    import time

    root = Path(home) / UPLOADS_DIR
    removed = []
    for folder in root.iterdir() if root.is_dir() else []:
        newest = max([p.stat().st_mtime for p in folder.rglob("*")] + [folder.stat().st_mtime])
        if time.time() - newest > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
