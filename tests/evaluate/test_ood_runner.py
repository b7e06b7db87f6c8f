"""Seed 000's protocol in the runner: OOD detection columns (near-OOD = held-out classes, far-OOD =
another set) and the supcon arm with near-OOD negatives drawn from the arm's own generator.
Real data: sklearn digits, classes 0-5 in distribution, 6-9 held out."""
from __future__ import annotations

import numpy as np
import pytest

from genaug.data import LabelledImages, load_digits_dataset, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate
from genaug.evaluate.classifiers import resolve_classifier
from genaug.evaluate.identity import cell_identity
from genaug.evaluate.ood import SCORES
from genaug.evaluate.ood import knn_neighbours
from genaug.evaluate.protocol import NearOODNegatives
from genaug.generators.diffusion import DDIMDiffusion

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

IN_CLASSES = 6


@pytest.fixture(scope="module")
def split():
    """(train, test) of digits 0-5, the held-out digits 6-9 as near-OOD, inverted digits as far-OOD."""
    data = load_digits_dataset()
    inside = np.flatnonzero(data.labels < IN_CLASSES)
    held_out = np.flatnonzero(data.labels >= IN_CLASSES)[:120]
    train, test = stratified_split(LabelledImages(data.images[inside], data.labels[inside],
                                                  data.class_names[:IN_CLASSES]), 0.3, seed=0)
    near = LabelledImages(data.images[held_out], np.zeros(len(held_out), np.int64), ["ood"])
    far = LabelledImages(255 - data.images[inside[:100]], np.zeros(100, np.int64), ["ood"])
    return train, test, {"near": near, "far": far}


def ddim_spec(variants):
    config = DDIMDiffusion.tiny_config().model_dump(mode="json")
    config.update(mode="conditional", steps=20)
    return GeneratorSpec(label="ddim", kind="ddim", config=config, variants=variants)


def test_every_cell_reports_each_score_on_each_ood_set(split, tmp_path):
    train, test, ood = split
    protocol = Protocol(shots=[8], seeds=[0], classifier_steps=60, classifier_batch=32, arms=["real"])
    result = evaluate(train, test, [], protocol, cache_dir=tmp_path, ood=ood)
    cell = result["cells"][0]
    assert set(cell["ood"]["sets"]) == {"near", "far"}
    for name in ("near", "far"):
        for score in SCORES:
            metrics = cell["ood"]["sets"][name][score]
            assert set(metrics) == {"auroc", "fpr95", "aupr_in", "aupr_out"}
            assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert cell["ood"]["knn_k"] == knn_neighbours(8 * IN_CLASSES) == 4
    assert cell["ood"]["n_in"] == len(test) and cell["ood"]["n_out"] == {"near": 120, "far": 100}
    # Inverted digits are far from anything the CNN saw: its features tell them apart.
    assert cell["ood"]["sets"]["far"]["knn"]["auroc"] > 0.8
    # The predictions are the same run's: an OOD-less run of the same cell predicts the same labels.
    plain = evaluate(train, test, [], protocol)
    assert plain["cells"][0]["predictions"] == cell["predictions"] and "ood" not in plain["cells"][0]


def test_ood_sets_enter_the_cell_identity_and_a_changed_set_recomputes(split, tmp_path):
    train, test, ood = split
    protocol = Protocol(shots=[4], seeds=[0], classifier_steps=5, classifier_batch=16, arms=["real"])
    classifier = resolve_classifier("cnn", "images")
    fps = train.fingerprint(), test.fingerprint()
    without = cell_identity(protocol, classifier, *fps)
    with_sets = cell_identity(protocol, classifier, *fps, ood={k: v.fingerprint() for k, v in ood.items()})
    assert without != with_sets
    evaluate(train, test, [], protocol, cache_dir=tmp_path, ood=ood)
    (cell_file,) = tmp_path.rglob("real.json")
    written = cell_file.stat().st_mtime_ns
    again = evaluate(train, test, [], protocol, cache_dir=tmp_path, ood=ood)
    assert cell_file.stat().st_mtime_ns == written and "ood" in again["cells"][0]  # read from the cache
    changed = dict(ood, far=ood["far"].subset(range(50)))
    other = evaluate(train, test, [], protocol, cache_dir=tmp_path, ood=changed)
    assert other["cells"][0]["ood"]["n_out"]["far"] == 50 and cell_file.stat().st_mtime_ns != written


