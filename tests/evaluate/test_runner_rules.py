"""The experiment runner's rules: identities that recompute, one budget for every arm, arms that
exist for the data, a pool fit independent of n, user classifiers, intervals inside the range,
warnings, and a recommendation that says when nothing helps. Real data (sklearn digits, PROBEN1)."""
from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import pydantic
import pytest

from genaug.data import LabelledImages, load_digits_dataset, load_proben1, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, recommend, summarise, write_report
from genaug.evaluate.metrics import decode_predictions, encode_predictions
from genaug.evaluate.summary import result_warnings
from genaug.generators.vae import ImageVAE
from genaug.hardware import cpu_description
from genaug.progress import RECOMPUTED_MARK

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

TINY_VAE = dict(mode="conditional", channels=[8, 16], hidden=16, latent_dim=4, steps=20, batchnorm=False)


@pytest.fixture(scope="module")
def digits_split():
    return stratified_split(load_digits_dataset(), test_fraction=0.3, seed=0)


def _vae(**variant) -> GeneratorSpec:
    return GeneratorSpec(label="vae", kind="vae", config=TINY_VAE,
                         variants=[SampleVariant(label="v", **({"ratio": 1.0} | variant))])


def _stamps(cache) -> dict:
    """Modification times of the cached cells (the kept generator fits under fitted/ apart)."""
    return {p.relative_to(cache).as_posix(): p.stat().st_mtime_ns for p in cache.rglob("*.json")
            if "fitted" not in p.relative_to(cache).parts}


def _run(train, test, cache, progress=None, **protocol):
    spec = protocol.pop("spec", _vae())
    p = Protocol(**({"shots": [2], "seeds": [0], "classifier_steps": 10, "arms": ["real", "real+synthetic"]} | protocol))
    return evaluate(train, test, [spec], p, cache_dir=cache, progress=progress)


# --------------------------------------------------------------------------- identity
def test_a_changed_generator_default_recomputes_the_generator_cells(digits_split, tmp_path, monkeypatch):
    train, test = digits_split
    _run(train, test, tmp_path)
    before = _stamps(tmp_path)
    _run(train, test, tmp_path)
    assert _stamps(tmp_path) == before, "the same settings must reuse every cell"
    # The same config with a default of the kind changed (as a code change would): the spec
    # itself does not mention the field, yet its generator cells must be recomputed.
    changed = pydantic.create_model("ChangedVAEConfig", __base__=ImageVAE.Config,
                                    beta=(float, ImageVAE.Config.model_fields["beta"].default * 2))
    monkeypatch.setattr(ImageVAE, "Config", changed)
    _run(train, test, tmp_path)
    after = _stamps(tmp_path)
    real = [k for k in before if k.endswith("/real.json")]
    generated = [k for k in before if "synthetic" in k]
    assert real and generated
    assert all(after[k] == before[k] for k in real), "the real arm does not depend on the generator"
    assert all(after[k] != before[k] for k in generated), "a changed default must recompute"


def test_a_bumped_generator_version_recomputes(digits_split, tmp_path, monkeypatch):
    train, test = digits_split
    _run(train, test, tmp_path)
    before = _stamps(tmp_path)
    monkeypatch.setattr(ImageVAE, "version", ImageVAE.version + "-bumped")
    events = []
    _run(train, test, tmp_path, progress=events.append)
    after = _stamps(tmp_path)
    assert [k for k in before if after[k] != before[k]] == [k for k in before if "synthetic" in k]
    # the new fit comes first, and its progress line already says why the cached cell is not reused
    fits = [e.message for e in events if " fit " in e.message]
    assert fits == [f"n=2 seed=0 fit vae (for real+synthetic[vae/v]{RECOMPUTED_MARK}a cached cell of other settings "
                    "(e.g. another version, budget, data, classifier or lite0 precision) is not reused)"]


def test_a_bumped_classifier_version_recomputes_every_cell(digits_split, tmp_path, monkeypatch):
    import importlib

    classifiers = importlib.import_module("genaug.evaluate.classifiers")  # genaug.evaluate is also a function
    train, test = digits_split
    _run(train, test, tmp_path)
    before = _stamps(tmp_path)
    fits = {p: p.stat().st_mtime_ns for p in (tmp_path / "fitted").rglob("*")}
    monkeypatch.setattr(classifiers, "CLASSIFIER_VERSION", classifiers.CLASSIFIER_VERSION + 100)
    events = []
    _run(train, test, tmp_path, progress=events.append)
    after = _stamps(tmp_path)
    assert all(after[k] != before[k] for k in before)
    # the generator's fit does not depend on the classifier: the kept fit is loaded, not redone
    assert fits and {p: p.stat().st_mtime_ns for p in (tmp_path / "fitted").rglob("*")} == fits
    # ... and the progress lines say so as each cell starts, not after the run
    computing = [e.message for e in events if e.message.startswith("n=2 seed=0 real")]
    assert sorted(computing) == sorted(f"n=2 seed=0 {arm}{RECOMPUTED_MARK}a cached cell of other settings (e.g. "
                                       "another version, budget, data, classifier or lite0 precision) is not reused"
                                       for arm in ("real", "real+synthetic[vae/v]"))
    # a cell computed for the first time is not said to be recomputed
    fresh = []
    _run(train, test, tmp_path / "fresh", progress=fresh.append)
    assert sorted(e.message for e in fresh if e.message.startswith("n=2 seed=0 real")) == [
        "n=2 seed=0 real", "n=2 seed=0 real+synthetic[vae/v]"]


