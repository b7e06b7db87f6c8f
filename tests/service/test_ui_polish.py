"""The web UI's layout and its job actions in a real browser (issue 13: a UI a non-expert finishes
without help): no page scrolls sideways on a phone (390 px), the header is one row on a laptop
(1280 px), cancelling asks first, and a failed or cancelled job can be retried with the same
settings (a refusal is shown in place).

Nothing is trained to the end: one long VAE job is started through the API, cancelled in the
browser, and retried. Screenshots land in the test's tmp_path/screenshots.
"""
from __future__ import annotations

import re

import pytest

from _browser import accessibility_problems, browser_launch_options, start_playwright
from conftest import TINY_VAE, digit_pngs

# A training that runs until it is cancelled (max_seconds: a bound should the cancel go wrong).
LONG_VAE = {**TINY_VAE, "steps": 100_000, "max_seconds": 300}
PAGES = [  # (route, the page's h1)
    ("", "More training data from a few labelled images"),
    ("train", "Train a generator"),
    ("jobs", "Jobs"),
    ("models", "Models"),
    ("generate", "Generate images"),
    ("evaluate", "Evaluate: does synthetic data help?"),
]
VIEWPORTS = [(390, 844), (1280, 900)]
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
HEADER_PARTS = """() => ['.site-header', '.brand', '#nav', '#token-form'].map((s) => {
  const r = document.querySelector(s).getBoundingClientRect();
  return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width };
})"""


def _train_params(name: str, dataset: str) -> dict:
    return {"kind": "vae", "name": name, "dataset": dataset, "config": LONG_VAE, "keep_data": True}


