"""Diffusion generators (ddim / ddpm): plain-diffusers artifacts, guidance, img2img, schedulers,
upscaling, training records, resume, transfer, mode single with an unlabeled pool, use_examples and
clear errors -- all on tiny UNets and 8x8 digits."""
from __future__ import annotations

import json

import numpy as np
import pydantic
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel
from safetensors.torch import load_file

from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate
from genaug.generators.base import NotFittedError, get_generator_class, load_generator
from genaug.generators.diffusion import DDIMDiffusion, DDPMDiffusion, DiffusionGenerator

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def digits() -> LabelledImages:
    """4 classes x 12 grayscale 8x8 digits."""
    data = load_digits_dataset()
    keep = np.flatnonzero(data.labels < 4)
    four = LabelledImages(data.images[keep], data.labels[keep], data.class_names[:4],
                          [data.sources[i] for i in keep])
    return few_shot_subset(four, 12, seed=0)


@pytest.fixture(scope="module")
def model(digits) -> DDIMDiffusion:
    """A tiny conditional ddim model (50 training timesteps, so 50 sampling steps are possible)."""
    return DDIMDiffusion(DDIMDiffusion.tiny_config()).fit(digits)


@pytest.fixture(scope="module")
def per_class_model(digits) -> DDPMDiffusion:
    return DDPMDiffusion(DDPMDiffusion.tiny_config(), mode="per_class").fit(digits)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# -- (1) the artifact loads with plain diffusers --------------------------------------------
def test_saved_model_runs_with_plain_diffusers(model, tmp_path):
    model.save(tmp_path)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (tmp_path / "scheduler" / "scheduler_config.json").exists()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    # weights.safetensors holds what is not a UNet: the training images (img2img sources).
    assert set(load_file(str(tmp_path / "weights.safetensors"))) == {"train_images", "train_labels"}

    unet = UNet2DModel.from_pretrained(tmp_path / "unet")
    scheduler = DDIMScheduler.from_pretrained(tmp_path / "scheduler")
    assert unet.config.num_class_embeds == len(model.class_names) + 1
    generator = torch.Generator().manual_seed(5)
    image = torch.randn((2, 1, 8, 8), generator=generator)
    labels = torch.tensor([1, 1])
    scheduler.set_timesteps(2)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = unet(image, t, class_labels=labels).sample
            image = scheduler.step(eps, t, image).prev_sample
    assert image.shape == (2, 1, 8, 8)
    plain = (image.clamp(-1, 1) / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    ours = model.sample(2, label=1, seed=5, steps=2, scheduler="ddim")
    # Same weights, same noise, same scheduler: our loop and the plain one agree.
    assert np.abs(plain.astype(int) - ours.data.astype(int)).max() <= 1


def test_loaded_model_samples_identically(per_class_model, tmp_path):
    per_class_model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("unet")) == \
        [f"unet_class{i}" for i in range(4)]
    loaded = load_generator(tmp_path)
    assert isinstance(loaded, DDPMDiffusion)
    np.testing.assert_array_equal(loaded.sample(5, seed=3).data, per_class_model.sample(5, seed=3).data)


def test_state_tensors_round_trip_in_memory(model):
    tensors = model.state_tensors()
    assert any(name.startswith("unet.all.") for name in tensors)
    copy = DDIMDiffusion(model.config)
    copy.class_names, copy.meta = list(model.class_names), dict(model.meta)
    copy.load_state_tensors(tensors)
    copy.fitted = True
    np.testing.assert_array_equal(copy.sample(4, seed=2).data, model.sample(4, seed=2).data)


# -- (2) classifier-free guidance --------------------------------------------------------------
def test_guidance_scale_changes_the_output(model):
    plain = model.sample(6, label=2, seed=11)
    guided = model.sample(6, label=2, seed=11, guidance_scale=3.0)
    assert not np.array_equal(plain.data, guided.data)
    assert guided.provenance[0]["guidance_scale"] == 3.0
    np.testing.assert_array_equal(guided.data, model.sample(6, label=2, seed=11, guidance_scale=3.0).data)


