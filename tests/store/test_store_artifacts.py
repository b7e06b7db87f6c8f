"""Atomic artifact folders: complete or absent, never half-written under models/<id>."""
from __future__ import annotations

import pytest

from genaug.store import cleanup_stale_folders, model_dir, remove_model_folders, write_artifact_atomically

MODEL_ID = "0f8e2c1a-1111-2222-3333-444455556666"


def test_written_folder_is_renamed_into_place(home):
    def write(folder):
        (folder / "config.json").write_text("{}")
        (folder / "sub").mkdir()
        (folder / "sub" / "weights.bin").write_bytes(b"\x00" * 10)

    final = write_artifact_atomically(home, MODEL_ID, write)
    assert final == home / "models" / MODEL_ID
    assert (final / "config.json").read_text() == "{}" and (final / "sub" / "weights.bin").stat().st_size == 10
    assert [p.name for p in (home / "models").iterdir()] == [MODEL_ID]  # no temporary folder left


def test_failed_write_leaves_nothing(home):
    def write(folder):
        (folder / "config.json").write_text("{}")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_artifact_atomically(home, MODEL_ID, write)
    assert list((home / "models").iterdir()) == []


def test_existing_folder_is_never_replaced(home):
    model_dir(home, MODEL_ID).mkdir(parents=True)
    with pytest.raises(FileExistsError):
        write_artifact_atomically(home, MODEL_ID, lambda folder: None)
    assert [p.name for p in (home / "models").iterdir()] == [MODEL_ID]


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", ".tmp-x", "x" * 65])
def test_unsafe_ids_never_reach_a_path(home, bad_id):
    with pytest.raises(ValueError, match="not a safe folder name"):
        write_artifact_atomically(home, bad_id, lambda folder: None)
    with pytest.raises(ValueError):
        remove_model_folders(home, bad_id)


def test_remove_and_cleanup(home):
    other = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    for name in (MODEL_ID, f".tmp-{MODEL_ID}-abc", other, f".tmp-{other}-def"):
        (home / "models" / name).mkdir(parents=True)
    assert sorted(remove_model_folders(home, MODEL_ID)) == sorted([MODEL_ID, f".tmp-{MODEL_ID}-abc"])
    (home / "models" / MODEL_ID).mkdir()
    assert cleanup_stale_folders(home, keep_ids=[other]) == [MODEL_ID]
    assert sorted(p.name for p in (home / "models").iterdir()) == sorted([other, f".tmp-{other}-def"])
