"""Ingest of image folders: every bad file gets its specific verdict, every good one loads."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _sample_files import SIZE, encode, exif_rotated_jpeg, png_bytes, rgb_array, sixteen_bit_png, write, \
    write_class_folders
from PIL import Image, ImageFile

from genaug.data import FileVerdict, ImagePolicy, IngestError, IngestReport, ingest

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _index(result, relative: str) -> int:
    """Position of the image that came from ``relative`` in the ingested dataset."""
    matches = [i for i, s in enumerate(result.data.sources) if s.endswith(relative)]
    assert len(matches) == 1, (relative, result.data.sources)
    return matches[0]


def test_every_bad_file_gets_its_reason_and_every_good_file_loads(messy_folder):
    events = []
    result = ingest(messy_folder.root, progress=events.append)
    report = result.report

    for path, (status, fragment) in messy_folder.bad.items():
        verdict = report.verdict_for(path)
        assert verdict.status == status, verdict
        assert fragment in verdict.reason, verdict

    loaded = {e.path for e in report.loaded}
    assert loaded == set(messy_folder.loaded)
    assert len(result.data) == len(messy_folder.loaded) == 17
    assert result.test is None
    # classes: sorted folder names, the empty one dropped
    assert result.data.class_names == ["cats", "dogs and wolves ü", "gray", "solo"]
    for path, class_name in messy_folder.loaded.items():
        assert result.data.class_names[result.data.labels[_index(result, path)]] == class_name
    assert report.class_counts == {"cats": 4, "dogs and wolves ü": 8, "gray": 4, "solo": 1}
    # one progress event per image file decoded, ending at the total
    assert [e.step for e in events] == list(range(1, len(events) + 1))
    assert events[-1].step == events[-1].total == len(messy_folder.loaded) + 8  # 8 decoded-then-refused files


def test_conversions_give_rgb_uint8_at_the_common_size(messy_folder):
    result = ingest(messy_folder.root)
    data, report = result.data, result.report
    assert data.images.shape == (17, SIZE, SIZE, 3) and data.images.dtype == np.uint8
    assert any("channels: RGB" in n for n in report.notes)
    assert any("most common, 32x32" in n for n in report.notes)
    assert any("alpha" in n and "white" in n for n in report.notes)  # the stated mode policy

    def pixel(path, y=0, x=0):
        return tuple(int(v) for v in data.images[_index(result, path), y, x])

    assert pixel("dogs and wolves ü/rgba.png") == (255, 255, 255)  # transparent -> white
    assert pixel("dogs and wolves ü/rgba.png", 5, 5) == (100, 0, 0)
    assert pixel("dogs and wolves ü/palette.png") == (255, 255, 255)
    assert pixel("dogs and wolves ü/palette.png", 5, 5) == (0, 255, 0)
    assert pixel("dogs and wolves ü/anim.gif", 5, 5) == (0, 0, 0)  # first frame (black)
    assert pixel("gray/la.png") == (255, 255, 255) and pixel("gray/la.png", 5, 5) == (40, 40, 40)
    cmyk = pixel("dogs and wolves ü/cmyk.jpg", 5, 5)
    assert cmyk[0] > 240 and cmyk[1] < 15 and cmyk[2] < 15  # CMYK (0, 255, 255, 0) is red
    np.testing.assert_array_equal(data.images[_index(result, "dogs and wolves ü/lossless.webp")], rgb_array(4))
    reasons = {e.path: e.reason for e in report.loaded}
    assert "first frame of 3" in reasons["dogs and wolves ü/anim.gif"]
    assert "EXIF orientation 6 applied" in reasons["dogs and wolves ü/rotated.jpg"]
    assert "CMYK -> RGB" in reasons["dogs and wolves ü/cmyk.jpg"]
    assert "TIFF 48x40; resized to 32x32" in reasons["dogs and wolves ü/big.tiff"]
    assert any("class 'solo' has only 1 image" in n for n in report.notes)


def test_grayscale_modes_give_one_channel_and_scaled_values(tmp_path):
    root = tmp_path / "gray"
    write(root, "a/sixteen.png", sixteen_bit_png())
    write(root, "a/one_bit.png", encode(Image.fromarray(np.eye(SIZE, dtype=bool)), "PNG"))
    write(root, "b/l.png", encode(Image.fromarray(np.full((SIZE, SIZE), 77, np.uint8)), "PNG"))
    result = ingest(root)
    images = result.data.images
    assert images.shape == (3, SIZE, SIZE, 1)
    assert any("channels: L" in n for n in result.report.notes)
    sixteen = images[_index(result, "a/sixteen.png"), 0, :3, 0]
    assert list(sixteen) == [0, 255, 128]  # 16-bit 0, 65535, 32768 -> 8-bit
    one_bit = images[_index(result, "a/one_bit.png"), ..., 0]
    assert set(np.unique(one_bit)) == {0, 255} and one_bit[3, 3] == 255
    assert images[_index(result, "b/l.png")].max() == 77


def test_exif_orientation_is_applied(tmp_path):
    root = tmp_path / "exif"
    write(root, "a/rotated.jpg", exif_rotated_jpeg(32, 16))
    write(root, "b/portrait.png", encode(Image.fromarray(rgb_array(1, 16, 32)), "PNG"))
    data = ingest(root).data
    assert data.images.shape == (2, 32, 16, 3)  # (H, W): portrait, as displayed, not as stored
    rotated = data.images[0].astype(int)
    assert rotated[:12, :, 0].mean() > 200 and rotated[:12, :, 2].mean() < 50   # red on top
    assert rotated[-12:, :, 2].mean() > 200 and rotated[-12:, :, 0].mean() < 50  # blue at the bottom


def test_image_size_pad_and_forced_channels(tmp_path):
    root = tmp_path / "pad"
    write(root, "a/wide.png", encode(Image.new("RGB", (40, 20), (200, 200, 200)), "PNG"))
    write(root, "b/square.png", encode(Image.new("RGB", (20, 20), (10, 200, 10)), "PNG"))
    result = ingest(root, image_size=16, aspect="pad", channels="L")
    images = result.data.images
    assert images.shape == (2, 16, 16, 1)
    wide = images[0, ..., 0]
    assert wide[0].max() == 0 and wide[-1].max() == 0 and wide[8].min() > 150  # black bars top and bottom
    assert any("pad" in n and "16x16" in n for n in result.report.notes)
    cropped = ingest(root, image_size=16).data.images
    assert cropped.shape == (2, 16, 16, 3) and cropped[0].min() > 150  # centre crop: no bars


def test_small_max_pixels_rejects_from_the_header(tmp_path):
    root = write_class_folders(tmp_path / "small", {"a": 2, "b": 2})
    write(root, "b/big.png", encode(Image.new("RGB", (64, 64)), "PNG"))
    result = ingest(root, max_pixels=SIZE * SIZE)
    verdict = result.report.verdict_for("b/big.png")
    assert verdict.status == "rejected"
    assert "pixel limit: 64x64 = 4,096 pixels > max_pixels=1,024" in verdict.reason
    assert len(result.data) == 4 and result.data.image_shape == (SIZE, SIZE, 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # the ingest never flips the global


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds one tiny, truncated data chunk."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + \
        chunk(b"IEND", b"")


def test_one_limit_message_even_beyond_pils_own_guard(tmp_path):
    # 20000 x 10000 = 200 MP: past PIL's own bomb guard (~179 MP), which must not speak instead.
    root = write_class_folders(tmp_path / "huge", {"a": 2, "b": 2})
    write(root, "b/huge.png", _png_header_only(20000, 10000))
    write(root, "b/large.png", _png_header_only(8000, 8000))
    result = ingest(root, max_pixels=50_000_000)
    for name, text in (("b/huge.png", "20000x10000 = 200,000,000 pixels"), ("b/large.png", "8000x8000")):
        verdict = result.report.verdict_for(name)
        assert verdict.status == "rejected" and f"exceeds the pixel limit: {text}" in verdict.reason, verdict.reason
        assert "max_pixels=50,000,000" in verdict.reason and "PIL" not in verdict.reason
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's guard is back on for everyone else


def test_a_large_image_is_decoded_by_a_bounded_path(tmp_path):
    root = write_class_folders(tmp_path / "large", {"a": 2, "b": 2})
    stripes = np.zeros((4000, 3000, 3), np.uint8)
    stripes[:2000] = (250, 10, 10)  # red top half, blue bottom half
    stripes[2000:] = (10, 10, 250)
    write(root, "a/photo.jpg", encode(Image.fromarray(stripes), "JPEG"))
    write(root, "b/scan.png", encode(Image.fromarray(stripes), "PNG"))
    result = ingest(root, image_size=SIZE)
    jpeg, png = result.report.verdict_for("a/photo.jpg"), result.report.verdict_for("b/scan.png")
    assert jpeg.status == png.status == "loaded"
    assert jpeg.reason.startswith("JPEG 3000x4000") and "decoded at 375x500" in jpeg.reason  # 1/8 in the decoder
    assert png.reason.startswith("PNG 3000x4000") and "reduced 1/" in png.reason
    for image in result.data.images[[i for i, s in enumerate(result.data.sources)
                                     if s.endswith(("photo.jpg", "scan.png"))]]:
        top, bottom = image[: SIZE // 3].astype(int), image[-SIZE // 3:].astype(int)
        assert top[..., 0].mean() > 200 and bottom[..., 2].mean() > 200  # the picture survives intact


def test_fewer_than_two_classes_raises_with_report(tmp_path):
    root = tmp_path / "one"
    write(root, "only/a.png", png_bytes(1))
    write(root, "only/b.png", png_bytes(2))
    write(root, "broken/x.png", b"")
    write(root, "loose.png", png_bytes(3))
    with pytest.raises(IngestError, match="1 class with images \\('only'\\)") as caught:
        ingest(root)
    report = caught.value.report
    assert report.verdict_for("broken/x.png").status == "rejected"
    assert "lie directly in the root" in str(caught.value)
    assert any("class 'broken' dropped: none of its 1 image file(s) could be loaded" in n for n in report.notes)


def test_wrapper_folder_is_unwrapped(tmp_path):
    write_class_folders(tmp_path / "outer" / "photos", {"x": 2, "y": 3})
    result = ingest(tmp_path / "outer")
    assert result.data.class_names == ["x", "y"] and len(result.data) == 5
    assert result.report.loaded[0].path.startswith("photos/x/")


def test_report_round_trips_and_summarises(messy_folder, tmp_path):
    report = ingest(messy_folder.root).report
    saved = report.save(tmp_path / "out" / "report.json")
    payload = json.loads(saved.read_text(encoding="utf-8"))
    assert payload["counts"] == report.counts and "dogs and wolves ü" in payload["class_counts"]
    assert IngestReport.load(saved) == report
    lines = report.summary_lines()
    assert len([line for line in lines if line.startswith(("rejected", "skipped", "duplicate"))]) == \
        sum(1 for e in report.entries if e.status != "loaded")
    assert lines[-1].startswith(f"totals: {len(report.entries)} files: 17 loaded")
    assert report.counts["duplicate"] == len(report.duplicates) == 2
    assert len(report.summary_lines(limit=3)) == 3 + 1 + len(report.notes) + 1
    with pytest.raises(ValueError, match="status"):
        FileVerdict("x", "lost", "")


def test_bad_arguments_and_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest(tmp_path / "nope")
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(IngestError, match="unsupported type '.xlsx'"):
        ingest(tmp_path / "data.xlsx")
    with pytest.raises(ValueError, match="channels"):
        ImagePolicy(channels="CMYK")
    with pytest.raises(ValueError, match="aspect"):
        ingest(tmp_path, aspect="stretch")
