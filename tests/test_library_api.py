"""genaug.api: train into the registry, list / get / load / delete, config errors, failures, data cleanup.

(Named test_library_api.py: a second test_api.py module, tests/service/test_api.py, tests the service.)

Runs with the tiny test generator and (once it can be imported) the real "vae" kind.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# The tiny test generator lives in tests/store; import it under the same name as there.
sys.path.insert(0, str(Path(__file__).resolve().parent / "store"))

import _tiny_generator as tiny  # noqa: E402
from genaug import api  # noqa: E402
from genaug.progress import ProgressEvent  # noqa: E402
from genaug.store import ModelBusyError, ModelExistsError, ModelNotFoundError, ModelNotReadyError  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch, database_url) -> Path:
    """An empty GENAUG_HOME; the registry database is the test's (``database_url``, tests/conftest.py)."""
    path = tmp_path / "home"
    monkeypatch.setenv("GENAUG_HOME", str(path))
    return path


@pytest.mark.parametrize("kind", tiny.kind_params())
def test_train_registers_a_ready_model_that_loads_and_samples(home, kind):
    events: list[ProgressEvent] = []
    data = tiny.tiny_images((6, 4))
    info = api.train(data, kind, "flowers", config=tiny.quick_config(kind), progress=events.append,
                     data_source="/somewhere/flowers")
    assert (info.name, info.kind, info.status, info.class_names) == ("flowers", kind, "ready", ["cat", "dog"])
    assert info.data_fingerprint == data.fingerprint()
    assert info.data_summary == {"data_kind": "images", "n": 10, "counts": {"cat": 6, "dog": 4},
                                 "image_shape": [8, 8, 1], "source": "/somewhere/flowers"}
    assert info.metrics["training_seconds"] > 0 and info.config["steps"] == 5
    assert info.artifact_dir == f"models/{info.id}" and Path(info.path) == home / "models" / info.id
    assert events and events[-1].stage and events[-1].step == events[-1].total
    json.dumps(info.to_dict())  # JSON-ready as it is

    assert [m.name for m in api.list_models()] == ["flowers"]
    assert api.get_model(info.id).name == "flowers"
    generator = api.load_model("flowers")
    samples = generator.sample(3, label="dog", seed=0)
    assert samples.data.shape == (3, 8, 8, 1) and list(samples.labels) == [1, 1, 1]

    result = api.generate("flowers", home.parent / "out", n_per_class=2, filters=[])
    assert result.counts == {"cat": 2, "dog": 2} and result.kind == kind and result.filters is None
    json.dumps(result.to_dict())
    # By default a model applies the generative classifier it trained with (5 steps here: it may
    # reject everything, which is reported as short, never filled with rejects).
    default = api.generate("flowers", home.parent / "out-default", n_per_class=2)
    if info.config.get("generative_classifier"):
        assert default.filters["filters"] == ["generative-classifier"]
        assert sum(default.counts.values()) + sum(default.filters["short"].values()) == 4
    else:
        assert default.filters is None and default.counts == {"cat": 2, "dog": 2}


@pytest.mark.parametrize("kind", tiny.kind_params())
def test_config_errors_name_the_field_and_create_no_row(home, kind):
    with pytest.raises(ValueError, match="config field 'steps': Input should be a valid integer"):
        api.train(tiny.tiny_images(), kind, "m", config=tiny.quick_config(kind), overrides={"steps": "many"})
    with pytest.raises(ValueError, match="config field 'bogus': Extra inputs are not permitted"):
        api.train(tiny.tiny_images(), kind, "m", overrides={"bogus": 1})
    with pytest.raises(ValueError, match="config field 'steps': Input should be greater than or equal to 1"):
        api.validate_config(kind, {"steps": 0})
    assert api.list_models(include_all=True) == []


def test_config_object_with_overrides(home):
    config = api.validate_config("test_tiny", {"steps": 50, "latent_dim": 3})
    info = api.train(tiny.tiny_images(), "test_tiny", "m", config=config, overrides={"steps": 2})
    assert (info.config["steps"], info.config["latent_dim"]) == (2, 3)


def test_refusals_before_training(home):
    with pytest.raises(ValueError, match="unknown generator kind 'nope'"):
        api.train(tiny.tiny_images(), "nope", "m")
    with pytest.raises(ValueError, match="model name '../x'"):
        api.train(tiny.tiny_images(), "test_tiny", "../x")
    with pytest.raises(TypeError, match="test_tiny trains on images, got LabelledTable"):
        api.train(tiny.tiny_table(), "test_tiny", "m")
    assert api.list_models(include_all=True) == []


def test_failed_training_is_recorded_and_the_name_reused(home):
    with pytest.raises(RuntimeError, match="failed at step 3"):
        api.train(tiny.tiny_images(), "test_tiny", "m", config={"steps": 5, "fail_at_step": 3})
    assert api.list_models() == []
    failed = api.list_models(include_all=True)
    assert [(m.name, m.status) for m in failed] == [("m", "failed")]
    assert failed[0].error == "RuntimeError: tiny generator failed at step 3 as configured"
    assert failed[0].path is None and list((home / "models").iterdir()) == []
    with pytest.raises(ModelNotReadyError, match=r"model m is not ready \(status: failed: RuntimeError"):
        api.load_model("m")

    info = api.train(tiny.tiny_images(), "test_tiny", "m", config={"steps": 2})
    assert info.status == "ready" and info.id != failed[0].id


