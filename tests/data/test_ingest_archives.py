"""Archives: unsafe members are refused with a reason, nothing lands outside the temp dir, the rest loads."""
from __future__ import annotations

import io
import stat
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path

import pytest
from _sample_files import png_bytes

from genaug.data import IngestError, ingest


@pytest.fixture()
def private_tempdir(tmp_path, monkeypatch) -> Path:
    """Make the ingest extract under tmp_path/work/tmp, so that escapes would land inside tmp_path."""
    tmp = tmp_path / "work" / "tmp"
    tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _escaped(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("*") if "evil" in p.name]


def _zip_symlink(zf: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so the mode bits in external_attr count
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


def test_zip_slip_members_are_refused_and_good_members_load(tmp_path, private_tempdir):
    absolute = f"/tmp/genaug-test-{uuid.uuid4().hex}-evil-abs.png"
    archive = tmp_path / "upload" / "photos.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for c, name in enumerate(["cats", "dogs"]):
            zf.writestr(f"photos/{name}/", "")
            for i in range(3):
                zf.writestr(f"photos/{name}/{i}.png", png_bytes(100 * c + i))
        zf.writestr("../evil.png", png_bytes(50))
        zf.writestr("photos/cats/../../../evil_deep.png", png_bytes(51))
        zf.writestr(absolute, png_bytes(52))
        zf.writestr("..\\evil_backslash.png", png_bytes(53))
        _zip_symlink(zf, "photos/cats/evil_link.png", "/etc/passwd")
        zf.writestr("__MACOSX/photos/cats/._0.png", b"\x00\x05\x16\x07")
    result = ingest(archive)
    report = result.report

    assert report.kind == "zip"
    assert result.data.class_names == ["cats", "dogs"] and len(result.data) == 6
    assert {e.path for e in report.loaded} == {f"photos/{n}/{i}.png" for n in ("cats", "dogs") for i in range(3)}
    expected = {
        "../evil.png": "'..' path component",
        "photos/cats/../../../evil_deep.png": "'..' path component",
        absolute: "absolute path",
        "..\\evil_backslash.png": "'..' path component",
        "photos/cats/evil_link.png": "symlink",
    }
    for name, fragment in expected.items():
        verdict = report.verdict_for(name)
        assert verdict.status == "rejected" and verdict.reason.startswith("unsafe archive member"), verdict
        assert fragment in verdict.reason, verdict
    assert "(zip-slip)" in report.verdict_for("../evil.png").reason
    assert report.verdict_for("__MACOSX/").status == "skipped"
    assert _escaped(tmp_path) == [] and not Path(absolute).exists()
    assert list(private_tempdir.iterdir()) == []  # the extraction folder is removed afterwards
    assert result.data.sources[0] == f"{archive}:photos/cats/0.png"


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar"])
def test_tar_links_devices_and_slips_are_refused(tmp_path, private_tempdir, suffix):
    archive = tmp_path / f"photos{suffix}"
    with tarfile.open(archive, "w:gz" if suffix != ".tar" else "w") as tf:
        for c, name in enumerate(["ants", "bees"]):
            for i in range(2):
                _tar_add(tf, f"{name}/{i}.png", png_bytes(200 + 10 * c + i))
        _tar_add(tf, "ants/evil_link.png", type=tarfile.SYMTYPE, linkname="../../../../etc/passwd")
        _tar_add(tf, "ants/evil_hard.png", type=tarfile.LNKTYPE, linkname="ants/0.png")
        _tar_add(tf, "bees/evil_device.png", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _tar_add(tf, "bees/evil_fifo.png", type=tarfile.FIFOTYPE)
        _tar_add(tf, "../evil.png", png_bytes(60))
        _tar_add(tf, "/evil_abs.png", png_bytes(61))
    result = ingest(archive)
    report = result.report

    assert report.kind == "tar"
    assert result.data.class_names == ["ants", "bees"] and len(result.data) == 4
    reasons = {"ants/evil_link.png": "symlink to", "ants/evil_hard.png": "hard link to",
               "bees/evil_device.png": "device file", "bees/evil_fifo.png": "special file",
               "../evil.png": "(zip-slip): '..'", "/evil_abs.png": "(zip-slip): absolute path"}
    for name, fragment in reasons.items():
        verdict = report.verdict_for(name)
        assert verdict.status == "rejected" and "unsafe archive member" in verdict.reason, verdict
        assert fragment in verdict.reason, verdict
    assert _escaped(tmp_path) == [] and not Path("/evil_abs.png").exists()
    assert list(private_tempdir.iterdir()) == []


def test_extracted_size_is_capped(tmp_path, private_tempdir):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for c, name in enumerate(["a", "b"]):
            for i in range(2):
                zf.writestr(f"{name}/{i}.png", png_bytes(300 + 10 * c + i))
        zf.writestr("b/zeros.png", b"\x00" * 5_000_000)  # compresses to a few kB
        zf.writestr("b/later.png", png_bytes(399))
    result = ingest(archive, max_extracted_bytes=1_000_000)
    report = result.report
    assert report.verdict_for("b/zeros.png").status == "rejected"
    assert "archive size limit" in report.verdict_for("b/zeros.png").reason
    assert "not extracted" in report.verdict_for("b/later.png").reason
    assert any("possible zip bomb" in n for n in report.notes)
    assert len(result.data) == 4
    assert list(private_tempdir.iterdir()) == []


def test_unreadable_archive_raises(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"this is not a zip file at all")
    with pytest.raises(IngestError, match="broken.zip: not a readable zip archive"):
        ingest(bad)


def test_truncated_archive_keeps_the_intact_members(tmp_path, private_tempdir):
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w") as tf:
        for c, name in enumerate(["a", "b", "c"]):
            for i in range(2):
                _tar_add(tf, f"{name}/{i}.png", png_bytes(400 + 10 * c + i))
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: data.index(b"c/1.png") + 700])  # ends inside the last member
    result = ingest(cut)
    assert result.data.class_names == ["a", "b", "c"] and len(result.data) == 5
    assert result.report.verdict_for("c/1.png").status == "rejected"
    assert list(private_tempdir.iterdir()) == []
