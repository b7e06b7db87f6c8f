"""The post-sample filter stage (genaug.filters): confidence and near-copy filters on real digits,
and `generate --filter` end to end: verdicts in the manifest, counts that add up, quality.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from genaug import api
from genaug.cli import app
from genaug.data import LabelledImages
from genaug.filters import FilterReference, FilterStage, parse_filter, parse_filters
from genaug.filters.confidence import ConfidenceFilter
from genaug.filters.near_copy import NearCopyFilter
from genaug.quality import image_features

# Filters; generating from a stored model uses the registry as tests/store does on both databases.
pytestmark = pytest.mark.database_agnostic

NAMES = [str(c) for c in range(10)]


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = np.stack([np.asarray(Image.fromarray((i * 16).clip(0, 255).astype(np.uint8)).resize((16, 16)))
                       for i in data.images])[..., None]
    return images, data.target.astype(np.int64)


@pytest.fixture(scope="module")
def features(digits):
    return image_features(digits[0][:900], "lite0")


def test_filter_specs_are_parsed_and_bad_ones_are_named():
    assert parse_filter("confidence:0.6").threshold == 0.6 and parse_filter("near-copy").threshold is None
    assert str(parse_filter({"name": "near-copy", "threshold": 0.5})) == "near-copy:0.5"
    for bad, message in (("sharpness", "unknown; known filters: confidence, near-copy"),
                         ("confidence:lots", "must be a number"), ("confidence:1.5", r"\[0, 1\]"),
                         ("near-copy:0", r"\(0, 1\]"), ({"name": "confidence", "limit": 2}, "expected")):
        with pytest.raises(ValueError, match=message):
            parse_filter(bad)
    with pytest.raises(ValueError, match="given twice"):
        parse_filters(["near-copy", "near-copy:0.5"])


def test_confidence_filter_keeps_correctly_labelled_digits_and_rejects_mislabelled_ones(digits, features):
    _, labels = digits
    reference = FilterReference(features[:600], labels[:600], NAMES)
    judge = ConfidenceFilter(reference, threshold=0.6)
    right, p_right = judge.judge(features[600:900], labels[600:900])
    wrong, _ = judge.judge(features[600:900], (labels[600:900] + 1) % 10)
    assert right.mean() > 0.85 and wrong.mean() < 0.05
    assert (p_right[right] >= 0.6).all()  # every kept sample clears the threshold
    strict, _ = ConfidenceFilter(reference, threshold=0.999).judge(features[600:900], labels[600:900])
    assert strict.sum() < right.sum()  # a higher threshold rejects more


def test_near_copy_filter_rejects_planted_copies_and_keeps_distinct_digits(digits, features):
    _, labels = digits
    reference = FilterReference(features[:600], labels[:600], NAMES)
    judge = NearCopyFilter(reference)
    keep, ratio = judge.judge(np.concatenate([features[:25], features[600:900]]),
                              np.concatenate([labels[:25], labels[600:900]]))
    assert not keep[:25].any() and (ratio[:25] < 1 / 3).all()  # every exact copy is rejected
    assert keep[25:].mean() > 0.99  # distinct real digits of the same classes pass


def _model(digits, home, name, quality_samples, **config):
    images, labels = digits
    keep = labels < 3
    data = LabelledImages(images[keep][:150], labels[keep][:150], ["zero", "one", "two"])
    api.train(data, "classic", name, overrides=config, home=home, quality_samples=quality_samples)
    return data


def _manifest(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_generate_with_filters_records_every_verdict_and_the_counts_match_the_manifest(digits, tmp_path):
    home = tmp_path / "home"
    data = _model(digits, home, "mild", 8)  # stores its filter reference with the quality card
    result = api.generate("mild", tmp_path / "kept", n_per_class=12, home=home,
                          filters=["confidence:0.9", "near-copy:0.2"])
    lines = _manifest(tmp_path / "kept")
    summary = result.filters
    assert len(lines) == result.total == summary["accepted"] == sum(summary["written"].values())
    assert summary["drawn"] == summary["accepted"] + summary["surplus"] + summary["rejected"]
    assert summary["rejected"] <= sum(summary["rejected_by"].values())
    for line in lines:
        verdicts = line["filters"]
        assert verdicts["confidence"]["verdict"] == "accepted" and verdicts["confidence"]["p_label"] >= 0.9
        assert verdicts["near-copy"]["verdict"] == "accepted" and verdicts["near-copy"]["ratio"] >= 0.2
    assert json.loads((tmp_path / "kept" / "filters.json").read_text()) == json.loads(json.dumps(summary))
    card = json.loads((tmp_path / "kept" / "quality.json").read_text())
    assert card["overall"]["samples"] == result.total and "kid" in card["overall"]
    assert card["reference"].startswith("the model's training images") and card["reference_images"] == 150
    assert summary["reference_images"] == 150

    # a model that hands out its training images unchanged: the near-copy filter rejects every
    # sample, redraws up to the limit, and reports the classes as short instead of filling them
    _model(digits, home, "copies", 8, rotation_degrees=0, translate=0, scale=0, brightness=0, contrast=0)
    copies = api.generate("copies", tmp_path / "copies", n_per_class=5, home=home, filters=["near-copy"],
                          max_filter_rounds=2, batch_size=2)  # a class's later batches count as short too
    assert copies.total == 0 and _manifest(tmp_path / "copies") == []
    assert copies.filters["short"] == {"zero": 5, "one": 5, "two": 5}
    assert copies.filters["rejected_by"]["near-copy"] == copies.filters["drawn"] > 0

    # without filters nothing is judged, and quality.json says the copies are copies
    plain = api.generate("copies", tmp_path / "plain", n_per_class=4, home=home)
    assert plain.filters is None and not (tmp_path / "plain" / "filters.json").exists()
    assert "filters" not in _manifest(tmp_path / "plain")[0]
    assert plain.quality["overall"]["near_copy_share"]["value"] == 1.0

    # a model trained without its card stored no reference: filters need the training images
    _model(digits, home, "no-reference", 0)
    with pytest.raises(ValueError, match="stored no reference"):
        api.generate("no-reference", tmp_path / "refused", n_per_class=2, home=home, filters=["near-copy"])
    given = api.generate("no-reference", tmp_path / "given", n_per_class=2, home=home, filters=["confidence"],
                         reference=data)
    assert given.total == 6 and given.quality["reference"] == "the training images you gave"
    api.generate("no-reference", tmp_path / "skipped", n_per_class=2, home=home)
    assert "stored no reference" in json.loads((tmp_path / "skipped" / "quality.json").read_text())["skipped"]


def test_generate_command_filters_and_can_skip_the_quality_file(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("GENAUG_HOME", str(tmp_path / "home"))
    _model(digits, tmp_path / "home", "mild-cli", 8)
    runner = CliRunner()
    done = runner.invoke(app, ["generate", "mild-cli", "--n-per-class", "5", "--out", str(tmp_path / "a"),
                               "--filter", "confidence:0.5", "--filter", "near-copy", "--no-quality"])
    assert done.exit_code == 0, done.output
    assert "filters confidence:0.5 + near-copy: drew" in done.output
    assert not (tmp_path / "a" / "quality.json").exists() and (tmp_path / "a" / "filters.json").exists()
    scored = runner.invoke(app, ["generate", "mild-cli", "--n-per-class", "5", "--out", str(tmp_path / "b")])
    assert scored.exit_code == 0 and "quality: KID" in scored.output and (tmp_path / "b" / "quality.json").exists()
    bad = runner.invoke(app, ["generate", "mild-cli", "--n-per-class", "5", "--out", str(tmp_path / "c"),
                              "--filter", "sharpness"])
    assert bad.exit_code == 1 and "sharpness" in bad.output and "known filters" in bad.output


def test_the_stage_refuses_a_reference_of_other_classes(digits, features):
    _, labels = digits
    reference = FilterReference(features[:100], labels[:100], NAMES)
    with pytest.raises(ValueError, match="not the model's"):
        FilterStage(["near-copy"], reference, ["a", "b"])
