"""Table classifiers: aligned encodings, fixed budgets, and real PROBEN1 thyroid rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genaug.data import LabelledTable, load_proben1
from genaug.evaluate.table_classifiers import encode_tables, train_table_classifier

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def thyroid() -> tuple[LabelledTable, LabelledTable]:
    """(training + validation rows, test rows) of thyroid1.dt; skips where the shared data is absent."""
    try:
        result = load_proben1("thyroid", permutation=1)
        return result.data, result.test
    except FileNotFoundError as missing:
        pytest.skip(str(missing))


def test_encode_tables_aligns_columns_of_real_and_synthetic_rows():
    real = pd.DataFrame({"age": [30.0, 40.0, 50.0], "colour": ["red", "blue", "red"],
                         "smoker": [True, False, True],
                         "size": pd.Categorical(["S", "S", "M"], categories=["S", "M", "L"])})
    synthetic = pd.DataFrame({"colour": ["red", "red"], "age": [35.0, 45.0],  # other order, fewer colours
                              "smoker": [False, False],
                              "size": pd.Categorical(["L", "S"], categories=["S", "M", "L"])})
    train_x, synth_x = encode_tables(real, synthetic)
    assert train_x.shape == (3, 1 + 1 + 2 + 3) and synth_x.shape == (2, 7)
    assert train_x.dtype == synth_x.dtype == np.float32
    # columns: age, smoker, colour=blue, colour=red, size=S, size=M, size=L
    np.testing.assert_array_equal(synth_x[0], [35.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    unseen = synthetic.assign(colour=["green", "red"])
    assert encode_tables(real, unseen)[1][0, 2:4].tolist() == [0.0, 0.0]  # no column for 'green'
    with pytest.raises(ValueError, match="age"):
        encode_tables(real, synthetic.drop(columns="age"))


@pytest.mark.parametrize("kind, budget", [("mlp", 300), ("gbm", 50)])
def test_classifier_on_real_thyroid_beats_the_majority_rate(thyroid, kind, budget):
    train, test = thyroid
    train_x, test_x = encode_tables(train, test)
    classifier = train_table_classifier(kind, train_x, train.labels, len(train.class_names), seed=0,
                                        budget=budget)
    accuracy = (classifier(test_x) == test.labels).mean()
    majority = np.bincount(test.labels).max() / len(test.labels)
    assert accuracy > majority + 0.01, (accuracy, majority)
    proba = classifier.predict_proba(test_x[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(1), 1.0, atol=1e-5)


def test_same_seed_same_predictions_and_few_shot_sets_work(thyroid):
    train, test = thyroid
    rng = np.random.default_rng(0)
    few = np.concatenate([rng.choice(np.flatnonzero(train.labels == c), 3, replace=False) for c in range(3)])
    train_x, test_x = encode_tables(train.subset(few), test)
    runs = [train_table_classifier("mlp", train_x, train.labels[few], 3, seed=s, budget=50)(test_x)
            for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    gbm = train_table_classifier("gbm", train_x, train.labels[few], 3, seed=0, budget=10)
    assert gbm.predict_proba(test_x).shape == (len(test_x), 3)


def test_one_class_training_set_predicts_that_class_and_bad_input_is_refused():
    x, y = np.zeros((4, 2), np.float32), np.full(4, 2)
    classifier = train_table_classifier("mlp", x, y, n_classes=3, seed=0, budget=5)
    assert classifier(np.ones((2, 2), np.float32)).tolist() == [2, 2]
    with pytest.raises(ValueError, match="kind"):
        train_table_classifier("svm", x, np.array([0, 1, 0, 1]), 2, seed=0)
    with pytest.raises(ValueError, match="y_train"):
        train_table_classifier("gbm", x, np.array([0, 1, 0, 5]), 2, seed=0)
    with pytest.raises(ValueError, match="budget"):
        train_table_classifier("gbm", x, np.array([0, 1, 0, 1]), 2, seed=0, budget=0)