def test_ood_sets_are_refused_when_they_cannot_be_scored(split):
    train, test, ood = split
    protocol = Protocol(shots=[4], seeds=[0], classifier_steps=5, arms=["real"])
    wrong_shape = LabelledImages(np.zeros((3, 4, 4, 1), np.uint8), np.zeros(3, np.int64), ["ood"])
    with pytest.raises(ValueError, match="ood: set 'small' has images of shape"):
        evaluate(train, test, [], protocol, ood={"small": wrong_shape})
    with pytest.raises(ValueError, match="logits and features"):
        evaluate(train, test, [], protocol.model_copy(update={"classifier": "numpy:argmax"}),
                 ood=ood)


def test_negatives_need_supcon_and_cross_class_needs_a_kind_that_can(split):
    train, test, _ = split
    negatives = NearOODNegatives(options={"strength": 0.5, "steps": 4, "mode": "img2img"}, per_class=2)
    spec = ddim_spec([SampleVariant(label="pos+neg", options={"strength": 0.2, "steps": 4, "mode": "img2img"},
                                    per_class=2, negatives=negatives, arms=["real+synthetic"])])
    with pytest.raises(ValueError, match="need --classifier supcon"):
        evaluate(train, test, [spec], Protocol(shots=[2], seeds=[0], classifier_steps=5, classifier="cnn"))
    vae = GeneratorSpec(label="vae", kind="vae", config={"mode": "per_class", "steps": 2},
                        variants=[SampleVariant(label="x", per_class=2, negatives=NearOODNegatives(
                            per_class=2, cross_class=True))])
    with pytest.raises(ValueError, match="cross_class needs a kind"):
        evaluate(train, test, [vae], Protocol(shots=[2], seeds=[0], classifier_steps=5, classifier="supcon"))
    bad_option = ddim_spec([SampleVariant(label="x", per_class=2, negatives=NearOODNegatives(
        per_class=2, options={"strenght": 0.5}))])
    with pytest.raises(ValueError, match=r"unknown sample option\(s\) \['strenght'\]"):
        evaluate(train, test, [bad_option], Protocol(shots=[2], seeds=[0], classifier_steps=5, classifier="supcon"))


def test_the_negatives_arm_trains_on_the_same_positives_with_negatives_added(split, tmp_path):
    """Three variants of one fitted DDIM: positives alone (img2img 0.2), + negatives at strength 0.5
    at weight 0 (must train exactly as positives alone: the negatives only enter the loss), and
    + cross-class negatives at weight 1 (must train differently). Every arm: the same budget."""
    train, test, ood = split
    positive = {"strength": 0.2, "steps": 4, "mode": "img2img"}
    spec = ddim_spec([
        SampleVariant(label="pos", options=positive, per_class=3, arms=["real+synthetic"]),
        SampleVariant(label="pos+neg0", options=positive, per_class=3, arms=["real+synthetic", "synthetic"],
                      negatives=NearOODNegatives(options={**positive, "strength": 0.5}, per_class=4, weight=0.0)),
        SampleVariant(label="pos+cross", options=positive, per_class=3, arms=["real+synthetic"],
                      negatives=NearOODNegatives(options=positive | {"strength": 0.6}, per_class=4,
                                                 cross_class=True, to="all")),
    ])
    protocol = Protocol(shots=[3], seeds=[0], classifier_steps=12, classifier_batch=16, classifier="supcon",
                        arms=["real", "real+synthetic", "synthetic"], quality_samples=4)
    result = evaluate(train, test, [spec], protocol, cache_dir=tmp_path, ood=ood)
    cells = {c["arm"]: c for c in result["cells"]}
    pos, zero, cross = (cells[f"real+synthetic[ddim/{v}]"] for v in ("pos", "pos+neg0", "pos+cross"))
    for cell in cells.values():
        assert cell["budget_used"]["steps"] == 12 and cell["budget_used"]["examples_per_step"] == 16
        assert "ood" in cell
    assert "negatives" not in pos and "negatives" not in pos["budget_used"]
    # The synthetic-only arm of a variant with negatives trains with them too (its cell says so).
    only = cells["synthetic[ddim/pos+neg0]"]
    assert only["budget_used"]["negatives"] == 4 * IN_CLASSES and only["negatives"]["weight"] == 0.0
    assert zero["budget_used"]["negatives"] == cross["budget_used"]["negatives"] == 4 * IN_CLASSES
    assert zero["negatives"]["per_class"] == {c: 4 for c in range(IN_CLASSES)}
    assert cross["negatives"]["cross_class"] is True and cross["negatives"]["to"] == "all"
    assert cross["negatives"]["quality"]["samples"] == 4 * IN_CLASSES  # how near is near: a number
    assert zero["predictions"] == pos["predictions"]
    assert zero["ood"] == pos["ood"]
    assert cross["ood"] != pos["ood"]
    # Another run loads the positives it kept (cache/samples/) and draws the negatives from the
    # kept fit again: the same cells.
    again = evaluate(train, test, [spec], protocol, cache_dir=tmp_path, ood=ood, dataset_name="again")
    assert [(c["arm"], c["predictions"], c["ood"]) for c in again["cells"]] == \
        [(c["arm"], c["predictions"], c["ood"]) for c in result["cells"]]
    # The negatives are part of the identity: another weight is another cell.
    classifier = resolve_classifier("supcon", "images")
    fps = train.fingerprint(), test.fingerprint()
    ids = {v.label: cell_identity(protocol, classifier, *fps, spec, v) for v in spec.variants}
    assert len(set(ids.values())) == 3
    heavier = spec.variants[1].model_copy(update={"negatives": spec.variants[1].negatives.model_copy(
        update={"weight": 0.5})})
    assert cell_identity(protocol, classifier, *fps, spec, heavier) != ids["pos+neg0"]


