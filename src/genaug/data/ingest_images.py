"""Image ingest: a folder with one subfolder per class (also after archive extraction), and .npz arrays.

Every file gets a verdict; nothing a user's folder can contain stops the ingest, except
ending up with fewer than two classes. Decoding is defensive: the pixel count is checked
from the header before any pixel is decoded (decompression bombs), ``img.load()`` runs
inside ``try`` with ``LOAD_TRUNCATED_IMAGES`` left False (so truncated files are rejected,
not silently padded with grey), and every mode is brought to 8-bit L or RGB by one stated
policy.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..progress import ProgressCallback, ProgressReporter
from .datasets import LabelledImages
from .report import IngestError, IngestReport

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_EXIF_ORIENTATION = 0x0112
_RESAMPLE = Image.Resampling.LANCZOS

MODE_POLICY = ("image modes: L and RGB kept; 1 -> L; CMYK, YCbCr, LAB, HSV -> RGB; 16-bit (I;16) and "
               "32-bit (I) -> 8-bit as round(v * 255 / 65535) (min-max scaled when values exceed 16 bits); "
               "float (F) -> v * 255 when in [0, 1], else min-max scaled; alpha (RGBA, LA, P with "
               "transparency) composited onto white; palette (P) converted via RGBA; EXIF orientation applied; "
               "animated GIF / multi-page TIFF: first frame")


@dataclass(frozen=True)
class ImagePolicy:
    """How decoded images become one uint8 array: target size, channels, aspect handling, limits.

    ``image_size``: side of the square output; None keeps the size when all images agree,
    else uses the most common size. ``channels``: "auto" (L when every image is grayscale,
    else RGB), "L" or "RGB". ``aspect``: "center_crop" (scale the short side, crop the
    centre) or "pad" (scale the long side, pad with black). ``max_pixels``: images whose
    header declares more pixels are rejected without being decoded.
    """

    image_size: int | None = None
    channels: str = "auto"
    aspect: str = "center_crop"
    max_pixels: int = 50_000_000

    def __post_init__(self) -> None:
        channels = {"l": "L", "rgb": "RGB", "auto": "auto"}.get(str(self.channels).lower())
        if channels is None:
            raise ValueError(f"channels must be 'auto', 'L' or 'RGB', got {self.channels!r}")
        object.__setattr__(self, "channels", channels)
        if self.aspect not in ("center_crop", "pad"):
            raise ValueError(f"aspect must be 'center_crop' or 'pad', got {self.aspect!r}")
        if self.image_size is not None and (int(self.image_size) != self.image_size or self.image_size < 1):
            raise ValueError(f"image_size must be a positive integer or None, got {self.image_size!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels!r}")

    def describe_resize(self, width: int, height: int) -> str:
        """One sentence saying how images are brought to ``width`` x ``height``."""
        how = ("scale the short side, then crop the centre" if self.aspect == "center_crop"
               else "scale the long side, then pad with black")
        return f"resized to {width}x{height} (W x H) by {self.aspect} ({how}), LANCZOS resampling"


# --------------------------------------------------------------------------------------
# Which files are junk
# --------------------------------------------------------------------------------------
def junk_reason(name: str) -> str | None:
    """Why a file or folder name is OS metadata / hidden and never data, or None."""
    if name == "__MACOSX":
        return "macOS resource-fork folder (__MACOSX), not data"
    if name.startswith("._"):
        return "AppleDouble file (macOS '._' metadata), not an image"
    if name == ".DS_Store":
        return "hidden file (.DS_Store, macOS Finder metadata)"
    if name.startswith("."):
        return "hidden file or folder (name starts with '.')"
    if name.lower() in ("thumbs.db", "desktop.ini"):
        return "Windows folder metadata file, not an image"
    return None


@dataclass
class _Candidate:
    path: Path
    rel: str          # display path, relative to the ingested folder / archive
    class_name: str


def _sorted_entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _scan_class_folder(folder: Path, class_name: str, base: Path, report: IngestReport) -> list[_Candidate]:
    """Image files under one class folder (recursively); every other file gets a verdict."""
    found: list[_Candidate] = []
    for entry in _sorted_entries(folder):
        path = Path(entry.path)
        rel = _rel(path, base)
        junk = junk_reason(entry.name)
        if junk:
            _report_junk(entry, rel, junk, report)
        elif entry.is_dir(follow_symlinks=False):
            found.extend(_scan_class_folder(path, class_name, base, report))
        elif entry.is_symlink() and entry.is_dir():
            report.add(rel + "/", "skipped", "symbolic link to a folder: not followed")
        elif not entry.is_file():
            report.add(rel, "skipped", "not a regular file (device, FIFO or broken link)")
        elif path.suffix.lower() not in IMAGE_EXTENSIONS:
            ext = path.suffix or "(none)"
            report.add(rel, "skipped", f"unknown extension {ext!r}: image types read are "
                                       f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
        else:
            found.append(_Candidate(path, rel, class_name))
    return found


def _report_junk(entry: os.DirEntry, rel: str, junk: str, report: IngestReport) -> None:
    if entry.is_dir(follow_symlinks=False):
        report.add(rel + "/", "skipped", f"{junk}: {_count_files(Path(entry.path))} file(s) inside skipped")
    else:
        report.add(rel, "skipped", junk)


def _report_wrapper_junk(root: Path, base: Path, report: IngestReport) -> None:
    """Junk beside the wrapper folders that were unwrapped (``__MACOSX`` next to ``photos/``)."""
    folder = root
    while folder != base and base in folder.parents:
        folder = folder.parent
        for entry in _sorted_entries(folder):
            junk = junk_reason(entry.name)
            if junk:
                _report_junk(entry, _rel(Path(entry.path), base), junk, report)


def scan_image_folder(root: Path, base: Path, report: IngestReport) -> tuple[list[str], list[_Candidate]]:
    """Class names (sorted subfolder names, NFC-normalised) and the image files in them.

    Files directly in ``root``, hidden entries and ``__MACOSX`` get "skipped" verdicts;
    ``base`` is what displayed paths are relative to.
    """
    class_names: set[str] = set()
    candidates: list[_Candidate] = []
    for entry in _sorted_entries(root):
        path = Path(entry.path)
        rel = _rel(path, base)
        junk = junk_reason(entry.name)
        if junk:
            _report_junk(entry, rel, junk, report)
        elif entry.is_dir(follow_symlinks=False):
            # macOS archives store names decomposed (NFD); one class must not become two.
            name = unicodedata.normalize("NFC", entry.name)
            class_names.add(name)
            in_class = _scan_class_folder(path, name, base, report)
            if not in_class:
                report.add(rel + "/", "skipped", "empty class folder (no image files): class dropped")
            candidates.extend(in_class)
        elif entry.is_symlink() and entry.is_dir():
            report.add(rel + "/", "skipped", "symbolic link to a folder: not followed")
        else:
            report.add(rel, "skipped", "not in a class folder: files directly in the root are ignored "
                                       "(put each image in a subfolder named after its class)")
    return sorted(class_names), candidates


# --------------------------------------------------------------------------------------
# Decoding one file
# --------------------------------------------------------------------------------------
class _Rejected(Exception):
    """A file cannot be used; the message is its verdict's reason."""


