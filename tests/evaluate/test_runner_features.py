"""What the runner can express beyond the plain few-shot grid (so the benchmarks are declarations
over it): classes the n applies to, a generator restricted to some classes, filling a class up to
the others, generated images replacing the real ones, augmented copies for the generator, a
score on the examples the draw left out; and evaluating a stored registry model, refused when
the test split overlaps what it was trained on. Real data (sklearn digits)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import genaug
from genaug.api import check_no_overlap, evaluate_model
from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, draw_training_set, evaluate, summarise

# The runner; its stored-model path (api.evaluate_model) runs on both databases in
# tests/test_cli.py::test_evaluate_model_refuses_a_test_split_it_was_trained_on_and_runs_on_one_it_was_not.
pytestmark = pytest.mark.database_agnostic

TINY_VAE = dict(mode="conditional", channels=[8, 16], hidden=16, latent_dim=4, steps=20, batchnorm=False)


@pytest.fixture(scope="module")
def digits_split():
    return stratified_split(load_digits_dataset(), test_fraction=0.3, seed=0)


def test_draw_training_set_matches_few_shot_subset_and_keeps_the_other_classes_whole(digits_split):
    train, _ = digits_split
    subset, left_out = draw_training_set(train, 3, seed=4)
    expected = few_shot_subset(train, 3, seed=4)
    assert subset.fingerprint() == expected.fingerprint()
    assert len(subset) + len(left_out) == len(train)
    assert not set(subset.item_fingerprints()) & set(left_out.item_fingerprints())

    partial, rest = draw_training_set(train, 3, seed=4, shot_classes=["7"])
    counts = partial.counts()
    assert counts["7"] == 3
    assert all(counts[c] == train.counts()[c] for c in train.class_names if c != "7")
    # The 3 sevens are the ones the full draw picked (same rng walk, one class kept).
    sevens = lambda d: sorted(i for i, y in zip(d.item_fingerprints(), d.labels) if d.class_names[y] == "7")  # noqa: E731
    assert sevens(partial) == sevens(subset)
    assert rest.counts() == {c: (train.counts()["7"] - 3 if c == "7" else 0) for c in train.class_names}

    whole, nothing = draw_training_set(train, None, seed=0)
    assert whole is train and len(nothing) == 0
    with pytest.raises(ValueError, match="not among the classes"):
        draw_training_set(train, 3, seed=0, shot_classes=["eleven"])


def test_one_class_scenario_fill_replace_and_unused_scores(digits_split):
    """Seed 002's scenarios: the target class is few-shot, the generator learns it only (from
    augmented copies), its samples balance it or replace it, and the left-out target examples
    are scored too."""
    train, test = digits_split
    spec = GeneratorSpec(label="vae", kind="vae", config=TINY_VAE, classes=["3"], augment_copies=3, variants=[
        SampleVariant(label="fill", fill="mean", arms=["real+synthetic"]),
        SampleVariant(label="replace", per_class=40, ratio=None, replace_real=True, arms=["real+synthetic"])])
    protocol = Protocol(shots=[4], seeds=[0], classifier_steps=10, arms=["real", "real+synthetic"],
                        shot_classes=["3"], score_unused=True, metric="accuracy")
    result = evaluate(train, test, [spec], protocol)
    cells = {c["arm"]: c for c in result["cells"]}
    three = train.class_names.index("3")
    others = [k for c, k in train.counts().items() if c != "3"]
    assert cells["real"]["n_train_real"] == sum(others) + 4
    fill = cells["real+synthetic[vae/fill]"]
    assert fill["samples_per_class"] == {three: int(round(np.mean(others) - 4))}
    assert fill["n_train_real"] == sum(others) + 4
    replace = cells["real+synthetic[vae/replace]"]
    assert replace["samples_per_class"] == {three: 40}
    assert replace["n_train_real"] == sum(others)  # the 4 real threes are gone
    assert replace["replace_real"] is True
    for cell in cells.values():
        assert cell["unused"]["n"] == train.counts()["3"] - 4
        assert cell["unused"]["counts"]["3"] == train.counts()["3"] - 4
        assert 0.0 <= cell["unused"]["accuracy"] <= 1.0
    rows = {r["arm"]: r for r in summarise(result)}
    assert "in place of the real ones" in rows["real+synthetic[vae/replace]"]["plain_name"]
    assert "of 3" in rows["real+synthetic[vae/replace]"]["plain_name"]
    assert 0.0 <= rows["real"]["unused_accuracy"]["low"] <= rows["real"]["unused_accuracy"]["high"] <= 1.0


def test_the_generator_sees_only_its_classes_and_the_augmented_copies(digits_split, monkeypatch):
    from genaug.generators.vae import ImageVAE

    train, test = digits_split
    seen = []
    real_fit = ImageVAE.fit

    def recording_fit(self, data, **kwargs):
        seen.append((list(data.class_names), len(data)))
        return real_fit(self, data, **kwargs)

    monkeypatch.setattr(ImageVAE, "fit", recording_fit)
    spec = GeneratorSpec(label="vae", kind="vae", config=TINY_VAE, classes=["3", "8"], augment_copies=4,
                         variants=[SampleVariant(label="v", per_class=5, ratio=None, arms=["real+synthetic"])])
    result = evaluate(train, test, [spec], Protocol(shots=[2], seeds=[0], classifier_steps=5,
                                                      arms=["real+synthetic"]))
    assert seen == [(["3", "8"], 2 * 2 * 4)]
    names = train.class_names
    assert result["cells"][0]["samples_per_class"] == {names.index("3"): 5, names.index("8"): 5}


def test_plan_errors_name_the_field(digits_split):
    train, test = digits_split
    with pytest.raises(ValueError, match="generator 'g': classes.*'twelve'"):
        evaluate(train, test, [GeneratorSpec(label="g", kind="vae", config=TINY_VAE, classes=["twelve"])],
                 Protocol(shots=[2], seeds=[0], classifier_steps=5))
    with pytest.raises(ValueError, match="shot_classes.*'twelve'"):
        evaluate(train, test, [], Protocol(shots=[2], seeds=[0], classifier_steps=5, shot_classes=["twelve"]))


# --------------------------------------------------------------------------- stored models
def test_a_stored_model_is_evaluated_as_trained_and_an_overlapping_test_split_is_refused(digits_split, tmp_path):
    train, test = digits_split
    home = tmp_path / "home"
    genaug.train(train, "vae", "digits-vae", overrides=TINY_VAE, home=home)
    protocol = Protocol(shots=[5], seeds=[0, 1], classifier_steps=10, arms=["real", "real+synthetic"])
    result = evaluate_model(train, test, "digits-vae", protocol=protocol, per_class=10, home=home)
    arms = sorted({c["arm"] for c in result["cells"]})
    assert arms == ["real", "real+synthetic[digits-vae/default]"]
    generated = [c for c in result["cells"] if c["arm"] != "real"]
    assert all(c["model"] == "digits-vae" and c["generator_fit_cpu_seconds"] == 0.0 for c in generated)
    assert all(sum(c["samples_per_class"].values()) == 10 * len(train.class_names) for c in generated)

    # A test split holding 7 of the model's training images: refused, naming the overlap.
    overlapping = LabelledImages(np.concatenate([test.images, train.images[:7]]),
                                 np.concatenate([test.labels, train.labels[:7]]), list(test.class_names),
                                 list(test.sources) + list(train.sources[:7]))
    with pytest.raises(ValueError, match=r"trained on 7 of the \d+ test items"):
        evaluate_model(train, overlapping, "digits-vae", protocol=protocol, home=home)
    with pytest.raises(ValueError, match="trained on 7"):
        check_no_overlap("digits-vae", overlapping, home)
    check_no_overlap("digits-vae", test, home)  # the disjoint split passes


def test_a_stored_model_with_other_classes_is_refused(digits_split, tmp_path):
    train, test = digits_split
    home = tmp_path / "home"
    keep = np.flatnonzero(train.labels < 3)
    small = LabelledImages(train.images[keep], train.labels[keep], train.class_names[:3],
                           [train.sources[i] for i in keep])
    genaug.train(small, "vae", "three-classes", overrides=TINY_VAE, home=home)
    with pytest.raises(ValueError, match="its classes"):
        evaluate_model(train, test, "three-classes", protocol=Protocol(shots=[2], seeds=[0], classifier_steps=5),
                       home=home)


# --------------------------------------------------------------------------- --select
def test_the_selection_never_reads_the_test_split(digits_split):
    """Corrupting every test label changes the final test scores but neither the validation
    folds' predictions nor the choice: the search sees the training split alone."""
    from genaug.evaluate.select import select_recipe, selection_sentences, validation_folds

    train, test = digits_split
    candidates = [GeneratorSpec(label="vae", kind="vae", config=TINY_VAE, variants=[
        SampleVariant(label="1:1", ratio=1.0, arms=["real+synthetic"]),
        SampleVariant(label="4:1", ratio=4.0, arms=["real+synthetic", "real+synthetic+classic"])])]
    protocol = Protocol(shots=[5], seeds=[0, 1], classifier_steps=10)
    rng = np.random.default_rng(0)
    corrupted = LabelledImages(test.images, (test.labels + rng.integers(1, 10, len(test))) % 10,
                               list(test.class_names), list(test.sources))
    runs = [select_recipe(train, t, protocol, candidates, validation_per_class=20) for t in (test, corrupted)]
    assert runs[0]["choices"] == runs[1]["choices"]
    strip = lambda r: sorted((c["n"], c["seed"], c["arm"], c["predictions"]) for c in r["validation"]["cells"])  # noqa: E731
    assert strip(runs[0]) == strip(runs[1])
    # Every search cell is kept, named by its fold's cache, and untouched by the test labels too.
    folds_kept = [sorted((c["dataset"], c["seed"], c["arm"], c["predictions"]) for c in r["fold_cells"]) for r in runs]
    assert folds_kept[0] == folds_kept[1] and len(folds_kept[0]) == 2 * 2 * 5  # folds x seeds x arms
    assert {c[0] for c in folds_kept[0]} == {"data-select-fold0", "data-select-fold1"}
    # The validation examples are training examples; none is a test example.
    folds = validation_folds(train, per_class=20)
    validation_items = {i for _, fold in folds for i in fold.item_fingerprints()}
    assert validation_items <= set(train.item_fingerprints())
    assert not validation_items & set(test.item_fingerprints())
    assert runs[0]["validation"]["n_test"] == len(validation_items) == 20 * len(train.class_names)
    # The final run scores the choice once on the (here corrupted) test split, beside the references.
    finals = [sorted({c["arm"] for c in r["final"]["cells"]}) for r in runs]
    assert finals[0] == finals[1] and {"real", "real+classic"} <= set(finals[0])
    # Same predictions on the same images, scored against other labels: the test labels reached
    # the scoring alone.
    final_cells = [{(c["seed"], c["arm"]): c for c in r["final"]["cells"]} for r in runs]
    assert final_cells[0].keys() == final_cells[1].keys()
    for key, clean in final_cells[0].items():
        assert clean["predictions"] == final_cells[1][key]["predictions"]
    assert [c["accuracy"] for c in final_cells[0].values()] != [c["accuracy"] for c in final_cells[1].values()]
    cost = runs[0]["cost"]
    assert cost["candidate_arms"] == 3 and cost["folds"] == 2 and cost["search_cpu_seconds"] > 0
    lines = selection_sentences(runs[0], summarise(runs[0]["final"]))
    assert lines[0].startswith("At 5 per class: the search over 3 candidate arms") and "Search cost" in lines[-1]
    assert "wall; cached cells take none" in lines[-1]  # the wall time is this run's, not the cells' cost


