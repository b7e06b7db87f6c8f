"""A non-expert's path through the web UI in a real browser against the real service.

The token is explained before anything is uploaded; the "Quick look" preset is the default and
shows a training time measured on this server before the user starts; sample grids appear while
the model trains; the generate page shows a gallery of the new images per class. Screenshots at
390 px and 1280 px have no horizontal overflow (in the test's tmp_path; docs/ui-*.png with
GENAUG_UPDATE_SCREENSHOT=1).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from _browser import accessibility_problems, browser_launch_options, start_playwright, write_image_folder

# The UI over the service: the registry calls behind these pages run on both databases in test_api.py.
pytestmark = pytest.mark.database_agnostic

REPO = Path(__file__).resolve().parents[2]
MODEL = "first-try"
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def novice_service(tmp_path, chromium, module_database_url):
    """The service as a user starts it, quality cards on (the test suite turns them off elsewhere)."""
    from _browser import run_service

    yield from run_service(tmp_path, module_database_url, extra_env={"GENAUG_QUALITY_SAMPLES": "16"})


@pytest.mark.timeout(420)
def test_a_non_expert_trains_watches_and_browses_the_images(novice_service, chromium, tmp_path):
    service = novice_service
    from playwright.sync_api import expect

    images = write_image_folder(tmp_path / "shapes", {"bars": 12, "columns": 12}, size=16)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page_errors: list[str] = []

    with start_playwright() as playwright:
        browser = playwright.chromium.launch(**browser_launch_options(chromium))
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)

            # The train page explains the token first, before anything is chosen or uploaded.
            page.goto(service.url + "/#/train")
            note = page.get_by_test_id("train-token-note")
            expect(note).to_be_visible()
            expect(note).to_contain_text("API token")
            expect(note).to_contain_text("genaug token create")
            assert "`" not in note.inner_text()  # plain words, no raw markdown

            page.get_by_label("Model name").fill(MODEL)
            page.locator("#kind-vae").check()
            page.locator("#folder-input").set_input_files(str(images))
            expect(page.get_by_test_id("selection-counts")).to_contain_text("24 images in 2 classes")
            page.get_by_label("Image size (pixels)").fill("16")

            # "Quick look" is the default; without a token the estimate asks for one.
            expect(page.get_by_test_id("preset-quick")).to_be_checked()
            expect(page.get_by_test_id("preset-choice")).to_contain_text("Best quality")
            expect(page.get_by_test_id("train-estimate")).to_contain_text("API token")

            page.locator("#token-input").fill(service.token)
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_test_id("token-status")).to_have_text("token saved")
            expect(note).to_be_hidden()
            # The estimate is measured on this server (one short run of the real training, timed).
            estimate = page.get_by_test_id("train-estimate")
            expect(estimate).to_contain_text("Estimated training time: about", timeout=180_000)
            expect(estimate).to_contain_text("Quick look")
            quick_text = estimate.inner_text()
            assert re.search(r"about \d+(\.\d+)? (s|min|h)", quick_text), quick_text

            # A bigger preset takes longer, and the estimate says so before the start.
            page.get_by_test_id("preset-standard").check()
            expect(estimate).to_contain_text("Standard", timeout=180_000)
            expect(estimate).to_contain_text("Estimated training time: about")
            page.get_by_test_id("preset-quick").check()
            expect(estimate).to_contain_text("Quick look", timeout=180_000)
            page.screenshot(path=str(shots / "train-1280.png"), full_page=True)
            assert page.evaluate(NO_OVERFLOW)
            assert accessibility_problems(page) == []

            # Long enough to watch (grids every 25 steps), bounded by max_seconds: the model as of
            # then is kept. The preset's own fields (mode, channels) stay as "Quick look" set them.
            page.get_by_text("Advanced settings").click()
            expect(page.locator("#cfg-mode option:checked")).to_have_text("conditional")  # from the preset
            page.locator("#cfg-steps").fill("4000")
            page.locator("#cfg-sample_every").fill("25")
            page.locator("#cfg-max_seconds").fill("25")
            page.locator("#cfg-checkpoint_every").fill("0")
            page.get_by_role("button", name="Upload and start training").click()

            # Sample grids while it trains: the grid shows while the job's status says running
            # (the training runs 25 s or 4,000 steps; the first grid comes after 25 steps, and the page
            # refreshes it every 4 s).
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"), timeout=60_000)
            train_id = page.url.rsplit("/", 1)[-1]
            page.wait_for_function("""() => {
                const grid = document.querySelector('[data-testid=job-grid]');
                const status = document.querySelector('[data-testid=job-status] [data-status]');
                return grid && !grid.hidden && grid.naturalWidth > 0 && status && status.dataset.status === 'running';
            }""", timeout=120_000)
            page.screenshot(path=str(shots / "training-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / "training-390.png"), full_page=True)
            assert page.evaluate(NO_OVERFLOW)
            page.set_viewport_size({"width": 1280, "height": 900})
            expect(page.get_by_test_id("job-status")).to_contain_text("succeeded", timeout=180_000)

            # Generate: the seed is random unless given; the balanced data cannot be "balanced".
            page.get_by_test_id("generate-from-model").click()
            expect(page.get_by_role("heading", name="Generate images")).to_be_visible()
            expect(page.locator("#gen-seed")).to_have_value("")
            expect(page.locator("#gen-seed")).to_have_attribute("placeholder", "random")
            expect(page.get_by_test_id("gen-balance")).to_be_disabled()
            expect(page.get_by_test_id("gen-balance-note")).to_contain_text("nothing to balance")
            expect(page.get_by_test_id("gen-options")).not_to_contain_text("Filter")  # filters have their own box
            # trained without the generative classifier: its filter is offered but cannot be ticked
            expect(page.get_by_test_id("gen-filter-generative-classifier")).to_be_disabled()
            expect(page.get_by_test_id("gen-filter-generative-classifier")).not_to_be_checked()
            # The post-sample filters: the model kept its training images' features with its quality card.
            expect(page.get_by_test_id("gen-filter-confidence")).to_be_enabled()
            page.get_by_test_id("gen-filter-confidence").check()
            page.get_by_test_id("gen-confidence").fill("0.5")
            page.get_by_label("Images per class").fill("30")
            page.get_by_role("button", name="Generate", exact=True).click()
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"))

            # The gallery: class by class, a page at a time.
            gallery = page.get_by_test_id("gallery")
            expect(gallery).to_be_visible(timeout=120_000)
            expect(page.get_by_test_id("gallery-classes")).to_contain_text("bars (30)")
            expect(page.get_by_test_id("gallery-classes")).to_contain_text("columns (30)")
            expect(page.get_by_test_id("gallery-image")).to_have_count(30)
            expect(page.get_by_test_id("gallery-status")).to_contain_text("bars: images 1–30 of 30")
            expect(page.get_by_test_id("generated-filters")).to_contain_text("Filters confidence:0.5")
            expect(page.get_by_test_id("generated-quality")).to_contain_text("Quality of these images")
            expect(page.get_by_test_id("gallery-verdict").first).to_contain_text("passed the filter")
            # The first row is in view (the rest load lazily as one scrolls): real PNGs from the job.
            page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=gallery-image]')].slice(0, 4)
                                          .every((img) => img.complete && img.naturalWidth === 16)""")
            page.get_by_role("button", name="columns (30)").click()
            expect(page.get_by_test_id("gallery-status")).to_contain_text("columns: images 1–30 of 30")
            expect(page.get_by_test_id("gallery-next")).to_be_disabled()
            page.screenshot(path=str(shots / "gallery-1280.png"), full_page=True)
            assert accessibility_problems(page) == []
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / "gallery-390.png"), full_page=True)
            assert page.evaluate(NO_OVERFLOW)

            # The model card carries the quality card made when the training finished.
            page.set_viewport_size({"width": 1280, "height": 900})
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Models", exact=True).click()
            quality = page.locator(f"[data-testid=model-card][data-model='{MODEL}'] [data-testid=model-quality]")
            quality.locator("summary").click()
            expect(quality).to_contain_text("16 per class against the training images")
            expect(quality).to_contain_text("Near-copies")
            expect(quality).to_contain_text("KID")
            expect(quality).to_contain_text("lower is better")  # every number explained in a line
        finally:
            browser.close()

    assert not page_errors, f"JavaScript errors in the page: {page_errors}"
    trained = service.get_json(f"/api/jobs/{train_id}")
    assert trained["status"] == "succeeded", trained["error"]
    config = trained["params"]["config"]
    # The preset's fields plus what was changed in the advanced form, and nothing lost on the way.
    assert config["mode"] == "conditional" and config["channels"] == [16, 32, 64]
    assert config["sample_every"] == 25 and config["steps"] == 4000
    # Grids were written during the training, not only at its end (every 25 steps).
    model = service.get_json(f"/api/models/{MODEL}")
    assert model["metrics"]["quality"]["samples_per_class"] == 16  # the API's model details carry the card
    grids = sorted((service.home / "models" / model["id"] / "training").glob("*/samples/step-*.png"))
    assert len(grids) >= 2 and grids[0].name == "step-000025.png", [g.name for g in grids]
    generated = service.get_json("/api/jobs?type=generate")[0]
    assert isinstance(generated["params"]["seed"], int) and generated["params"]["filters"] == ["confidence:0.5"]
    assert generated["result"]["filters"]["accepted"] == 60 and "overall" in generated["result"]["quality"]

    if os.environ.get("GENAUG_UPDATE_SCREENSHOT") == "1":
        for name in ("train-1280.png", "training-1280.png", "training-390.png", "gallery-1280.png"):
            shutil.copy(shots / name, REPO / "docs" / f"ui-{name}")
