"""The generative-classifier filter (seed 001 ch. 5.4) on real digits."""
from __future__ import annotations

import numpy as np

from genaug.data import load_digits_dataset, stratified_split
from genaug.filters import GenerativeClassifierFilter, filtered_sampling
from genaug.generators.base import Samples


def _digits():
    train, test = stratified_split(load_digits_dataset(), 0.3, seed=0)
    return train, test


def test_filter_accepts_real_and_rejects_noise():
    train, test = _digits()
    gc = GenerativeClassifierFilter(sigma=0.3, steps=300, seed=0).fit(train.images)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(200, 8, 8, 1), dtype=np.uint8)
    assert gc.accepts(test.images).mean() > 0.9, "held-out real digits should pass"
    assert gc.accepts(noise).mean() < 0.1, "uniform noise should be rejected"
    assert gc.train_accuracy > 0.9


def test_filtered_sampling_redraws_rejects_and_reports():
    train, _ = _digits()
    gc = GenerativeClassifierFilter(steps=300, seed=0).fit(train.images)
    rng = np.random.default_rng(2)

    def draw(m: int) -> Samples:
        # Half real digits, half noise: the filter must keep the real ones.
        real = train.images[rng.integers(0, len(train), m - m // 2)]
        noise = rng.integers(0, 256, size=(m // 2, 8, 8, 1), dtype=np.uint8)
        data = np.concatenate([real, noise])
        prov = [{"sampler": "test", "is_noise": i >= len(real)} for i in range(m)]
        return Samples(data, np.zeros(m, np.int64), train.class_names, prov)

    out = filtered_sampling(draw, 50, gc)
    assert len(out) == 50
    assert out.stats["filter_rejected"] > 0 and out.stats["filter_drawn"] >= 50 + out.stats["filter_rejected"] - 10
    kept_noise = sum(p["is_noise"] for p in out.provenance)
    assert kept_noise <= 2
    assert all(p["filters"]["generative_classifier"] in ("accepted", "forced") for p in out.provenance)


def test_filter_round_trips_through_tensors():
    train, test = _digits()
    gc = GenerativeClassifierFilter(steps=50, seed=0).fit(train.images)
    again = GenerativeClassifierFilter.from_state(gc.state_tensors())
    np.testing.assert_allclose(again.real_probability(test.images), gc.real_probability(test.images), rtol=1e-6)


def test_vae_with_filter_reports_rejections_in_stats_and_provenance():
    from genaug.generators.vae import ImageVAE

    train, _ = _digits()
    vae = ImageVAE(mode="conditional", channels=[8, 16], hidden=32, latent_dim=4, steps=150, batchnorm=False,
                   generative_classifier=True, gc_steps=200).fit(train)
    samples = vae.sample(40, seed=0)
    assert len(samples) == 40
    assert samples.stats["filter_drawn"] >= 40
    assert all("generative_classifier" in p["filters"] for p in samples.provenance)
    unfiltered = vae.sample(40, seed=0, filter=False)
    assert unfiltered.stats == {} and "filters" not in unfiltered.provenance[0]
