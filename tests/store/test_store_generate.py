"""generate(): counts per class, ImageFolder / CSV output, the manifest, batches, seeds."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import _tiny_generator as tiny
from genaug import api
from genaug.store import ModelNotReadyError, class_folder_names


@pytest.fixture(scope="module")
def database_url(module_database_url):
    """All tests here share one registry database (tests/conftest.py): ``models`` fills it once."""
    return module_database_url


@pytest.fixture(scope="module")
def models(tmp_path_factory, database_url):
    """One home with grayscale, RGB, table and 32x32 RGB models (trained once for this module)."""
    home = tmp_path_factory.mktemp("generate-home")
    api.train(tiny.tiny_images((10, 6)), "test_tiny", "gray", config={"steps": 3}, home=home)
    api.train(tiny.tiny_images((4, 4, 4), channels=3), "test_tiny", "rgb", config={"steps": 3}, home=home)
    api.train(tiny.tiny_table((12, 5)), "test_tiny_table", "table", config={"steps": 3}, home=home)
    api.train(tiny.tiny_images((3, 3), size=32, channels=3), "test_tiny", "large", config={"steps": 2}, home=home)
    return home


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_n_per_class_writes_pngs_and_one_manifest_line_each(models, tmp_path):
    out = tmp_path / "out"
    result = api.generate("gray", out, n_per_class=3, home=models, seed=5)
    assert result.counts == {"cat": 3, "dog": 3} and result.total == 6
    lines = read_manifest(out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert sorted(line["file"] for line in lines) == files and len(files) == 6
    model = api.get_model("gray", home=models)
    for line in lines:
        assert line["file"].split("/")[0] == line["label"]
        assert (line["model"], line["model_id"], line["kind"], line["seed"]) == ("gray", model.id, "test_tiny", 5)
        assert line["sampler"] == "prior" and "batch_seed" in line
        with Image.open(out / line["file"]) as image:
            image.load()
            assert image.mode == "L" and image.size == (8, 8)
    assert not (out / "manifest.jsonl.part").exists()


def test_rgb_images_stay_rgb(models, tmp_path):
    result = api.generate("rgb", tmp_path / "out", n_per_class=2, home=models)
    assert result.counts == {"cat": 2, "dog": 2, "eel": 2}
    with Image.open(tmp_path / "out" / "eel" / "000001.png") as image:
        assert image.mode == "RGB"


def test_counts_per_class(models, tmp_path):
    result = api.generate("gray", tmp_path / "out", counts={"dog": 4}, home=models)
    assert result.counts == {"cat": 0, "dog": 4}
    assert not (tmp_path / "out" / "cat").exists() and len(list((tmp_path / "out" / "dog").iterdir())) == 4


def test_balance_fills_up_to_the_largest_class(models, tmp_path):
    result = api.generate("gray", tmp_path / "a", balance=True, home=models)  # trained on cat 10, dog 6
    assert result.counts == {"cat": 0, "dog": 4} and len(read_manifest(tmp_path / "a")) == 4
    result = api.generate("gray", tmp_path / "b", balance=True, reference_counts={"cat": 2, "dog": 5}, home=models)
    assert result.counts == {"cat": 3, "dog": 0}


@pytest.mark.parametrize("how, message", [
    ({}, "exactly one of n_per_class, counts or balance"),
    ({"n_per_class": 2, "balance": True}, r"got n_per_class, balance"),
    ({"counts": {"cow": 1}}, "counts: unknown class 'cow'"),
    ({"counts": {"cat": -1}}, r"counts\['cat'\] must be an integer >= 0"),
    ({"n_per_class": 2.5}, "n_per_class must be an integer"),
    ({"n_per_class": 2, "batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"balance": True, "reference_counts": {"cat": 2}}, "reference_counts: no count for class 'dog'"),
])
def test_bad_requests_are_refused_before_writing(models, tmp_path, how, message):
    with pytest.raises(ValueError, match=message):
        api.generate("gray", tmp_path / "out", home=models, **how)
    assert not (tmp_path / "out").exists()


def test_batches_give_the_requested_counts_and_are_deterministic(models, tmp_path):
    first = api.generate("gray", tmp_path / "a", n_per_class=7, batch_size=3, seed=1, home=models)
    again = api.generate("gray", tmp_path / "b", n_per_class=7, batch_size=3, seed=1, home=models)
    other = api.generate("gray", tmp_path / "c", n_per_class=7, batch_size=3, seed=2, home=models)
    assert first.counts == {"cat": 7, "dog": 7} and first.total == 14
    lines = read_manifest(tmp_path / "a")
    assert sorted({line["batch"] for line in lines}) == list(range(6))  # 3 + 3 + 1 per class
    assert len({line["file"] for line in lines}) == 14
    for line in lines:
        assert (tmp_path / "b" / line["file"]).read_bytes() == (tmp_path / "a" / line["file"]).read_bytes()
    assert any((tmp_path / "c" / line["file"]).read_bytes() != (tmp_path / "a" / line["file"]).read_bytes()
               for line in lines)
    assert other.total == 14


def test_sampler_options_reach_sample_and_the_manifest(models, tmp_path):
    api.generate("gray", tmp_path / "out", n_per_class=1, noise=0.0, home=models)
    assert {line["noise"] for line in read_manifest(tmp_path / "out")} == {0.0}
    with pytest.raises(ValueError, match="unknown sample options: colour"):
        api.generate("gray", tmp_path / "bad", n_per_class=1, colour="red", home=models)
    assert not (tmp_path / "bad" / "manifest.jsonl").exists()  # an aborted run stays visibly incomplete


def test_table_models_write_a_csv_with_a_label_column(models, tmp_path):
    result = api.generate("table", tmp_path / "out", n_per_class=5, batch_size=2, home=models)
    frame = pd.read_csv(result.data_file)
    assert list(frame.columns) == ["x0", "x1", "label"] and result.label_column == "label"
    assert frame["label"].tolist() == ["low"] * 5 + ["high"] * 5
    lines = read_manifest(tmp_path / "out")
    assert [line["row"] for line in lines] == list(range(10))
    assert [line["label"] for line in lines] == frame["label"].tolist()


def test_out_dir_must_be_new_or_empty(models, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.png").write_bytes(b"")
    with pytest.raises(ValueError, match="is not empty"):
        api.generate("gray", tmp_path / "out", n_per_class=1, home=models)


def test_generate_from_a_generator_object(models, tmp_path):
    generator = api.load_model("gray", home=models)
    result = api.generate(generator, tmp_path / "out", n_per_class=2)
    assert result.model is None and result.counts == {"cat": 2, "dog": 2}
    with pytest.raises(ValueError, match="pass reference_counts"):
        api.generate(generator, tmp_path / "other", balance=True)


def test_models_that_are_not_ready_cannot_generate(home, tmp_path):
    with pytest.raises(RuntimeError):
        api.train(tiny.tiny_images(), "test_tiny", "broken", config={"steps": 3, "fail_at_step": 2})
    with pytest.raises(ModelNotReadyError, match="model broken is not ready \\(status: failed"):
        api.generate("broken", tmp_path / "out", n_per_class=1)


def test_class_names_become_safe_unique_folders():
    names = ["a/b", "..", "A", "a", "ok", "con:1", ""]
    folders = class_folder_names(names)
    assert folders["ok"] == "ok" and folders["A"] == "A"
    assert len({f.lower() for f in folders.values()}) == len(names)
    for folder in folders.values():
        assert folder and "/" not in folder and "\\" not in folder and ":" not in folder
        assert not folder.startswith(".")


def test_memory_does_not_grow_with_n(models, tmp_path):
    # Coarse: the traced peak for 10x the samples stays close to the peak for 1x. Kept
    # in memory, 800 images of 32x32x3 would add 2.4 MB; a batch is 25 of them.
    def peak(n: int, out: Path) -> int:
        tracemalloc.start()
        api.generate("large", out, n_per_class=n, batch_size=25, home=models)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    # Warm up with the large count: pathlib interns every new file name once, and growing
    # that process-wide table (several MB at once) is not memory held per sample.
    peak(400, tmp_path / "warm-up")
    small = peak(40, tmp_path / "small")
    large = peak(400, tmp_path / "large")
    assert large < small + 1_000_000, (small, large)
    assert len(read_manifest(tmp_path / "large")) == 800
