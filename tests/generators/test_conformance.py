"""The contract every registered generator kind must keep, run at each kind's tiny_config()."""
from __future__ import annotations

import random
import typing

import numpy as np
import pandas as pd
import pydantic
import pytest
import torch

from genaug.data import LabelledImages, LabelledTable, load_digits_dataset, few_shot_subset
from genaug.generators.base import Generator, Samples, generator_kinds, load_generator
from genaug.generators.groups import GroupedGenerator

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database



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


def _example_values(schema: dict) -> list:
    """Valid values of a sample option's JSON schema: its default (when set) and one more."""
    values = [] if schema.get("default") is None else [schema["default"]]
    for option in schema.get("anyOf", [schema]):
        if "enum" in option:
            values += [v for v in option["enum"] if v != schema.get("default")][:1]
        elif option.get("type") == "integer":
            values.append(max(int(option.get("minimum", 1)), 1) + 1)
        elif option.get("type") == "number":
            low = option.get("minimum", option.get("exclusiveMinimum", 0))
            values.append(min(float(low) + 0.5, float(option.get("maximum", low + 0.5))))
        elif option.get("type") == "boolean":
            values.append(not schema.get("default", False))
    return values


# Options tried here at their default only, and where their other value is tested instead.
DEFAULT_ONLY = {"compile": "tests/generators/test_diffusion.py::test_compile_samples_the_same_images_and_"
                           "compiles_each_unet_once (slow: a first compile takes a minute; .ci/run runs it)"}


@pytest.mark.parametrize("kind", VARIANTS)
def test_declared_sample_options_are_accepted_and_unknown_ones_refused(kind, fitted):
    """``sample_options()`` is what the service checks requests against and the UI renders: every
    declared option -- at its default and at one other valid value, options whose default is None
    included -- is accepted by ``sample`` (or refused naming itself where this mode cannot use it),
    and an undeclared option or an invalid value is refused naming the option."""
    generator, _ = fitted[kind]
    options = type(generator).sample_options()
    tried = 0
    for name, schema in options.items():
        assert schema.get("description"), f"{kind}: sample option {name!r} has no description"
        values = _example_values(schema)
        assert values, f"{kind}: no valid example value for option {name!r} ({schema})"
        if name in DEFAULT_ONLY:
            values = values[:1]
        for value in values:
            try:
                samples = generator.sample(2, label=0, seed=0, **{name: value})
            except ValueError as error:
                assert name in str(error), f"{kind}: option {name}={value!r} refused without naming it: {error}"
            else:
                assert len(samples) == 2
                tried += 1
    assert tried >= len(options), f"{kind}: most declared options were refused"
    with pytest.raises(ValueError, match="unknown"):
        generator.sample(2, label=0, seed=0, no_such_option=1)
    for name, schema in options.items():
        types = {o.get("type") for o in schema.get("anyOf", [schema])} - {"null"}
        if types and types <= {"integer", "number"}:  # a number option (not one that also takes names)
            with pytest.raises(ValueError, match=f"options.{name}"):
                generator.sample(2, label=0, seed=0, **{name: "not a number"})


def _state(generator: Generator) -> dict:
    return {k: v.clone() for k, v in generator.state_tensors().items()}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", VARIANTS)
def test_fitting_twice_gives_the_same_model_and_leaves_inputs_and_global_rngs_alone(kind, fitted, digits_subset,
                                                                                       small_table):
    """sklearn-style: a refit of the same instance on the same data gives the same weights and
    samples; fit and sample mutate neither the data nor the global RNGs (torch, numpy, random)."""
    generator, _ = fitted[kind]
    data = _data_for(type(generator), digits_subset, small_table)
    before = _state(generator)
    first = generator.sample(6, seed=11)
    snapshot = (data.frame.copy() if isinstance(data, LabelledTable) else data.images.copy(), data.labels.copy())
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    rngs = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    generator.fit(data)
    generator.sample(3, seed=None)
    generator.sample(3, seed=5)
    assert torch.equal(torch.get_rng_state(), rngs[0]), f"{kind}: fit or sample changed torch's global RNG"
    assert np.array_equal(np.random.get_state()[1], rngs[1]), f"{kind}: fit or sample changed numpy's global RNG"
    assert random.getstate() == rngs[2], f"{kind}: fit or sample changed the random module's state"
    if isinstance(data, LabelledTable):
        pd.testing.assert_frame_equal(data.frame, snapshot[0])
    else:
        assert np.array_equal(data.images, snapshot[0]), f"{kind}: fit changed the training images"
    assert np.array_equal(data.labels, snapshot[1]), f"{kind}: fit changed the labels"
    assert _same_state(before, _state(generator)), f"{kind}: a second fit on the same data gave other weights"
    _assert_same(first, generator.sample(6, seed=11))