def _created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.timeout(240)
def test_layout_fits_phone_and_laptop_and_jobs_can_be_cancelled_and_retried(browser_service, chromium, tmp_path):
    from playwright.sync_api import expect

    service = browser_service
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # Jobs through the API: A runs (until cancelled in the browser); B waits behind it (one worker),
    # is cancelled at once, and its dataset deleted, so that its retry is refused.
    assert service.upload("polish-digits", digit_pngs(), image_size=16).status_code == 201
    assert service.upload("polish-gone", digit_pngs(per_class=6), image_size=16).status_code == 201
    job_a = _created(service.submit("train", _train_params("polish-vae", "polish-digits")))["id"]
    job_b = _created(service.submit("train", _train_params("polish-vae-b", "polish-gone")))["id"]
    with service.client() as client:
        assert client.post(f"/api/jobs/{job_b}/cancel", headers=service.auth).status_code == 200
        service.wait(job_b, timeout=60, until=("cancelled",))
        assert client.delete("/api/datasets/polish-gone", headers=service.auth).status_code == 204

    page_errors: list[str] = []
    cancel_posts: list[str] = []
    with start_playwright() as playwright:
        browser = playwright.chromium.launch(**browser_launch_options(chromium))
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("request", lambda request: cancel_posts.append(request.url)
                    if request.method == "POST" and request.url.endswith("/cancel") else None)
            page.set_default_timeout(30_000)
            expect.set_options(timeout=20_000)

            # 1. Every page at phone and laptop width: nothing scrolls sideways; the header is one
            # row on the laptop and stays inside the screen on the phone.
            for width, height in VIEWPORTS:
                page.set_viewport_size({"width": width, "height": height})
                for route, title in PAGES:
                    page.goto(f"{service.url}/#/{route}")
                    expect(page.get_by_test_id("page-title")).to_have_text(title)
                    expect(page.get_by_test_id("loading")).to_have_count(0)
                    if route == "":
                        expect(page.get_by_test_id("example-grids")).not_to_contain_text("Loading")
                    if route == "jobs":
                        expect(page.get_by_test_id("job-row")).to_have_count(2)
                        for box in [row.bounding_box() for row in page.get_by_test_id("job-row").all()]:
                            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (width, box)
                    name = route or "home"
                    page.screenshot(path=str(shots / f"{width}-{name}.png"), full_page=True)
                    assert page.evaluate(NO_OVERFLOW), (
                        f"{name} at {width} px scrolls sideways: "
                        f"{page.evaluate('document.documentElement.scrollWidth')} px wide")
                    header, brand, nav, token = page.evaluate(HEADER_PARTS)
                    for part in (brand, nav, token):
                        assert part["left"] >= 0 and part["right"] <= width + 0.5, (name, width, part)
                    if width == 1280:
                        # One row: title, nav and token form side by side (they overlap vertically).
                        assert max(p["top"] for p in (brand, nav, token)) < min(p["bottom"] for p in (brand, nav, token)), \
                            (name, brand, nav, token)
                        assert header["bottom"] - header["top"] < 90, (name, header)
                    else:
                        assert token["width"] > 300 and nav["width"] > 300, (name, nav, token)
                        assert header["bottom"] - header["top"] < 200, (name, header)

            # 2. Cancel asks first; dismissing changes nothing.
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{service.url}/#/jobs/{job_a}")
            expect(page.get_by_test_id("job-status")).to_contain_text(re.compile("queued|running"))
            page.locator("#token-input").fill(service.token)
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_test_id("token-status")).to_have_text("token saved")
            questions: list[str] = []

            def dismiss(dialog):
                questions.append(dialog.message)
                dialog.dismiss()

            page.once("dialog", dismiss)
            page.get_by_test_id("job-cancel").click()
            expect(page.get_by_test_id("job-cancel")).to_be_enabled()
            page.wait_for_timeout(500)
            assert questions == ["Cancel this job? Training stops; the model is not kept."]
            assert cancel_posts == []
            still = service.get_json(f"/api/jobs/{job_a}")
            assert still["status"] in ("queued", "running") and not still["cancel_requested"], still["status"]
            expect(page.get_by_test_id("job-result")).to_be_hidden()

            # Accepting cancels it; the result area then offers "Retry".
            def accept(dialog):
                questions.append(dialog.message)
                dialog.accept()

            page.once("dialog", accept)
            page.get_by_test_id("job-cancel").click()
            expect(page.get_by_test_id("job-status")).to_contain_text("cancelled", timeout=60_000)
            assert len(questions) == 2 and len(cancel_posts) == 1
            expect(page.get_by_test_id("job-cancelled")).to_be_visible()
            retry = page.get_by_test_id("job-retry")
            expect(retry).to_be_visible()
            expect(retry).to_have_text("Retry")
            assert accessibility_problems(page) == []
            page.screenshot(path=str(shots / "1280-cancelled-job.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            assert page.evaluate(NO_OVERFLOW)
            page.screenshot(path=str(shots / "390-cancelled-job.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 900})

            # Retry: a new job with the same type and settings, and its page.
            retry.click()
            page.wait_for_url(re.compile(r".*#/jobs/[^/]+$"))
            expect(page).not_to_have_url(re.compile(f"{job_a}$"))
            retried_id = page.url.rsplit("/", 1)[-1]
            expect(page.get_by_test_id("job-what")).to_contain_text("polish-vae")
            retried = service.get_json(f"/api/jobs/{retried_id}")
            original = service.get_json(f"/api/jobs/{job_a}")
            assert retried["type"] == "train" and retried["params"] == original["params"]
            with service.client() as client:  # no need to train it
                assert client.post(f"/api/jobs/{retried_id}/cancel", headers=service.auth).status_code == 200

            # A refused retry (B's dataset is gone) says why, in place, and stays on the page.
            page.goto(f"{service.url}/#/jobs/{job_b}")
            expect(page.get_by_test_id("job-cancelled")).to_be_visible()
            page.get_by_test_id("job-retry").click()
            expect(page.get_by_test_id("job-retry-error")).to_contain_text("no stored dataset 'polish-gone'")
            expect(page.get_by_test_id("job-retry")).to_be_enabled()
            assert page.url.endswith(job_b)
            page.screenshot(path=str(shots / "1280-refused-retry.png"), full_page=True)
        finally:
            browser.close()

    assert not page_errors, f"JavaScript errors in the page: {page_errors}"
    service.wait(retried_id, timeout=60, until=("cancelled",))
    assert len(service.get_json("/api/jobs?type=train&limit=100")) == 3