_PIL_LIMIT_LOCK = threading.Lock()
_HASH_CHUNK = 1 << 20


@contextlib.contextmanager
def _no_bomb_warning() -> Iterator[None]:
    # Our own max_pixels check replaces PIL's warning; PIL's hard error still applies.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[None]:
    """PIL's own bomb guard off while a header is read: our ``max_pixels`` check (one message,
    the configured limit) decides instead. Headers only; a lock keeps the global consistent."""
    with _PIL_LIMIT_LOCK, _no_bomb_warning():
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _file_sha256(path: Path) -> str:
    """The file's hash, read in chunks: a large file is never held in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _pixel_limit_reason(width: int, height: int, max_pixels: int) -> str:
    return (f"exceeds the pixel limit: {width}x{height} = {width * height:,} pixels > "
            f"max_pixels={max_pixels:,} (possible decompression bomb; not decoded)")


def _not_an_image_reason(data: bytes) -> str:
    head = data[:64]
    try:
        head.decode("utf-8")
        looks = f"looks like text: {head[:24].decode('utf-8', 'replace')!r}"
    except UnicodeDecodeError:
        looks = f"starts with bytes {head[:8].hex(' ')}"
    return f"not an image: the content is no image format PIL recognises ({looks})"


def _open_header(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only) and check the declared size before any pixel is decoded."""
    try:
        with _own_pixel_limit():
            img = Image.open(path)
    except UnidentifiedImageError as exc:
        with open(path, "rb") as handle:
            raise _Rejected(_not_an_image_reason(handle.read(64))) from exc
    except Exception as exc:  # noqa: BLE001 - any header parse failure is this file's problem only
        raise _Rejected(f"corrupt image header ({type(exc).__name__}: {exc})") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise _Rejected(_pixel_limit_reason(width, height, max_pixels))
    return img


