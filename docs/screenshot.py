"""Make docs/ui-screenshot.png: the web UI's job page after a short real training.

Starts `genaug serve` on a temporary home, uploads 3 MNIST classes (100 images each, from
../shared/data/mnist.npz) through the API, trains a conditional VAE for 1,500 steps, then
opens the job page in headless Debian chromium and takes the screenshot.

    .venv/bin/python docs/screenshot.py
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "service"))
from _browser import browser_launch_options, start_playwright  # noqa: E402
from conftest import start_service, stop_service  # noqa: E402


def mnist_pngs(classes=(0, 3, 8), per_class: int = 100) -> dict[str, bytes]:
    data_dir = Path(os.environ.get("GENAUG_DATA", ROOT.parent / "shared" / "data"))
    with np.load(data_dir / "mnist.npz") as mnist:
        images, labels = mnist["x_train"], mnist["y_train"]
    files = {}
    for c in classes:
        for i, index in enumerate(np.flatnonzero(labels == c)[:per_class]):
            buffer = io.BytesIO()
            Image.fromarray(images[index]).save(buffer, format="PNG")
            files[f"digit-{c}/{i}.png"] = buffer.getvalue()
    return files


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        service = start_service(Path(tmp) / "home", None, workers=1, extra_env={"GENAUG_MAX_IMAGE_PIXELS": "50000000"})
        try:
            assert service.upload("mnist-three", mnist_pngs(), image_size=28).status_code == 201
            job = service.submit("train", {"dataset": "mnist-three", "kind": "vae", "name": "mnist-three-vae",
                                           "config": {"mode": "conditional", "steps": 1500, "sample_every": 250,
                                                      "generative_classifier": False}}).json()
            done = service.wait(job["id"], timeout=600)
            assert done["status"] == "succeeded", done["error"]
            manager = start_playwright()
            playwright = manager.__enter__()
            browser = playwright.chromium.launch(**browser_launch_options())
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(service.url + "/")
            page.evaluate("token => localStorage.setItem('genaug.token', token)", service.token)
            page.goto(f"{service.url}/#/jobs/{job['id']}")
            page.reload()  # the token field is filled when the page loads
            page.get_by_text("100%").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # the loss chart and the grid image
            page.screenshot(path=str(ROOT / "docs" / "ui-screenshot.png"))
            browser.close()
            manager.__exit__(None, None, None)
        finally:
            stop_service(service)
    print(ROOT / "docs" / "ui-screenshot.png")


if __name__ == "__main__":
    main()
