"""Helpers of the browser test: a real `genaug serve` in a subprocess, Debian's chromium, test images.

The service runs exactly as a user starts it (the CLI, a fresh GENAUG_HOME, one worker); the
browser is the system chromium, never Playwright's downloaded builds.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest
from PIL import Image

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def genaug_command(*args: str) -> list[str]:
    """The `genaug` CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "genaug"
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from genaug.cli import app; sys.argv[0] = 'genaug'; app()", *args]


@dataclass
class Service:
    url: str
    token: str
    home: Path
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)


def service_env(home: Path, database_url: Optional[str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GENAUG_HOME": str(home), "HF_HUB_OFFLINE": "1", "GENAUG_NO_PLUGINS": "1",
                # Tiny models; other tests may share the machine: one thread each.
                "GENAUG_JOB_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("GENAUG_READ_REQUIRES_TOKEN", None)
    # The registry database of this test (the PostgreSQL run's URL), else the SQLite file in GENAUG_HOME.
    env.pop("GENAUG_DATABASE_URL", None)
    if database_url:
        env["GENAUG_DATABASE_URL"] = database_url
    return env


def stop_process(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the server (it stops its workers), then SIGKILL its whole process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers and job children left behind, if any
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.kill()
        process.wait(5)


def run_service(tmp_path: Path, database_url: Optional[str] = None, *, workers: int = 1,
                startup_timeout: float = 90.0) -> Iterator[Service]:
    """Start `genaug serve` with a fresh GENAUG_HOME and a token (`genaug token create`); yield it; always stop it."""
    home = tmp_path / "genaug-home"
    home.mkdir()
    env = service_env(home, database_url)
    created = subprocess.run(genaug_command("token", "create", "tester"), env=env, capture_output=True,
                             text=True, timeout=120)
    assert created.returncode == 0, f"genaug token create failed:\n{created.stdout}\n{created.stderr}"
    token = created.stdout.strip().splitlines()[-1].strip()
    assert token, f"no token on stdout: {created.stdout!r} / {created.stderr!r}"

    port = free_port()
    log_path = tmp_path / "service.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        genaug_command("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                       "--log-level", "warning"),
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(f"http://127.0.0.1:{port}", token, home, process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"genaug serve exited with {process.returncode}:\n{service.log_tail()}")
            try:
                if service.get_json("/api/health").get("status") == "ok":
                    break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"genaug serve did not answer /api/health in {startup_timeout} s:\n"
                                     f"{service.log_tail()}")
            time.sleep(0.3)
        yield service
    finally:
        stop_process(process)
        log.close()


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
