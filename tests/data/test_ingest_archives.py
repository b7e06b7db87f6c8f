"""Archives: unsafe members are refused with a reason, nothing lands outside the temp dir, the rest loads."""
from __future__ import annotations

import io
import stat
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _sample_files import png_bytes

from genaug.data import IngestError, ingest

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


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
        # Incompressible, so no archive bomb: just more than the cap allows.
        zf.writestr("b/noise.png", np.random.default_rng(0).bytes(1_500_000))
        zf.writestr("b/later.png", png_bytes(399))
    result = ingest(archive, max_extracted_bytes=1_000_000)
    report = result.report
    assert report.verdict_for("b/noise.png").status == "rejected"
    assert "archive size limit" in report.verdict_for("b/noise.png").reason
    assert "not extracted" in report.verdict_for("b/later.png").reason
    assert any("possible zip bomb" in n for n in report.notes)
    assert len(result.data) == 4
    assert list(private_tempdir.iterdir()) == []


def _timed_refusal(archive: Path, match: str, **limits) -> float:
    import time

    started = time.monotonic()
    with pytest.raises(IngestError, match=match):
        ingest(archive, **limits)
    return time.monotonic() - started


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path, private_tempdir):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/0.png", png_bytes(1))
        with zf.open("zero/bomb.png", "w") as member:  # 200 MB of zeros, ~200 kB compressed
            for _ in range(200):
                member.write(bytes(1_000_000))
    assert archive.stat().st_size < 1_000_000
    _timed_refusal(archive, "expands? .*200 times|more than 200 times")
    assert list(private_tempdir.iterdir()) == []  # nothing left behind


def test_a_tar_bomb_is_stopped_while_it_streams(tmp_path, private_tempdir):
    # tar.gz has no directory of sizes: the ratio is checked on what actually comes out.
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        payload = bytes(50_000_000)
        info = tarfile.TarInfo("zero/bomb.png")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    _timed_refusal(archive, "more than 200 times its compressed size")
    assert list(private_tempdir.iterdir()) == []


def test_many_members_and_deep_nesting_are_refused(tmp_path, private_tempdir):
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(2001):
            zf.writestr(f"a/{i}.txt", b"")
    _timed_refusal(many, "more than 2,000", max_members=2000)
    deep = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep, "w") as zf:
        zf.writestr("/".join(["d"] * 200) + "/x.png", png_bytes(2))
    _timed_refusal(deep, "nested 201 folders deep")
    deep_tar = tmp_path / "deep.tar"
    with tarfile.open(deep_tar, "w") as tf:
        data = png_bytes(3)
        info = tarfile.TarInfo("/".join(["d"] * 100) + "/x.png")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    _timed_refusal(deep_tar, "nested 101 folders deep")
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
