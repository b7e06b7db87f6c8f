"""The evaluation harness on real data (sklearn digits), at tiny budgets."""
from __future__ import annotations

import json

import numpy as np
import pytest

from genaug.data import load_digits_dataset, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, summarise, write_report
from genaug.evaluate.metrics import classification_metrics, mean_interval, paired_difference

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


@pytest.fixture(scope="module")
def digits_split():
    return stratified_split(load_digits_dataset(), test_fraction=0.3, seed=0)


TINY_VAE = dict(mode="conditional", channels=[8, 16], hidden=16, latent_dim=4, steps=40, batchnorm=False)


def _spec(**variant):
    return GeneratorSpec(label="vae", kind="vae", config=TINY_VAE,
                         variants=[SampleVariant(label="v", **variant)])


def test_all_arms_run_and_summaries_hold(digits_split, tmp_path):
    train, test = digits_split
    protocol = Protocol(shots=[3], seeds=[0, 1], classifier_steps=30)
    result = evaluate(train, test, [_spec(per_class=10, ratio=None)], protocol, dataset_name="digits",
                      cache_dir=tmp_path / "cache")
    arms = {c["arm"] for c in result["cells"]}
    assert arms == {"real", "real+classic", "synthetic[vae/v]", "real+synthetic[vae/v]", "real+synthetic+classic[vae/v]"}
    assert len(result["cells"]) == 2 * 5
    for cell in result["cells"]:
        assert 0.0 <= cell["weighted_f1"] <= 1.0
        assert np.asarray(cell["confusion"]).sum() == len(test)
        if cell["arm"] == "real":
            assert cell["n_train_real"] == 30 and cell["n_train_synthetic"] == 0
        if cell["arm"] == "real+synthetic[vae/v]":
            assert cell["n_train_real"] == 30 and cell["n_train_synthetic"] == 100
            assert cell["samples_per_class"] == {str(c): 10 for c in range(10)} or cell["samples_per_class"] == {c: 10 for c in range(10)}
    rows = summarise(result)
    by_arm = {r["arm"]: r for r in rows}
    assert by_arm["real"]["seeds"] == [0, 1]
    assert "delta_vs_real" in by_arm["real+classic"] and "delta_vs_classic" in by_arm["real+synthetic[vae/v]"]
    assert "gqi" in by_arm["synthetic[vae/v]"]
    written = write_report(result, tmp_path / "report")
    assert (tmp_path / "report" / "results.md").read_text().count("|") > 20
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert len(saved["cells"]) == 10 and saved["summary"]
    assert written["grids"] and (tmp_path / "report" / written["grids"][0]).stat().st_size > 1000


def test_cells_are_cached_and_resumed_but_not_reused_under_other_settings(digits_split, tmp_path):
    train, test = digits_split
    protocol = Protocol(shots=[2], seeds=[0], classifier_steps=20, arms=["real", "real+synthetic"])
    first = evaluate(train, test, [_spec(ratio=1.0)], protocol, cache_dir=tmp_path)
    files = sorted(f for f in tmp_path.rglob("*.json") if "fitted" not in f.parts)  # the cells (not the kept fit)
    assert len(files) == 2
    stamps = [f.stat().st_mtime_ns for f in files]
    again = evaluate(train, test, [_spec(ratio=1.0)], protocol, cache_dir=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] == stamps, "cached cells must be reused, not recomputed"
    assert [c["weighted_f1"] for c in again["cells"]] == [c["weighted_f1"] for c in first["cells"]]
    changed = protocol.model_copy(update={"classifier_steps": 21})
    evaluate(train, test, [_spec(ratio=1.0)], changed, cache_dir=tmp_path)
    assert [f.stat().st_mtime_ns for f in files] != stamps, "other settings must not reuse old cells"


def test_cached_only_reports_what_is_cached_and_computes_nothing(digits_split, tmp_path):
    train, test = digits_split
    protocol = Protocol(shots=[2], seeds=[0], classifier_steps=20, arms=["real", "real+synthetic"])
    first = evaluate(train, test, [_spec(ratio=1.0)], protocol, cache_dir=tmp_path)
    files = sorted(tmp_path.rglob("*.json"))
    wider = protocol.model_copy(update={"seeds": [0, 1], "shots": [2, 3]})
    partial = evaluate(train, test, [_spec(ratio=1.0)], wider, cache_dir=tmp_path, cached_only=True)
    assert sorted(tmp_path.rglob("*.json")) == files, "nothing new may be computed"
    assert [(c["n"], c["seed"], c["arm"]) for c in partial["cells"]] == [(c["n"], c["seed"], c["arm"]) for c in first["cells"]]