def test_a_filter_is_an_option_of_a_generator_arm_and_cells_carry_quality_numbers(digits_split):
    """"With and without filter X" is an ablation in one report: the filtered variant is its own
    arm with its own identity, its filters are fitted on the arm's real training images only, and
    every generator arm's cell scores its samples against those images. The classic kind hands
    out altered training images: the near-copy filter (ratio 0.6) rejects some of them."""
    from genaug.evaluate.identity import cell_identity
    from genaug.evaluate.classifiers import resolve_classifier
    from genaug.evaluate.report import markdown_table

    train, test = digits_split
    spec = GeneratorSpec(label="classic", kind="classic", variants=[
        SampleVariant(label="plain", per_class=12, ratio=None),
        SampleVariant(label="filtered", per_class=12, ratio=None, filters=["confidence:0.5", "near-copy:0.6"])])
    protocol = Protocol(shots=[10], seeds=[0], classifier_steps=10, arms=["real", "real+synthetic", "synthetic"],
                        quality_samples=12, metric="accuracy")
    result = evaluate(train, test, [spec], protocol, keep_samples=False)
    cells = {c["arm"]: c for c in result["cells"]}
    plain, kept = cells["real+synthetic[classic/plain]"], cells["real+synthetic[classic/filtered]"]
    stage = kept["filter_stats"]["filter_stage"]
    assert stage["filters"] == ["confidence:0.5", "near-copy:0.6"] and stage["drawn"] >= stage["accepted"]
    assert stage["drawn"] == stage["accepted"] + stage["surplus"] + stage["rejected"]
    assert stage["rejected_by"]["near-copy"] > 0  # altered copies of the training digits
    assert sum(kept["planned_per_class"].values()) == 120 and stage["accepted"] + sum(stage["short"].values()) == 120
    assert sum(kept["samples_per_class"].values()) == stage["accepted"]  # what the classifier got, not the plan
    assert "filter_stage" not in plain["filter_stats"] and plain["filters"] == [] and kept["filters"] == stage["filters"]
    for cell in (plain, kept):
        quality = cell["quality"]
        assert quality["references"] == 100 and 0 < quality["samples"] <= 120 and cell["quality_samples"] == 12
        assert quality["kid"] is not None and 0 <= quality["coverage"] <= 1 and 0 <= quality["near_copy_share"] <= 1
    # the filter removed the samples that looked most like copies
    assert kept["quality"]["near_copy_share"] <= plain["quality"]["near_copy_share"]
    fp = (train.fingerprint(), test.fingerprint())
    classifier = resolve_classifier(protocol.classifier, "images")
    ids = {v.label: cell_identity(protocol, classifier, *fp, spec, v) for v in spec.variants}
    assert ids["plain"] != ids["filtered"]
    # quality numbers do not change a cell's identity (no recomputation of the score for them)
    assert cell_identity(protocol.model_copy(update={"quality_samples": 0}), classifier, *fp, spec,
                         spec.variants[0]) == ids["plain"]
    rows = {r["arm"]: r for r in summarise(result)}
    assert rows["synthetic[classic/filtered]"]["gqi_filtered"] is True
    assert rows["synthetic[classic/plain]"]["gqi_filtered"] is False
    assert "(filtered)" in markdown_table(summarise(result))
    with pytest.raises(ValueError, match="unknown; known filters"):
        SampleVariant(filters=["sharpness"])