def test_a_cell_recomputed_for_quality_numbers_or_an_unreadable_file_says_why(digits_split, tmp_path):
    train, test = digits_split
    _run(train, test, tmp_path)
    # The same settings asking for quality numbers the cached generator cell lacks: the identity is
    # the same, so the reason is the missing numbers, not other settings.
    events = []
    _run(train, test, tmp_path, progress=events.append, quality_samples=4)
    computing = [e.message for e in events if e.message.startswith("n=2 seed=0 real")]
    assert computing == [f"n=2 seed=0 real+synthetic[vae/v]{RECOMPUTED_MARK}"
                         "its cached cell lacks the quality numbers asked for"]
    # A cell file that cannot be read is computed again and said to be unreadable.
    (real_file,) = [p for p in tmp_path.rglob("real.json") if "fitted" not in p.parts]
    real_file.write_text("{not json")
    events = []
    _run(train, test, tmp_path, progress=events.append, quality_samples=4)
    assert [e.message for e in events if e.message.startswith("n=2 seed=0 real")] == [
        f"n=2 seed=0 real{RECOMPUTED_MARK}its cached file cannot be read"]
    assert json.loads(real_file.read_text())["arm"] == "real"  # rewritten whole


def test_the_fit_line_names_the_cell_it_serves_and_a_partial_report_counts_cells_without_quality(
        digits_split, tmp_path):
    from genaug.evaluate.cell_cache import CellCache

    train, test = digits_split
    _run(train, test, tmp_path)  # real and real+synthetic cached, the fit and its draw kept
    # A partial report asking for quality numbers the cached generator cell lacks: left out, and
    # counted as cached under other settings; the real cell is still read back.
    wanted = Protocol(shots=[2], seeds=[0], classifier_steps=10, arms=["real", "real+synthetic"], quality_samples=4)
    partial = evaluate(train, test, [_vae()], wanted, cache_dir=tmp_path, cached_only=True)
    assert [c["arm"] for c in partial["cells"]] == ["real"]
    assert partial["not_cached"] == {"cells": 1, "under_other_identity": 1,
                                     "first": ["n=2 seed=0 real+synthetic[vae/v]"]}
    # A second generator arm whose cached cell holds other settings, the first one's cell reusable:
    # the fit (needed again once the kept draw is gone) is for the second, and its line says so.
    (mixed,) = [p for p in tmp_path.rglob("*.json") if json.loads(p.read_text()).get("arm") == "real+synthetic[vae/v]"]
    other = json.loads(mixed.read_text()) | {"arm": "real+synthetic+classic[vae/v]", "identity": "other"}
    cache = CellCache(tmp_path, mixed.parent.parent.parent.name)
    assert cache.restore(other | {"n": 2, "seed": 0})
    shutil.rmtree(tmp_path / "samples")
    events = []
    _run(train, test, tmp_path, progress=events.append, arms=["real", "real+synthetic", "real+synthetic+classic"])
    assert [e.message for e in events if " fit " in e.message] == [
        f"n=2 seed=0 fit vae (for real+synthetic+classic[vae/v]{RECOMPUTED_MARK}a cached cell of other settings "
        "(e.g. another version, budget, data, classifier or lite0 precision) is not reused)"]


def test_the_cli_prints_a_recomputed_cell_in_full(capsys):
    from genaug.cli import ProgressBars
    from genaug.progress import ProgressEvent

    arm = "real+synthetic+classic[ddim-pool/img2img0.7,2000]"
    long = f"n=5 seed=2 {arm}{RECOMPUTED_MARK}its cached file cannot be read"
    with ProgressBars() as bars:
        bars(ProgressEvent("evaluate", 1, 4, message="n=5 seed=2 real"))
        bars(ProgressEvent("evaluate", 2, 4, message=long))
    err = capsys.readouterr().err
    assert f"evaluate: {long}" in " ".join(err.split())  # in full (however wrapped), though the bar shows 60 characters
    assert "evaluate: n=5 seed=2 real\n" not in err  # an ordinary progress line stays in the bar


