"""Sample-quality numbers (genaug.quality): FID, KID, precision / recall / density / coverage, the
near-copy test, the quality card, `genaug quality` on two folders, and no network while loading."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from genaug.quality import fid, image_features, kid, memorisation, prdc, score_features

# Quality numbers; the one CLI training here uses the registry as tests/store does on both databases.
pytestmark = pytest.mark.database_agnostic


def gaussian(n: int, shift: float = 0.0, seed: int = 0, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, size=(n, dim))


def test_distances_are_about_zero_for_one_distribution_and_large_for_another():
    a, b, far = gaussian(800), gaussian(800, seed=1), gaussian(800, shift=2.0, seed=2)
    assert fid(a, b) < 0.5 < 50 < fid(a, far)
    assert abs(kid(a, b).mean) < 0.05 and kid(a, far).mean > 10
    close, away = prdc(a, b), prdc(a, far)
    assert min(close.precision, close.recall, close.coverage) > 0.8 and 0.8 < close.density < 1.2
    assert max(away.precision, away.recall, away.coverage, away.density) < 0.05


def test_kid_is_unbiased_on_two_halves_of_one_set():
    values = [kid(*np.split(gaussian(400, seed=seed), 2), subsets=20, subset_size=200, seed=seed).mean
              for seed in range(20)]
    # an unbiased estimator: the mean over splits is within noise of 0 (FID's bias would not be)
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))
    assert np.mean([fid(*np.split(gaussian(400, seed=seed), 2)) for seed in range(5)]) > 0.5  # FID is biased


def test_fid_equals_the_matrix_square_root_formula_with_few_or_many_vectors():
    """FID's trace(sqrtm(cov_a cov_b)) is computed from singular values of two covariance roots
    (fast, stable, at most D x D memory); it must equal the textbook formula with scipy's sqrtm
    whether each set has fewer vectors than dimensions (every per-class block) or more."""
    from scipy import linalg

    def textbook(a, b):
        cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        root = linalg.sqrtm(cov_a @ cov_b).real
        return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)

    rng = np.random.default_rng(3)
    mix = rng.normal(size=(24, 24))
    # both sets above D = 24; one below, one above (either way round); both below (singular covariances)
    for m, n in [(600, 500), (15, 900), (900, 15), (18, 12)]:
        a = rng.normal(size=(m, 24)) @ mix
        b = rng.normal(size=(n, 24)) @ mix * 1.2 + 0.4
        assert fid(a, b) == pytest.approx(textbook(a, b), rel=1e-5), (m, n)
        assert fid(a, a) == pytest.approx(0.0, abs=1e-6 * textbook(a, b)), (m, n)
    a, b = gaussian(30, dim=256), gaussian(20, shift=0.5, seed=4, dim=256)
    assert fid(a, b) == pytest.approx(textbook(a, b), rel=1e-5)
    broken = gaussian(10).copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValueError, match="fake: 1 of 10 feature vectors are not finite"):
        fid(gaussian(10), broken)


def test_near_copies_are_flagged_and_own_sources_are_not_copies():
    training = gaussian(300)
    copies = training[:20] + 1e-4
    fresh = gaussian(100, seed=7)
    result = memorisation(np.concatenate([copies, fresh]), training)
    assert result.near_copy[:20].all() and (result.nearest_index[:20] == np.arange(20)).all()
    assert result.near_copy[20:].mean() < 0.05
    # img2img: a variation of its own source image is not a copy of a training image
    variations = memorisation(copies, training, sources=np.arange(20))
    assert not variations.near_copy.any() and np.allclose(variations.source_distance, 1e-4 * 4, atol=1e-3)
    with pytest.raises(ValueError, match="sources"):
        memorisation(copies, training, sources=np.arange(3))


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = np.stack([np.asarray(Image.fromarray((i * 16).clip(0, 255).astype(np.uint8)).resize((16, 16)))
                       for i in data.images])[..., None]
    return images, data.target


def test_real_images_planted_copies_are_caught_and_distinct_images_pass(digits):
    images, labels = digits
    train, distinct = images[:250], images[600:750]
    planted = train[:20]
    features_train = image_features(train, "lite0")
    features = image_features(np.concatenate([planted, distinct]), "lite0")
    result = memorisation(features, features_train)
    assert result.near_copy[:20].all()  # every exact copy
    assert result.near_copy[20:].mean() < 0.01  # under 1 % of distinct real images of the same classes
    card = score_features(features_train, labels[:250], features, np.concatenate([labels[:20], labels[600:750]]),
                          [str(c) for c in range(10)], space="lite0")
    assert card["overall"]["near_copy_share"]["value"] == pytest.approx(20 / 170)
    assert card["overall"]["near_copy_share"]["low"] < 20 / 170 < card["overall"]["near_copy_share"]["high"]
    assert card["overall"]["kid"]["mean"] < 0.05 and card["feature_space"] == "lite0"
    assert any("FID from 170 samples is biased" in w for w in card["warnings"])  # leads with KID instead
    assert set(card["explanations"]) >= {"kid", "fid", "precision", "recall", "density", "coverage",
                                         "near_copy_share"}


def test_features_load_without_the_network(monkeypatch):
    reached: list = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
            reached.append(address)
            raise OSError(f"test: no network ({address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 20, 20, 3), dtype=np.uint8)
    assert image_features(images, "inception").shape == (2, 2048)
    assert image_features(images[..., :1], "lite0").shape == (2, 1280)
    assert reached == []
    with pytest.raises(ValueError, match="unknown feature space"):
        image_features(images, "clip")


def test_quality_command_scores_two_folders(digits, tmp_path):
    from typer.testing import CliRunner

    from genaug.cli import app

    images, labels = digits
    for root, indices in (("real", range(0, 200)), ("synthetic", range(300, 360))):
        for i in indices:
            if labels[i] < 2:
                folder = tmp_path / root / f"digit{labels[i]}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(images[i][..., 0]).save(folder / f"{i}.png")
    for i, source in enumerate(sorted((tmp_path / "real" / "digit0").glob("*.png"))[:3]):
        (tmp_path / "synthetic" / "digit0" / f"copy{i}.png").write_bytes(source.read_bytes())
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(app, ["quality", str(tmp_path / "real"), str(tmp_path / "synthetic"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads(out.read_text())
    digit0 = card["per_class"]["digit0"]
    assert round(digit0["near_copy_share"]["value"] * digit0["samples"]) == 3  # the planted copies
    assert card["per_class"]["digit1"]["near_copy_share"]["value"] == 0
    assert "Near-copies" in result.output and "KID" in result.output

    (tmp_path / "synthetic" / "digit7").mkdir()
    for i in (7, 17, 27):  # sevens: a class the real folder does not have
        Image.fromarray(images[i][..., 0]).save(tmp_path / "synthetic" / "digit7" / f"{i}.png")
    wrong = CliRunner().invoke(app, ["quality", str(tmp_path / "real"), str(tmp_path / "synthetic")])
    assert wrong.exit_code == 1 and "digit7" in wrong.output


def test_a_training_ends_with_its_quality_card_in_the_cli_and_the_metrics(digits, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from genaug import api
    from genaug.cli import app
    from genaug.data import LabelledImages

    monkeypatch.setenv("GENAUG_HOME", str(tmp_path / "home"))
    images, labels = digits
    keep = labels < 3
    data = LabelledImages(images[keep][:150], labels[keep][:150], ["zero", "one", "two"])
    info = api.train(data, "classic", "card-classic", quality_samples=12)
    card = info.metrics["quality"]
    assert card["samples_per_class"] == 12 and card["reference"] == "the training images"
    assert card["overall"]["samples"] == 36 and set(card["per_class"]) == {"zero", "one", "two"}
    assert "kid" in card["overall"] and 0 <= card["overall"]["coverage"] <= 1
    assert card["seconds"] > 0
    # classic augmentation hands out (mildly) altered training images: its near-copy share is reported
    assert 0 <= card["overall"]["near_copy_share"]["value"] <= 1

    shown = CliRunner().invoke(app, ["models", "--details", "card-classic"])
    assert shown.exit_code == 0, shown.output
    assert "quality card: 12 samples per class" in shown.output and "Near-copies" in shown.output
    off = api.train(data, "classic", "no-card", quality_samples=0)
    assert "quality" not in off.metrics
    missing = CliRunner().invoke(app, ["models", "--details", "nope"])
    assert missing.exit_code == 1 and "nope" in missing.output
    monkeypatch.setenv("GENAUG_QUALITY_SAMPLES", "lots")
    with pytest.raises(ValueError, match="GENAUG_QUALITY_SAMPLES"):
        api.train(data, "classic", "bad-setting")


def test_inception_score_is_high_for_confident_varied_predictions_and_one_for_uniform_ones(digits):
    from genaug.quality.inception_score import inception_score, lite0_inception_score

    k = 10
    peaked = np.eye(k)[np.arange(200) % k] * 0.99 + 0.01 / k  # each image one class, classes balanced
    assert inception_score(peaked)["mean"] > 0.8 * k
    assert inception_score(np.full((200, k), 1 / k))["mean"] == pytest.approx(1.0)
    same = np.tile(np.eye(k)[0] * 0.99 + 0.01 / k, (200, 1))  # confident but all one class
    assert inception_score(same)["mean"] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="at least 2 images"):
        inception_score(peaked[:1])
    images, _ = digits
    real = lite0_inception_score(image_features(images[:200], "lite0"))
    noise = lite0_inception_score(image_features(
        np.random.default_rng(0).integers(0, 256, size=(200, 16, 16, 1), dtype=np.uint8), "lite0"))
    assert real["mean"] > 1.0 and noise["mean"] > 1.0 and "not comparable" in real["network"]
    assert real["std"] >= 0 and real["splits"] == 10


@pytest.mark.slow  # ~20 s of Lite0 features on real flowers: run by .ci/run beside make test
def test_lightly_altered_copies_of_flowers_are_caught_at_ratio_0_6_and_distinct_flowers_pass():
    """The near-copy target on real photos (64 px flowers): exact copies are caught at the default
    ratio 1/3; shifted, cropped, brightened and mirrored copies need the stricter ratio 0.6, which
    still flags under 1 % of distinct flowers (the full table: bench/near_copy.py)."""
    from PIL import ImageEnhance

    from genaug.data.builtin import find_data_file

    root = find_data_file("flowers")
    files = [f for c in ("daisy", "rose", "tulip") for f in sorted((root / c).glob("*.jpg"))[:200]]
    images = [Image.open(f).convert("RGB").resize((64, 64)) for f in files]
    order = np.random.default_rng(0).permutation(len(images))
    train = [images[i] for i in order[:400]]
    distinct = [images[i] for i in order[400:600]]
    altered = {
        "shift": lambda im: Image.fromarray(np.roll(np.asarray(im), 2, axis=1)),
        "crop": lambda im: im.crop((3, 3, 61, 61)).resize((64, 64)),
        "brightness": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
        "mirror": lambda im: im.transpose(Image.FLIP_LEFT_RIGHT),
    }
    stack = lambda ims: np.stack([np.asarray(im) for im in ims])  # noqa: E731
    reference = image_features(stack(train), "lite0")
    distinct_result = memorisation(image_features(stack(distinct), "lite0"), reference, ratio=0.6)
    assert distinct_result.near_copy.mean() < 0.01
    exact = memorisation(reference[:50], reference + 0.0)  # exact copies: ratio 0 < 1/3
    assert exact.near_copy.all()
    planted = train[:60]
    for name, alter in altered.items():
        result = memorisation(image_features(stack([alter(im) for im in planted]), "lite0"), reference, ratio=0.6)
        assert result.near_copy.mean() >= 0.7, name
        assert (result.nearest_index[result.near_copy] == np.arange(60)[result.near_copy]).all(), name
