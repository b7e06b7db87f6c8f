"""Bundled data (sklearn digits, MNIST) and the splits drawn from it."""
from __future__ import annotations

import time

import numpy as np
import pytest

from genaug.data import few_shot_subset, load_digits_dataset, load_mnist, stratified_split

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def test_digits(digits):
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.dtype == np.uint8
    assert digits.images.min() == 0 and digits.images.max() == 255
    assert digits.class_names == [str(d) for d in range(10)]
    assert digits.sources[5] == "sklearn-digits[5]"


def test_stratified_split_is_stratified_deterministic_and_disjoint(digits):
    train, test = stratified_split(digits, test_fraction=0.25, seed=3)
    again_train, again_test = stratified_split(digits, test_fraction=0.25, seed=3)
    other_train, _ = stratified_split(digits, test_fraction=0.25, seed=4)
    assert train.sources == again_train.sources and test.sources == again_test.sources
    assert train.sources != other_train.sources
    assert not set(train.sources) & set(test.sources)
    assert len(train) + len(test) == len(digits)
    for name, total in digits.counts().items():
        assert abs(test.counts()[name] - 0.25 * total) <= 1


def test_few_shot_subset_from_the_training_split(digits):
    train, test = stratified_split(digits, seed=0)
    subset = few_shot_subset(train, n_per_class=5, seed=7)
    assert subset.counts() == {str(d): 5 for d in range(10)}
    assert subset.sources == few_shot_subset(train, n_per_class=5, seed=7).sources
    assert subset.sources != few_shot_subset(train, n_per_class=5, seed=8).sources
    assert set(subset.sources) <= set(train.sources) and not set(subset.sources) & set(test.sources)


def test_mnist_loads_fast():
    started = time.perf_counter()
    train, test = load_mnist()
    elapsed = time.perf_counter() - started
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert train.class_names == [str(d) for d in range(10)] and len(np.unique(test.labels)) == 10
    assert elapsed < 4.0  # < 2 s on an idle machine; slack for a shared one


def test_mnist_missing_file_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "absent.npz")
