"""Constant-memory generation (issue 16 item 3): `genaug.generate` of 1,000, 10,000 and 100,000
images from a stored model, each in a fresh process, with its peak resident memory (ru_maxrss)
and images/s. The model: a conditional VAE trained on MNIST's first 5,000 training digits (the
short kind: the question is memory, not image quality). Results go into their section of
``bench/results/throughput.md``.

    python bench/streaming.py                  # 1k, 10k, 100k
    python bench/streaming.py --sizes 1000,10000
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, setup, write_json, write_section

MARK_BEGIN = "<!-- streaming: written by bench/streaming.py -->"
MARK_END = "<!-- /streaming -->"
CHILD = """
import json, resource, sys, time
import torch
torch.set_num_threads({threads})
import genaug
started = time.perf_counter()
result = genaug.generate("stream-vae", sys.argv[1], counts={{c: n for c, n in {counts!r}.items()}}, seed=0,
                         batch_size=256, quality=False)
seconds = time.perf_counter() - started
print(json.dumps({{"images": sum(result.counts.values()), "seconds": seconds,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def train_model(home: Path, threads: int) -> None:
    """The stored VAE every size generates from (trained once per run, in its own process)."""
    code = f"""
import torch
torch.set_num_threads({threads})
import genaug
from genaug.data import load_mnist
train, _ = load_mnist()
genaug.train(train.subset(range(5000)), "vae", "stream-vae", overrides={{"mode": "conditional", "steps": 300}})
"""
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "GENAUG_HOME": str(home)})


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="genaug-stream-") as tmp:
        home = Path(tmp) / "home"
        train_model(home, args.threads)
        for size in sizes:
            counts = {str(d): size // 10 + (1 if d < size % 10 else 0) for d in range(10)}
            out = Path(tmp) / f"out-{size}"
            code = CHILD.format(threads=args.threads, counts=counts)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True, text=True,
                                  env={**os.environ, "GENAUG_HOME": str(home)})
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(size=size, wall_seconds=round(time.perf_counter() - started, 1),
                       files=sum(1 for _ in out.rglob("*.png")))
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["peak_rss_mb"]
    payload = {"machine": machine(), "rows": rows}
    write_json(args.out / ("streaming_quick.json" if args.quick else "streaming.json"), payload)
    lines = [MARK_BEGIN, "## Generating 100,000 images with flat memory (issue 16)", "",
             f"`{payload['machine']['command']}`, CPU, {args.threads} torch thread(s): `genaug.generate` from a stored "
             "conditional VAE (MNIST, 28 px PNGs, batches of 256), each size in a fresh process; peak RSS = the "
             "process's ru_maxrss (Python, torch and the model included).", "",
             "| images | images/s | peak RSS (MB) | vs the smallest run |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['images']:,} | {r['images'] / r['seconds']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{(r['peak_rss_mb'] / base - 1) * 100:+.1f} % |")
    largest = rows[-1]
    verdict = "meets" if largest["peak_rss_mb"] <= 1.1 * base else "misses"
    lines += ["", f"- The {largest['images']:,}-image run's peak RSS is {(largest['peak_rss_mb'] / base - 1) * 100:+.1f} % "
                  f"of the {rows[0]['images']:,}-image run's: {verdict} the within-10 % target.", "", MARK_END]
    section = "\n".join(lines)
    write_section(args.out / ("throughput_quick.md" if args.quick else "throughput.md"), MARK_BEGIN, MARK_END, section)
    print(section)


if __name__ == "__main__":
    main()