def test_guidance_needs_the_conditional_mode(per_class_model):
    with pytest.raises(ValueError, match="guidance_scale"):
        per_class_model.sample(2, seed=0, guidance_scale=2.0)
    with pytest.raises(pydantic.ValidationError, match="guidance_scale"):
        DDIMDiffusion(mode="per_class", guidance_scale=2.0)


# -- (3) img2img ----------------------------------------------------------------------------
def test_img2img_provenance_and_closeness_to_the_source(model, digits):
    by_source = dict(zip(digits.sources, digits.images))
    subtle = model.sample(8, label=3, seed=4, mode="img2img", strength=0.02, steps=50)
    fresh = model.sample(8, label=3, seed=4, mode="img2img", strength=1.0, steps=50)
    for samples, strength in ((subtle, 0.02), (fresh, 1.0)):
        for entry in samples.provenance:
            assert entry["mode"] == "img2img" and entry["strength"] == strength
            assert entry["source"] in by_source
            assert digits.labels[digits.sources.index(entry["source"])] == 3
    sources_subtle = np.stack([by_source[p["source"]] for p in subtle.provenance])
    sources_fresh = np.stack([by_source[p["source"]] for p in fresh.provenance])
    near, far = _mad(subtle.data, sources_subtle), _mad(fresh.data, sources_fresh)
    assert near < 0.5 * far, (near, far)
    assert near < 10  # a subtle variation stays within a few grey levels of its source
    assert subtle.provenance[0]["denoising_steps"] == 1 and fresh.provenance[0]["denoising_steps"] == 50


@pytest.mark.parametrize("strength", [0, -0.5, 1.5])
def test_img2img_strength_is_validated(model, strength):
    with pytest.raises(ValueError, match="strength"):
        model.sample(2, seed=0, mode="img2img", strength=strength)


def test_img2img_with_per_class_models(per_class_model):
    samples = per_class_model.sample(4, label=0, seed=1, mode="img2img", strength=0.5)
    assert samples.data.shape == (4, 8, 8, 1)
    assert all(p["source"] and p["model_mode"] == "per_class" for p in samples.provenance)


# -- (4) schedulers and steps -----------------------------------------------------------------
def test_ddpm_and_ddim_schedulers_both_work_and_differ(model, per_class_model):
    ddim = model.sample(6, seed=9, scheduler="ddim")
    ddpm = model.sample(6, seed=9, scheduler="ddpm")
    assert ddim.data.shape == ddpm.data.shape == (6, 8, 8, 1)
    assert not np.array_equal(ddim.data, ddpm.data)
    assert {p["scheduler"] for p in ddpm.provenance} == {"ddpm"}
    np.testing.assert_array_equal(ddpm.data, model.sample(6, seed=9, scheduler="ddpm").data)
    # The kinds differ only in their default sampler; "sampler" is accepted as an alias.
    assert per_class_model.sample(1, seed=0).provenance[0]["scheduler"] == "ddpm"
    assert model.sample(1, seed=0).provenance[0]["scheduler"] == "ddim"
    assert model.sample(1, seed=0, sampler="ddpm").provenance[0]["scheduler"] == "ddpm"


