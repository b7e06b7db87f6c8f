"""Helpers of the browser test: a real `genaug serve` in a subprocess, Debian's chromium, test images.

The service runs exactly as a user starts it (the CLI, a fresh GENAUG_HOME, one worker); the
browser is the system chromium, never Playwright's downloaded builds.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest
from PIL import Image

from conftest import Service, start_service, stop_service

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    # Nothing but the local service may be reached from the page.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


def _require_or_skip(what: str, reason: str):
    """tests/_external.require_or_skip (fails in CI, skips locally); a plain skip where it is missing."""
    try:
        from _external import require_or_skip  # tests/ is on sys.path (tests/conftest.py imports it too)
    except ImportError:
        pytest.skip(f"{what} is not available: {reason}")
    require_or_skip(what, reason)


def chromium_executable() -> str:
    """Path of the system chromium, or skip (fail in CI) when there is none (or no playwright package)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        _require_or_skip("playwright", f"the Python package is not installed ({error})")
    for candidate in (os.environ.get("GENAUG_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _require_or_skip("chromium", "no chromium executable (apt-get install chromium, or set GENAUG_CHROMIUM)")


def start_playwright():
    """``sync_playwright()`` (use it in a ``with``), or skip (fail in CI) when the package is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _require_or_skip("playwright", f"the Python package is not installed ({error})")
    return sync_playwright()


def run_service(tmp_path: Path, database_url: Optional[str] = None, *, workers: int = 1,
                extra_env: Optional[dict] = None) -> Iterator[Service]:
    """`genaug serve` as a user starts it (token from `genaug token create`, the service's default
    limits, a fresh GENAUG_HOME); yield it; always stop it."""
    # A name of its own: with PostgreSQL the module's tests share one database (and its tokens).
    service = start_service(tmp_path / "genaug-home", database_url, workers=workers, token_via_cli=True,
                            limits=False, log_name="service.log", token_name=f"browser-{tmp_path.name[-20:]}",
                            extra_env=extra_env)
    try:
        yield service
    finally:
        stop_service(service)


def write_image_folder(root: Path, classes: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """A folder of small PNGs, one subfolder per class; each class has its own simple shape.

    Also a stray text file, which the UI must list as ignored.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for index, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir()
        for i in range(count):
            image = np.zeros((size, size, 3), np.uint8)
            a, b = sorted(rng.integers(2, size - 2, size=2))
            if index % 2 == 0:   # a horizontal bar
                image[a:b + 2, 2:size - 2] = (220, 60 + 10 * i, 40)
            else:                # a vertical bar
                image[2:size - 2, a:b + 2] = (40, 80, 200 - 5 * i)
            image = np.clip(image.astype(int) + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"{name}_{i:02d}.png")
    (root / name / "notes.txt").write_text("not an image")
    return root


def browser_launch_options(executable: Optional[str] = None) -> dict:
    return {"executable_path": executable or chromium_executable(), "args": CHROMIUM_ARGS, "headless": True}


_A11Y_PROBLEMS = """() => {
  const problems = [];
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  for (const control of document.querySelectorAll('input, select, textarea')) {
    if (control.type === 'hidden' || !visible(control)) continue;
    const named = (control.labels && control.labels.length) || control.getAttribute('aria-label')
      || control.getAttribute('aria-labelledby');
    if (!named) problems.push(`no label: ${control.outerHTML.slice(0, 120)}`);
  }
  let previous = 0;
  for (const heading of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    if (!visible(heading)) continue;
    const level = Number(heading.tagName[1]);
    if (level > previous + 1) problems.push(`heading jumps from h${previous} to h${level}: ${heading.textContent.trim()}`);
    previous = level;
  }
  if (document.querySelectorAll('h1').length !== 1) problems.push(`${document.querySelectorAll('h1').length} h1 headings`);
  for (const clickable of document.querySelectorAll('[onclick], div[role=button], span[role=button]')) {
    problems.push(`not a real button: ${clickable.outerHTML.slice(0, 120)}`);
  }
  const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (duplicates.length) problems.push(`duplicate ids: ${[...new Set(duplicates)].join(', ')}`);
  return problems;
}"""


def accessibility_problems(page) -> list[str]:
    """Basic checks of the current page: labelled controls, heading order, one h1, unique ids."""
    return page.evaluate(_A11Y_PROBLEMS)
