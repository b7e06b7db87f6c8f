"""The SupCon loss against hand-worked values, and the two bugs of the seed's code."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from genaug.evaluate.contrastive import supcon_loss

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

E = math.e
# Two views per class: class 0 along x, class 1 along y. With temperature 1 an anchor's logits are
# 1 (its positive), 0, 0 (the other class): loss per anchor -log(e / (e + 1 + 1)) = log(1 + 2/e).
FEATURES = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_plain_supcon_matches_the_hand_worked_value():
    assert supcon_loss(FEATURES, LABELS, temperature=1.0).item() == pytest.approx(math.log(1 + 2 / E))
    # Features are L2-normalised first: a scaled copy changes nothing.
    assert supcon_loss(FEATURES * 7, LABELS, temperature=1.0).item() == pytest.approx(math.log(1 + 2 / E))
    # Temperature 0.5 doubles every logit: -log(e^2 / (e^2 + 2)).
    assert supcon_loss(FEATURES, LABELS, temperature=0.5).item() == pytest.approx(math.log(1 + 2 / E ** 2))


def test_near_ood_negatives_only_enlarge_their_source_class_denominators():
    negative, source = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    # Class-0 anchors see exp(1) more in the denominator: log(2 + 2/e); class-1 anchors are unchanged.
    expected = (math.log(2 + 2 / E) + math.log(1 + 2 / E)) / 2
    got = supcon_loss(FEATURES, LABELS, temperature=1.0, negatives=negative, negative_sources=source)
    assert got.item() == pytest.approx(expected)
    # To every anchor: class-1 anchors add exp(0) = 1: log(1 + 3/e).
    every = supcon_loss(FEATURES, LABELS, temperature=1.0, negatives=negative, negative_sources=source,
                        negatives_for="all")
    assert every.item() == pytest.approx((math.log(2 + 2 / E) + math.log(1 + 3 / E)) / 2)
    # Weight 0.5: log(1.5 + 2/e) for class 0; weight 0: as without negatives.
    half = supcon_loss(FEATURES, LABELS, temperature=1.0, negatives=negative, negative_sources=source,
                       negative_weight=0.5)
    assert half.item() == pytest.approx((math.log(1.5 + 2 / E) + math.log(1 + 2 / E)) / 2)
    none = supcon_loss(FEATURES, LABELS, temperature=1.0, negatives=negative, negative_sources=source,
                       negative_weight=0.0)
    assert none.item() == pytest.approx(math.log(1 + 2 / E))


def test_seed_bug_1_negatives_made_from_class_0_are_never_positives_of_class_0():
    """The seed labelled near-OOD images -class, so those from class 0 became label 0 (-0 == 0)."""
    negative, source = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    ours = supcon_loss(FEATURES, LABELS, temperature=1.0, negatives=negative, negative_sources=source)
    buggy = supcon_loss(torch.cat([FEATURES, negative]), torch.cat([LABELS, -source]), temperature=1.0)
    assert ours.item() == pytest.approx((math.log(2 + 2 / E) + math.log(1 + 2 / E)) / 2)
    assert abs(ours.item() - buggy.item()) > 0.1  # the bug made the negative a positive (and an anchor)
    # A negative identical to an anchor's positive raises that anchor's loss instead of lowering it.
    assert ours.item() > supcon_loss(FEATURES, LABELS, temperature=1.0).item()


def test_seed_bug_2_masked_entries_leave_the_denominator_instead_of_adding_exp_0():
    """``logits *= mask`` turned the anchor's own entry into logit 0, i.e. exp(0) = 1 in the denominator."""
    ours = supcon_loss(FEATURES, LABELS, temperature=1.0).item()
    zeroed = math.log(1 + 3 / E)  # e / (e + 1 + 1 + exp(0)) per anchor
    assert ours == pytest.approx(math.log(1 + 2 / E)) and abs(ours - zeroed) > 0.1