@pytest.mark.parametrize("solver", ["dpm++2m", "dpm++2m-karras", "unipc", "euler"])
def test_every_solver_samples_from_noise_and_by_img2img_reproducibly(model, solver):
    """Solvers chosen at generation time (issue 16): the same trained UNet, another diffusers solver."""
    fresh = model.sample(5, label=1, seed=4, solver=solver, steps=6)
    assert fresh.data.shape == (5, 8, 8, 1) and (fresh.labels == 1).all()
    np.testing.assert_array_equal(fresh.data, model.sample(5, label=1, seed=4, solver=solver, steps=6).data)
    assert not np.array_equal(fresh.data, model.sample(5, label=1, seed=5, solver=solver, steps=6).data)
    assert {p["scheduler"] for p in fresh.provenance} == {solver}
    assert not np.array_equal(fresh.data, model.sample(5, label=1, seed=4, solver="ddim", steps=6).data)
    varied = model.sample(5, label=1, seed=4, solver=solver, steps=6, mode="img2img", strength=0.5)
    assert {p["denoising_steps"] for p in varied.provenance} == {3}
    assert {p["sampler"] for p in varied.provenance} == {f"{solver}-img2img"}
    np.testing.assert_array_equal(varied.data, model.sample(5, label=1, seed=4, solver=solver, steps=6,
                                                            mode="img2img", strength=0.5).data)


def test_multistep_solvers_clip_x0_like_ddim_on_a_clip_sample_model(model):
    """DDIM/DDPM clip each step's x0 prediction (clip_sample); DPM-Solver++ and UniPC must do the same
    through thresholding, or a weak model's images saturate (measured: 99.96 % of pixels at 0/255)."""
    from diffusers import DDPMScheduler

    from genaug.generators.diffusion_sampling import sampling_scheduler

    assert model.train_scheduler.config.clip_sample
    for solver in ("dpm++2m", "dpm++2m-karras", "unipc"):
        scheduler = sampling_scheduler(solver, model.train_scheduler, 10)
        assert scheduler.config.thresholding and scheduler.config.sample_max_value == 1.0
    unclipped = DDPMScheduler.from_config(model.train_scheduler.config, clip_sample=False)
    assert not sampling_scheduler("dpm++2m", unclipped, 10).config.thresholding


def test_a_multistep_solver_runs_exactly_the_img2img_tail(model, monkeypatch):
    """img2img with a multistep solver starts its step index at the tail (diffusers' set_begin_index):
    the UNet is called once per remaining timestep, and those are the schedule's last ones."""
    import genaug.generators.diffusion_sampling as sampling

    seen = {}
    original = sampling.denoise

    def recording(unet, scheduler, **kwargs):
        calls = []
        hook = unet.register_forward_hook(lambda *args: calls.append(1))
        try:
            image = original(unet, scheduler, **kwargs)
        finally:
            hook.remove()
        tail = kwargs["timesteps"]
        seen.update(schedule=list(scheduler.timesteps), tail=None if tail is None else list(tail), calls=len(calls),
                    begin=scheduler.begin_index, end=scheduler.step_index)
        return image
    monkeypatch.setattr("genaug.generators.diffusion.denoise", recording)
    model.sample(2, label=1, seed=0, solver="dpm++2m", steps=10, mode="img2img", strength=0.3)
    assert seen["tail"] == seen["schedule"][7:] and seen["calls"] == 3
    assert (seen["begin"], seen["end"]) == (7, 10)  # it started at index 7 and stepped to the end
    model.sample(2, label=1, seed=0, solver="dpm++2m", steps=10)
    assert (seen["tail"], seen["calls"], seen["begin"], seen["end"]) == (None, 10, 0, 10)