def test_cells_restored_from_a_results_file_are_reused_but_not_under_other_settings(digits_split, tmp_path):
    from genaug.evaluate.cell_cache import CellCache

    train, test = digits_split
    protocol = Protocol(shots=[2], seeds=[0], classifier_steps=20, arms=["real", "real+synthetic"])
    first = evaluate(train, test, [_spec(ratio=1.0)], protocol, cache_dir=tmp_path / "old")
    # A fresh clone: only the results file's cells are left; they go back into an empty cache.
    cache = CellCache(tmp_path / "new", "data")
    assert [cache.restore(c) for c in first["cells"]] == [True, True]
    assert [cache.restore(c) for c in first["cells"]] == [False, False], "a cached cell is never overwritten"
    again = evaluate(train, test, [_spec(ratio=1.0)], protocol, cache_dir=tmp_path / "new", cached_only=True)
    assert [c["weighted_f1"] for c in again["cells"]] == [c["weighted_f1"] for c in first["cells"]]
    changed = protocol.model_copy(update={"classifier_steps": 21})
    stale = evaluate(train, test, [_spec(ratio=1.0)], changed, cache_dir=tmp_path / "new", cached_only=True)
    assert stale["cells"] == [], "a restored cell computed under other settings must not be reused"


def test_cells_of_one_arm_restored_from_two_results_files_are_both_kept(digits_split, tmp_path):
    # Two committed results files hold the same arms under other settings (e.g. fp32 and bf16
    # features): restored into one cache, each run finds its own cells, whichever came first.
    from genaug.evaluate.cell_cache import CellCache

    train, test = digits_split
    protocol = Protocol(shots=[2], seeds=[0], classifier_steps=20, arms=["real", "real+synthetic"])
    other = protocol.model_copy(update={"classifier_steps": 21})
    first = evaluate(train, test, [_spec(ratio=1.0)], protocol, cache_dir=tmp_path / "a")
    second = evaluate(train, test, [_spec(ratio=1.0)], other, cache_dir=tmp_path / "b")
    assert [c["identity"] for c in first["cells"]] != [c["identity"] for c in second["cells"]]
    cache = CellCache(tmp_path / "new", "data")
    assert [cache.restore(c) for c in first["cells"] + second["cells"]] == [True] * 4
    assert [cache.restore(c) for c in second["cells"] + first["cells"]] == [False] * 4
    for run, wanted in ((protocol, first), (other, second)):
        found = evaluate(train, test, [_spec(ratio=1.0)], run, cache_dir=tmp_path / "new", cached_only=True)
        assert [(c["arm"], c["weighted_f1"], c["identity"]) for c in found["cells"]] == \
            [(c["arm"], c["weighted_f1"], c["identity"]) for c in wanted["cells"]]
    # A third setting finds neither, and is told that the arm is cached under other settings --
    # also when only the cell kept beside the arm's file is left.
    (path,) = [p for p in (tmp_path / "new").rglob("real.json")]
    assert cache.get(2, 0, "real", "third") is None and cache.why_not_reused(2, 0, "real", "third") == "other settings"
    kept = path.read_text()
    path.unlink()
    beside = [c["identity"] for c in first["cells"] + second["cells"]
              if c["arm"] == "real" and c["identity"] != json.loads(kept)["identity"]]
    assert cache.why_not_reused(2, 0, "real", "third") == "other settings"
    # ... but the cell kept beside it under the asked identity is that identity's own, not another.
    assert len(beside) == 1 and cache.get(2, 0, "real", beside[0]) is not None
    assert cache.why_not_reused(2, 0, "real", beside[0]) is None
    path.write_text(kept)
    # A damaged cell file is computed again, not fatal.
    assert first["cells"][0]["arm"] == "real"
    path.write_text("{not json")
    assert cache.get(2, 0, "real", first["cells"][0]["identity"]) is None


