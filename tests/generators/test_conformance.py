"""The contract every registered generator kind must keep, run at each kind's tiny_config()."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest

from genaug.data import LabelledImages, LabelledTable, load_digits_dataset, few_shot_subset
from genaug.generators.base import Generator, Samples, generator_kinds, load_generator



def shipped_kinds() -> dict:
    """Every kind genaug ships or a plugin adds -- not the fixture kinds other test modules register."""
    return {kind: cls for kind, cls in generator_kinds().items() if "_tiny_generator" not in cls.__module__}


KINDS = sorted(shipped_kinds())
# Every (kind, mode) worth testing: each kind's tiny_variants(), e.g. "dcgan/conditional".
VARIANTS = sorted(f"{kind}/{variant}" for kind, cls in shipped_kinds().items() for variant in cls.tiny_variants())


def _variant(name: str):
    kind, variant = name.split("/", 1)
    cls = shipped_kinds()[kind]
    return cls, cls.tiny_variants()[variant]


@pytest.fixture(scope="module")
def digits_subset() -> LabelledImages:
    data = load_digits_dataset()
    keep = np.flatnonzero(data.labels < 4)
    four = LabelledImages(data.images[keep], data.labels[keep], data.class_names[:4])
    return few_shot_subset(four, 12, seed=0)


@pytest.fixture(scope="module")
def small_table() -> LabelledTable:
    rng = np.random.default_rng(0)
    n = 60
    labels = np.repeat([0, 1, 2], n // 3)
    frame = pd.DataFrame({
        "size": rng.normal(labels * 2.0, 0.5),
        "weight": rng.uniform(0, 1, n) + labels,
        "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
        "flag": (rng.random(n) > 0.5).astype(float),
    })
    return LabelledTable(frame, labels, ["a", "b", "c"])


def _data_for(cls, digits_subset, small_table):
    return small_table if cls.data_kind == "table" else digits_subset


@pytest.fixture(scope="module")
def fitted(digits_subset, small_table):
    """One fitted generator per kind (fitting once keeps the suite fast)."""
    models = {}
    for name in VARIANTS:
        cls, config = _variant(name)
        generator = cls(config)
        returned = generator.fit(_data_for(cls, digits_subset, small_table))
        models[name] = (generator, returned)
    return models


def test_every_kind_is_documented():
    for kind, cls in shipped_kinds().items():
        assert cls.kind == kind
        assert cls.summary, f"{kind}: needs a one-line summary"
        assert cls.data_kind in ("images", "table")
        schema = cls.Config.model_json_schema()
        assert schema["properties"], f"{kind}: config has no fields"


@pytest.mark.parametrize("kind", VARIANTS)
def test_fit_returns_self(kind, fitted):
    generator, returned = fitted[kind]
    assert returned is generator
    assert generator.fitted


@pytest.mark.parametrize("kind", VARIANTS)
def test_samples_shape_dtype_range_labels(kind, fitted, digits_subset, small_table):
    generator, _ = fitted[kind]
    data = _data_for(type(generator), digits_subset, small_table)
    samples = generator.sample(9, seed=1)
    assert isinstance(samples, Samples)
    assert len(samples) == 9 and len(samples.provenance) == 9
    assert samples.class_names == data.class_names
    k = len(data.class_names)
    assert sorted(np.bincount(samples.labels, minlength=k)) == sorted([9 // k + (i < 9 % k) for i in range(k)])
    if isinstance(data, LabelledImages):
        assert samples.data.dtype == np.uint8
        assert samples.data.shape == (9, *data.image_shape)
    else:
        assert isinstance(samples.data, pd.DataFrame)
        assert list(samples.data.columns) == list(data.frame.columns)
        assert set(samples.data["colour"].astype(str)) <= {"red", "green", "blue"}
    one_class = generator.sample(5, label=data.class_names[1], seed=2)
    assert (one_class.labels == 1).all()
    assert len(one_class) == 5


@pytest.mark.parametrize("kind", VARIANTS)
def test_same_seed_same_samples_and_save_load_round_trip(kind, fitted, tmp_path):
    generator, _ = fitted[kind]
    first = generator.sample(6, seed=7)
    again = generator.sample(6, seed=7)
    other = generator.sample(6, seed=8)
    _assert_same(first, again)
    assert not _equal(first, other), "a different seed should give different samples"
    folder = tmp_path / kind.replace("/", "-")
    generator.save(folder)
    assert (folder / "config.json").exists()
    assert (folder / "weights.safetensors").exists()
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pt")) and not list(folder.rglob("*.bin"))
    loaded = load_generator(folder)
    assert type(loaded) is type(generator)
    assert loaded.class_names == generator.class_names
    _assert_same(first, loaded.sample(6, seed=7))


@pytest.mark.parametrize("kind", KINDS)
def test_bad_config_names_the_field(kind):
    cls = shipped_kinds()[kind]
    with pytest.raises(pydantic.ValidationError) as caught:
        cls(no_such_field=1)
    assert "no_such_field" in str(caught.value)
    numeric = next((name for name, f in cls.Config.model_fields.items()
                    if f.annotation in (int, float) and not isinstance(f.default, bool)), None)
    if numeric is not None:
        with pytest.raises(pydantic.ValidationError) as caught:
            cls(**{numeric: "not a number"})
        assert numeric in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_before_fit_and_unknown_label_are_clear_errors(kind, fitted):
    cls = shipped_kinds()[kind]
    with pytest.raises(RuntimeError, match="fit"):
        cls(cls.tiny_config()).sample(2, seed=0)
    generator, _ = fitted[f"{kind}/{next(iter(cls.tiny_variants()))}"]
    with pytest.raises(ValueError, match="not one of the classes"):
        generator.sample(2, label="no-such-class", seed=0)


def _equal(a: Samples, b: Samples) -> bool:
    if isinstance(a.data, pd.DataFrame):
        return a.data.equals(b.data) and np.array_equal(a.labels, b.labels)
    return np.array_equal(a.data, b.data) and np.array_equal(a.labels, b.labels)


def _assert_same(a: Samples, b: Samples) -> None:
    assert _equal(a, b), "same seed must give the same samples"


@pytest.mark.parametrize("kind", VARIANTS)
def test_declared_sample_options_are_accepted_and_unknown_ones_refused(kind, fitted):
    """``sample_options()`` is what the service checks requests against and the UI renders: every
    declared option, at its default, is accepted by ``sample`` (or refused naming itself where
    this mode cannot use it), and an undeclared option is refused."""
    generator, _ = fitted[kind]
    options = type(generator).sample_options()
    for name, schema in options.items():
        assert schema.get("description"), f"{kind}: sample option {name!r} has no description"
        if schema.get("default") is None:
            continue
        try:
            samples = generator.sample(2, label=0, seed=0, **{name: schema["default"]})
        except ValueError as error:
            assert name in str(error), f"{kind}: option {name}={schema['default']!r} refused without naming it: {error}"
        else:
            assert len(samples) == 2
    with pytest.raises(ValueError, match="unknown"):
        generator.sample(2, label=0, seed=0, no_such_option=1)


def _holds_training_rows(generator: Generator, data) -> bool:
    """Whether some tensor of the saved state is the training images (or table rows) themselves."""
    if isinstance(data, LabelledImages):
        wanted = np.sort(data.images.reshape(len(data), -1), axis=0)
        for tensor in generator.state_tensors().values():
            array = tensor.numpy()
            if array.dtype == np.uint8 and array.shape == data.images.shape:
                if np.array_equal(np.sort(array.reshape(len(array), -1), axis=0), wanted):
                    return True
        return False
    numbers = data.frame.select_dtypes("number").to_numpy(np.float32)
    return any(t.ndim == 2 and t.shape[0] == len(data) and t.shape[1] >= numbers.shape[1]
               and np.allclose(np.sort(t.numpy()[:, :numbers.shape[1]], 0), np.sort(numbers, 0))
               for t in generator.state_tensors().values())


@pytest.mark.parametrize("kind", VARIANTS)
def test_keeps_training_data_says_what_the_saved_model_holds(kind, fitted, digits_subset, small_table):
    """The disclosure the registry shows people who share a model must be true of its saved state."""
    generator, _ = fitted[kind]
    data = _data_for(type(generator), digits_subset, small_table)
    declared = type(generator).keeps_training_data
    assert declared in ("images", "encodings", "none")
    assert _holds_training_rows(generator, data) == (declared == "images"), (
        f"{kind}: declares keeps_training_data={declared!r}, but the saved state "
        f"{'holds' if declared != 'images' else 'does not hold'} the training data itself")
    if declared == "encodings":
        coded = sum(t.shape[0] for name, t in generator.state_tensors().items()
                    if "means" in name and t.is_floating_point())
        assert coded == len(data), f"{kind}: one latent code per training item expected, found {coded}"