@pytest.mark.parametrize("kind,config", [("vae", TINY_VAE), ("dcgan", None)])
def test_a_finished_fit_is_reused_by_another_run_and_samples_the_same(digits_split, tmp_path, monkeypatch, kind,
                                                                       config):
    """A second run under another dataset name (the benchmarks use one per classifier) loads the
    generator fitted by the first instead of training it again, and its cells are identical:
    the stored fit samples exactly as the fresh one did. Another seed or n fits anew."""
    from genaug.generators.base import get_generator_class

    train, test = digits_split
    cls = get_generator_class(kind)
    config = config or cls.tiny_config().model_dump(mode="json")
    fits = []
    real_fit = cls.fit

    def counting_fit(self, data, **kwargs):
        fits.append(len(data))
        return real_fit(self, data, **kwargs)

    monkeypatch.setattr(cls, "fit", counting_fit)
    spec = GeneratorSpec(label="g", kind=kind, config=config,
                         variants=[SampleVariant(label="v", per_class=4, ratio=None, arms=["real+synthetic"])])
    protocol = Protocol(shots=[3], seeds=[0], classifier_steps=5, arms=["real+synthetic"])
    first = evaluate(train, test, [spec], protocol, dataset_name="first", cache_dir=tmp_path)
    # without the kept draws (test below) the second run needs the generator itself again
    shutil.rmtree(tmp_path / "samples")
    second = evaluate(train, test, [spec], protocol, dataset_name="second", cache_dir=tmp_path)
    assert fits == [30]
    a, b = first["cells"][0], second["cells"][0]
    assert a["predictions"] == b["predictions"] and a["weighted_f1"] == b["weighted_f1"]
    assert a["generator_fit_cpu_seconds"] == b["generator_fit_cpu_seconds"] > 0
    evaluate(train, test, [spec], protocol.model_copy(update={"seeds": [1]}), dataset_name="second",
             cache_dir=tmp_path)
    assert fits == [30, 30]
    assert not list((tmp_path / "fitted").glob("*.tmp*"))
    assert len(list((tmp_path / "fitted").iterdir())) == 2
    # a damaged kept fit is fitted again, not fatal (and not loaded)
    for weights in (tmp_path / "fitted").rglob("*.safetensors"):
        weights.write_bytes(b"torn")
    shutil.rmtree(tmp_path / "samples")
    third = evaluate(train, test, [spec], protocol, dataset_name="third", cache_dir=tmp_path)
    assert fits == [30, 30, 30] and third["cells"][0]["predictions"] == a["predictions"]