def test_restores_of_other_identities_of_one_arm_at_once_keep_every_one(tmp_path):
    # Processes restoring other results files into one cache at the same moment: none is lost.
    import threading

    from genaug.evaluate.cell_cache import CellCache

    cache = CellCache(tmp_path, "data")
    cells = [{"n": 2, "seed": 0, "arm": "real", "accuracy": i / 10, "identity": f"id{i}"} for i in range(8)]
    start = threading.Barrier(len(cells))

    def restore(cell):
        start.wait()
        assert cache.restore(cell)

    threads = [threading.Thread(target=restore, args=(cell,)) for cell in cells]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [cache.get(2, 0, "real", f"id{i}")["accuracy"] for i in range(8)] == [i / 10 for i in range(8)]
    assert not list(tmp_path.rglob("*.tmp"))
    # The arm's own file is created once, never replaced by a later restore.
    (main,) = [p for p in tmp_path.rglob("real.json")]
    assert not CellCache._create(main, {"accuracy": 1.0, "identity": "later"})
    assert json.loads(main.read_text())["identity"] != "later"


@pytest.mark.parametrize("arm_file_holds", [None, "other"])
def test_one_cell_restored_by_many_at_once_is_written_once(tmp_path, monkeypatch, arm_file_holds):
    # The bench's "restored N cells" count: of processes putting back the same cell at the same
    # moment, exactly one says it wrote it, and one file holds it -- the arm's own file, or (when
    # that holds another identity) the file beside it.
    import threading

    from genaug.evaluate.cell_cache import CellCache

    cache = CellCache(tmp_path, "data")
    if arm_file_holds:
        assert cache.restore({"n": 2, "seed": 0, "arm": "real", "accuracy": 0.1, "identity": arm_file_holds})
    cell = {"n": 2, "seed": 0, "arm": "real", "accuracy": 0.5, "identity": "same"}
    # Every thread passes restore's first "is it cached?" check before any of them writes: the
    # race this test is about, forced rather than left to the scheduler.
    all_checked = threading.Barrier(8, timeout=300)  # a broken restore fails the test, never hangs it
    checked = threading.local()
    original_get = CellCache.get

    def get_then_wait(self, *args):
        found = original_get(self, *args)
        if not getattr(checked, "done", False):
            checked.done = True
            all_checked.wait()
        return found

    monkeypatch.setattr(CellCache, "get", get_then_wait)
    written = []
    threads = [threading.Thread(target=lambda: written.append(cache.restore(dict(cell)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == [False] * 7 + [True]
    expected = ["real.json"] + (["real@same.json"] if arm_file_holds else [])
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == expected
    assert not list(tmp_path.rglob("*.tmp"))
    assert original_get(cache, 2, 0, "real", "same")["accuracy"] == 0.5


def test_test_split_never_reaches_the_generator(digits_split, monkeypatch):
    train, test = digits_split
    from genaug.generators.vae import ImageVAE

    seen = []
    original = ImageVAE.fit

    def recording_fit(self, data, **kwargs):
        seen.append(data)
        return original(self, data, **kwargs)

    monkeypatch.setattr(ImageVAE, "fit", recording_fit)
    evaluate(train, test, [_spec(ratio=1.0)], Protocol(shots=[2], seeds=[0], classifier_steps=5,
                                                       arms=["real+synthetic"]))
    test_sources = set(test.sources)
    train_sources = set(train.sources)
    assert seen and all(len(d) == 20 for d in seen)
    for data in seen:
        assert not (set(data.sources) & test_sources)
        assert set(data.sources) <= train_sources


def test_unknown_arm_and_kind_fail_before_any_work(digits_split):
    train, test = digits_split
    with pytest.raises(ValueError, match="arms"):
        evaluate(train, test, [], Protocol(arms=["real", "reel"]))
    with pytest.raises(ValueError, match="unknown generator kind 'nope'"):
        evaluate(train, test, [GeneratorSpec(label="x", kind="nope")], Protocol())


def test_metrics_and_intervals():
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["confusion"] == [[1, 1], [0, 2]]
    assert m["per_class_f1"]["a"] == pytest.approx(2 / 3)
    assert m["weighted_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    summary = mean_interval([0.5, 0.6, 0.7])
    assert summary["mean"] == pytest.approx(0.6)
    assert summary["ci95"] == pytest.approx(4.303 * 0.1 / np.sqrt(3))
    diff = paired_difference({0: 0.6, 1: 0.7}, {0: 0.5, 1: 0.5, 2: 0.9})
    assert diff["n"] == 2 and diff["mean"] == pytest.approx(0.15)
