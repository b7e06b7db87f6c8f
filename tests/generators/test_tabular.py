"""Tabular VAE: mixed column types, PROBEN1 rows, both modes, every sampler, save/load."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch

from genaug.data import LabelledTable, load_proben1
from genaug.generators.base import load_generator
from genaug.generators.latent_sampling import SAMPLERS
from genaug.generators.tabular import TabularVAE

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def load_proben1_train(name: str) -> LabelledTable:
    """Training + validation rows of ``<name>1.dt``; skips the test where the shared data is absent."""
    try:
        return load_proben1(name, permutation=1).data
    except FileNotFoundError as missing:
        pytest.skip(str(missing))


def mixed_table(rows_per_class: int = 12) -> LabelledTable:
    """Two classes; a continuous float, an integer, a string, a category, a bool and a 0/1 column."""
    rng = np.random.default_rng(0)
    n = 2 * rows_per_class
    labels = np.repeat([0, 1], rows_per_class)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n) + 10 * labels,
        "visits": rng.integers(0, 20, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "size": pd.Categorical(rng.choice(["S", "M"], n), categories=["S", "M", "L"], ordered=True),
        "smoker": rng.random(n) < 0.3,
        "flag": (rng.random(n) < 0.5).astype(np.int64),
    })
    return LabelledTable(frame, labels, ["healthy", "ill"])


@pytest.fixture(scope="module")
def mixed() -> LabelledTable:
    return mixed_table()


@pytest.fixture(scope="module")
def fitted(mixed) -> TabularVAE:
    return TabularVAE(TabularVAE.tiny_config()).fit(mixed)


# --------------------------------------------------------------------------- mixed types
def test_fit_returns_self_and_samples_keep_the_columns(mixed):
    generator = TabularVAE(TabularVAE.tiny_config())
    assert generator.fit(mixed) is generator
    samples = generator.sample(31, seed=3)
    frame = samples.data
    assert list(frame.columns) == list(mixed.frame.columns)
    assert frame.dtypes.to_dict() == mixed.frame.dtypes.to_dict()
    assert frame["size"].dtype == mixed.frame["size"].dtype  # categories and order kept
    assert set(frame["colour"]) <= {"red", "green", "blue"}
    assert set(frame["flag"]) <= {0, 1}
    assert frame["age"].between(mixed.frame["age"].min(), mixed.frame["age"].max()).all()
    assert np.bincount(samples.labels).tolist() == [16, 15]
    assert len(samples.provenance) == 31 and samples.class_names == ["healthy", "ill"]


def test_sample_one_class_by_name_or_index(fitted):
    assert (fitted.sample(7, label="ill", seed=0).labels == 1).all()
    assert (fitted.sample(5, label=0, seed=0).labels == 0).all()
    with pytest.raises(ValueError, match="label"):
        fitted.sample(5, label="unknown")


def test_same_seed_same_rows_other_seed_other_rows(fitted):
    a, b, c = (fitted.sample(20, seed=s).data for s in (5, 5, 6))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_zero_rows_keep_columns_and_dtypes(fitted, mixed):
    samples = fitted.sample(0, seed=0)
    assert len(samples) == 0
    assert samples.data.dtypes.to_dict() == mixed.frame.dtypes.to_dict()


def test_save_load_round_trip_gives_identical_samples(fitted, tmp_path):
    fitted.save(tmp_path)
    loaded = load_generator(tmp_path)
    assert isinstance(loaded, TabularVAE)
    for sampler in ("prior", "interpolation+noise"):
        pd.testing.assert_frame_equal(fitted.sample(25, seed=9, sampler=sampler).data,
                                      loaded.sample(25, seed=9, sampler=sampler).data)
    assert loaded.sample(4, seed=9, sampler="noise").provenance == \
        fitted.sample(4, seed=9, sampler="noise").provenance


def test_fit_is_deterministic_per_seed(mixed):
    one = TabularVAE(TabularVAE.tiny_config()).fit(mixed).sample(10, seed=0).data
    two = TabularVAE(TabularVAE.tiny_config()).fit(mixed).sample(10, seed=0).data
    pd.testing.assert_frame_equal(one, two)


# --------------------------------------------------------------------------- samplers and modes
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_per_class(fitted, mixed, sampler):
    samples = fitted.sample(12, seed=1, sampler=sampler, alpha=0.3, k=3, noise=0.1)
    assert len(samples.data) == 12
    for label, record in zip(samples.labels, samples.provenance):
        assert record["sampler"] == sampler and record["mode"] == "per_class"
        assert (record["alpha"], record["k"], record["noise"]) == (0.3, 3, 0.1)
        if sampler == "prior":
            assert record["source"] is None
        else:  # the source row belongs to the sample's class
            assert mixed.labels[mixed.sources.index(record["source"])] == label


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s != "prior"])
def test_single_mode_takes_the_source_rows_class(mixed, sampler):
    generator = TabularVAE(TabularVAE.tiny_config(), mode="single").fit(mixed)
    assert list(generator.networks) == ["all"]
    samples = generator.sample(10, seed=2, sampler=sampler)
    assert np.bincount(samples.labels).tolist() == [5, 5]
    for label, record in zip(samples.labels, samples.provenance):
        assert record["mode"] == "single"
        assert mixed.labels[mixed.sources.index(record["source"])] == label


def test_single_mode_refuses_the_prior(mixed):
    with pytest.raises(pydantic.ValidationError, match="sampler"):
        TabularVAE(mode="single", sampler="prior")
    generator = TabularVAE(TabularVAE.tiny_config(), mode="single").fit(mixed)
    assert generator.sample(2, seed=0).provenance[0]["sampler"] == "noise"  # the mode's default
    with pytest.raises(pydantic.ValidationError, match="sampler"):
        generator.sample(2, seed=0, sampler="prior")


def test_mix_data_adds_rows_of_other_classes(mixed):
    generator = TabularVAE(TabularVAE.tiny_config(), mix_data=0.25).fit(mixed)
    assert generator.meta["vaes"]["class0"]["rows"] == 12 + 3
    # the samplers start only from the class's own rows
    assert len(generator.meta["vaes"]["class0"]["sources"]) == 12


def test_discrete_decoding_argmax(fitted):
    samples = fitted.sample(10, seed=0, discrete_decoding="argmax")
    assert set(samples.data["flag"]) <= {0, 1}


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("bad, field", [({"latent_dim": 0}, "latent_dim"), ({"hidden": []}, "hidden"),
                                        ({"mix_data": 1.5}, "mix_data"), ({"sampler": "zoom"}, "sampler"),
                                        ({"latent_size": 2}, "latent_size"),
                                        ({"mode": "single", "mix_data": 0.2}, "mix_data")])
def test_bad_config_is_refused_naming_the_field(bad, field):
    with pytest.raises(pydantic.ValidationError, match=field):
        TabularVAE(**bad)


def test_unknown_sample_option_and_sampling_before_fit(fitted):
    with pytest.raises(ValueError, match="temperature"):
        fitted.sample(3, temperature=2.0)
    with pytest.raises(RuntimeError, match="fit"):
        TabularVAE().sample(3)


def test_missing_values_are_refused_naming_the_column(mixed):
    frame = mixed.frame.copy()
    frame.loc[3, "age"] = np.nan
    with pytest.raises(ValueError, match="age"):
        TabularVAE(TabularVAE.tiny_config()).fit(LabelledTable(frame, mixed.labels, mixed.class_names))


# --------------------------------------------------------------------------- training plumbing
def test_progress_events_and_finished_vaes_are_loaded_again(mixed, tmp_path):
    events = []
    first = TabularVAE(TabularVAE.tiny_config()).fit(mixed, progress=events.append, checkpoints=tmp_path)
    steps = TabularVAE.tiny_config().steps
    assert events and events[-1].step == events[-1].total == 2 * steps
    assert {"loss", "reconstruction", "kl"} <= set(events[-1].losses)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.jsonl", "tabular_vae-class0", "tabular_vae-class1"]
    assert first.meta["training"]["class1"]["steps_done"] == steps
    resumed_events = []
    resumed = TabularVAE(TabularVAE.tiny_config()).fit(mixed, progress=resumed_events.append,
                                                       checkpoints=tmp_path)
    assert resumed_events == []  # both VAEs came from their final checkpoints
    assert {key: row["resumed_from"] for key, row in resumed.meta["training"].items()} == \
        {"class0": steps, "class1": steps}
    pd.testing.assert_frame_equal(first.sample(8, seed=0).data, resumed.sample(8, seed=0).data)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("mode, extra, stop_at", [
    # per_class: 15 rows per VAE, 3 batches of 4 per epoch -> the checkpoint at step 10 is mid-epoch;
    # the run stops in class1's VAE after its checkpoint at step 10 (overall step 40 + 13)
    ("per_class", {"mix_data": 0.25, "batch_size": 4}, 53),
    # single: 24 rows, batches of 5, and the EMA of the weights (its state must resume too)
    ("single", {"batch_size": 5, "ema_decay": 0.9, "norm": "batch"}, 13),
])
def test_interrupted_fit_resumes_and_matches_an_uninterrupted_one(mixed, tmp_path, mode, extra, stop_at):
    config = dict(hidden=[16, 8], steps=40, checkpoint_every=10, mode=mode, **extra)
    reference = TabularVAE(config).fit(mixed)

    def interrupt(event):
        if event.step == stop_at:
            raise _Interrupt
    with pytest.raises(_Interrupt):
        TabularVAE(config).fit(mixed, progress=interrupt, checkpoints=tmp_path)
    last = "class1" if mode == "per_class" else "all"
    assert sorted(p.name for p in (tmp_path / f"tabular_vae-{last}" / "checkpoints").iterdir()) == ["step-000010.pt"]

    events = []
    resumed = TabularVAE(config).fit(mixed, progress=events.append, checkpoints=tmp_path)
    training = resumed.meta["training"]
    assert training[last]["resumed_from"] == 10 and training[last]["steps_done"] == 40
    if mode == "per_class":
        assert training["class0"]["resumed_from"] == 40  # finished before the interruption: loaded
    assert events[0].step == stop_at - 2 and events[-1].step == events[-1].total  # steps 11.. again
    for key in resumed.networks:
        phase = tmp_path / f"tabular_vae-{key}"
        assert (phase / "losses.png").stat().st_size > 0
        history = [json.loads(line) for line in (phase / "history.jsonl").read_text().splitlines()]
        assert [row["step"] for row in history] == list(range(1, 41))  # no gap, no duplicate
        assert {"loss", "reconstruction", "kl"} <= set(history[-1])
        assert resumed.meta["training"][key]["final"]["loss"] == history[-1]["loss"]
    # the very same weights and latent means as a fit that was never interrupted (nor checkpointed)
    expected, got = reference.state_tensors(), resumed.state_tensors()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    pd.testing.assert_frame_equal(reference.sample(30, seed=1).data, resumed.sample(30, seed=1).data,
                                  check_exact=True)


def test_checkpoints_of_other_settings_are_not_resumed(mixed, tmp_path):
    TabularVAE(TabularVAE.tiny_config(), mode="single").fit(mixed, checkpoints=tmp_path)
    other = TabularVAE(TabularVAE.tiny_config(), mode="single", lr=3e-3)
    other.fit(mixed, checkpoints=tmp_path)
    assert other.meta["training"]["all"]["resumed_from"] == 0  # trained afresh, not resumed
    fresh = TabularVAE(TabularVAE.tiny_config(), mode="single", lr=3e-3).fit(mixed)
    pd.testing.assert_frame_equal(fresh.sample(10, seed=0).data, other.sample(10, seed=0).data)
    # sampling settings do not change the training: the checkpoint is still used
    again = TabularVAE(TabularVAE.tiny_config(), mode="single", lr=3e-3, alpha=0.9).fit(mixed, checkpoints=tmp_path)
    assert again.meta["training"]["all"]["resumed_from"] == TabularVAE.tiny_config().steps


# --------------------------------------------------------------------------- PROBEN1
def test_proben1_thyroid_binary_columns_decode_to_zero_one():
    train = load_proben1_train("thyroid")
    rng = np.random.default_rng(0)
    # a few-shot subset: class 0 with a single row exercises the LayerNorm path
    picks = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), size, replace=False)
                            for c, size in enumerate((1, 5, 60))])
    subset = train.subset(np.sort(picks))
    generator = TabularVAE(TabularVAE.tiny_config(), beta_normalise=True).fit(subset)
    assert generator.meta["vaes"]["class0"]["norm"] == "layer"
    assert generator.meta["vaes"]["class2"]["norm"] == "batch"
    assert generator.meta["beta_effective"] == pytest.approx(2 / 21)
    samples = generator.sample(90, seed=0)
    binary = [c for c in train.frame.columns if set(train.frame[c].unique()) <= {0.0, 1.0}]
    assert len(binary) >= 10
    for column in binary:
        assert set(samples.data[column].unique()) <= {0.0, 1.0}
    assert (samples.data.dtypes == np.float64).all()
    assert np.bincount(samples.labels).tolist() == [30, 30, 30]