def test_one_changed_pixel_in_the_train_or_test_data_recomputes(digits_split, tmp_path):
    train, test = digits_split
    _run(train, test, tmp_path)
    before = _stamps(tmp_path)
    images = test.images.copy()
    images[-1, 0, 0, 0] ^= 1  # one pixel of the last test image
    touched_test = LabelledImages(images, test.labels, test.class_names, test.sources)
    _run(train, touched_test, tmp_path)
    after_test = _stamps(tmp_path)
    assert all(after_test[k] != before[k] for k in before)
    images = train.images.copy()
    images[-1, 0, 0, 0] ^= 1  # an image the 2-shot subset may not even contain: the data changed all the same
    touched_train = LabelledImages(images, train.labels, train.class_names, train.sources)
    _run(train.__class__(images, train.labels, train.class_names, train.sources), touched_test, tmp_path)
    assert all(v != after_test[k] for k, v in _stamps(tmp_path).items())
    assert touched_train.fingerprint() != train.fingerprint()


def test_an_explicit_default_and_an_omitted_one_are_the_same_cell(digits_split, tmp_path):
    train, test = digits_split
    _run(train, test, tmp_path)
    before = _stamps(tmp_path)
    explicit = dict(TINY_VAE, beta=ImageVAE.Config.model_fields["beta"].default)
    _run(train, test, tmp_path, spec=GeneratorSpec(label="vae", kind="vae", config=explicit,
                                                   variants=[SampleVariant(label="v", ratio=1.0)]))
    assert _stamps(tmp_path) == before


def test_an_option_set_to_the_kinds_default_under_a_config_that_changed_it_is_another_cell(digits_split, tmp_path):
    # The config interpolates with alpha 0.9; a variant that leaves alpha out draws with 0.9, one
    # that sets the kind's default 0.5 draws with 0.5: two draws, so two cells (not a stale reuse).
    train, test = digits_split
    default_alpha = ImageVAE.SampleOptions.model_fields["alpha"].default
    config = dict(TINY_VAE, sampler="interpolation", alpha=0.9)
    assert default_alpha != 0.9

    def spec(options):
        return GeneratorSpec(label="vae", kind="vae", config=config,
                             variants=[SampleVariant(label="v", ratio=1.0, options=options)])
    _run(train, test, tmp_path, spec=spec({}))
    before = _stamps(tmp_path)
    (cell,) = [name for name in before if "real+synthetic" in name]
    _run(train, test, tmp_path, spec=spec({"alpha": default_alpha}))
    after = _stamps(tmp_path)
    assert after[cell] != before[cell], "the explicit default reused the cell drawn with the config's alpha"
    assert {n: t for n, t in after.items() if n != cell} == {n: t for n, t in before.items() if n != cell}
    # Setting the config's own value: not the explicit default's cell either.
    _run(train, test, tmp_path, spec=spec({"alpha": 0.9}))
    assert _stamps(tmp_path)[cell] != after[cell]


# --------------------------------------------------------------------------- budget rule
def test_every_image_arm_consumes_the_same_steps_and_examples_per_step(digits_split):
    train, test = digits_split
    protocol = Protocol(shots=[2], seeds=[0], classifier_steps=12, classifier_batch=48)
    result = evaluate(train, test, [_vae(per_class=15, ratio=None)], protocol)
    assert {c["arm"] for c in result["cells"]} == {"real", "real+classic", "synthetic[vae/v]",
                                                     "real+synthetic[vae/v]", "real+synthetic+classic[vae/v]"}
    for cell in result["cells"]:
        # The real arm has 20 images, the synthetic one 150, the mixed ones 170: all the same effort.
        assert cell["budget_used"] == {"steps": 12, "examples_per_step": 48, "examples": 12 * 48}, cell["arm"]
        assert cell["classifier"] == "cnn"


@pytest.fixture(scope="module")
def thyroid():
    try:
        loaded = load_proben1("thyroid", permutation=1)
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    return loaded.data, loaded.test


TINY_TABLE_VAE = dict(mode="per_class", hidden=[16, 8], steps=20, batch_size=16)


def test_table_arms_refuse_classic_and_the_mlp_keeps_the_budget(thyroid, tmp_path):
    train, test = thyroid
    spec = GeneratorSpec(label="tvae", kind="tabular_vae", config=TINY_TABLE_VAE, variants=[SampleVariant(label="v")])
    with pytest.raises(ValueError, match="classic augmentation does not exist for table rows"):
        evaluate(train, test, [spec], Protocol(shots=[5], seeds=[0], arms=["real", "real+classic"]))
    with pytest.raises(ValueError, match="real\\+synthetic\\+classic"):
        evaluate(train, test, [GeneratorSpec(label="t", kind="tabular_vae", config=TINY_TABLE_VAE,
                                             variants=[SampleVariant(arms=["real+synthetic+classic"])])],
                 Protocol(shots=[5], seeds=[0], arms=["real"]))
    with pytest.raises(ValueError, match="classifier: 'cnn' is not a classifier for table"):
        evaluate(train, test, [], Protocol(shots=[5], seeds=[0], classifier="cnn"))
    result = evaluate(train, test, [spec], Protocol(shots=[5], seeds=[0], classifier_steps=15), cache_dir=tmp_path)
    assert result["arms"] == ["real", "synthetic", "real+synthetic"], "default arms for tables: no classic"
    assert not (tmp_path / "samples").exists(), "table rows are cheap to draw: never kept"
    assert {c["arm"] for c in result["cells"]} == {"real", "synthetic[tvae/v]", "real+synthetic[tvae/v]"}
    for cell in result["cells"]:  # 15 real rows, 15 synthetic, 30 mixed: 64 rows every step all the same
        assert cell["budget_used"] == {"steps": 15, "examples_per_step": 64, "examples": 15 * 64}, cell["arm"]