def _draft_for(img: Image.Image, target: tuple[int, int] | None) -> str:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 of its size when the target is far smaller (the
    decoder skips the detail: a 7000 x 7000 photo for 64 px costs a fraction of its full
    decode). At least twice the target is kept, so the final resize still antialiases."""
    if target is None or img.format != "JPEG":
        return ""
    width, height = img.size
    wanted = (2 * max(target), 2 * max(target))
    if min(width, height) < 2 * wanted[0]:
        return ""
    try:
        img.draft(img.mode, wanted)
    except Exception:  # noqa: BLE001 - a decoder that cannot draft decodes at full size
        return ""
    return f"decoded at {img.size[0]}x{img.size[1]}" if img.size != (width, height) else ""


def _reduce_for(img: Image.Image, target: tuple[int, int] | None) -> tuple[Image.Image, str]:
    """Shrink a decoded image far larger than the target by an integer box filter first
    (cheap), so conversions, hashing and the final resize work on a small copy."""
    if target is None:
        return img, ""
    factor = min(img.size) // (2 * max(target))
    if factor < 2:
        return img, ""
    reduced = img.reduce(factor)
    return reduced, f"reduced 1/{factor} while loading"


def _load_pixels(img: Image.Image) -> list[str]:
    """Decode the first frame fully; truncated or corrupt data raises _Rejected."""
    details = []
    try:
        with _no_bomb_warning():
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                img.seek(0)
                details.append(f"first frame of {frames} used")
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _Rejected(f"exceeds the pixel limit (PIL decompression-bomb guard: {exc})") from exc
    except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, EOFError, zlib.error, ...
        raise _Rejected(f"truncated or corrupt image data ({type(exc).__name__}: {exc})") from exc
    return details


_ORIENTATION_OPS = {2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
                    4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
                    6: [Image.Transpose.ROTATE_270], 7: [Image.Transpose.TRANSVERSE], 8: [Image.Transpose.ROTATE_90]}


def _exif_orientation(img: Image.Image) -> int | str:
    """The EXIF orientation tag (1 when absent), or why it could not be read."""
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception as exc:  # noqa: BLE001 - broken EXIF must not cost the image
        return f"EXIF unreadable ({type(exc).__name__}), orientation not applied"


def _apply_exif_orientation(img: Image.Image, orientation: int | str) -> tuple[Image.Image, str]:
    """``img`` turned upright by an orientation read from its original (``_exif_orientation``):
    read before any reduction, since a reduced copy carries no EXIF."""
    if isinstance(orientation, str):
        return img, orientation
    if orientation not in _ORIENTATION_OPS:
        return img, ""
    for op in _ORIENTATION_OPS[orientation]:
        img = img.transpose(op)
    return img, f"EXIF orientation {orientation} applied"


def _composite_on_white(img: Image.Image) -> tuple[Image.Image, str]:
    """Flatten an image with alpha (LA or RGBA) onto white."""
    base_mode = "L" if img.mode == "LA" else "RGB"
    alpha = img.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return img.convert(base_mode), f"{img.mode} (opaque) -> {base_mode}"
    background = Image.new(base_mode, img.size, 255 if base_mode == "L" else (255, 255, 255))
    background.paste(img.convert(base_mode), mask=alpha)
    return background, f"{img.mode} -> {base_mode}, alpha composited onto white"


def _scale_to_uint8(values: np.ndarray, nominal_max: float) -> tuple[np.ndarray, str]:
    """Map values to 0..255: by the nominal range when they fit it, else by their own min-max."""
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= nominal_max:
        return np.rint(values * (255.0 / nominal_max)).astype(np.uint8), f"scaled by 255/{nominal_max:g}"
    span = high - low or 1.0
    return np.rint((values - low) * (255.0 / span)).astype(np.uint8), f"min-max scaled from [{low:g}, {high:g}]"


def to_8bit(img: Image.Image) -> tuple[Image.Image, str]:
    """Bring any PIL mode to 8-bit "L" or "RGB" by MODE_POLICY; returns (image, what was done)."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img, ""
    if mode == "1":
        return img.convert("L"), "1-bit -> L"
    if mode in ("LA", "La"):
        return _composite_on_white(img.convert("LA"))
    if mode in ("RGBA", "RGBa"):
        return _composite_on_white(img.convert("RGBA"))
    if mode in ("P", "PA"):
        flat, how = _composite_on_white(img.convert("RGBA"))
        return flat, f"palette {mode} -> RGBA -> " + how.split("-> ", 1)[1]
    if mode.startswith("I;16") or mode == "I":
        array, how = _scale_to_uint8(np.asarray(img), 65535.0)
        return Image.fromarray(array, "L"), f"{mode} (16/32-bit) -> L, {how}"
    if mode == "F":
        array, how = _scale_to_uint8(np.asarray(img), 1.0)
        return Image.fromarray(array, "L"), f"F (float) -> L, {how}"
    return img.convert("RGB"), f"{mode} -> RGB"