def test_bf16_and_channels_last_sample_nearly_the_same_images_and_bf16_falls_back_where_unsupported(model,
                                                                                                     monkeypatch):
    import genaug.generators.diffusion_sampling as sampling

    fp32 = model.sample(6, label=1, seed=2, steps=6)
    assert "precision" not in fp32.provenance[0]  # the default draw's manifest is unchanged
    last = model.sample(6, label=1, seed=2, steps=6, channels_last=True)
    assert np.abs(last.data.astype(int) - fp32.data).max() <= 2  # the same images up to rounding
    assert last.provenance[0]["channels_last"] is True
    assert all(p.is_contiguous() for p in model.unets[model.group_of(1)].parameters())  # layout restored
    monkeypatch.setattr(sampling, "bf16_supported", lambda device: True)
    bf16 = model.sample(6, label=1, seed=2, steps=6, precision="bf16")
    assert bf16.provenance[0]["precision"] == "bf16"
    assert not np.array_equal(bf16.data, fp32.data)  # another arithmetic ...
    assert np.abs(bf16.data.astype(float) - fp32.data).mean() < 12  # ... for nearly the same images
    monkeypatch.setattr(sampling, "bf16_supported", lambda device: False)
    with pytest.warns(RuntimeWarning, match="bf16 is not supported natively"):
        fallback = model.sample(6, label=1, seed=2, steps=6, precision="bf16")
    np.testing.assert_array_equal(fallback.data, fp32.data)
    assert fallback.provenance[0]["precision"] == "fp32"
    with pytest.raises(ValueError, match="precision"):
        model.sample(1, seed=0, precision="fp16")


def test_steps_and_eta_change_the_output(model):
    four = model.sample(6, seed=9, steps=4)
    eight = model.sample(6, seed=9, steps=8)
    assert not np.array_equal(four.data, eight.data)
    assert {p["steps"] for p in eight.provenance} == {8}
    noisy = model.sample(6, seed=9, steps=4, eta=1.0)
    assert not np.array_equal(four.data, noisy.data)
    for entry in four.provenance:
        assert {"scheduler", "steps", "eta", "guidance_scale", "mode"} <= set(entry)


def test_bad_sample_options_are_clear_errors(model):
    with pytest.raises(ValueError, match="no_such_option"):
        model.sample(2, seed=0, no_such_option=1)
    with pytest.raises(ValueError, match="steps"):
        model.sample(2, seed=0, steps=51)  # the tiny model has 50 training timesteps
    with pytest.raises(ValueError, match="scheduler"):
        model.sample(2, seed=0, scheduler="heun")
    with pytest.raises(NotFittedError, match="fit"):
        DDIMDiffusion(DDIMDiffusion.tiny_config()).sample(1, seed=0)


def test_batches_do_not_change_samples_count_or_determinism(model):
    small = model.sample(7, label=1, seed=3, batch_size=3)
    assert small.data.shape == (7, 8, 8, 1)
    np.testing.assert_array_equal(small.data, model.sample(7, label=1, seed=3, batch_size=3).data)
    assert len(model.sample(0, seed=0)) == 0


# -- (5) upscaling ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
def test_upscale_doubles_height_and_width(model, method):
    samples = model.sample(3, seed=1, upscale=2, upscale_method=method)
    assert samples.data.shape == (3, 16, 16, 1) and samples.data.dtype == np.uint8
    assert samples.provenance[0]["upscale"] == 2


# -- (6) training records and resume -------------------------------------------------------------
def test_training_writes_history_loss_plot_and_grid(digits, tmp_path):
    generator = DDIMDiffusion(DDIMDiffusion.tiny_config(), warmup_steps=4, flip=True).fit(digits, checkpoints=tmp_path)
    phase = tmp_path / "unet"
    rows = [json.loads(line) for line in (phase / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 11)) and all("loss" in row for row in rows)
    assert (phase / "losses.png").exists()
    assert list((phase / "samples").glob("step-*.png"))
    summary = generator.meta["training"]["unet"]
    assert summary["steps_done"] == 10 and "loss" in summary["final"]
    assert generator.meta["image_shape"] == [8, 8, 1] and generator.meta["parameters"] > 0


def test_per_class_trains_one_phase_per_class(digits, tmp_path):
    generator = DDIMDiffusion(DDIMDiffusion.tiny_config(), mode="per_class", steps=3).fit(digits, checkpoints=tmp_path)
    assert sorted(generator.meta["training"]) == [f"unet-class{i}" for i in range(4)]
    assert all((tmp_path / f"unet-class{i}" / "history.jsonl").exists() for i in range(4))


