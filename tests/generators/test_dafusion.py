"""The dafusion kind on a tiny random Stable Diffusion built offline (``generators.dafusion_tiny``):
textual inversion trains only the new token rows, img2img runs int(steps x strength) denoising
steps, the base model is referenced by path and fingerprint, clear errors for a missing model."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset
from genaug.generators.base import load_generator
from genaug.generators.dafusion import STACKED_STRENGTHS, DAFusion, load_components, resolve_model_path
from genaug.generators.dafusion_tiny import tiny_stable_diffusion
from genaug.training import CHECKPOINT_DIR, latest_checkpoint

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def digits() -> LabelledImages:
    data = load_digits_dataset()
    keep = np.flatnonzero(data.labels < 3)
    return few_shot_subset(LabelledImages(data.images[keep], data.labels[keep], data.class_names[:3]), 4, seed=0)


@pytest.fixture(scope="module")
def fitted(digits) -> DAFusion:
    return DAFusion(DAFusion.tiny_config()).fit(digits)


def test_textual_inversion_trains_only_the_new_token_rows(digits, tmp_path):
    config = DAFusion.tiny_config().model_copy(update={"steps": 6, "checkpoint_every": 6, "lr": 0.05})
    model = DAFusion(config).fit(digits, checkpoints=tmp_path)
    original = load_components(resolve_model_path(config.model_path))
    before = original["text_encoder"].get_input_embeddings().weight.detach()
    checkpoint = torch.load(latest_checkpoint(tmp_path / "dafusion-tokens"), map_location="cpu", weights_only=False)
    after = checkpoint["modules"]["embeddings"]["weight"]
    new_rows = len(digits.class_names) * config.num_vectors
    assert after.shape == (len(before) + new_rows, before.shape[1])
    assert torch.equal(after[:len(before)], before), "a row of the base vocabulary changed"
    initial = before[original["tokenizer"].encode(config.initializer_token, add_special_tokens=False)[0]]
    for row in after[len(before):]:
        assert not torch.allclose(row, initial), "a new token row did not learn"
    assert torch.equal(model.token_embeddings, after[len(before):])
    assert (tmp_path / "dafusion-tokens" / CHECKPOINT_DIR).is_dir()
    # The frozen networks are the base model's, untouched: the pipeline uses them as they are on disk.
    pipe = model.pipeline()
    for name in ("unet", "vae"):
        for (key, value), (_, base) in zip(getattr(pipe, name).state_dict().items(), original[name].state_dict().items()):
            assert torch.equal(value.cpu().float(), base.float()), f"{name}.{key} changed"
    used = pipe.text_encoder.get_input_embeddings().weight.detach().cpu().float()
    assert torch.equal(used[:len(before)], before) and torch.equal(used[len(before):], model.token_embeddings)


@pytest.mark.parametrize("strength, expected", [(0.5, 5), (0.3, 3), (1.0, 10)])
def test_img2img_runs_steps_times_strength_denoising_steps(fitted, strength, expected):
    calls = []
    handle = fitted.pipeline().unet.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        samples = fitted.sample(2, label=1, seed=0, steps=10, strength=strength)
    finally:
        handle.remove()
    # Guidance batches the conditional and unconditional halves into one UNet call per step.
    assert len(calls) == expected
    assert {p["denoising_steps"] for p in samples.provenance} == {expected}
    assert samples.data.shape == (2, 8, 8, 1) and (samples.labels == 1).all()


def test_samples_record_source_strength_guidance_and_token_and_stack(fitted, digits):
    samples = fitted.sample(12, label=0, seed=4, augmentation="stacked", guidance_scale=3.0)
    strengths = [p["strength"] for p in samples.provenance]
    assert set(strengths) <= set(STACKED_STRENGTHS) and len(set(strengths)) >= 2
    sources = [p["source"] for p in samples.provenance]
    assert len(set(sources)) == int((digits.labels == 0).sum()), "round-robin: every image of the class is a source"
    assert {p["guidance_scale"] for p in samples.provenance} == {3.0}
    assert {p["token"] for p in samples.provenance} == {"<genaug-c0-v0>"}
    with pytest.raises(ValueError, match="options.prompt"):
        fitted.sample(1, seed=0, prompt="no placeholder")


def test_the_base_model_is_referenced_by_path_and_fingerprint_never_copied(digits, tmp_path):
    base = tmp_path / "sd"
    shutil.copytree(tiny_stable_diffusion(), base)
    model = DAFusion(DAFusion.tiny_config().model_copy(update={"model_path": str(base)})).fit(digits)
    folder = tmp_path / "saved"
    model.save(folder)
    assert sum(p.stat().st_size for p in folder.rglob("*")) < sum(p.stat().st_size for p in base.rglob("*")) / 4
    loaded = load_generator(folder)
    assert loaded.meta["model_path"] == str(base.resolve()) and len(loaded.meta["model_fingerprint"]) == 64
    np.testing.assert_array_equal(loaded.sample(3, seed=2).data, model.sample(3, seed=2).data)
    (base / "unet" / "config.json").write_text((base / "unet" / "config.json").read_text() + " ")
    with pytest.raises(ValueError, match="not the one this model learned its tokens on"):
        load_generator(folder).sample(1, seed=0)


def test_a_missing_or_incomplete_model_folder_is_a_clear_error(digits, tmp_path, monkeypatch):
    monkeypatch.delenv("GENAUG_SD_MODEL", raising=False)
    with pytest.raises(ValueError, match="model_path: dafusion needs a local Stable Diffusion folder"):
        DAFusion(steps=1).fit(digits)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_stable_diffusion(), broken)
    shutil.rmtree(broken / "unet")
    (broken / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(ValueError, match=r"missing: unet/ \(config.json\), scheduler/ \(scheduler_config.json\)"):
        DAFusion(model_path=str(broken), steps=1).fit(digits)
    monkeypatch.setenv("GENAUG_SD_MODEL", str(tiny_stable_diffusion()))
    assert DAFusion(DAFusion.tiny_config().model_copy(update={"model_path": None})).fit(digits).fitted
    with pytest.raises(ValueError, match="initializer_token"):
        DAFusion(DAFusion.tiny_config().model_copy(update={"initializer_token": "zebra"})).fit(digits)


def test_on_a_cpu_sampling_says_how_long_the_rest_takes(fitted, recwarn):
    fitted.sample(12, label=0, seed=1, augmentation="stacked")
    said = [str(w.message) for w in recwarn if "no GPU" in str(w.message)]
    if torch.cuda.is_available():
        assert not said  # on a GPU there is nothing to warn about
    else:
        assert len(said) == 1 and re.search(r"runs on the CPU at [0-9.]+ s per image; the other \d+ images", said[0])