def fit_image(img: Image.Image, width: int, height: int, aspect: str) -> Image.Image:
    """Resize to width x height: "center_crop" fills and crops the centre, "pad" fits and pads black."""
    if img.size == (width, height):
        return img
    if aspect == "pad":
        return ImageOps.pad(img, (width, height), method=_RESAMPLE, color=0)
    return ImageOps.fit(img, (width, height), method=_RESAMPLE)


# --------------------------------------------------------------------------------------
# The folder ingest
# --------------------------------------------------------------------------------------
def _effective_size(path: Path, max_pixels: int) -> tuple[int, int] | None:
    """(W, H) after EXIF rotation, from the header only; None when unreadable or over the limit."""
    try:
        with _no_bomb_warning(), Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                return None
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - the decode pass reports the reason
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _choose_target_size(candidates: list[_Candidate], policy: ImagePolicy,
                        report: IngestReport) -> tuple[int, int] | None:
    """Output (W, H), or None to keep images as they are (all one size)."""
    if policy.image_size is not None:
        size = int(policy.image_size)
        report.note("image size: " + policy.describe_resize(size, size))
        return size, size
    # Header-only pass: knowing the target before decoding lets every image be resized
    # as soon as it is decoded, so a folder of 12-megapixel photos never sits in memory.
    sizes = Counter(s for s in (_effective_size(c.path, policy.max_pixels) for c in candidates) if s)
    if len(sizes) <= 1:
        if sizes:
            (width, height), = sizes
            report.note(f"image size: every image is {width}x{height} (W x H): unchanged")
        return None
    (width, height), count = sizes.most_common(1)[0]
    report.note(f"image size: images come in {len(sizes)} sizes; the most common, {width}x{height} "
                f"({count} files), is the target: {policy.describe_resize(width, height)}")
    return width, height


