"""Service figures: upload of three 3000 x 2400 JPEGs, 50 concurrent generate requests, a worker SIGKILL.

The thesis's service took over ten minutes to upload three 3000 x 2400 images (base64 in
JSON, seed 002 ch. 5.1.3); the target here is under 5 seconds end to end. The photos are real
flowers from ../shared/data/flowers, enlarged to 3000 x 2400 with sensor-like noise added so
that the JPEGs are as large as a camera's (a smooth upscale compresses to a fraction of that).

End to end = from the client starting the multipart POST until it has the 201 response:
transfer, streaming to disk, decoding, resizing, validating and storing the dataset.

The load and fault figures come from the slow tests (``tests/service/test_faults_and_load.py``),
run by this script with ``GENAUG_BENCH_OUT`` so they write their JSON here.

    python bench/service.py            # writes bench/results/service.md and service.json
"""
from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from _common import BENCH_DIR, machine, setup, write_json

ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT / "tests" / "service"))
from conftest import start_service, stop_service  # noqa: E402


def camera_sized_jpegs(count: int = 3, size=(3000, 2400), seed: int = 0) -> list[tuple[str, bytes]]:
    """Real flower photos enlarged to ``size`` with noise, as JPEG (quality 92) bytes."""
    rng = np.random.default_rng(seed)
    folder = Path(os.environ.get("GENAUG_DATA", ROOT.parent / "shared" / "data")) / "flowers"
    # Two classes: a dataset needs at least two.
    sources = sorted((folder / "tulip").glob("*.jpg"))[:count - 1] + sorted((folder / "rose").glob("*.jpg"))[:1]
    files = []
    for index, path in enumerate(sources):
        image = np.asarray(Image.open(path).convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32)
        image += rng.normal(0, 6, image.shape)  # sensor noise: camera-like file sizes
        buffer = io.BytesIO()
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=92)
        files.append((f"{path.parent.name}/photo{index}.jpg", buffer.getvalue()))
    return files


def measure_upload(service, files, repeats: int) -> list[float]:
    times = []
    for attempt in range(repeats):
        parts = [("files", (name, data, "image/jpeg")) for name, data in files]
        started = time.perf_counter()
        with httpx.Client(base_url=service.url, timeout=120) as client:
            response = client.post("/api/datasets", headers=service.auth, files=parts,
                                   data={"name": f"big{attempt}", "image_size": "64"})
        times.append(time.perf_counter() - started)
        if response.status_code != 201 or response.json()["n"] != len(files):
            raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")
    return times


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-tests", action="store_true", help="only the upload figure")
    args = parser.parse_args()
    results: dict = {"machine": machine(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        files = camera_sized_jpegs()
        service = start_service(Path(tmp) / "home", os.environ.get("GENAUG_DATABASE_URL"), workers=0,
                                extra_env={"GENAUG_MAX_UPLOAD_BYTES": str(200 * 1024 * 1024),
                                           "GENAUG_MAX_IMAGE_PIXELS": "50000000"})  # the defaults
        try:
            times = measure_upload(service, files, args.repeats)
        finally:
            stop_service(service)
    results["upload"] = {"files": len(files), "pixels": "3000x2400", "bytes": sum(len(d) for _, d in files),
                         "seconds": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
                         "max_s": round(max(times), 3), "target_s": 5.0}
    print(json.dumps(results["upload"], indent=1), flush=True)
    if not args.skip_tests:
        out = Path(tempfile.mkdtemp())
        command = [sys.executable, "-m", "pytest", "-q", "-s", "-m", "slow", "tests/service/test_faults_and_load.py"]
        completed = subprocess.run(command, cwd=ROOT, env={**os.environ, "GENAUG_BENCH_OUT": str(out)})
        results["tests_exit_code"] = completed.returncode
        for path in sorted(out.glob("*.json")):
            results[path.stem] = json.loads(path.read_text())
    write_json(args.out / "service.json", results)
    write_markdown(args.out / "service.md", results)


def write_markdown(path: Path, results: dict) -> None:
    up = results["upload"]
    lines = ["# Service figures", "",
             f"Command: `{results['machine']['command']}` (finished {results['machine']['finished']}; "
             f"{results['machine']['cpu_count']} CPU cores, no GPU; the slow tests are "
             "`pytest -m slow tests/service/test_faults_and_load.py`, which `make test-slow` also runs). "
             f"Load average when it started: {results.get('load_average_at_start')} (other benchmarks may share "
             "the machine: see the log of the run).", "",
             "## Upload of three 3000 x 2400 JPEGs (seed 002 ch. 5.1.3: over 10 minutes)", "",
             f"{up['files']} camera-sized JPEGs, {up['bytes'] / 1e6:.1f} MB in all, one multipart POST each time, "
             f"ingested at 64 px: median **{up['median_s']} s**, worst {up['max_s']} s over {len(up['seconds'])} runs "
             f"(target: under {up['target_s']:.0f} s). Runs: {up['seconds']}.", ""]
    load = results.get("load_50_generate")
    if load:
        lines += ["## 50 concurrent generate requests", "",
                  f"{load['requests']} clients at once, each: POST a generate job (tiny VAE, {load['images_per_request']} "
                  f"images), poll it every 0.5 s, download the zip and check it; {load['workers']} workers. "
                  f"Errors: **{load['errors']}**. Latency p50 **{load['p50_s']} s**, p95 **{load['p95_s']} s**, "
                  f"max {load['max_s']} s; {load['requests_per_s']} requests/s ({load['wall_s']} s for all 50).", ""]
    fault = results.get("fault_sigkill_worker")
    if fault:
        lines += ["## SIGKILL of a worker during training", "",
                  f"A VAE training (checkpoints every 100 steps) lost its worker to SIGKILL at step "
                  f"{fault['killed_at_step']}. Heartbeat timeout {fault['heartbeat_timeout_s']} s: the job was "
                  f"re-queued after {fault['requeued_after_s']} s, resumed on another worker from step "
                  f"{fault['resumed_from_step']} (its last checkpoint), and succeeded {fault['finished_after_kill_s']} s "
                  f"after the kill (attempt {fault['attempts']}). When the model first appeared in the list its "
                  f"folder already held {', '.join(fault['artifact_files_when_first_listed'])}.", ""]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