def test_restarted_training_resumes_from_its_checkpoint(digits, tmp_path):
    first = DDIMDiffusion(DDIMDiffusion.tiny_config(), checkpoint_every=5).fit(digits, checkpoints=tmp_path)
    again = DDIMDiffusion(DDIMDiffusion.tiny_config(), checkpoint_every=5).fit(digits, checkpoints=tmp_path)
    assert again.meta["training"]["unet"]["resumed_from"] == 10
    np.testing.assert_array_equal(first.sample(4, seed=0).data, again.sample(4, seed=0).data)


# -- (7) transfer -----------------------------------------------------------------------------------
def test_warm_start_loads_the_parents_weights(model, digits):
    child = DDPMDiffusion(DDPMDiffusion.tiny_config())
    child.warm_start(model)
    child.fit(digits)
    record = child.meta["warm_start"]
    assert record["parent_kind"] == "ddim" and record["loaded"] > 0 and record["skipped"] == 0
    # Fewer classes: everything but the class embedding transfers.
    three = digits.subset(np.flatnonzero(digits.labels < 3))
    three = LabelledImages(three.images, three.labels, three.class_names[:3], three.sources)
    child = DDIMDiffusion(DDIMDiffusion.tiny_config())
    child.warm_start(model)
    child.fit(three)
    assert child.meta["warm_start"]["per_unet"]["all"]["skipped_names"] == ["class_embedding.weight"]


def test_warm_start_into_per_class_mode(model, digits):
    child = DDIMDiffusion(DDIMDiffusion.tiny_config(), mode="per_class", steps=2)
    child.warm_start(model)
    child.fit(digits)
    per_unet = child.meta["warm_start"]["per_unet"]
    assert sorted(per_unet) == [f"class{i}" for i in range(4)]
    assert all(entry["loaded"] > 0 for entry in per_unet.values())


def test_warm_start_errors_are_clear(model, digits):
    bigger = LabelledImages(np.kron(digits.images, np.ones((1, 2, 2, 1), np.uint8)), digits.labels,
                            digits.class_names, digits.sources)
    child = DDIMDiffusion(DDIMDiffusion.tiny_config())
    child.warm_start(model)
    with pytest.raises(ValueError, match="same image size"):
        child.fit(bigger)
    classic = get_generator_class("classic")
    with pytest.raises(ValueError, match="not a diffusion model"):
        DDIMDiffusion(DDIMDiffusion.tiny_config()).warm_start(classic(classic.tiny_config()))
    with pytest.raises(ValueError, match="not trained"):
        DDIMDiffusion(DDIMDiffusion.tiny_config()).warm_start(DDIMDiffusion(DDIMDiffusion.tiny_config()))


# -- (8) image sizes ----------------------------------------------------------------------------------
def test_image_size_not_divisible_is_a_clear_error(digits):
    cropped = LabelledImages(np.ascontiguousarray(digits.images[:, :7, :7]), digits.labels, digits.class_names)
    with pytest.raises(ValueError, match=r"7x7 is not divisible by 2"):
        DDIMDiffusion(DDIMDiffusion.tiny_config()).fit(cropped)
    # auto picks the 32 preset (4 levels) for 30x30: 30 is not divisible by 8.
    padded = LabelledImages(np.zeros((4, 30, 30, 1), np.uint8), np.arange(4) % 2, ["a", "b"])
    with pytest.raises(ValueError, match=r"30x30 is not divisible by 8"):
        DDIMDiffusion(steps=1).fit(padded)


def test_presets_and_overrides_build_the_unet(digits):
    generator = DDIMDiffusion(DDIMDiffusion.tiny_config(), block_out_channels=[8, 8, 16], attention_resolution=0)
    generator.fit(digits)
    unet = generator.meta["unet"]
    assert unet["block_out_channels"] == [8, 8, 16]
    assert unet["down_block_types"] == ["DownBlock2D"] * 3
    with pytest.raises(ValueError, match="norm_num_groups"):
        DDIMDiffusion(DDIMDiffusion.tiny_config(), block_out_channels=[6, 12]).fit(digits)