def test_a_draw_is_kept_and_loaded_instead_of_drawn_again(digits_split, tmp_path, monkeypatch):
    """A run with another classifier (another dataset name, as the benchmarks use) or new arms
    loads a generator's draw instead of fitting and sampling again: the same images bit for bit,
    so the same cells; other sample options are another draw -- also an option left out against
    one set to the kind's default when the config changed it; a damaged file is drawn again, not
    fatal; a filtered draw (its filters judge with a classifier) is never kept."""
    from genaug.generators.base import get_generator_class

    train, test = digits_split
    cls = get_generator_class("vae")
    fits, draws = [], []
    real_fit, real_sample = cls.fit, cls.sample

    def counting_fit(self, data, **kwargs):
        fits.append(len(data))
        return real_fit(self, data, **kwargs)

    def counting_sample(self, n, **kwargs):
        draws.append(n)
        return real_sample(self, n, **kwargs)

    monkeypatch.setattr(cls, "fit", counting_fit)
    monkeypatch.setattr(cls, "sample", counting_sample)
    # alpha 0.2 in the config, the kind's default 0.5: a variant that leaves alpha out draws at 0.2
    config = {**TINY_VAE, "alpha": 0.2, "sampler": "interpolation"}

    def spec(*variants):
        return GeneratorSpec(label="g", kind="vae", config=config, variants=list(variants))

    plain = SampleVariant(label="v", per_class=4, ratio=None, arms=["real+synthetic"])
    protocol = Protocol(shots=[3], seeds=[0], classifier_steps=5, arms=["real+synthetic"])
    first = evaluate(train, test, [spec(plain)], protocol, dataset_name="first", cache_dir=tmp_path)
    assert fits == [30] and sum(draws) == 40
    kept = list((tmp_path / "samples").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".npz"

    second = evaluate(train, test, [spec(plain)], protocol, dataset_name="second", cache_dir=tmp_path)
    assert fits == [30] and sum(draws) == 40  # neither fitted (nor loaded) nor sampled
    drawn, loaded = first["samples"]["g/v"][0], second["samples"]["g/v"][0]
    assert loaded.data.dtype == np.uint8 and np.array_equal(drawn.data, loaded.data)
    assert np.array_equal(drawn.labels, loaded.labels)
    a, b = first["cells"][0], second["cells"][0]
    assert a["predictions"] == b["predictions"] and a["weighted_f1"] == b["weighted_f1"]
    assert a["samples_per_class"] == b["samples_per_class"]
    assert a["generator_fit_cpu_seconds"] == b["generator_fit_cpu_seconds"] > 0

    # alpha set to the kind's default is another draw than alpha left out (0.2 from the config)
    default = plain.model_copy(update={"label": "w", "options": {"alpha": 0.5}})
    third = evaluate(train, test, [spec(plain, default)], protocol, dataset_name="third", cache_dir=tmp_path)
    assert fits == [30] and sum(draws) == 80  # from the kept fit: no new training
    assert len(list((tmp_path / "samples").iterdir())) == 2
    assert not np.array_equal(third["samples"]["g/w"][0].data, drawn.data)

    # a damaged draw (garbage, truncated, emptied) is drawn again: the same images, so the same cell
    before = sum(draws)
    for damage in (lambda body: b"torn", lambda body: body[: len(body) // 2], lambda body: b""):
        for path in (tmp_path / "samples").iterdir():
            path.write_bytes(damage(path.read_bytes()))
        again = evaluate(train, test, [spec(plain)], protocol, dataset_name="again", cache_dir=tmp_path)
        assert again["cells"][0]["predictions"] == a["predictions"]
        assert np.array_equal(again["samples"]["g/v"][0].data, drawn.data)
        (tmp_path / "again").rename(tmp_path / f"again-{sum(draws)}")  # its cells: computed anew next time
    assert sum(draws) == before + 3 * 40
    assert not list((tmp_path / "samples").glob(".*.tmp"))

    # a filtered draw is not kept
    filtered = plain.model_copy(update={"label": "f", "filters": ["near-copy:0.6"]})
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    evaluate(train, test, [spec(filtered)], protocol, dataset_name="fifth", cache_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == names
