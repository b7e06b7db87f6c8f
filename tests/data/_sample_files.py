"""Builders of real image files, good and bad, written with PIL, for the ingest tests.

A plain module (not conftest) so that test files can import it by a name no other test folder uses.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32  # the common size of the good images: the ingest keeps it


def rgb_array(seed: int, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    """A distinct random RGB image (distinct seeds never collide as duplicates)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    """The file bytes of ``image`` saved as ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_bytes(seed: int) -> bytes:
    return encode(Image.fromarray(rgb_array(seed)), "PNG")


def exif_rotated_jpeg(width: int = 32, height: int = 16) -> bytes:
    """A landscape JPEG, left half red, right half blue, with EXIF orientation 6 (rotate 90 deg CW).

    Displayed correctly it is portrait with red on top and blue at the bottom.
    """
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2:] = (0, 0, 255)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit_png() -> bytes:
    """I;16 gradient with the extremes 0 and 65535 and the middle 32768."""
    values = np.zeros((SIZE, SIZE), np.uint16)
    values[0, 0], values[0, 1], values[0, 2] = 0, 65535, 32768
    return encode(Image.fromarray(values), "PNG")


def palette_with_transparency() -> bytes:
    """P image: index 0 transparent, index 1 opaque green."""
    image = Image.new("P", (SIZE, SIZE), 1)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    return encode(image, "PNG", transparency=0)


def rgba_with_hole() -> bytes:
    """Opaque dark red RGBA with pixel (0, 0) fully transparent."""
    array = np.zeros((SIZE, SIZE, 4), np.uint8)
    array[...] = (100, 0, 0, 255)
    array[0, 0] = (0, 0, 0, 0)
    return encode(Image.fromarray(array, "RGBA"), "PNG")


def la_with_hole() -> bytes:
    array = np.zeros((SIZE, SIZE, 2), np.uint8)
    array[...] = (40, 255)
    array[0, 0] = (0, 0)
    return encode(Image.fromarray(array, "LA"), "PNG")


@functools.lru_cache(maxsize=None)
def bomb_png(mode: str, side: int) -> bytes:
    """A PNG of a few kB whose header declares side x side pixels (cached: encoding takes a moment)."""
    return encode(Image.new(mode, (side, side)), "PNG")


def animated_gif() -> bytes:
    """Three frames: black, white, grey; the first frame is the one that counts."""
    frames = [Image.new("L", (SIZE, SIZE), v).convert("P") for v in (0, 255, 128)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


@dataclass
class MessyFolder:
    """The folder and what the ingest must say about each file in it."""

    root: Path
    loaded: dict[str, str] = field(default_factory=dict)    # path -> class
    bad: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (status, reason fragment)


def write(root: Path, relative: str, data: bytes) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return relative


def build_messy_folder(root: Path) -> MessyFolder:
    """Good images of every supported format and mode mixed with every kind of bad file."""
    messy = MessyFolder(root)
    cats, dogs, gray = "cats", "dogs and wolves ü", "gray"

    def good(relative: str, data: bytes) -> None:
        messy.loaded[write(root, relative, data)] = relative.split("/")[0]

    def bad(relative: str, data: bytes, status: str, reason: str) -> None:
        messy.bad[write(root, relative, data)] = (status, reason)

    # good, plain
    cat_png = png_bytes(0)
    good(f"{cats}/cat_0.png", cat_png)
    good(f"{cats}/cat_1.png", png_bytes(1))
    good(f"{cats}/cat_2.png", png_bytes(2))
    good(f"{cats}/cat photo é.jpg", encode(Image.fromarray(rgb_array(3)), "JPEG"))
    # good, other formats and modes
    good(f"{dogs}/cmyk.jpg", encode(Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)), "JPEG"))
    good(f"{dogs}/rgba.png", rgba_with_hole())
    good(f"{dogs}/palette.png", palette_with_transparency())
    good(f"{dogs}/anim.gif", animated_gif())
    good(f"{dogs}/lossless.webp", encode(Image.fromarray(rgb_array(4)), "WEBP", lossless=True))
    good(f"{dogs}/big.tiff", encode(Image.fromarray(rgb_array(5, 48, 40)), "TIFF"))
    good(f"{dogs}/rotated.jpg", exif_rotated_jpeg())
    good(f"{dogs}/bitmap.bmp", encode(Image.fromarray(rgb_array(6)), "BMP"))
    good(f"{gray}/l.png", encode(Image.fromarray(rgb_array(7)[..., 0]), "PNG"))
    good(f"{gray}/la.png", la_with_hole())
    good(f"{gray}/one_bit.png", encode(Image.fromarray(rgb_array(8)[..., 0] > 127), "PNG"))
    good(f"{gray}/sixteen.png", sixteen_bit_png())
    good("solo/only.png", png_bytes(9))
    # bad: corrupt content
    jpeg = encode(Image.fromarray(rgb_array(10)), "JPEG")
    full_png = png_bytes(11)
    bad(f"{cats}/zero.png", b"", "rejected", "zero-byte")
    bad(f"{cats}/truncated.jpg", jpeg[: len(jpeg) // 2], "rejected", "truncated")
    bad(f"{cats}/truncated.png", full_png[: len(full_png) // 2], "rejected", "truncated")
    bad(f"{cats}/notes.png", b"these are my notes, not a picture\n", "rejected", "not an image")
    # bad: decompression bombs, tiny files with huge declared sizes
    bad(f"{cats}/bomb.png", bomb_png("P", 12000), "rejected", "pixel limit")
    bad(f"{cats}/bomb_1bit.png", bomb_png("1", 20000), "rejected", "pixel limit")
    # bad: duplicates (same bytes; same pixels in another format)
    bad(f"{cats}/copy of cat_0.png", cat_png, "duplicate", "duplicate of cats/cat_0.png (identical bytes)")
    bad(f"{cats}/cat_1_again.bmp", encode(Image.fromarray(rgb_array(1)), "BMP"), "duplicate",
        "duplicate of cats/cat_1.png (identical pixels)")
    # skipped: junk and misplaced files
    bad(f"{cats}/.DS_Store", b"\x00\x00\x00\x01Bud1", "skipped", ".DS_Store")
    bad(f"{cats}/._cat_0.png", b"\x00\x05\x16\x07AppleDouble", "skipped", "AppleDouble")
    bad(f"{cats}/readme.txt", b"cats!", "skipped", "unknown extension '.txt'")
    bad(f"{cats}/Thumbs.db", b"\x00" * 16, "skipped", "Windows")
    bad("stray.png", png_bytes(12), "skipped", "not in a class folder")
    write(root, "__MACOSX/cats/._cat_0.png", b"\x00\x05\x16\x07")
    messy.bad["__MACOSX/"] = ("skipped", "__MACOSX")
    write(root, f"{cats}/.thumbnails/cat_0.png", png_bytes(13))
    messy.bad[f"{cats}/.thumbnails/"] = ("skipped", "hidden")
    write(root, ".git/config", b"[core]")
    messy.bad[".git/"] = ("skipped", "hidden")
    (root / "empty").mkdir()
    messy.bad["empty/"] = ("skipped", "empty class folder")
    return messy


def write_class_folders(root: Path, classes: dict[str, int], seed: int = 100) -> Path:
    """``root/<class>/img_<i>.png`` with distinct random RGB images."""
    for c, (name, n) in enumerate(classes.items()):
        for i in range(n):
            write(root, f"{name}/img_{i}.png", png_bytes(seed + 1000 * c + i))
    return root