def test_rgb_images_work(digits):
    rgb = LabelledImages(np.repeat(digits.images, 3, axis=-1), digits.labels, digits.class_names)
    generator = DDIMDiffusion(DDIMDiffusion.tiny_config(), steps=2).fit(rgb)
    assert generator.sample(2, seed=0).data.shape == (2, 8, 8, 3)


def test_both_kinds_share_one_implementation():
    assert issubclass(DDIMDiffusion, DiffusionGenerator) and issubclass(DDPMDiffusion, DiffusionGenerator)
    assert DDIMDiffusion().config.scheduler == "ddim" and DDPMDiffusion().config.scheduler == "ddpm"
    assert DDIMDiffusion.kind == "ddim" and DDPMDiffusion.kind == "ddpm"
    assert DDIMDiffusion.summary and DDPMDiffusion.summary


# -- (9) mode single: one unconditional UNet, an unlabeled pool, use_examples ---------------------
@pytest.fixture(scope="module")
def four_classes() -> LabelledImages:
    data = load_digits_dataset()
    keep = np.flatnonzero(data.labels < 4)
    return LabelledImages(data.images[keep], data.labels[keep], data.class_names[:4],
                          [data.sources[i] for i in keep])


@pytest.fixture(scope="module")
def pool(four_classes, digits) -> np.ndarray:
    """The four classes' images that are not in ``digits``, without their labels."""
    labelled = set(digits.sources)
    return four_classes.images[[i for i, s in enumerate(four_classes.sources) if s not in labelled]]


@pytest.fixture(scope="module")
def single_model(digits, pool) -> DDIMDiffusion:
    return DDIMDiffusion(DDIMDiffusion.tiny_variants()["single"]).fit(digits, unlabeled=pool)


def test_single_mode_trains_one_unconditional_unet_on_the_pool_too(single_model, digits, pool, tmp_path):
    assert len(pool) > 100
    assert single_model.meta["unlabeled_pool_size"] == len(pool)
    assert list(single_model.unets) == ["all"] and single_model.unets["all"].config.num_class_embeds is None
    assert sorted(single_model.meta["training"]) == ["unet"]
    # img2img sources are the labelled images only, never the pool.
    assert len(single_model.train_images) == len(digits)
    assert single_model.meta["sources"] == digits.sources
    # Without a pool: size 0, and the other modes record 0 as well.
    assert DDIMDiffusion(DDIMDiffusion.tiny_variants()["single"], steps=1).fit(digits).meta["unlabeled_pool_size"] == 0
    single_model.save(tmp_path)
    loaded = load_generator(tmp_path)
    assert loaded.meta["unlabeled_pool_size"] == len(pool)
    np.testing.assert_array_equal(loaded.sample(4, seed=1).data, single_model.sample(4, seed=1).data)


def test_the_pool_changes_what_the_unet_learns(digits, pool, single_model):
    alone = DDIMDiffusion(DDIMDiffusion.tiny_variants()["single"]).fit(digits)
    assert not np.array_equal(alone.sample(4, seed=0).data, single_model.sample(4, seed=0).data)


def test_single_samples_take_the_class_and_source_of_their_img2img_image(single_model, digits):
    samples = single_model.sample(8, seed=2)  # default: img2img at the config's strength
    assert samples.data.shape == (8, 8, 8, 1)
    assert sorted(np.bincount(samples.labels, minlength=4)) == [2, 2, 2, 2]
    for label, entry in zip(samples.labels, samples.provenance):
        assert entry["mode"] == "img2img" and entry["model_mode"] == "single" and entry["strength"] == 0.5
        assert entry["source"] in digits.sources
        assert digits.labels[digits.sources.index(entry["source"])] == label
    one = single_model.sample(3, label=digits.class_names[2], seed=0, strength=0.25, scheduler="ddpm")
    assert (one.labels == 2).all() and {p["scheduler"] for p in one.provenance} == {"ddpm"}


