"""With GENAUG_READ_REQUIRES_TOKEN=true every page, opened without a token, explains the token
once, in plain words, and never leaves a "Loading…" behind (a real browser, the real app)."""
from __future__ import annotations

import pytest
from conftest import InProcessServer

from _browser import browser_launch_options, chromium_executable, start_playwright
from genaug.service.settings import ServiceSettings

# The UI's token notes; the read-token API runs on both databases in the service API tests.
pytestmark = pytest.mark.database_agnostic

PAGES = ["#/", "#/train", "#/jobs", "#/models", "#/generate", "#/evaluate"]


@pytest.mark.timeout(300)
def test_pages_explain_the_token_once_and_never_hang_on_loading(tmp_path, module_database_url):
    chromium = chromium_executable()
    from playwright.sync_api import expect

    settings = ServiceSettings(home=tmp_path / "home", database_url=module_database_url, read_requires_token=True)
    errors: list[str] = []
    with InProcessServer(settings) as url, start_playwright() as playwright:
        browser = playwright.chromium.launch(**browser_launch_options(chromium))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            expect.set_options(timeout=30_000)
            for route in PAGES:
                page.goto(f"{url}/{route}")
                page.reload()  # a fresh page load for every route
                page.wait_for_load_state("networkidle")  # every request answered: the page has settled
                # Explained once, in the page: where a token comes from, and not again in the header.
                explained = page.locator("main code", has_text="genaug token create")
                expect(explained).to_have_count(1)
                expect(explained).to_be_visible()
                expect(page.get_by_test_id("auth-alert")).to_be_hidden()
                # Nothing waits forever: every "Loading…" line is gone once the page has settled.
                expect(page.get_by_text("Loading…", exact=True)).to_have_count(0)
                assert "`" not in page.locator("main").inner_text(), route
        finally:
            browser.close()
    assert not errors, errors
