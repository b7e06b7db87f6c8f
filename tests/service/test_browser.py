"""The web UI in a real browser against the real service: train, watch, generate, download, browse.

Headless Debian chromium driven by Playwright; `genaug serve` in a subprocess with a fresh
GENAUG_HOME and one worker; a tiny VAE so the whole walk takes well under two minutes on a CPU.
Screenshots land in the test's tmp_path (the README's come from test_browser_novice.py).
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from _browser import accessibility_problems, browser_launch_options, start_playwright, write_image_folder

# The UI over the service: the registry calls behind these pages run on both databases in test_api.py.
pytestmark = pytest.mark.database_agnostic

MODEL = "shapes-vae"
# vae tiny_config() values (seconds on a CPU), entered through the generated Advanced form;
# no generative-classifier filter, which would only add training time here.
TINY_VAE = {"steps": "30", "batch_size": "16", "hidden": "16", "latent_dim": "2", "channels": "[4, 8]",
            "checkpoint_every": "0"}


@pytest.mark.timeout(300)
def test_train_generate_download_in_the_browser(browser_service, chromium, tmp_path):
    service = browser_service
    from playwright.sync_api import expect

    images = write_image_folder(tmp_path / "shapes", {"bars": 12, "columns": 12}, size=16)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page_errors: list[str] = []

    with start_playwright() as playwright:
        browser = playwright.chromium.launch(**browser_launch_options(chromium))
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            # Generous waits: CI machines and this one are shared; a cold /api/kinds takes seconds.
            page.set_default_timeout(30_000)
            expect.set_options(timeout=20_000)
            nav = page.get_by_role("navigation", name="Main")

            # Home: the tutorial, with the server's kinds.
            page.goto(service.url + "/")
            expect(page.get_by_role("heading", name="How it works, in 4 steps")).to_be_visible()
            expect(page.get_by_test_id("tutorial")).to_contain_text("Train a generator")
            expect(page.get_by_test_id("kinds-list")).to_contain_text("vae")
            expect(page.get_by_test_id("example-grids")).to_contain_text("No trained models yet")
            page.screenshot(path=str(shots / "home.png"), full_page=True)
            assert accessibility_problems(page) == []

            # Train: fill the wizard; the first submit has no token yet -> the 401 message in place.
            nav.get_by_role("link", name="Train", exact=True).click()
            expect(page.get_by_role("heading", name="Train a generator")).to_be_visible()
            page.get_by_label("Model name").fill("bad/name")
            expect(page.get_by_test_id("train-name-error")).to_contain_text("not a valid name")
            page.get_by_label("Model name").fill(MODEL)
            expect(page.get_by_test_id("train-name-error")).to_be_hidden()
            expect(page.locator("#kind-vae")).to_be_checked()  # preselected by the server's hint
            page.locator("#kind-vae").check()

            # Class by class: files dropped onto a row go to that class; non-images are listed as ignored.
            page.locator("#source-classes").check()
            dropped = page.evaluate_handle("""() => {
                const transfer = new DataTransfer();
                transfer.items.add(new File([new Uint8Array([137, 80, 78, 71])], 'a.png', {type: 'image/png'}));
                transfer.items.add(new File(['x'], 'readme.txt', {type: 'text/plain'}));
                return transfer; }""")
            page.get_by_test_id("class-row-1").dispatch_event("drop", {"dataTransfer": dropped})
            expect(page.get_by_test_id("class-summary-1")).to_contain_text("1 image")
            expect(page.get_by_test_id("class-ignored-1")).to_contain_text("1 file ignored")
            page.locator("#class-name-1").fill("cats")
            expect(page.get_by_test_id("selection-counts")).to_contain_text("cats")

            # A folder with one subfolder per class (what is uploaded).
            page.locator("#source-folder").check()
            page.locator("#folder-input").set_input_files(str(images))
            expect(page.get_by_test_id("selection-counts")).to_contain_text("24 images in 2 classes")
            expect(page.get_by_test_id("ignored-files")).to_contain_text("1 file ignored")
            page.get_by_label("Image size (pixels)").fill("16")
            page.get_by_text("Advanced settings").click()
            for name, value in TINY_VAE.items():
                page.locator(f"#cfg-{name}").fill(value)
            expect(page.locator("#cfg-steps")).to_have_value("30")
            page.screenshot(path=str(shots / "train-form.png"), full_page=True)
            assert accessibility_problems(page) == []

            page.get_by_role("button", name="Upload and start training").click()
            # No token: refused before the upload, explained once, in place (not again in the header).
            expect(page.get_by_test_id("train-error")).to_contain_text("Nothing was uploaded")
            expect(page.get_by_test_id("train-error")).to_contain_text("genaug token create")
            expect(page.get_by_test_id("upload-box")).to_be_hidden()
            expect(page.get_by_test_id("auth-alert")).to_be_hidden()
            expect(page.locator("#token-input")).to_be_focused()

            page.locator("#token-input").fill(service.token)
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_test_id("token-status")).to_have_text("token saved")
            page.get_by_role("button", name="Upload and start training").click()

            # Job page: progress reaches 100 %, the loss chart and the upload report are there.
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"), timeout=30_000)
            expect(page.get_by_test_id("ingest-report")).to_contain_text("24 images accepted")
            expect(page.get_by_test_id("job-percent")).to_have_text("100%", timeout=120_000)
            expect(page.get_by_test_id("job-status")).to_contain_text("succeeded")
            expect(page.locator("#job-progress")).to_have_attribute("value", "100")
            expect(page.get_by_test_id("chart-section")).to_be_visible()
            expect(page.get_by_test_id("job-cancel")).to_be_hidden()
            page.screenshot(path=str(shots / "progress.png"), full_page=True)
            page.screenshot(path=str(shots / "progress-top.png"))
            assert accessibility_problems(page) == []

            # Generate 3 per class from the new model and download the zip.
            page.get_by_test_id("generate-from-model").click()
            expect(page.get_by_role("heading", name="Generate images")).to_be_visible()
            expect(page.locator("#gen-model")).to_have_value(MODEL)
            expect(page.get_by_test_id("gen-options")).to_contain_text("Sampler")
            page.get_by_label("Images per class").fill("3")
            page.get_by_label("Seed").fill("7")
            page.screenshot(path=str(shots / "generate.png"), full_page=True)
            assert accessibility_problems(page) == []
            page.get_by_role("button", name="Generate", exact=True).click()
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"))
            link = page.get_by_test_id("download-link")
            expect(link).to_be_visible(timeout=90_000)
            expect(page.get_by_test_id("job-percent")).to_have_text("100%")
            with page.expect_download() as download_info:
                link.click()
            archive = tmp_path / "samples.zip"
            download_info.value.save_as(archive)

            # Models: the new model's card.
            nav.get_by_role("link", name="Models", exact=True).click()
            card = page.locator(f"[data-testid=model-card][data-model='{MODEL}']")
            expect(card).to_be_visible()
            expect(card.get_by_test_id("model-kind")).to_have_text("vae")
            expect(card.get_by_test_id("model-classes")).to_contain_text("bars")
            expect(card.get_by_test_id("model-training-data")).to_contain_text("near-copies")
            page.screenshot(path=str(shots / "models.png"), full_page=True)
            assert accessibility_problems(page) == []

            # Home now shows the model's sample grid (or says it has none).
            nav.get_by_role("link", name="Home", exact=True).click()
            expect(page.get_by_test_id("example-grids")).to_contain_text(MODEL)

            # Evaluate: a dataset kept on the server, classic + a VAE with few training steps.
            upload_through_api(service, images, "eval-shapes")
            nav.get_by_role("link", name="Evaluate", exact=True).click()
            page.locator("#eval-dataset").select_option("eval-shapes")
            expect(page.get_by_test_id("eval-mode-quick")).to_be_checked()  # the default: a first answer
            expect(page.get_by_test_id("eval-kinds")).to_be_hidden()
            expect(page.get_by_test_id("eval-select-fields")).to_be_hidden()
            # "Let genaug choose": the validation pool and the search seeds reach the job's params.
            page.get_by_test_id("eval-mode-select").check()
            expect(page.get_by_test_id("eval-select-fields")).to_be_visible()
            assert accessibility_problems(page) == []
            page.get_by_label("Seeds", exact=True).fill("0")
            page.get_by_label("Search seeds (optional)").fill("1, 1")
            page.get_by_test_id("eval-submit").click()
            expect(page.get_by_test_id("eval-error")).to_contain_text("Search seeds must be")  # checked in place
            page.get_by_label("Search seeds (optional)").fill("3, 4")
            page.get_by_label("Validation images (optional)").fill("100001")
            page.get_by_test_id("eval-submit").click()
            expect(page.get_by_test_id("eval-error")).to_contain_text("from 4 to 100000")
            page.get_by_label("Validation images (optional)").fill("8")
            page.get_by_test_id("eval-submit").click()
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"))
            select_id = page.url.rsplit("/", 1)[-1]
            params = service.get_json(f"/api/jobs/{select_id}")["params"]
            assert (params["select"], params["validation_size"], params["search_seeds"], params["seeds"]) == \
                (True, 8, [3, 4], [0])
            page.once("dialog", lambda dialog: dialog.accept())  # "cancelling cannot be undone"
            page.get_by_test_id("job-cancel").click()
            expect(page.get_by_test_id("job-status")).to_contain_text("cancelled", timeout=120_000)
            nav.get_by_role("link", name="Evaluate", exact=True).click()
            page.locator("#eval-dataset").select_option("eval-shapes")
            page.get_by_test_id("eval-mode-pick").check()
            expect(page.locator("#eval-classifier")).to_have_value("cnn")
            expect(page.get_by_test_id("eval-kind-classic")).to_be_checked()  # the server's hints
            expect(page.get_by_test_id("eval-kind-vae")).to_be_checked()
            expect(page.get_by_test_id("eval-kind-dcgan")).not_to_be_checked()
            page.get_by_test_id("eval-kind-classic").check()
            page.get_by_test_id("eval-kind-vae").check()
            page.get_by_label("Shots (images per class)").fill("3")
            page.get_by_label("Seeds", exact=True).fill("0")
            page.get_by_label("Classifier steps (optional)").fill("10")
            page.get_by_label("Generator training steps (optional)").fill("0")
            page.get_by_test_id("eval-submit").click()
            expect(page.get_by_test_id("eval-error")).to_contain_text("≥ 1")  # checked in place
            page.get_by_label("Generator training steps (optional)").fill("20")
            page.get_by_test_id("eval-submit").click()
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"))
            evaluate_id = page.url.rsplit("/", 1)[-1]
            expect(page.get_by_test_id("job-percent")).to_have_text("100%", timeout=150_000)
            expect(page.get_by_test_id("job-latest")).to_have_text("done")  # the last thing the job reported
            # The answer first, in a sentence; then the warnings; then the plain table.
            expect(page.get_by_test_id("recommendation")).to_contain_text("At 3 per class:")
            expect(page.get_by_test_id("eval-warnings")).to_contain_text("only 1 seed ran")
            table = page.get_by_test_id("results-table")
            expect(table).to_contain_text("your images + classic augmentation")
            expect(table.locator("tr[data-arm='real+synthetic[vae/default]'] th")).to_have_text(
                re.compile(r"your images \+ 3 vae images per class"))
            expect(page.get_by_test_id("how-to-read")).to_contain_text("95% interval")
            page.screenshot(path=str(shots / "evaluate.png"), full_page=True)
            assert accessibility_problems(page) == []

            # The model card: "Does this model help?" on images the model has never seen.
            write_image_folder(tmp_path / "unseen", {"bars": 12, "columns": 12}, size=16, seed=1)
            upload_through_api(service, tmp_path / "unseen", "unseen-shapes")
            nav.get_by_role("link", name="Models", exact=True).click()
            card = page.locator(f"[data-testid=model-card][data-model='{MODEL}']")
            card.get_by_test_id("model-evaluate").click()
            expect(page.get_by_role("heading", name=f"Does {MODEL} help?")).to_be_visible()
            # The images it was trained on are refused, naming the overlap.
            page.locator("#eval-dataset").select_option("eval-shapes")
            page.get_by_label("Seeds", exact=True).fill("0")
            page.get_by_label("Classifier steps (optional)").fill("10")
            page.get_by_test_id("eval-submit").click()
            expect(page.get_by_test_id("eval-error")).to_contain_text(f"{MODEL} was trained on")
            page.locator("#eval-dataset").select_option("unseen-shapes")
            page.get_by_test_id("eval-submit").click()
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"))
            model_eval_id = page.url.rsplit("/", 1)[-1]
            expect(page.get_by_test_id("job-percent")).to_have_text("100%", timeout=150_000)
            expect(page.get_by_test_id("recommendation")).to_contain_text("With all your images:")
            expect(page.get_by_test_id("results-table")).to_contain_text(f"{MODEL} images per class")
            assert accessibility_problems(page) == []
        finally:
            browser.close()

    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        pngs = [n for n in names if n.endswith(".png")]
        per_class = {cls: sum(1 for n in pngs if n.split("/")[0] == cls) for cls in ("bars", "columns")}
        assert per_class == {"bars": 3, "columns": 3}, names
        assert len(pngs) == 6, names
        manifest = [json.loads(line) for line in zipped.read("manifest.jsonl").decode().splitlines() if line.strip()]
        assert len(manifest) == 6
    assert not page_errors, f"JavaScript errors in the page: {page_errors}"

    evaluated = service.get_json(f"/api/jobs/{evaluate_id}")
    assert evaluated["status"] == "succeeded", evaluated["error"]
    assert evaluated["params"]["generators"] == [{"kind": "classic", "config": {}, "label": None},
                                                 {"kind": "vae", "config": {"steps": 20}, "label": None}]
    assert evaluated["params"]["shots"] == [3] and evaluated["params"]["classifier_steps"] == 10
    model_eval = service.get_json(f"/api/jobs/{model_eval_id}")
    assert model_eval["status"] == "succeeded" and model_eval["params"]["model"] == MODEL
    assert model_eval["result"]["mode"] == "model"



def upload_through_api(service, folder: Path, name: str) -> None:
    """Store ``folder`` (one subfolder per class) as dataset ``name`` with a plain multipart POST."""
    import httpx

    files = [("files", (f"{path.parent.name}/{path.name}", path.read_bytes(), "image/png"))
             for path in sorted(folder.glob("*/*.png"))]
    response = httpx.post(f"{service.url}/api/datasets", headers={"Authorization": f"Bearer {service.token}"},
                          files=files, data={"name": name, "image_size": "16"}, timeout=60)
    assert response.status_code == 201, response.text


@pytest.mark.timeout(300)
def test_the_api_docs_render_with_no_network(browser_service, chromium):
    """/docs is Swagger UI from the service's own files: it renders where no CDN can be reached
    (the browser resolves nothing but localhost)."""
    from playwright.sync_api import expect

    failed: list[str] = []
    with start_playwright() as playwright:
        browser = playwright.chromium.launch(**browser_launch_options(chromium))
        try:
            page = browser.new_page()
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(browser_service.url + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("genaug", timeout=30_000)
            expect(page.locator(".opblock-summary-path", has_text="/api/jobs").first).to_be_visible()
        finally:
            browser.close()
    assert failed == []
    assert not [url for url in failed if not url.startswith(browser_service.url)]