def test_name_reuse_through_the_api(home):
    first = api.train(tiny.tiny_images(), "test_tiny", "m", config={"steps": 2})
    with pytest.raises(ModelExistsError, match="model m already exists"):
        api.train(tiny.tiny_images(), "test_tiny", "m", config={"steps": 2})
    second = api.train(tiny.tiny_images((3, 3)), "test_tiny", "m", config={"steps": 2}, replace=True)
    assert second.id != first.id and not (home / "models" / first.id).exists()
    assert [m.id for m in api.list_models()] == [second.id]


def test_delete_model(home):
    info = api.train(tiny.tiny_images(), "test_tiny", "m", config={"steps": 2})
    deleted = api.delete_model("m")
    assert deleted.id == info.id and not (home / "models" / info.id).exists()
    assert api.list_models(include_all=True) == []
    with pytest.raises(ModelNotFoundError, match="no model named 'm'"):
        api.get_model("m")
    with pytest.raises(ModelNotFoundError):
        api.delete_model("m")


def test_delete_refuses_a_live_training(home):
    from genaug.store import Registry

    with Registry.open(home) as registry:  # a training owned by this live process
        registry.begin_training("busy", "test_tiny", {}, None, {"counts": {"a": 1}})
    with pytest.raises(ModelBusyError, match="busy is being trained by pid"):
        api.delete_model("busy")
    api.delete_model("busy", force=True)


def make_ingested_copy(home: Path, name: str) -> Path:
    folder = home / "datasets" / name
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "0.png").write_bytes(b"png")
    return folder


def test_ingested_data_is_deleted_after_training_unless_kept(home, tmp_path):
    ingested = make_ingested_copy(home, "upload-1")
    api.train(tiny.tiny_images(), "test_tiny", "a", config={"steps": 2}, data_source=str(ingested))
    assert not ingested.exists() and (home / "datasets").exists()

    kept = make_ingested_copy(home, "upload-2")
    api.train(tiny.tiny_images(), "test_tiny", "b", config={"steps": 2}, data_source=str(kept), keep_data=True)
    assert kept.exists()

    users_own = tmp_path / "my-photos"
    users_own.mkdir()
    api.train(tiny.tiny_images(), "test_tiny", "c", config={"steps": 2}, data_source=str(users_own))
    assert users_own.exists()  # never genaug's to delete
    api.train(tiny.tiny_images(), "test_tiny", "d", config={"steps": 2}, data_source=str(home / "datasets"))
    assert (home / "datasets").exists()


def test_ingested_data_is_kept_when_training_fails(home):
    ingested = make_ingested_copy(home, "upload-1")
    with pytest.raises(RuntimeError):
        api.train(tiny.tiny_images(), "test_tiny", "a", config={"steps": 3, "fail_at_step": 1},
                  data_source=str(ingested))
    assert ingested.exists()  # the user can retry


def test_explicit_home_ignores_the_environment(home, tmp_path, database_url):
    other = tmp_path / "other-home"
    info = api.train(tiny.tiny_images(), "test_tiny", "m", config={"steps": 2}, home=other)
    assert [m.name for m in api.list_models(home=other)] == ["m"]
    assert Path(info.path) == other / "models" / info.id
    if database_url is None:  # the default registry is a file in the home: $GENAUG_HOME's is another one
        assert api.list_models() == []
    else:  # GENAUG_DATABASE_URL names one database for every home; only the files follow the home
        assert not (home / "models" / info.id).exists()


def test_transfer_from_a_parent_model_is_recorded_and_loads_its_weights(home):
    from diffusers import UNet2DModel

    from genaug.data import few_shot_subset, load_digits_dataset
    from genaug.generators.diffusion import DDIMDiffusion

    digits = load_digits_dataset()
    big = few_shot_subset(digits, 20, seed=0)  # "a larger related set": 10 classes
    few = big.subset([i for i in range(len(big)) if i % 4 == 0])  # the same classes, a quarter of the images
    tiny_config = {**DDIMDiffusion.tiny_config().model_dump(), "steps": 6}
    parent = api.train(big, "ddim", "digits-base", config=tiny_config, home=home)
    child = api.train(few, "ddim", "digits-child", config={**tiny_config, "steps": 2}, home=home, parent="digits-base")
    assert child.parent_id == parent.id and child.metrics["parent_model"] == "digits-base"
    assert child.metrics["warm_start"]["loaded"] > 0
    # Two fine-tuning steps from the parent stay close to it; a fresh model would not.
    parent_unet = UNet2DModel.from_pretrained(Path(parent.path) / "unet")
    child_unet = UNet2DModel.from_pretrained(Path(child.path) / "unet")
    name, weight = next((n, p) for n, p in child_unet.named_parameters() if "conv_in.weight" in n)
    assert (weight - dict(parent_unet.named_parameters())[name]).abs().max() < 0.05
    with pytest.raises(ValueError, match="'vae' model"):
        api.train(few, "vae", "wrong-kind", config={"steps": 2}, home=home, parent="digits-base")
