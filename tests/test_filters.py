"""The generative-classifier filter (seed 001 ch. 5.4) on real digits: the network itself, and
the filter stage applying the one a VAE or tabular VAE trained with itself."""
from __future__ import annotations

import numpy as np
import pytest

from genaug.data import load_digits_dataset, stratified_split
from genaug.filters import FilterStage, default_filters, parse_filter
from genaug.generators.generative_classifier import GenerativeClassifier
from genaug.generators.base import Samples

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _digits():
    train, test = stratified_split(load_digits_dataset(), 0.3, seed=0)
    return train, test


def test_filter_accepts_real_and_rejects_noise():
    train, test = _digits()
    gc = GenerativeClassifier(sigma=0.3, steps=300, seed=0).fit(train.images)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(200, 8, 8, 1), dtype=np.uint8)
    assert gc.accepts(test.images).mean() > 0.9, "held-out real digits should pass"
    assert gc.accepts(noise).mean() < 0.1, "uniform noise should be rejected"
    assert gc.train_accuracy > 0.9


class _NoisyModel:
    """Draws half real digits, half noise, and carries a trained generative classifier (what the
    stage asks a model for)."""

    def __init__(self, train, gc):
        self.train, self.gc, self.rng = train, gc, np.random.default_rng(2)

    def generative_classifier(self):
        return self.gc, lambda data: data

    def draw(self, m: int, round_index: int) -> Samples:
        real = self.train.images[self.rng.integers(0, len(self.train), m - m // 2)]
        noise = self.rng.integers(0, 256, size=(m // 2, 8, 8, 1), dtype=np.uint8)
        provenance = [{"sampler": "test", "is_noise": i >= len(real)} for i in range(m)]
        return Samples(np.concatenate([real, noise]), np.zeros(m, np.int64), self.train.class_names, provenance)


def test_the_stage_redraws_what_the_generative_classifier_rejects_and_counts_it():
    train, _ = _digits()
    model = _NoisyModel(train, GenerativeClassifier(steps=300, seed=0).fit(train.images))
    stage = FilterStage(["generative-classifier"], None, train.class_names, generator=model)
    out = stage.draw(model.draw, 50, train.class_names[0])
    summary = stage.summary()
    assert len(out) == 50 and summary["accepted"] == 50 and summary["short"] == {}
    assert summary["rejected"] == summary["rejected_by"]["generative-classifier"] > 0
    assert summary["drawn"] == summary["accepted"] + summary["surplus"] + summary["rejected"]
    assert sum(p["is_noise"] for p in out.provenance) <= 2
    verdicts = [p["filters"]["generative-classifier"] for p in out.provenance]
    assert all(v["verdict"] == "accepted" and v["p_real"] >= 0.5 for v in verdicts)
    # a stricter threshold rejects more of the same kind of draws
    strict = FilterStage(["generative-classifier:0.99"], None, train.class_names, generator=model)
    strict.draw(model.draw, 50, train.class_names[0])
    assert strict.summary()["rejection_rate"] >= summary["rejection_rate"]


def test_filter_round_trips_through_tensors():
    train, test = _digits()
    gc = GenerativeClassifier(steps=50, seed=0).fit(train.images)
    again = GenerativeClassifier.from_state(gc.state_tensors())
    np.testing.assert_allclose(again.real_probability(test.images), gc.real_probability(test.images), rtol=1e-6)


def test_a_vae_trains_it_and_the_stage_applies_it_while_sample_itself_no_longer_filters():
    """A well-trained VAE's samples pass its own classifier; a barely trained one's do not, and
    the stage reports them short instead of filling the request with rejects."""
    from genaug.generators.vae import ImageVAE

    train, _ = _digits()
    shape = dict(mode="conditional", channels=[8, 16], hidden=32, latent_dim=4, batchnorm=False,
                 generative_classifier=True, gc_steps=200)
    vae = ImageVAE(steps=600, **shape).fit(train)
    plain = vae.sample(40, seed=0)
    assert plain.stats == {} and "filters" not in plain.provenance[0]
    with pytest.raises(ValueError, match="--filter generative-classifier"):
        vae.sample(4, seed=0, filter=True)
    assert default_filters(vae) == ["generative-classifier"]
    stage = FilterStage(["generative-classifier"], None, vae.class_names, generator=vae, max_rounds=3)
    kept = stage.draw(lambda k, r: vae.sample(k, label=3, seed=r), 40, "3")
    assert len(kept) == 40 and (vae.filter.real_probability(kept.data) >= 0.5).all()
    assert stage.summary()["accepted"] == 40 and stage.short == {}

    blurry = ImageVAE(steps=150, **shape).fit(train)
    stage = FilterStage(["generative-classifier"], None, blurry.class_names, generator=blurry, max_rounds=3)
    assert stage.draw(lambda k, r: blurry.sample(k, label=3, seed=r), 40, "3") is None
    assert stage.short == {"3": 40} and stage.summary()["rejected"] == stage.summary()["drawn"] >= 40

    without = ImageVAE(steps=5, **{**shape, "generative_classifier": False}).fit(train)
    assert default_filters(without) == []
    with pytest.raises(ValueError, match="trained without the generative classifier"):
        FilterStage(["generative-classifier"], None, vae.class_names, generator=without)
    with pytest.raises(ValueError, match="needs the real training images"):
        FilterStage(["near-copy"], None, vae.class_names, generator=vae)
    assert str(parse_filter("generative-classifier:0.7")) == "generative-classifier:0.7"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_filter("generative-classifier:1.5")


def test_the_stage_filters_table_rows_with_a_tabular_vae_s_own_classifier():
    """Table rows have no Lite0 features: the generative classifier judges them in the VAE's
    encoding; the image filters refuse rows with a message saying which filter does."""
    from genaug.data import load_proben1
    from genaug.generators.tabular import TabularVAE

    data, _ = load_proben1("diabetes")
    vae = TabularVAE(TabularVAE.tiny_config()).fit(data)
    stage = FilterStage(["generative-classifier"], None, vae.class_names, generator=vae)
    rows = stage.draw(lambda k, r: vae.sample(k, label=0, seed=r), 30, vae.class_names[0])
    assert rows is not None and len(rows) + stage.short.get(vae.class_names[0], 0) == 30
    assert list(rows.data.columns) == list(vae.sample(1, label=0, seed=0).data.columns)
    assert all(p["filters"]["generative-classifier"]["verdict"] == "accepted" for p in rows.provenance)
