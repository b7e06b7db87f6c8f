"""Training presets and the measured time estimate (genaug.presets), and labelled sample grids."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from genaug import api
from genaug import presets
from genaug.presets import EstimateBusyError, describe_seconds, estimate_training, kind_presets, with_progress_grids
from genaug.training import save_image_grid

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def test_every_preset_validates_and_grows_from_quick_to_best():
    assert kind_presets("classic") == []  # nothing to train
    for kind in ("vae", "dcgan", "ddim", "ddpm", "tabular_vae"):  # the built-in kinds (plugins may have none)
        chosen = kind_presets(kind)
        assert [p["name"] for p in chosen] == ["quick", "standard", "best"], kind
        steps = [api.validate_config(kind, p["config"]).steps for p in chosen]
        assert steps == sorted(steps) and steps[0] < steps[-1], (kind, steps)


def test_grids_during_training_unless_the_config_chooses():
    assert with_progress_grids("vae", {"steps": 500})["sample_every"] == 50
    assert with_progress_grids("vae", {"steps": 5})["sample_every"] == 1
    assert with_progress_grids("vae", {"steps": 500, "sample_every": 0})["sample_every"] == 0
    assert with_progress_grids("vae", {})["sample_every"] == 300  # the kind's default 3,000 steps
    assert "sample_every" not in with_progress_grids("classic", {})


def test_estimate_scales_with_steps_and_classes_from_one_measurement():
    config = {"mode": "per_class", "steps": 100, "channels": [4, 8], "hidden": 8, "latent_dim": 2,
              "batch_size": 8}
    first = estimate_training("vae", config, (8, 8, 1), ["a", "b", "c", "d"], 10, threads=1)
    assert first.models == 4  # one network per class
    assert first.seconds_per_step > 0
    again = estimate_training("vae", {**config, "steps": 300}, (8, 8, 1), ["a", "b", "c", "d"], 10, threads=1)
    assert again.measured_seconds == first.measured_seconds  # cached: the step count is not measured
    assert again.seconds - first.seconds == pytest.approx(200 * 4 * first.seconds_per_step, rel=1e-6)
    one = estimate_training("vae", {**config, "mode": "conditional"}, (8, 8, 1), ["a", "b", "c", "d"], 10,
                            threads=1)
    assert one.models == 1
    assert estimate_training("classic", {}, (8, 8, 1), ["a"], 10).seconds == 0


def test_estimate_refuses_bad_input_by_name():
    with pytest.raises(ValueError, match="steps"):
        estimate_training("vae", {"steps": 0}, (8, 8, 1), ["a"], 10)
    with pytest.raises(ValueError, match="image_shape"):
        estimate_training("vae", {}, (8, 8, 2), ["a"], 10)
    with pytest.raises(ValueError, match="tables"):
        estimate_training("tabular_vae", {}, (8, 8, 1), ["a"], 10)


def test_describe_seconds_reads_like_a_person():
    assert describe_seconds(12.4) == "about 12 s"
    assert describe_seconds(600) == "about 10 min"
    assert describe_seconds(3 * 3600) == "about 3.0 h"
    assert describe_seconds(0) == "nothing to train"


def test_a_labelled_grid_has_a_named_row_per_class(tmp_path):
    images = np.zeros((6, 8, 8, 1), np.uint8)
    images[3:] = 255
    labels = ["dark", "dark", "dark", "light", "light", "light"]
    path = save_image_grid(images, tmp_path / "grid.png", scale=4, labels=labels)
    grid = np.asarray(Image.open(path).convert("L"))
    plain = np.asarray(Image.open(save_image_grid(images, tmp_path / "plain.png", columns=3, scale=4)).convert("L"))
    assert grid.shape[0] == 2 * (8 + 2) * 4  # two rows (one per class), each framed, 4x
    assert grid.shape[1] > plain.shape[1]  # plus the margin with the names
    margin = grid[:, : grid.shape[1] - plain.shape[1]]
    assert (margin < 128).any()  # the names are drawn in it
    # One class only (a per-class network's grid): every image kept, wrapped into rows.
    single = np.asarray(Image.open(save_image_grid(np.zeros((20, 8, 8, 1), np.uint8), tmp_path / "one.png", scale=4,
                                                   labels=["solo"] * 20)).convert("L"))
    assert single.shape[0] == 3 * (8 + 1) * 4 + 4  # 20 images in rows of 8: three rows
    with pytest.raises(ValueError, match="labels"):
        save_image_grid(images, tmp_path / "bad.png", labels=["x"])


def test_estimate_counts_the_grids_and_stops_at_max_seconds():
    config = {"mode": "conditional", "steps": 2000, "channels": [4, 8], "hidden": 8, "latent_dim": 2,
              "batch_size": 8}
    shape, classes = (8, 8, 1), ["a", "b"]
    plain = estimate_training("vae", {**config, "sample_every": 0}, shape, classes, 10, threads=1)
    grids = estimate_training("vae", {**config, "sample_every": 10}, shape, classes, 10, threads=1)
    assert grids.measured_seconds == plain.measured_seconds  # one measurement serves both
    assert grids.seconds > plain.seconds  # 200 grids cost time
    capped = estimate_training("vae", {**config, "max_seconds": 0.5}, shape, classes, 10, threads=1)
    assert capped.seconds <= capped.fixed_seconds + 0.5 + 1e-9


def test_a_second_measurement_at_the_same_time_is_refused_not_queued():
    config = {"mode": "conditional", "steps": 10, "channels": [3, 5], "hidden": 7, "latent_dim": 3}
    assert presets._measure_lock.acquire(blocking=False)
    try:
        with pytest.raises(EstimateBusyError):
            estimate_training("vae", config, (8, 8, 1), ["a"], 5, threads=1, wait=False)
    finally:
        presets._measure_lock.release()
    assert estimate_training("vae", config, (8, 8, 1), ["a"], 5, threads=1, wait=False).seconds > 0