def test_summarise_ood_spreads_over_seeds_and_pairs_differences_by_seed():
    from genaug.evaluate.ood_summary import METRICS, better, ood_table, summarise_ood

    def cell(seed, arm, value):
        return {"classifier": "supcon", "n": 5, "seed": seed, "arm": arm, "accuracy": 0.5,
                "ood": {"sets": {"near": {s: {m: value for m in METRICS} for s in SCORES}}}}
    cells = [cell(0, "real", 0.60), cell(1, "real", 0.70), cell(0, "x", 0.65), cell(1, "x", 0.68),
             cell(0, "y", 0.70), cell(1, "y", 0.75), {"classifier": "supcon", "n": 5, "seed": 0, "arm": "z"}]
    rows = {r["arm"]: r for r in summarise_ood(cells, {"supcon": "real"})}
    assert set(rows) == {"real", "x", "y"}  # a cell without OOD metrics is not a row
    spread = rows["x"]["sets"]["near"]["knn"]["auroc"]
    assert spread["mean"] == pytest.approx(0.665) and (spread["min"], spread["max"], spread["n_seeds"]) == (0.65, 0.68, 2)
    mixed = rows["x"]["delta"]["near"]["energy"]["auroc"]  # +0.05 on seed 0, -0.02 on seed 1
    assert mixed["mean"] == pytest.approx(0.015) and mixed["consistent"] is False
    assert rows["y"]["delta"]["near"]["energy"]["auroc"]["consistent"] is True
    assert "delta" not in rows["real"]
    single = {r["arm"]: r for r in summarise_ood(cells[:3] + cells[4:5], {"supcon": "real"})}
    assert single["x"]["delta"]["near"]["knn"]["auroc"]["consistent"] is False  # one seed agrees with itself
    assert "(1 seed)" in ood_table(list(single.values()), "near")
    table = ood_table(list(rows.values()), "near", "auroc", {"supcon/x": "plain x"})
    assert "plain x" in table and "(mixed)" in table and "+0.015" in table
    assert better("fpr95", -0.1) and not better("auroc", -0.1) and better("auroc", 0.1)


def test_aliases_and_explicit_defaults_of_new_options_hash_like_the_plain_spelling(split, monkeypatch):
    train, test, _ = split
    protocol = Protocol(shots=[2], seeds=[0], classifier_steps=5)
    classifier = resolve_classifier("cnn", "images")
    fps = train.fingerprint(), test.fingerprint()
    spec = ddim_spec([SampleVariant()])

    def identity(**options):
        return cell_identity(protocol, classifier, *fps, spec, SampleVariant(options=options))
    assert identity(solver="dpm++2m") == identity(scheduler="dpm++2m") != identity()
    assert identity(precision="fp32", channels_last=False) == identity()
    assert identity(precision="bf16") != identity()
    # Where bf16 would fall back to fp32, an evaluation asking for it is refused (its identity would lie).
    import genaug.generators.diffusion_sampling as sampling

    monkeypatch.setattr(sampling, "bf16_supported", lambda device: False)
    bf16 = ddim_spec([SampleVariant(options={"precision": "bf16"}, per_class=2)])
    with pytest.raises(ValueError, match="options.precision: bf16 is not native on this machine"):
        evaluate(train, test, [bf16], protocol)