def test_single_refuses_pure_noise_strength_one_and_guidance(single_model):
    with pytest.raises(ValueError, match=r"mode='img2img' only.*no class"):
        single_model.sample(2, seed=0, mode="sample")
    with pytest.raises(ValueError, match=r"strength: mode 'single' needs a strength below 1"):
        single_model.sample(2, seed=0, strength=1.0)
    with pytest.raises(ValueError, match="guidance_scale"):
        single_model.sample(2, seed=0, guidance_scale=2.0)
    with pytest.raises(pydantic.ValidationError, match="strength below 1"):
        DDIMDiffusion(mode="single", strength=1.0)
    with pytest.raises(pydantic.ValidationError, match="guidance_scale"):
        DDPMDiffusion(mode="single", guidance_scale=3.0)
    assert DDIMDiffusion(mode="single").config.strength == 0.5  # the default stays valid


def test_unlabeled_pool_only_for_mode_single(digits, pool):
    for mode in ("conditional", "per_class"):
        with pytest.raises(ValueError, match="unlabeled: an unlabeled pool is only used by mode 'single'"):
            DDIMDiffusion(DDIMDiffusion.tiny_config(), mode=mode).fit(digits, unlabeled=pool)
    single = DDIMDiffusion(DDIMDiffusion.tiny_variants()["single"], steps=1)
    with pytest.raises(ValueError, match=r"training images' shape \(8, 8, 1\).*got \(8, 8, 3\)"):
        single.fit(digits, unlabeled=np.repeat(pool, 3, axis=-1))
    with pytest.raises(ValueError, match="uint8"):
        single.fit(digits, unlabeled=pool.astype(np.float32))


def test_use_examples_switches_the_img2img_sources(digits, pool, four_classes):
    generator = DDIMDiffusion(DDIMDiffusion.tiny_variants()["single"]).fit(digits, unlabeled=pool)
    weights = {k: v.clone() for k, v in generator.unets["all"].state_dict().items()}
    other = few_shot_subset(four_classes, 2, seed=5)
    assert set(other.sources) != set(digits.sources)
    assert generator.use_examples(other) is generator
    assert generator.meta["sources"] == other.sources and len(generator.train_images) == 8
    samples = generator.sample(8, seed=0)
    for label, entry in zip(samples.labels, samples.provenance):
        assert entry["source"] in other.sources
        assert other.labels[other.sources.index(entry["source"])] == label
    assert all(torch.equal(weights[k], v) for k, v in generator.unets["all"].state_dict().items())
    renamed = LabelledImages(other.images, other.labels, ["a", "b", "c", "d"], other.sources)
    with pytest.raises(ValueError, match="use_examples: class names differ"):
        generator.use_examples(renamed)
    with pytest.raises(NotFittedError):
        DDIMDiffusion(DDIMDiffusion.tiny_variants()["single"]).use_examples(other)


def test_use_examples_in_the_other_modes(four_classes, digits):
    other = few_shot_subset(four_classes, 1, seed=3)  # one image per class
    for generator in (DDIMDiffusion(DDIMDiffusion.tiny_config(), steps=2).fit(digits),
                      DDIMDiffusion(DDIMDiffusion.tiny_config(), mode="per_class", steps=2).fit(digits)):
        assert generator.use_examples(other) is generator
        samples = generator.sample(8, seed=0, mode="img2img")
        assert sorted(set(p["source"] for p in samples.provenance)) == sorted(other.sources)
        for label, entry in zip(samples.labels, samples.provenance):
            assert other.labels[other.sources.index(entry["source"])] == label