def test_gradients_pull_positives_together():
    features = torch.tensor([[1.0, 0.2], [0.6, 0.8], [0.1, 1.0], [0.9, -0.3]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    optimiser = torch.optim.SGD([features], lr=0.5)
    first = supcon_loss(features, labels, temperature=0.5)
    for _ in range(50):
        optimiser.zero_grad()
        loss = supcon_loss(features, labels, temperature=0.5)
        loss.backward()
        optimiser.step()
    assert loss.item() < first.item() * 0.5
    unit = torch.nn.functional.normalize(features.detach(), dim=1)
    assert (unit[0] @ unit[1]) > 0.9 and (unit[2] @ unit[3]) > 0.9


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="no anchor has a positive"):
        supcon_loss(FEATURES[:2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="go together"):
        supcon_loss(FEATURES, LABELS, negatives=FEATURES[:1])
    with pytest.raises(ValueError, match="negatives must be"):
        supcon_loss(FEATURES, LABELS, negatives=torch.ones(1, 3), negative_sources=torch.tensor([0]))
    with pytest.raises(ValueError, match="temperature"):
        supcon_loss(FEATURES, LABELS, temperature=0)


# -- the supcon classifier ----------------------------------------------------------------------
from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset, stratified_split  # noqa: E402
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate  # noqa: E402
from genaug.evaluate.classifiers import resolve_classifier  # noqa: E402
from genaug.evaluate.contrastive import train_supcon_classifier  # noqa: E402
from genaug.evaluate.image_classifier import ClassifierBudget, TrainingLedger, predict_images  # noqa: E402


@pytest.fixture(scope="module")
def three_digits():
    data = load_digits_dataset()
    keep = np.flatnonzero(data.labels < 3)
    train, test = stratified_split(LabelledImages(data.images[keep], data.labels[keep], data.class_names[:3]), 0.3,
                                   seed=0)
    return few_shot_subset(train, 8, seed=0), test


def test_supcon_learns_under_the_budget_and_negatives_change_what_it_learns(three_digits):
    few, test = three_digits
    budget = ClassifierBudget(steps=40, batch_size=16)
    ledger = TrainingLedger()
    model = train_supcon_classifier(few.images, few.labels, 3, seed=0, budget=budget, ledger=ledger)
    assert ledger.as_dict() == {"steps": 40, "examples": 640, "examples_per_step": 16}
    accuracy = (predict_images(model, test.images) == test.labels).mean()
    assert accuracy > 0.6, accuracy  # three classes: chance is 1/3
    again = train_supcon_classifier(few.images, few.labels, 3, seed=0, budget=budget)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # Near-OOD negatives (here: inverted digits said to come from class 0) change the run only through
    # the loss: at weight 0 it trains exactly as without them, at weight 1 it learns something else.
    inverted = 255 - few.images[:6]
    negatives = dict(negatives=inverted, negative_sources=np.zeros(6, np.int64))
    ignored = train_supcon_classifier(few.images, few.labels, 3, seed=0, budget=budget, negative_weight=0.0, **negatives)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ignored.state_dict().values()))
    with_negatives = train_supcon_classifier(few.images, few.labels, 3, seed=0, budget=budget, **negatives)
    assert not torch.equal(with_negatives.encoder[0].weight, model.encoder[0].weight)


def test_the_runner_trains_supcon_arms_with_the_same_budget(three_digits, tmp_path):
    few, test = three_digits
    spec = GeneratorSpec(label="classic", kind="classic", config={"preset": "mild"},
                         variants=[SampleVariant(label="copies", ratio=1.0)])
    protocol = Protocol(shots=[4], seeds=[0], classifier_steps=10, classifier_batch=16, classifier="supcon",
                        arms=["real", "real+synthetic"])
    result = evaluate(few, test, [spec], protocol, cache_dir=tmp_path)
    arms = {cell["arm"]: cell for cell in result["cells"]}
    assert set(arms) == {"real", "real+synthetic[classic/copies]"}
    for cell in arms.values():
        assert cell["classifier"] == "supcon"
        assert cell["budget_used"] == {"steps": 10, "examples_per_step": 16, "examples": 160}
    assert "contrastive" in resolve_classifier("supcon", "images").description
    with pytest.raises(ValueError, match="not a classifier for table"):
        resolve_classifier("supcon", "table")