def test_the_automatic_choice_on_a_table_searches_only_arms_that_exist_for_tables(thyroid, tmp_path, monkeypatch):
    """`genaug recommend` on table rows (the request's path, as the CLI and the service take it):
    the default grid's candidates run without "+classic" arms (they do not exist for tables; the
    search once asked for them and was refused), on a validation pool of the requested size."""
    from genaug.api import evaluate_request
    from genaug.evaluate import select
    from genaug.evaluate.request import EvaluationRequest
    from genaug.evaluate.select import validation_pool_sizes

    train, test = thyroid
    real_grid = select.default_grid

    def tiny_grid(data, **kwargs):  # the default grid's candidates, at a test's budget
        return [spec.model_copy(update={"config": {**spec.config, **TINY_TABLE_VAE}}) for spec in real_grid(data, **kwargs)]
    monkeypatch.setattr(select, "default_grid", tiny_grid)
    request = EvaluationRequest(select=True, quick=True, validation_size=60, search_seeds=[0, 1], shots=[5], seeds=[0],
                                classifier_steps=15)
    answer = evaluate_request(train, test, request, tmp_path / "report", dataset_name="thyroid")
    assert answer["mode"] == "select" and answer["selection"]["cost"]["search_seeds"] == [0, 1]
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    selection = answer["selection"]
    # the pool: about 60 rows with thyroid's class mix (2 / 5 / 93 %)
    expected_pool = validation_pool_sizes(np.bincount(train.labels), 60)
    assert selection["cost"]["validation_examples"] == expected_pool.sum() and 55 <= expected_pool.sum() <= 62
    searched = {r["arm"] for r in saved["selection"]["validation_summary"]}
    assert "real" in searched and not any("classic" in arm for arm in searched)
    (choice,) = selection["choices"]
    assert len(searched) == 1 + choice["candidates"] == 1 + selection["cost"]["candidate_arms"] == 5  # real + 2 x 2
    final_arms = {c["arm"] for c in saved["cells"]}
    assert final_arms == {"real", choice["arm"]} and not any("classic" in arm for arm in final_arms)