@pytest.mark.parametrize("kind", VARIANTS)
def test_sample_zero_gives_an_empty_batch_of_the_right_kind(kind, fitted, digits_subset, small_table):
    generator, _ = fitted[kind]
    data = _data_for(type(generator), digits_subset, small_table)
    for label in (None, data.class_names[0]):
        empty = generator.sample(0, label=label, seed=0)
        assert len(empty) == 0 and len(empty.labels) == 0 and empty.provenance == []
        if isinstance(data, LabelledImages):
            assert empty.data.dtype == np.uint8 and empty.data.shape == (0, *data.image_shape)
        else:
            assert list(empty.data.columns) == list(data.frame.columns)
    with pytest.raises(ValueError, match="n must be >= 0"):
        generator.sample(-1, seed=0)


@pytest.mark.parametrize("kind", VARIANTS)
def test_refitting_on_other_classes_resets_the_model(kind, digits_subset, small_table):
    """A fit replaces everything the last one learned: classes, networks, metadata."""
    cls, config = _variant(kind)
    data = _data_for(cls, digits_subset, small_table)
    generator = cls(config).fit(data)
    keep = np.flatnonzero(data.labels >= 1)
    names = [f"other-{name}" for name in data.class_names[1:]]
    if isinstance(data, LabelledTable):
        other = LabelledTable(data.frame.iloc[keep].reset_index(drop=True), data.labels[keep] - 1, names)
    else:
        other = LabelledImages(data.images[keep], data.labels[keep] - 1, names)
    generator.fit(other)
    fresh = cls(config).fit(other)
    assert generator.class_names == names
    assert _same_state(_state(generator), _state(fresh)), f"{kind}: a refit kept something of the first fit"
    assert generator.meta.keys() == fresh.meta.keys()
    samples = generator.sample(len(names) * 2, seed=3)
    assert samples.class_names == names and set(samples.labels.tolist()) == set(range(len(names)))
    _assert_same(samples, fresh.sample(len(names) * 2, seed=3))


@pytest.mark.parametrize("kind", KINDS)
def test_declared_capabilities_hold(kind, digits_subset):
    """``uses_unlabeled_pool`` names real modes whose fit takes an unlabeled pool and whose model
    then takes new examples; ``supports_warm_start`` says whether ``warm_start`` works."""
    cls = shipped_kinds()[kind]
    modes = cls.Config.model_fields.get("mode")
    for mode in cls.uses_unlabeled_pool:
        assert modes is not None and mode in typing.get_args(modes.annotation), f"{kind}: unknown mode {mode!r}"
        config = cls.Config(**{**cls.tiny_config().model_dump(), "mode": mode, **(
            {"generative_classifier": False} if "generative_classifier" in cls.Config.model_fields else {})})
        pool = digits_subset.images[::-1].copy()
        model = cls(config).fit(digits_subset, unlabeled=pool)
        assert model.meta["unlabeled_pool_size"] == len(pool)
        model.use_examples(digits_subset.subset(range(8)))
        assert len(model.sample(4, seed=0)) == 4
    tiny = cls(cls.tiny_config())
    if cls.supports_warm_start:
        parent = cls(cls.tiny_config()).fit(digits_subset)
        tiny.warm_start(parent)
        assert len(tiny.fit(digits_subset).sample(2, seed=0)) == 2
    else:
        with pytest.raises(ValueError, match="cannot start from another model"):
            tiny.warm_start(tiny)


@pytest.mark.parametrize("kind", sorted(k for k, c in shipped_kinds().items() if issubclass(c, GroupedGenerator)))
def test_grouped_kinds_share_one_key_scheme_and_load_the_old_one(kind, fitted, tmp_path):
    """Every per-group network is stored as ``<role>.<all|class<i>>.<parameter>``; a model saved
    with the old bare-index keys (``vae.3.…``) still loads and samples the same."""
    cls = shipped_kinds()[kind]
    for variant in cls.tiny_variants():
        generator, _ = fitted[f"{kind}/{variant}"]
        groups = {name.split(".")[1] for name in generator.grouped_state_tensors()}
        expected = {f"class{i}" for i in range(len(generator.class_names))} if generator.per_class else {"all"}
        assert groups == expected, f"{kind}/{variant}: groups {groups}"
        if not generator.per_class or kind in ("ddim", "ddpm"):  # diffusion always used class<i> keys
            continue
        old_style = {}
        for name, value in generator.state_tensors().items():
            parts = name.split(".")
            if parts[0] in cls.roles:
                parts[1] = parts[1].removeprefix("class")
            old_style[".".join(parts)] = value
        loaded = cls(generator.config)
        loaded.class_names, loaded.meta = list(generator.class_names), dict(generator.meta)
        loaded.load_state_tensors(old_style)
        loaded.fitted = True
        _assert_same(generator.sample(6, seed=2), loaded.sample(6, seed=2))


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
