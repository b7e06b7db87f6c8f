"""The DCGAN generator: networks, DiffAugment, small-data switch, diversity monitor, training files, transfer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset
from genaug.generators.dcgan import DCGAN, DCGANConfig, small_data_options
from genaug.generators.dcgan_networks import (DCGANDiscriminator, DCGANGenerator, diversity_ratio, image_features,
                                              level_widths, size_plan)
from genaug.generators.diffaugment import diff_augment, parse_policy
from genaug.generators.images import images_to_tensor

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> LabelledImages:
    return load_digits_dataset()


@pytest.fixture(scope="module")
def small(digits) -> LabelledImages:
    """3 classes x 10 digits (8x8 grayscale)."""
    keep = np.flatnonzero(digits.labels < 3)
    return few_shot_subset(LabelledImages(digits.images[keep], digits.labels[keep], digits.class_names[:3]), 10, seed=0)


def tiny(**overrides) -> DCGANConfig:
    return DCGANConfig(**{**DCGAN.tiny_config().model_dump(), "steps": 6, "monitor_every": 3, **overrides})


@pytest.fixture(scope="module")
def fitted_conditional(small) -> DCGAN:
    return DCGAN(tiny()).fit(small)


# -- networks ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [8, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("n_classes", [0, 3])
def test_network_shapes(size, channels, n_classes):
    g = DCGANGenerator(size, channels, latent_dim=12, width=4, n_classes=n_classes)
    d = DCGANDiscriminator(size, channels, width=4, n_classes=n_classes)
    labels = torch.tensor([0, 2]) if n_classes else None
    images = g(torch.randn(2, 12), labels)
    assert images.shape == (2, channels, size, size)
    assert images.abs().max() <= 1
    assert d(images, labels).shape == (2,)


def test_size_plan_and_widths():
    assert size_plan(8) == (4, 1) and size_plan(28) == (7, 2) and size_plan(64) == (4, 4) and size_plan(128) == (4, 5)
    for bad in (4, 7, 10, 24, 30):
        with pytest.raises(ValueError, match="image size"):
            size_plan(bad)
    assert level_widths(64, 4, 8) == [512, 256, 128, 64]  # the tutorial's 64-px discriminator / generator
    assert level_widths(64, 5, 8) == [512, 512, 256, 128, 64]  # capped at 8x


def test_dcgan_init_and_conditioning_layout():
    g = DCGANGenerator(32, 3, latent_dim=20, width=16, n_classes=5)
    conv = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in conv])
    assert abs(weights.std().item() - 0.02) < 0.005
    bn = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(abs(m.weight.mean().item() - 1) < 0.02 and m.bias.abs().max() == 0 for m in bn)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in DCGANDiscriminator(32, 3, 16).main[:2])
    # The class changes a conditional generator's output for the same z.
    g.eval()
    z = torch.randn(1, 20)
    assert not torch.allclose(g(z, torch.tensor([0])), g(z, torch.tensor([1])))


# -- DiffAugment ---------------------------------------------------------------------

def test_diffaugment_shape_dtype_gradient_and_randomness(digits):
    x = (images_to_tensor(digits.images[:16]) * 2 - 1).requires_grad_(True)
    out = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diff_augment(x.detach(), "color,translation,cutout", generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.detach(), again)
    assert not torch.equal(out.detach(), x.detach())
    for policy in ("color", "translation", "cutout"):
        changed = diff_augment(x.detach(), policy, generator=torch.Generator().manual_seed(1))
        assert changed.shape == x.shape and not torch.equal(changed, x.detach())
    rgb = torch.rand(4, 3, 32, 32)
    assert diff_augment(rgb, generator=torch.Generator().manual_seed(0)).shape == rgb.shape
    assert torch.equal(diff_augment(rgb, ""), rgb)


def test_diffaugment_policy_is_validated():
    assert parse_policy("color, cutout") == ["color", "cutout"]
    with pytest.raises(ValueError, match="blur"):
        parse_policy("color,blur")
    with pytest.raises(Exception, match="diffaugment_policy"):
        DCGAN(diffaugment_policy="rotate")


# -- small-data switch ---------------------------------------------------------------

def test_small_data_options_switch_at_1000_per_class():
    config = DCGANConfig()
    small = small_data_options(config, [12, 40, 999])
    assert small["small_data"] and small["diffaugment"] and small["label_smoothing"]
    assert small["real_label"] == 0.9 and small["instance_noise"] == 0.1
    assert small["diffaugment_policy"] == "color,translation,cutout"
    large = small_data_options(config, [1000, 5000])
    assert not large["small_data"] and not large["diffaugment"] and not large["label_smoothing"]
    assert large["real_label"] == 1.0 and large["instance_noise"] == 0.0
    forced = small_data_options(DCGANConfig(diffaugment=True, label_smoothing=False, use_instance_noise=False),
                                [5000, 5000])
    assert forced["diffaugment"] and not forced["label_smoothing"] and forced["instance_noise"] == 0.0
    assert not small_data_options(DCGANConfig(diffaugment=False), [10])["diffaugment"]


def test_small_data_switch_recorded_in_meta(small):
    fitted = DCGAN(tiny(steps=1, monitor_every=0)).fit(small)
    assert fitted.meta["small_data"]["diffaugment"] is True
    rng = np.random.default_rng(0)
    big = LabelledImages(rng.integers(0, 256, (2100, 8, 8, 1), dtype=np.uint8), np.repeat([0, 1], 1050), ["a", "b"])
    fitted = DCGAN(tiny(steps=1, monitor_every=0)).fit(big)
    assert fitted.meta["small_data"]["diffaugment"] is False
    assert fitted.meta["small_data"]["images_per_class"] == 1050


# -- the diversity monitor -----------------------------------------------------------

def test_diversity_is_zero_for_identical_and_one_for_real_images(digits):
    ones = np.flatnonzero(digits.labels == 1)
    real = image_features(images_to_tensor(digits.images[ones[:64]]))
    other = image_features(images_to_tensor(digits.images[ones[64:128]]))
    same = image_features(images_to_tensor(np.repeat(digits.images[ones[:1]], 64, axis=0)))
    assert diversity_ratio(same, real) == pytest.approx(0.0, abs=1e-6)
    assert diversity_ratio(real, real) == pytest.approx(1.0)
    assert 0.7 < diversity_ratio(other, real) < 1.3
    # Conditional: pairs of the same class only, so "one image per class" counts as collapsed.
    mixed = np.concatenate([np.flatnonzero(digits.labels == c)[:16] for c in range(4)])
    labels = digits.labels[mixed]
    real_mixed = image_features(images_to_tensor(digits.images[mixed]))
    one_each = np.concatenate([np.repeat(np.flatnonzero(digits.labels == c)[:1], 16) for c in range(4)])
    prototypes = image_features(images_to_tensor(digits.images[one_each]))
    assert diversity_ratio(prototypes, real_mixed, labels, labels) == pytest.approx(0.0, abs=1e-6)
    assert diversity_ratio(prototypes, real_mixed) > 0.5  # all pairs would hide the collapse
    assert diversity_ratio(real[:1], real[:1]) is None


def test_image_features_fixed_space():
    assert image_features(torch.rand(3, 1, 8, 8)).shape == (3, 256)
    assert image_features(torch.rand(3, 3, 64, 64)).shape == (3, 768)


# -- training ------------------------------------------------------------------------

def test_training_writes_history_plot_and_grid(small, tmp_path):
    model = DCGAN(tiny(mode="per_class", steps=6, monitor_every=3)).fit(small, checkpoints=tmp_path)
    for c in range(3):
        phase = tmp_path / f"dcgan-class{c}"
        rows = [json.loads(line) for line in (phase / "history.jsonl").read_text().splitlines()]
        assert len(rows) == 6
        assert [row["step"] for row in rows if "diversity" in row] == [3, 6]
        assert {"d_loss", "g_loss"} <= set(rows[0])
        assert (phase / "losses.png").stat().st_size > 0
        assert list((phase / "samples").glob("step-*.png"))
    meta = model.meta
    assert set(meta["diversity"]["final"]) == {"class0", "class1", "class2"}
    assert all(meta["diversity"]["min"][k] <= meta["diversity"]["final"][k] for k in meta["diversity"]["final"])
    assert set(meta["training"]) == {"dcgan-class0", "dcgan-class1", "dcgan-class2"}
    assert meta["image_shape"] == [8, 8, 1]
    # Fitting again with the same folder resumes the finished phases instead of training anew.
    again = DCGAN(tiny(mode="per_class", steps=6, monitor_every=3)).fit(small, checkpoints=tmp_path)
    assert again.meta["training"]["dcgan-class0"]["resumed_from"] == 6
    assert np.array_equal(again.sample(6, seed=3).data, model.sample(6, seed=3).data)


def test_resume_after_interruption_is_exact(small, tmp_path):
    config = tiny(steps=6, checkpoint_every=3, monitor_every=3)
    straight = DCGAN(config).fit(small, checkpoints=tmp_path / "straight")
    DCGAN(config).fit(small, checkpoints=tmp_path / "resumed")
    # As if killed between step 3 and 6: only the step-3 checkpoint is left.
    (tmp_path / "resumed" / "dcgan-conditional" / "checkpoints" / "step-000006.pt").unlink()
    resumed = DCGAN(config).fit(small, checkpoints=tmp_path / "resumed")
    assert resumed.meta["training"]["dcgan-conditional"]["resumed_from"] == 3
    for name, value in straight.state_tensors().items():
        assert torch.equal(value, resumed.state_tensors()[name]), name


@pytest.mark.parametrize("overrides", [{"loss": "hinge"}, {"conditioning": "multiply"},
                                       {"mode_seeking": 0.0, "mismatch_weight": 0.0, "ema_decay": 0.0}])
def test_other_settings_train(small, overrides):
    model = DCGAN(tiny(steps=2, monitor_every=1, **overrides)).fit(small)
    assert model.sample(3, seed=0).data.shape == (3, 8, 8, 1)
    history_final = model.meta["training"]["dcgan-conditional"]["final"]
    assert np.isfinite(history_final["d_loss"]) and np.isfinite(history_final["g_loss"])


def test_hinge_loss_refuses_label_smoothing():
    with pytest.raises(Exception, match="label_smoothing"):
        DCGAN(loss="hinge", label_smoothing=True)


def test_conditional_meta_and_saved_discriminator(fitted_conditional, tmp_path):
    meta = fitted_conditional.meta
    assert set(meta["training"]) == {"dcgan-conditional"}
    assert meta["diversity"]["final"]["all"] is not None
    tensors = fitted_conditional.state_tensors()
    assert any(k.startswith("generator.all.") for k in tensors)
    assert any(k.startswith("discriminator.all.") for k in tensors)


def test_training_on_28px_mnist():
    from genaug.data import load_mnist

    train, _ = load_mnist()  # ../shared/data is part of the test setup (CI clones beside it)
    subset = few_shot_subset(train, 4, seed=0)
    model = DCGAN(tiny(steps=3, monitor_every=0)).fit(subset)
    samples = model.sample(5, seed=0)
    assert samples.data.shape == (5, 28, 28, 1) and samples.data.dtype == np.uint8
    assert model.meta["architecture"] == {"base": 7, "levels": 2}


def test_rgb_images(small):
    rgb = LabelledImages(np.repeat(small.images, 3, axis=-1), small.labels, small.class_names)
    samples = DCGAN(tiny(steps=2, monitor_every=0)).fit(rgb).sample(4, seed=0)
    assert samples.data.shape == (4, 8, 8, 3)


def test_unsupported_size_fails_before_training():
    data = LabelledImages(np.zeros((4, 10, 10, 1), np.uint8), np.array([0, 1, 0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="image size 10"):
        DCGAN(tiny()).fit(data)


# -- sampling ------------------------------------------------------------------------

def test_sample_options_truncation_and_provenance(fitted_conditional):
    plain = fitted_conditional.sample(6, seed=4)
    truncated = fitted_conditional.sample(6, seed=4, truncation=0.5)
    assert np.array_equal(truncated.data, fitted_conditional.sample(6, seed=4, truncation=0.5).data)
    assert not np.array_equal(plain.data, truncated.data)
    assert truncated.provenance[0] == {"sampler": "dcgan", "mode": "conditional", "truncation": 0.5}
    z = fitted_conditional._draw_z(100, torch.Generator().manual_seed(0), 0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    with pytest.raises(ValueError, match="truncation"):
        fitted_conditional.sample(2, seed=0, temperature=1.0)
    with pytest.raises(ValueError, match="truncation"):
        fitted_conditional.sample(2, seed=0, truncation=-1)
    empty = fitted_conditional.sample(0, seed=0)
    assert empty.data.shape == (0, 8, 8, 1)


def test_large_sample_in_batches(fitted_conditional):
    samples = fitted_conditional.sample(600, label=1, seed=0)
    assert samples.data.shape == (600, 8, 8, 1) and (samples.labels == 1).all()
    assert np.array_equal(samples.data[:10], fitted_conditional.sample(600, label=1, seed=0).data[:10])


# -- transfer ------------------------------------------------------------------------

def test_warm_start_loads_parent_weights(fitted_conditional, small):
    child = DCGAN(tiny(steps=2, monitor_every=0))
    child.warm_start(fitted_conditional)
    child.fit(small)
    info = child.meta["warm_start"]
    assert info["parent_kind"] == "dcgan" and info["parent_mode"] == "conditional"
    assert info["loaded"] > 0 and info["skipped"] == 0
    # Conditional parent -> per-class child: each class GAN starts from it; embeddings and the
    # first generator conv (it reads z plus the embedding) do not fit and are skipped.
    per_class = DCGAN(tiny(mode="per_class", steps=2, monitor_every=0))
    per_class.warm_start(fitted_conditional)
    per_class.fit(small)
    info = per_class.meta["warm_start"]
    assert info["loaded"] > 0 and info["skipped"] > 0
    assert set(info["groups"]) == {"class0", "class1", "class2"}


def test_warm_start_with_other_class_count_skips_embeddings(fitted_conditional, digits):
    keep = np.flatnonzero(digits.labels < 5)
    five = few_shot_subset(LabelledImages(digits.images[keep], digits.labels[keep], digits.class_names[:5]), 4, seed=1)
    child = DCGAN(tiny(steps=2, monitor_every=0))
    child.warm_start(fitted_conditional)
    child.fit(five)
    skipped = child.meta["warm_start"]["groups"]["all"]["skipped_names"]
    assert "generator.embed.weight" in skipped and "discriminator.embed.weight" in skipped
    assert child.meta["warm_start"]["loaded"] > 0


def test_warm_start_errors(fitted_conditional):
    bigger = LabelledImages(np.zeros((6, 16, 16, 1), np.uint8), np.array([0, 1, 2] * 2), ["0", "1", "2"])
    child = DCGAN(tiny(steps=1))
    child.warm_start(fitted_conditional)
    with pytest.raises(ValueError, match=r"parent.*\(8, 8, 1\).*\(16, 16, 1\)"):
        child.fit(bigger)
    with pytest.raises(ValueError, match="not fitted"):
        DCGAN(tiny()).warm_start(DCGAN(tiny()))

    class Other:
        kind = "vae"

    with pytest.raises(ValueError, match="'vae'"):
        DCGAN(tiny()).warm_start(Other())  # type: ignore[arg-type]