def test_the_validation_pool_keeps_the_class_mix_of_the_training_split(thyroid):
    """The search's validation pool takes the same share of every class (a weighted metric on it
    weighs the classes as the test split does), at most half of each, at most the size asked for
    (plus one example of a class the share would leave out), seeded; its folds are disjoint."""
    from genaug.evaluate.select import validation_folds, validation_pool_sizes

    train, _ = thyroid
    counts = np.bincount(train.labels)
    folds = validation_folds(train, size=600)
    pool = np.concatenate([fold.labels for _, fold in folds])
    taken = np.bincount(pool, minlength=len(counts))
    share = 600 / counts.sum()
    assert len(pool) <= 600 and np.all(np.abs(taken - share * counts) < 1), (taken, counts)
    assert taken[np.argmin(counts)] >= 1
    # disjoint folds of nearly equal size; fold f's inner training set is the rest of the split
    # (compared by counts: thyroid has duplicate rows, so equal content is not the same row)
    assert abs(len(folds[0][1]) - len(folds[1][1])) <= len(counts)
    for inner, fold in folds:
        assert list(np.bincount(inner.labels, minlength=len(counts)) + np.bincount(fold.labels, minlength=len(counts))) \
            == list(counts)
    assert [f.item_fingerprints() for _, f in validation_folds(train, size=600)] == [f.item_fingerprints() for _, f in folds]
    # no total cap: half of every class; a per-class cap on top; a rare class keeps one example
    assert list(validation_pool_sizes(counts, None)) == list(counts // 2)
    assert list(validation_pool_sizes(counts, None, per_class=100)) == list(np.minimum(counts // 2, 100))
    assert list(validation_pool_sizes(np.array([3, 2, 1, 5000]), size=100)) == [1, 1, 0, 99]
    with pytest.raises(ValueError, match="validation_size: 1 is smaller than the 2 folds"):
        validation_folds(train, size=1)
    with pytest.raises(ValueError, match="validation_size: 0 must be at least 1"):
        validation_pool_sizes(counts, 0)
    with pytest.raises(ValueError, match="validation_per_class: 0"):
        validation_folds(train, per_class=0)


def test_a_training_split_of_a_few_examples_per_class_still_fills_every_fold():
    """Three examples in each of ten classes: one per class goes to the pool; the round-robin runs
    across the classes so no validation fold is empty (within a class it would put all ten in the
    first fold), and the old pool rule's folds are unchanged where every class gives two or more."""
    from genaug.evaluate.select import _fold_assignment, validation_folds

    data = load_digits_dataset()
    keep = np.concatenate([np.flatnonzero(data.labels == c)[:3] for c in range(10)])
    tiny = data.subset(keep)
    folds = validation_folds(tiny)
    assert [len(fold) for _, fold in folds] == [5, 5]
    assert sorted(np.concatenate([fold.labels for _, fold in folds])) == list(range(10))
    assert [list(f) for f in _fold_assignment([3, 2, 5], 2)] == [[0, 1, 0], [0, 1], [0, 1, 0, 1, 0]]


def test_a_chosen_generator_recipe_is_retrained_and_scored_on_the_test_split(thyroid, monkeypatch):
    """When the validation folds choose a generator arm, the final run fits that recipe on the
    training split and scores it beside the reference (the search itself is stubbed to choose:
    on real data a choice depends on the numbers; this path once skipped the chosen arm and then
    crashed assembling the result). Different n may choose different arms, or the same one."""
    from genaug.evaluate import select

    train, test = thyroid
    spec = GeneratorSpec(label="tvae", kind="tabular_vae", config=TINY_TABLE_VAE,
                         variants=[SampleVariant(label="4:1", ratio=4.0, arms=["real+synthetic"]),
                                   SampleVariant(label="1:1", ratio=1.0, arms=["real+synthetic"])])
    plan = {5: "real", 8: "real+synthetic[tvae/4:1]", 10: "real+synthetic[tvae/4:1]"}

    def choose(rows):
        return [{"n": n, "arm": arm, "plain_name": arm, "helps": arm != "real", "sentence": "", "compared": 2,
                 "reference": "real", "runner_up": None} for n, arm in plan.items()]
    monkeypatch.setattr(select, "recommend", choose)
    selection = select.select_recipe(train, test, Protocol(shots=list(plan), seeds=[0], classifier_steps=15),
                                     [spec], validation_size=60, search_seeds=[0, 1])
    assert [c["recipe"]["kind"] for c in selection["choices"]] == [None, "tabular_vae", "tabular_vae"]
    # the search ran its own seeds; the final runs keep the protocol's
    assert {c["seed"] for c in selection["validation"]["cells"]} == {0, 1} == set(selection["cost"]["search_seeds"])
    assert {c["seed"] for c in selection["final"]["cells"]} == {0}
    assert selection["choices"][1]["recipe"]["ratio"] == 4.0
    final = selection["final"]
    by_n = {n: sorted(c["arm"] for c in final["cells"] if c["n"] == n) for n in plan}
    assert by_n == {n: sorted({"real", arm}) for n, arm in plan.items()}  # exactly reference + choice
    assert final["arms"] == ["real", "real+synthetic"]
    (generator,) = final["generators"]  # the same recipe chosen at two n: one generator, one variant
    assert generator["label"] == "tvae" and [v["label"] for v in generator["variants"]] == ["4:1"]
    sentences = select.selection_sentences(selection, summarise(final))
    assert sentences[1].startswith("At 8 per class: the search") and "vs your rows alone" in sentences[1]
    assert ", 2 seeds)" in sentences[1]
    one_seed = {**selection, "cost": {**selection["cost"], "search_seeds": [0]}}
    assert ", 1 seed)" in select.selection_sentences(one_seed, summarise(final))[1]


def test_a_pool_generator_is_fitted_on_the_whole_training_split_whatever_the_order_of_n(digits_split, monkeypatch):
    from genaug.generators.diffusion import DiffusionGenerator

    train, test = digits_split
    tiny = DiffusionGenerator.tiny_config().model_dump()
    spec = GeneratorSpec(label="pool", kind="ddim", config={**tiny, "mode": "single"}, unlabeled_pool=True,
                         variants=[SampleVariant(label="v", options={"strength": 0.5, "steps": 2})])
    fitted = []
    original = DiffusionGenerator.fit

    def recording_fit(self, data, **kwargs):
        fitted.append((data.fingerprint(), kwargs.get("unlabeled") is None))
        return original(self, data, **kwargs)

    monkeypatch.setattr(DiffusionGenerator, "fit", recording_fit)
    runs = {}
    for order in ([3, 2], [2, 3]):
        fitted.clear()
        protocol = Protocol(shots=order, seeds=[0], classifier_steps=5, arms=["real+synthetic"])
        runs[tuple(order)] = evaluate(train, test, [spec], protocol)
        assert fitted == [(train.fingerprint(), True)], "one fit per seed, on the whole training split"
    first = {c["n"]: c["predictions"] for c in runs[(3, 2)]["cells"]}
    second = {c["n"]: c["predictions"] for c in runs[(2, 3)]["cells"]}
    assert first == second, "the order of n must not change any cell"
    with pytest.raises(ValueError, match="unlabeled pool needs"):
        evaluate(train, test, [spec.model_copy(update={"config": {**tiny, "mode": "conditional"}})],
                 Protocol(shots=[2], seeds=[0]))


def test_a_pool_fit_is_shared_by_every_run_under_one_cache_root(digits_split, tmp_path, monkeypatch):
    """The benchmarks keep one dataset name per classifier: a second classifier's run must resume the
    pool fit at its last step, not train it again -- also from where earlier versions kept it."""
    from genaug.generators.diffusion import DiffusionGenerator

    train, test = digits_split
    tiny = DiffusionGenerator.tiny_config().model_dump()
    spec = GeneratorSpec(label="pool", kind="ddim", config={**tiny, "mode": "single"}, unlabeled_pool=True,
                         variants=[SampleVariant(label="v", options={"strength": 0.5, "steps": 2})])
    fits = []
    original = DiffusionGenerator.fit

    def recording_fit(self, data, **kwargs):
        result = original(self, data, **kwargs)
        fits.append((kwargs["checkpoints"], [(t["resumed_from"], t["total_steps"])
                                             for t in self.meta["training"].values()]))
        return result

    monkeypatch.setattr(DiffusionGenerator, "fit", recording_fit)
    costs = []
    for name, steps in (("digits-cnn", 5), ("digits-other", 6)):  # other cells, the same pool fit
        shutil.rmtree(tmp_path / "samples", ignore_errors=True)  # else the kept draw is all it needs
        result = evaluate(train, test, [spec], Protocol(shots=[2], seeds=[0], classifier_steps=steps,
                                                        arms=["real+synthetic"]), dataset_name=name, cache_dir=tmp_path)
        costs.append(result["cells"][0]["generator_fit_cpu_seconds"])
    (first, trained), (second, resumed) = fits
    assert costs[0] > 0 and costs[1] == costs[0], "a loaded pool fit reports what the fit cost, not the load"
    assert first == second and first.parent == tmp_path / "fitted"
    assert all(start == 0 for start, _ in trained)
    assert [total for _, total in resumed] == [total for _, total in trained]
    assert all(start == total > 0 for start, total in resumed), "the second run must load the fit, not train it"
    # With the draw kept (cache/samples/) a third classifier's run needs no generator at all
    kept = evaluate(train, test, [spec], Protocol(shots=[2], seeds=[0], classifier_steps=8, arms=["real+synthetic"]),
                    dataset_name="digits-third", cache_dir=tmp_path)
    assert len(fits) == 2 and kept["cells"][0]["generator_fit_cpu_seconds"] == costs[0]
    # An earlier version kept the pool fit under one dataset's folder, with no record of its cost:
    # a run under another dataset name moves it to the shared place and loads it, not refits it.
    from genaug.evaluate.identity import fit_identity

    legacy = tmp_path / "digits-old" / "work" / f"pool-{fit_identity(spec, train.fingerprint())}" / "pool-seed=0"
    legacy.parent.mkdir(parents=True)
    first.rename(legacy)
    (legacy / "fit.json").unlink()
    fits.clear()
    shutil.rmtree(tmp_path / "samples")
    evaluate(train, test, [spec], Protocol(shots=[2], seeds=[0], classifier_steps=7, arms=["real+synthetic"]),
             dataset_name="digits-new", cache_dir=tmp_path)
    [(third, again)] = fits
    assert third == first and third.is_dir() and not legacy.exists()
    assert all(start == total > 0 for start, total in again)
    assert not (third / "fit.json").exists(), "a run that only loaded the fit must not record the load as its cost"


# --------------------------------------------------------------------------- user classifier
USER_CLASSIFIER = textwrap.dedent('''
    import numpy as np

    __version__ = "1.0"
    CALLS = []

    def nearest_centroid(x_train, y_train, *, n_classes, seed, steps, batch_size, is_synthetic, augment):
        """A nearest-centroid classifier: the simplest thing a user might ship."""
        CALLS.append({"n": len(x_train), "synthetic": int(is_synthetic.sum()), "steps": steps,
                      "batch_size": batch_size, "augment": augment is not None})
        if augment is not None:
            x_train = np.concatenate([x_train, augment(x_train)])
            y_train = np.concatenate([y_train, y_train])
        flat = x_train.reshape(len(x_train), -1).astype(np.float32)
        centroids = np.stack([flat[y_train == c].mean(0) for c in range(n_classes)])

        def predict(x):
            d = ((x.reshape(len(x), -1).astype(np.float32)[:, None] - centroids[None]) ** 2).sum(-1)
            return d.argmin(1)
        return predict
''')


def test_a_user_classifier_runs_end_to_end_and_its_code_is_part_of_the_identity(digits_split, tmp_path, monkeypatch):
    import importlib
    import sys

    train, test = digits_split
    (tmp_path / "my_classifier.py").write_text(USER_CLASSIFIER)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_classifier", None)
    protocol = Protocol(shots=[5], seeds=[0], classifier="my_classifier:nearest_centroid", classifier_steps=7)
    cache = tmp_path / "cache"
    result = evaluate(train, test, [_vae()], protocol, cache_dir=cache)
    module = importlib.import_module("my_classifier")
    assert len(module.CALLS) == 5
    assert {(c["n"], c["synthetic"]) for c in module.CALLS} >= {(50, 0), (100, 50)}
    assert all(c["steps"] == 7 and c["batch_size"] == 64 for c in module.CALLS)
    assert sum(c["augment"] for c in module.CALLS) == 2  # real+classic and real+synthetic+classic
    real = next(c for c in result["cells"] if c["arm"] == "real")
    assert real["accuracy"] > 0.6, "nearest centroid on 5 digits per class is far above chance (0.1)"
    assert result["classifier"]["name"] == "my_classifier:nearest_centroid"
    assert all(c["classifier"] == "my_classifier:nearest_centroid" for c in result["cells"])
    before = _stamps(cache)
    # The user edits their classifier: every cell is recomputed.
    (tmp_path / "my_classifier.py").write_text(USER_CLASSIFIER.replace("d.argmin(1)", "d.argmin(axis=1)"))
    sys.modules.pop("my_classifier", None)
    evaluate(train, test, [_vae()], protocol, cache_dir=cache)
    assert all(v != before[k] for k, v in _stamps(cache).items())
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        evaluate(train, test, [], protocol.model_copy(update={"classifier": "no_such_module:fn"}))
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        evaluate(train, test, [], protocol.model_copy(update={"classifier": "my_classifier:missing"}))


# --------------------------------------------------------------------------- statistics
def test_intervals_stay_in_range_and_tiny_tests_and_few_seeds_warn(digits_split, tmp_path):
    train, test = digits_split
    tiny_test = test.subset(np.concatenate([np.flatnonzero(test.labels == c)[:2] for c in range(10)]))
    protocol = Protocol(shots=[2], seeds=[0, 1], classifier_steps=10)
    result = evaluate(train, tiny_test, [_vae()], protocol)
    rows = summarise(result)
    assert rows
    for row in rows:
        assert 0.0 <= row["weighted_f1_low"] <= row["weighted_f1_mean"] <= row["weighted_f1_high"] <= 1.0
        for key in ("delta_vs_real", "delta_vs_classic"):
            if key in row:
                assert -1.0 <= row[key]["low"] <= row[key]["high"] <= 1.0
                assert 0 < row[key]["p_value"] <= 1
    warnings = result_warnings(result, rows)
    assert sum("has only 2 test images" in w for w in warnings) == 10, warnings
    assert any("only 2 seeds ran" in w for w in warnings), warnings
    # Every cell names the CPU that computed it; one CPU gives no mixed-CPU note, two do.
    assert {c["cpu"] for c in result["cells"]} == {cpu_description()} and cpu_description()
    assert not any("kinds of CPU" in w for w in warnings), warnings
    other = {**result, "cells": [{**result["cells"][0], "cpu": "Another CPU; torch AVX2"}] + result["cells"][1:]}
    mixed = [w for w in result_warnings(other, rows) if "kinds of CPU" in w]
    assert len(mixed) == 1 and "computed on 2 kinds of CPU" in mixed[0] and "Another CPU; torch AVX2" in mixed[0]
    assert cpu_description() in mixed[0]
    written = write_report(result, tmp_path)
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.index("## Recommendation") < markdown.index("## Warnings") < markdown.index("## Results")
    assert "only 2 seeds ran" in markdown and written["warnings"] == warnings
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["recommendation"][0]["sentence"] == written["verdict"][0]


def test_predictions_round_trip():
    y = np.array([0, 3, 9, 255, 1])
    assert decode_predictions(encode_predictions(y)).tolist() == y.tolist()
    big = np.array([0, 300, 2])
    assert decode_predictions(encode_predictions(big)).tolist() == big.tolist()


def _cells(arm: str, correct_share: float, y: np.ndarray, seeds=(0, 1, 2), **extra) -> list[dict]:
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed + 17 * len(arm))
        pred = np.where(rng.random(len(y)) < correct_share, y, (y + 1) % 5)
        acc = float((pred == y).mean())
        out.append({"n": 10, "seed": seed, "arm": arm, "accuracy": acc, "weighted_f1": acc,
                    "predictions": encode_predictions(pred), **extra})
    return out


def _result(cells, y):
    return {"protocol": {"metric": "weighted_f1"}, "class_names": list("abcde"), "test_labels": y.tolist(),
            "cells": cells, "data_kind": "images"}


def test_the_recommendation_names_a_clear_winner_and_says_so_when_nothing_helps():
    y = np.repeat(np.arange(5), 200)
    counts = {"samples_per_class": {str(c): 500 for c in range(5)}}
    clear = _result(_cells("real", 0.6, y) + _cells("real+classic", 0.7, y)
                    + _cells("real+synthetic[vae/prior]", 0.8, y, **counts)
                    + _cells("real+synthetic[ddim/x]", 0.7, y, **counts), y)
    pick = recommend(summarise(clear))[0]
    assert pick["helps"] and pick["arm"] == "real+synthetic[vae/prior]" and pick["compared"] == 2
    assert "use your images + 500 vae images per class (prior)" in pick["sentence"]
    assert "Holm-corrected over 2 generator arms" in pick["sentence"]
    same = _result(_cells("real", 0.6, y) + _cells("real+classic", 0.7, y)
                   + _cells("real+synthetic[vae/prior]", 0.7, y, **counts), y)
    pick = recommend(summarise(same))[0]
    assert not pick["helps"] and pick["arm"] == "real+classic"
    assert "Synthetic data does not help here beyond noise; use your images + classic augmentation" in pick["sentence"]
    assert "within noise" in pick["sentence"]
    worse = _result(_cells("real", 0.6, y) + _cells("real+classic", 0.7, y)
                    + _cells("real+synthetic[vae/prior]", 0.5, y, **counts), y)
    pick = recommend(summarise(worse))[0]
    assert not pick["helps"] and pick["arm"] == "real+classic"
    assert "worse beyond noise" in pick["sentence"] and "within noise after" not in pick["sentence"]


def test_a_gain_left_within_noise_by_the_search_is_said_with_what_would_resolve_it():
    """The search keeps real+classic when the best candidate is ahead on validation but not beyond
    noise after the Holm correction; the report then names that candidate, its validation
    difference, the pool's size and the remedy, and says nothing of the kind when the candidate was
    behind or was chosen, or when the choice is your images alone (classic augmentation hurt)."""
    from genaug.evaluate.select import selection_sentences

    y = np.repeat(np.arange(5), 20)  # a small validation pool: 100 examples
    counts = {"samples_per_class": {str(c): 500 for c in range(5)}}
    cost = {"folds": 2, "validation_examples": len(y), "search_seeds": [0, 1, 2], "search_cpu_seconds": 10.0,
            "search_wall_seconds": 5.0, "final_cpu_seconds": 2.0, "validation_size": 2000,
            "validation_per_class": None}

    def selection_for(candidate_share, classic_share=0.70, others=0, pool=cost):
        extra = [c for i in range(others) for c in _cells(f"real+synthetic[vae/other{i}]", 0.6, y, **counts)]
        validation = _result(_cells("real", 0.6, y) + _cells("real+classic", classic_share, y)
                             + _cells("real+synthetic[vae/prior]", candidate_share, y, **counts) + extra, y)
        pick = recommend(summarise(validation))[0]
        choice = {"n": 10, "arm": pick["arm"], "plain_name": pick["plain_name"], "helps_on_validation": pick["helps"],
                  "candidates": pick["compared"], "reference": pick["reference"], "runner_up": pick["runner_up"]}
        final = _result(_cells("real", 0.6, y) + _cells("real+classic", classic_share, y), y)
        return pick, selection_sentences({"choices": [choice], "cost": pool}, summarise(final))

    pick, lines = selection_for(0.71)
    assert not pick["helps"] and pick["arm"] == "real+classic"
    up = pick["runner_up"]
    assert up["arm"] == "real+synthetic[vae/prior]" and up["delta"]["mean"] > 0 and up["delta"]["within_noise"]
    assert (f"On the validation folds {up['plain_name']} was ahead of your images + classic augmentation by "
            f"{up['delta']['mean']:+.3f}" in lines[0] and "Holm correction over 1 arms" in lines[0])
    assert "not be resolved by 100 validation examples" in lines[0] and "--validation-size" in lines[0]
    # The pool is already half of every class: only more search seeds are offered.
    _, lines = selection_for(0.71, pool={**cost, "validation_size": None})
    assert "ahead of" in lines[0] and "--validation-size" not in lines[0] and "--search-seeds" in lines[0]
    # Ahead beyond noise before the correction, within it after (7 candidates): still a gain given up.
    pick, lines = selection_for(0.73, others=6)
    assert not pick["helps"] and pick["compared"] == 7
    assert pick["runner_up"]["delta"]["low"] > 0 and not pick["runner_up"]["delta"]["within_noise"]
    assert "ahead of your images + classic augmentation" in lines[0] and "over 7 arms" in lines[0]
    # Classic augmentation hurt: the choice is your images alone, to which the runner-up's
    # difference does not refer: silent.
    pick, lines = selection_for(0.45, classic_share=0.45)
    assert pick["arm"] == "real" and pick["runner_up"]["delta"]["mean"] > 0 and "ahead of" not in lines[0]
    pick, lines = selection_for(0.55)  # behind: nothing given up
    assert not pick["helps"] and pick["runner_up"]["delta"]["mean"] < 0 and "ahead of" not in lines[0]
    pick, lines = selection_for(0.95)  # ahead beyond noise: chosen, no runner-up
    assert pick["helps"] and pick["runner_up"] is None
    assert "chose your images + 500 vae images per class" in lines[0] and "ahead of" not in lines[0]