class _ImageCollector:
    """Decodes candidates one by one, tracking duplicates; keeps the arrays of loaded images."""

    def __init__(self, policy: ImagePolicy, target: tuple[int, int] | None, report: IngestReport):
        self.policy, self.target, self.report = policy, target, report
        self.by_bytes: dict[str, str] = {}
        self.by_pixels: dict[str, str] = {}
        self.class_of: dict[str, str] = {}
        self.arrays: list[np.ndarray] = []
        self.classes: list[str] = []
        self.rels: list[str] = []
        self.any_colour = False

    def add(self, candidate: _Candidate) -> None:
        """Decode one file and record its verdict; never raises for a bad file."""
        try:
            self._add(candidate)
        except _Rejected as exc:
            self.report.add(candidate.rel, "rejected", str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the ingest
            self.report.add(candidate.rel, "rejected", f"could not be read ({type(exc).__name__}: {exc})")

    def _duplicate_reason(self, first: str, candidate: _Candidate, what: str) -> str:
        reason = f"duplicate of {first} ({what})"
        if self.class_of[first] != candidate.class_name:
            reason += f"; conflicting label: the first copy is in class {self.class_of[first]!r}"
        return reason

    def _add(self, candidate: _Candidate) -> None:
        if candidate.path.stat().st_size == 0:
            raise _Rejected("zero-byte file (empty)")
        byte_key = _file_sha256(candidate.path)
        if byte_key in self.by_bytes:
            first = self.by_bytes[byte_key]
            self.report.add(candidate.rel, "duplicate", self._duplicate_reason(first, candidate, "identical bytes"))
            return
        img = _open_header(candidate.path, self.policy.max_pixels)
        declared = img.size
        fmt = img.format or "?"
        drafted = _draft_for(img, self.target)
        details = _load_pixels(img)
        upright = _exif_orientation(img)
        img, reduced = _reduce_for(img, self.target)
        details += [d for d in (drafted, reduced) if d]
        img, orientation = _apply_exif_orientation(img, upright)
        img, conversion = to_8bit(img)
        img = self._force_channels(img)
        pixel_key = hashlib.sha256(f"{img.mode}{img.size}".encode() + img.tobytes()).hexdigest()
        if pixel_key in self.by_pixels:
            first = self.by_pixels[pixel_key]
            self.report.add(candidate.rel, "duplicate", self._duplicate_reason(first, candidate, "identical pixels"))
            return
        self.by_bytes[byte_key] = self.by_pixels[pixel_key] = candidate.rel
        self.class_of[candidate.rel] = candidate.class_name
        original_size = declared if upright not in (5, 6, 7, 8) else declared[::-1]
        if self.target is not None:
            img = fit_image(img, *self.target, self.policy.aspect)
        array = np.asarray(img, dtype=np.uint8)
        self.arrays.append(array[..., None] if array.ndim == 2 else array)
        self.any_colour |= img.mode == "RGB"
        self.classes.append(candidate.class_name)
        self.rels.append(candidate.rel)
        details += [d for d in (orientation, conversion) if d]
        if img.size != original_size:
            details.append(f"resized to {img.size[0]}x{img.size[1]}")
        self.report.add(candidate.rel, "loaded", "; ".join([f"{fmt} {original_size[0]}x{original_size[1]}"] + details))

    def _force_channels(self, img: Image.Image) -> Image.Image:
        if self.policy.channels == "L" and img.mode != "L":
            return img.convert("L")
        if self.policy.channels == "RGB" and img.mode != "RGB":
            return img.convert("RGB")
        return img

    def stacked(self) -> np.ndarray:
        """All loaded images as one (N, H, W, C) array, channels unified by the policy."""
        channels = 3 if self.any_colour else 1
        arrays = [np.repeat(a, 3, axis=2) if a.shape[2] != channels else a for a in self.arrays]
        return np.stack(arrays) if arrays else np.zeros((0, 1, 1, channels), np.uint8)


def _note_channels(collector: _ImageCollector, policy: ImagePolicy, report: IngestReport) -> None:
    if policy.channels != "auto":
        report.note(f"channels: {policy.channels} (asked for); "
                    + ("RGB -> L by ITU-R 601 luma" if policy.channels == "L" else "grayscale repeated to RGB"))
    elif collector.any_colour:
        report.note("channels: RGB (at least one loaded image is in colour); grayscale images repeated to 3 channels")
    else:
        report.note("channels: L (every loaded image is grayscale)")


def _select_classes(class_names: list[str], candidates: list[_Candidate], collector: _ImageCollector,
                    report: IngestReport) -> list[str]:
    """Classes with at least one loaded image; notes for dropped and single-image classes."""
    counts = Counter(collector.classes)
    tried = Counter(c.class_name for c in candidates)
    kept = []
    for name in class_names:
        n = counts.get(name, 0)
        if n == 0:
            why = (f"none of its {tried[name]} image file(s) could be loaded" if tried[name]
                   else "its folder holds no image files")
            report.note(f"class {name!r} dropped: {why}")
            continue
        if n == 1:
            report.note(f"warning: class {name!r} has only 1 image: too few to split into train/test "
                        "or to evaluate (kept)")
        kept.append(name)
    return kept


def ingest_image_folder(root: Path, base: Path, policy: ImagePolicy, report: IngestReport,
                        source_of: Callable[[str], str], progress: ProgressCallback | None = None
                        ) -> LabelledImages:
    """Load ``root`` (one subfolder per class) into LabelledImages, recording every verdict.

    ``base`` is what report paths are relative to; ``source_of`` turns such a path into the
    provenance string stored in ``sources``. Raises IngestError (with ``.report``) when
    fewer than two classes have images.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        report.note("warning: PIL ImageFile.LOAD_TRUNCATED_IMAGES is True in this process (set by other "
                    "code): truncated images cannot be detected and may load padded with grey")
    report.note(MODE_POLICY)
    _report_wrapper_junk(root, base, report)
    class_names, candidates = scan_image_folder(root, base, report)
    target = _choose_target_size(candidates, policy, report)
    collector = _ImageCollector(policy, target, report)
    reporter = ProgressReporter(progress, "ingest", len(candidates))
    for step, candidate in enumerate(candidates, start=1):
        collector.add(candidate)
        reporter(step, message=candidate.rel)
    kept = _select_classes(class_names, candidates, collector, report)
    if len(kept) < 2:
        raise IngestError(_too_few_classes_message(root, kept, report), report)
    _note_channels(collector, policy, report)
    index = {name: i for i, name in enumerate(kept)}
    data = LabelledImages(collector.stacked(), np.array([index[c] for c in collector.classes], np.int64),
                          kept, [source_of(rel) for rel in collector.rels])
    report.class_counts = data.counts()
    return data


def _too_few_classes_message(root: Path, kept: list[str], report: IngestReport) -> str:
    counts = report.counts
    found = f"1 class with images ({kept[0]!r})" if kept else "no class with images"
    message = (f"{report.source or root}: found {found}; need at least 2 class folders with images "
               f"(one subfolder per class). Files seen: {counts['rejected']} rejected, "
               f"{counts['skipped']} skipped, {counts['duplicate']} duplicates; see the report.")
    loose = [e for e in report.skipped if e.reason.startswith("not in a class folder")]
    if loose:
        message += f" {len(loose)} file(s) lie directly in the root folder instead of in class folders."
    return message


# --------------------------------------------------------------------------------------
# .npz arrays
# --------------------------------------------------------------------------------------
def _npz_array(archive, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle, which is never allowed
        raise IngestError(f"{path.name}: {key} cannot be read without pickle ({exc}); "
                          "store it as a numeric or fixed-width string array") from exc


def _npz_images(x: np.ndarray, key: str, path: Path, report: IngestReport) -> np.ndarray:
    """(N, H, W[, C]) array of any numeric dtype -> uint8 (N, H, W, C), or IngestError naming the key."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise IngestError(f"{path.name}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C 1 or 3")
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255
    if not np.issubdtype(x.dtype, np.number):
        raise IngestError(f"{path.name}: {key} has dtype {x.dtype}; expected uint8 or floats in [0, 1]")
    low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or low < 0 or high > 1:
            raise IngestError(f"{path.name}: {key} holds floats in [{low:g}, {high:g}]; expected floats in "
                              "[0, 1] (scaled to 0..255) or uint8")
        report.note(f"{key}: float values in [0, 1] scaled to uint8 0..255")
        return np.rint(x * 255.0).astype(np.uint8)
    if low < 0 or high > 255:
        raise IngestError(f"{path.name}: {key} holds integers in [{low:g}, {high:g}]; expected 0..255")
    report.note(f"{key}: {x.dtype} values in 0..255 cast to uint8")
    return x.astype(np.uint8)


def _npz_labels(y: np.ndarray, key: str, n: int, path: Path, report: IngestReport) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[0] == n and set(np.unique(y)) <= {0, 1}:
        report.note(f"{key}: one-hot rows converted to class indices by argmax")
        y = y.argmax(axis=1)
    if y.shape != (n,):
        raise IngestError(f"{path.name}: {key} has shape {y.shape}; expected ({n},), one label per image")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise IngestError(f"{path.name}: {key} holds non-integer floats; labels must be integers or strings")
        y = y.astype(np.int64)
    return y


def _apply_array_policy(x: np.ndarray, policy: ImagePolicy) -> np.ndarray:
    if policy.channels == "L" and x.shape[-1] == 3:
        x = np.rint(x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)[..., None]
    elif policy.channels == "RGB" and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if policy.image_size is None or x.shape[1:3] == (policy.image_size, policy.image_size):
        return x
    size = int(policy.image_size)
    out = np.empty((len(x), size, size, x.shape[-1]), np.uint8)
    for i, image in enumerate(x):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        resized = np.asarray(fit_image(pil, size, size, policy.aspect))
        out[i] = resized[..., None] if resized.ndim == 2 else resized
    return out


def _label_text(value) -> str:
    return str(value.item() if hasattr(value, "item") else value)


def ingest_npz(path: Path, policy: ImagePolicy, report: IngestReport) -> tuple[LabelledImages, LabelledImages | None]:
    """Read ``x_train, y_train[, x_test, y_test]``; class names are the sorted unique train labels."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - zipfile, OSError, ValueError: all "unreadable"
        raise IngestError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})", report) from exc
    if not hasattr(archive, "files"):
        raise IngestError(f"{path}: holds a single array, not an .npz with x_train and y_train", report)
    with archive:
        keys = set(archive.files)
        for key in ("x_train", "y_train") + (("x_test", "y_test") if keys & {"x_test", "y_test"} else ()):
            if key not in keys:
                raise IngestError(f"{path.name}: missing key {key!r}; keys there: {sorted(keys)}. An image .npz "
                                  "needs x_train and y_train, and optionally both x_test and y_test", report)
        parts = {}
        for split in ("train", "test"):
            if f"x_{split}" in keys:
                x = _npz_images(_npz_array(archive, f"x_{split}", path), f"x_{split}", path, report)
                y = _npz_labels(_npz_array(archive, f"y_{split}", path), f"y_{split}", len(x), path, report)
                parts[split] = (x, y)
    values = np.unique(parts["train"][1])
    class_names = [_label_text(v) for v in values]
    if len(class_names) < 2:
        found = f"only one class ({class_names[0]!r})" if class_names else "no labels"
        raise IngestError(f"{path.name}: y_train holds {found}; need at least 2 classes", report)
    datasets = {}
    for split, (x, y) in parts.items():
        labels = np.searchsorted(values, y).clip(0, len(values) - 1)
        unknown = np.unique(y[values[labels] != y])
        if unknown.size:
            raise IngestError(f"{path.name}: y_{split} holds labels not in y_train: "
                              f"{[_label_text(v) for v in unknown[:10]]}", report)
        sources = [f"{path.name}:x_{split}[{i}]" for i in range(len(x))]
        datasets[split] = LabelledImages(_apply_array_policy(x, policy), labels, class_names, sources)
    train = datasets["train"]
    shape_text = "; ".join(f"x_{s} {tuple(parts[s][0].shape)}" for s in parts)
    report.add(path.name, "loaded", f"{shape_text}; {len(class_names)} classes")
    report.class_counts = train.counts()
    return train, datasets.get("test")