def test_evaluate_with_an_unlabeled_pool_spec(monkeypatch):
    train, test = stratified_split(load_digits_dataset(), test_fraction=0.3, seed=0)
    fits, swaps = [], []
    original_fit, original_use = DiffusionGenerator.fit, DiffusionGenerator.use_examples

    def recording_fit(self, data, **kwargs):
        fits.append(len(data))
        return original_fit(self, data, **kwargs)

    def recording_use(self, data):
        swaps.append(len(data))
        return original_use(self, data)

    monkeypatch.setattr(DiffusionGenerator, "fit", recording_fit)
    monkeypatch.setattr(DiffusionGenerator, "use_examples", recording_use)
    spec = GeneratorSpec(label="ddim-single", kind="ddim", unlabeled_pool=True,
                         config=DDIMDiffusion.tiny_variants()["single"].model_dump(mode="json"),
                         variants=[SampleVariant(options={"strength": 0.5, "steps": 4}, ratio=1.0)])
    protocol = Protocol(shots=[1, 2], seeds=[0], classifier_steps=5, arms=["real", "real+synthetic"])
    result = evaluate(train, test, [spec], protocol, dataset_name="digits", keep_samples=False)
    synthetic = [c for c in result["cells"] if c["arm"] == "real+synthetic[ddim-single/default]"]
    assert [c["n"] for c in synthetic] == [1, 2]
    assert all(c["unlabeled_pool"] == len(train) and c["kind"] == "ddim" for c in synthetic)
    assert fits == [len(train)]  # fitted once per seed on the whole training split ...
    assert swaps == [10, 20]  # ... and given each few-shot subset's examples


def test_cross_class_img2img_starts_from_another_class_and_keeps_the_requested_label(model, per_class_model, digits,
                                                                                     single_model):
    """Images moved off their class (seed 000's near-OOD negatives): class 0's images denoised toward class 1."""
    samples = model.sample(6, label=1, seed=3, mode="img2img", strength=0.6, source_class=digits.class_names[0])
    assert (samples.labels == 1).all()
    class0 = {digits.sources[i] for i in np.flatnonzero(digits.labels == 0)}
    assert {p["source"] for p in samples.provenance} <= class0
    assert {p["source_class"] for p in samples.provenance} == {digits.class_names[0]}
    same_class = model.sample(6, label=1, seed=3, mode="img2img", strength=0.6)
    assert not np.array_equal(samples.data, same_class.data) and "source_class" not in same_class.provenance[0]
    assert len(per_class_model.sample(2, label=2, seed=0, mode="img2img", source_class=0)) == 2
    with pytest.raises(ValueError, match="source_class: img2img across classes needs mode='img2img'"):
        model.sample(2, label=1, seed=0, source_class=0)  # mode sample
    with pytest.raises(ValueError, match="source_class"):
        single_model.sample(2, label=1, seed=0, source_class=0)
    with pytest.raises(ValueError, match="source_class: 'nope' is not one of the classes"):
        model.sample(2, label=1, seed=0, mode="img2img", source_class="nope")


@pytest.mark.slow  # the first compile of a UNet takes a minute on a CPU
def test_compile_samples_the_same_images_and_compiles_each_unet_once(model):
    from torch._dynamo.utils import counters

    eager = model.sample(6, label=1, seed=2, steps=4)
    graphs = counters["stats"]["unique_graphs"]
    compiled = model.sample(6, label=1, seed=2, steps=4, compile=True)
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo did compile (no silent eager fallback)
    assert np.abs(compiled.data.astype(int) - eager.data).max() <= 2  # the same images up to rounding
    assert compiled.provenance[0]["compiled"] is True and "compiled" not in eager.provenance[0]
    again = model.sample(6, label=1, seed=2, steps=4, compile=True)
    np.testing.assert_array_equal(again.data, compiled.data)
    cache = model.__dict__["_compiled_unets"]
    assert len(cache) == 1 and next(iter(cache.values()))[0] is model.unets[model.group_of(1)]
    assert not any("_orig_mod" in key for key in model.unets.state_dict())  # what is saved is the plain UNet
