"""The DCGAN: network sizes, DiffAugment, the small-data switch, the mode-collapse monitor, training files, transfer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset
from genaug.generators.dcgan import DCGAN, DCGANConfig, small_data_options
from genaug.generators.dcgan_networks import DCGANDiscriminator, DCGANGenerator, diversity_ratio, image_features
from genaug.generators.diffaugment import diff_augment
from genaug.generators.images import images_to_tensor

TINY = dict(ngf=8, ndf=8, latent_dim=8, steps=20, batch_size=16, checkpoint_every=0, monitor_every=10)


@pytest.fixture(scope="module")
def digits() -> LabelledImages:
    data = load_digits_dataset()
    keep = np.flatnonzero(data.labels < 3)
    return few_shot_subset(LabelledImages(data.images[keep], data.labels[keep], data.class_names[:3]), 15, seed=0)


@pytest.mark.parametrize("size", [8, 16, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_make_and_judge_images_of_every_supported_size(size, channels):
    generator = DCGANGenerator(size, channels, latent_dim=8, width=8, n_classes=3)
    discriminator = DCGANDiscriminator(size, channels, width=8, n_classes=3)
    labels = torch.tensor([0, 2])
    images = generator(torch.randn(2, 8), labels)
    assert images.shape == (2, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    assert discriminator(images, labels).shape == (2,)  # one logit per image


def test_unsupported_sizes_are_refused_with_the_size_named(digits):
    odd = LabelledImages(np.zeros((6, 12, 12, 1), np.uint8), np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="12"):
        DCGAN(**TINY).fit(odd)


def test_diffaugment_keeps_shape_changes_pixels_and_passes_gradients():
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    out = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diff_augment(x.detach(), "color,translation,cutout", generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.detach(), again)  # seeded: reproducible


def test_small_data_options_switch_on_under_a_thousand_images_per_class():
    config = DCGANConfig()
    small = small_data_options(config, [150, 600])
    assert small["diffaugment"] and small["label_smoothing"] and small["instance_noise"] > 0
    large = small_data_options(config, [1500, 2000])
    assert not large["diffaugment"] and not large["label_smoothing"] and large["instance_noise"] == 0
    forced = small_data_options(DCGANConfig(diffaugment=True), [1500, 2000])
    assert forced["diffaugment"]


def test_diversity_is_zero_for_copies_and_about_one_for_real_images():
    data = load_digits_dataset()
    real = image_features(images_to_tensor(data.images[:64]))
    other = image_features(images_to_tensor(data.images[64:128]))
    copies = image_features(images_to_tensor(np.repeat(data.images[:1], 64, axis=0)))
    assert diversity_ratio(copies, real) == pytest.approx(0.0, abs=1e-9)
    assert 0.8 < diversity_ratio(other, real) < 1.25


def test_training_logs_diversity_and_writes_plot_and_grids(digits, tmp_path):
    model = DCGAN(mode="conditional", sample_every=10, **TINY).fit(digits, checkpoints=tmp_path)
    phase = next(p for p in tmp_path.iterdir() if p.is_dir())
    rows = [json.loads(line) for line in (phase / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert {"d_loss", "g_loss"} <= set(rows[0])
    assert [r["step"] for r in rows if "diversity" in r] == [10, 20]
    assert (phase / "losses.png").stat().st_size > 1000
    assert sorted(p.name for p in (phase / "samples").glob("*.png")) == ["step-000010.png", "step-000020.png"]
    assert model.meta["diversity"]["final"] and model.meta["small_data"]["diffaugment"]
    assert model.meta["training"][phase.name]["steps_done"] == 20


def test_per_class_mode_trains_one_gan_per_class(digits, tmp_path):
    model = DCGAN(mode="per_class", **TINY).fit(digits, checkpoints=tmp_path)
    assert len(model.generators) == 3
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3
    samples = model.sample(6, label=1, seed=0)
    assert (samples.labels == 1).all() and samples.provenance[0]["sampler"] == "dcgan"


def test_warm_start_loads_the_parent_weights(digits):
    parent = DCGAN(mode="conditional", **TINY).fit(digits)
    child = DCGAN(mode="conditional", **TINY)
    child.warm_start(parent)
    child.fit(digits.subset(range(0, len(digits), 3)))
    assert child.meta["warm_start"]["loaded"] > 0
    bigger = LabelledImages(np.zeros((6, 16, 16, 1), np.uint8), np.array([0, 0, 1, 1, 2, 2]), digits.class_names)
    other = DCGAN(mode="conditional", **TINY)
    other.warm_start(parent)
    with pytest.raises(ValueError, match="same image size"):
        other.fit(bigger)
