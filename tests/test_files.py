"""``write_atomically``: a reader sees the old file or the whole new one, and nothing is left behind;
``create_atomically``: only where no file is yet."""
from __future__ import annotations

import errno
import os

import pytest

from genaug.files import create_atomically, write_atomically

pytestmark = pytest.mark.no_database


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "cell.json"
    target.write_text("old")

    def half_then_crash(temporary):
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_then_crash)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]


def test_each_write_gets_a_temporary_of_its_own(tmp_path):
    """Two writers of one file never share a temporary (the old pid-named one could collide
    across hosts on a shared file system): the names differ even within one process."""
    target = tmp_path / "fit.json"
    seen = []

    def remember(temporary):
        seen.append(temporary)
        temporary.write_text(str(len(seen)))

    write_atomically(target, remember)
    write_atomically(target, remember, durable=False)
    assert seen[0] != seen[1] and all(p.parent == tmp_path and p.name.startswith(".fit.json.") for p in seen)
    assert target.read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["fit.json"]


def test_create_writes_only_where_no_file_is_and_falls_back_only_without_hard_links(tmp_path, monkeypatch):
    target = tmp_path / "cell.json"
    assert create_atomically(target, lambda tmp: tmp.write_text("first"))
    assert not create_atomically(target, lambda tmp: tmp.write_text("second"))
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]

    # A file system without hard links: an ordinary rename. Any other error of the link is raised.
    def no_links(source, destination):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    assert create_atomically(tmp_path / "other.json", lambda tmp: tmp.write_text("made"))
    assert (tmp_path / "other.json").read_text() == "made"

    def io_error(source, destination):
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(os, "link", io_error)
    with pytest.raises(OSError, match="input/output error"):
        create_atomically(tmp_path / "third.json", lambda tmp: tmp.write_text("lost"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json", "other.json"]
