"""Throughput: images per second when sampling, training steps per second, peak memory, FLOPs.

- DDIM: our generator's `sample()` against a plain loop written directly from the diffusers
  scheduler docs (`scheduler.set_timesteps(n); for t in scheduler.timesteps: eps = unet(x, t).sample;
  x = scheduler.step(eps, t, x).prev_sample`) on the *same* UNet, the same number of steps and
  the same batch, measured in the same run, alternating, best of `--repeats`. Ratio = ours / plain.
- DCGAN and VAE: images per second of `sample()`.
- Training steps per second of each (the shared training helper, checkpoints off).
- Peak resident memory: every component runs in its own subprocess (ru_maxrss).
- FLOPs per image (torch's FlopCounterMode on one forward pass) and the fraction of this CPU's
  measured fp32 matmul FLOP/s (same thread count) that sampling reaches.

The weights are freshly initialised (a few training steps): throughput does not depend on
what a network has learned.

    python bench/throughput.py                 # 1 thread, the CPU sizes below
    python bench/throughput.py --threads 2
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine, setup, write_json

HERE = Path(__file__).resolve().parent
# The UNet the flowers benchmark trains on a CPU (64 px, 4 levels), and the MNIST one (28 px).
DDIM_64 = {"mode": "per_class", "block_out_channels": [32, 64, 128, 128], "layers_per_block": 1,
           "attention_resolution": 8, "norm_num_groups": 8, "attention_head_dim": 32}
DDIM_28 = {"mode": "per_class", "preset": "28"}
DCGAN_64 = {"mode": "per_class", "ngf": 32, "ndf": 32}
VAE_28 = {"mode": "conditional", "channels": [32, 64, 128], "hidden": 128, "latent_dim": 16}


def matmul_flops(seconds: float = 2.0, size: int = 1024) -> float:
    """Measured fp32 matmul FLOP/s of this CPU at the current thread count (best of several)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * size ** 3 / (time.perf_counter() - started))
    return best


def _images(size: int, channels: int, n: int = 64) -> "LabelledImages":
    from genaug.data import LabelledImages

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return LabelledImages(images, np.zeros(n, np.int64), ["only"])


def _fit(kind: str, config: dict, size: int, channels: int, steps: int):
    from genaug.generators.base import get_generator_class

    generator = get_generator_class(kind)({**config, "steps": steps, "checkpoint_every": 0})
    started = time.perf_counter()
    generator.fit(_images(size, channels))
    return generator, steps / (time.perf_counter() - started)


def forward_flops(module, *args, **kwargs) -> float:
    """FLOPs of one forward call (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return float(counter.get_total_flops())


def op_time_shares(unet, x: torch.Tensor) -> dict[str, float]:
    """Share of one UNet forward's CPU time per kind of op (torch.profiler), to explain the FLOP gap."""
    from torch.profiler import ProfilerActivity, profile

    groups = {"convolution": ("conv",), "matmul (attention, linear)": ("mm", "addmm", "bmm", "matmul", "linear", "baddbmm"),
              "group norm": ("group_norm", "native_group_norm"), "softmax": ("softmax",),
              "activations (SiLU)": ("silu",), "elementwise, copies, resampling": ()}
    with torch.no_grad():
        unet(x, torch.tensor([10]))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            unet(x, torch.tensor([10]))
    totals = {name: 0.0 for name in groups}
    for event in prof.key_averages():
        name = event.key.lower()
        if not name.startswith("aten::"):
            continue
        group = next((g for g, keys in groups.items() if any(k in name for k in keys)), "elementwise, copies, resampling")
        totals[group] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {name: round(value / whole, 3) for name, value in totals.items()}


def bench_ddim(size: int, config: dict, batch: int, steps: int, repeats: int, train_steps: int) -> dict:
    """Our DDIM sampling vs the plain diffusers loop on the same UNet; training steps/s; FLOPs."""
    from diffusers import DDIMScheduler

    generator, train_rate = _fit("ddim", {**config, "batch_size": 16}, size, 3, train_steps)
    unets = generator.role_modules("unet")
    unet = unets["class0"] if "class0" in unets else None
    if unet is None:
        raise RuntimeError("ddim generator: expected per-class UNets (group class0)")
    unet.eval()

    def plain() -> None:
        # Straight from the diffusers scheduler docs: no guidance, no img2img, no uint8 conversion.
        scheduler = DDIMScheduler.from_config(generator.train_scheduler.config)
        scheduler.set_timesteps(steps)
        x = torch.randn(batch, unet.config.in_channels, size, size)
        with torch.no_grad():
            for t in scheduler.timesteps:
                eps = unet(x, t).sample
                x = scheduler.step(eps, t, x).prev_sample

    def ours() -> None:
        generator.sample(batch, label=0, seed=0, steps=steps)

    # Time inside the UNet's forward calls, to show where each loop's time goes.
    in_forward = {"seconds": 0.0}
    unet.register_forward_pre_hook(lambda module, args: in_forward.__setitem__("start", time.perf_counter()))
    unet.register_forward_hook(lambda module, args, output: in_forward.__setitem__(
        "seconds", in_forward["seconds"] + time.perf_counter() - in_forward["start"]))
    ours(); plain()  # warm-up (allocator, kernels)
    times = {"ours": [], "plain": []}
    forward_share = {"ours": [], "plain": []}
    for repeat in range(repeats):
        # Alternate which loop goes first, so neither always runs on a warmer (or cooler) CPU.
        order = (("plain", plain), ("ours", ours)) if repeat % 2 == 0 else (("ours", ours), ("plain", plain))
        for name, fn in order:
            in_forward["seconds"] = 0.0
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
            forward_share[name].append(in_forward["seconds"] / times[name][-1])
    best = {k: min(v) for k, v in times.items()}
    x = torch.randn(1, unet.config.in_channels, size, size)
    flops_step = forward_flops(unet, x, torch.tensor([10]))
    profile = op_time_shares(unet, torch.randn(batch, unet.config.in_channels, size, size))
    params = sum(p.numel() for p in unet.parameters())
    return {"image_size": size, "batch": batch, "steps": steps, "unet_parameters": params,
            "unet_block_out_channels": list(unet.config.block_out_channels),
            "ours_images_per_s": batch / best["ours"], "plain_images_per_s": batch / best["plain"],
            "ratio_ours_over_plain": best["plain"] / best["ours"], "seconds": times,
            "flops_per_image_step": flops_step, "flops_per_image": flops_step * steps,
            "train_steps_per_s": train_rate, "train_batch": 16, "op_time_shares": profile,
            "unet_forward_share": {k: round(float(np.mean(v)), 4) for k, v in forward_share.items()}}


def bench_simple(kind: str, config: dict, size: int, channels: int, batch: int, repeats: int,
                 train_steps: int, network_attr: str) -> dict:
    """images/s of sample() and training steps/s for a DCGAN or VAE."""
    generator, train_rate = _fit(kind, config, size, channels, train_steps)
    generator.sample(batch, label=0, seed=0)
    best = min(_timed(lambda: generator.sample(batch, label=0, seed=0)) for _ in range(repeats))
    return {"image_size": size, "batch": batch, "images_per_s": batch / best, "train_steps_per_s": train_rate,
            "train_batch": config.get("batch_size", 64)}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_component(name: str, args) -> dict:
    """One measurement, in this process (called in a subprocess per component)."""
    torch.set_num_threads(args.threads)
    quick = args.quick
    if name == "matmul":
        result = {"fp32_matmul_flops_per_s": matmul_flops(0.5 if quick else 3.0)}
    elif name == "ddim64":
        result = bench_ddim(64, DDIM_64, 4 if quick else 16, 3 if quick else 50, 1 if quick else 4, 2 if quick else 10)
    elif name == "ddim28":
        result = bench_ddim(28, DDIM_28, 4 if quick else 64, 3 if quick else 50, 1 if quick else 4, 2 if quick else 10)
    elif name == "dcgan64":
        result = bench_simple("dcgan", {**DCGAN_64, "batch_size": 32}, 64, 3, 256, 1 if quick else 5,
                              2 if quick else 30, "generators")
    elif name == "vae28":
        result = bench_simple("vae", {**VAE_28, "batch_size": 64}, 28, 1, 256, 1 if quick else 5,
                              2 if quick else 100, "vaes")
    else:
        raise ValueError(name)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


COMPONENTS = ["matmul", "ddim64", "ddim28", "dcgan64", "vae28"]


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--component", help="internal: run one component and print its JSON")
    parser.add_argument("--only", default=",".join(COMPONENTS))
    args = parser.parse_args()
    if args.component:
        print("RESULT " + json.dumps(run_component(args.component, args)))
        return
    torch.set_num_threads(args.threads)  # recorded in machine(); each component sets it too
    results = {}
    for name in args.only.split(","):
        command = [sys.executable, str(Path(__file__).resolve()), "--component", name, "--threads", str(args.threads)]
        if args.quick:
            command.append("--quick")
        print(f"running {name} ...", flush=True)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(next(l for l in output.splitlines() if l.startswith("RESULT "))[7:])
        print(f"  {name}: {json.dumps({k: v for k, v in results[name].items() if k != 'seconds'})}", flush=True)
    peak = results.get("matmul", {}).get("fp32_matmul_flops_per_s")
    for name in ("ddim64", "ddim28"):
        if name in results and peak:
            r = results[name]
            r["achieved_flops_per_s"] = r["ours_images_per_s"] * r["flops_per_image"]
            r["fraction_of_matmul_peak"] = r["achieved_flops_per_s"] / peak
    name = "throughput_quick" if args.quick else "throughput"
    payload = {"benchmark": "sampling and training throughput", "machine": machine(), "results": results}
    write_json(args.out / f"{name}.json", payload)
    write_markdown(payload, args.out / f"{name}.md")
    print((args.out / f"{name}.md").read_text())


def write_markdown(payload: dict, path: Path) -> None:
    """The throughput table with the command."""
    r, m = payload["results"], payload["machine"]
    lines = ["# Throughput (CPU)", "", f"Command: `{m['command']}` on {m['platform']}, {m['threads']} torch thread(s), "
             f"finished {m['finished']}. No GPU was used.", ""]
    if "matmul" in r:
        lines.append(f"Measured fp32 matmul peak (1024x1024, same threads): {r['matmul']['fp32_matmul_flops_per_s'] / 1e9:.1f} GFLOP/s.")
        lines.append("")
    lines += ["| model | image size | batch | sampling steps | ours img/s | plain diffusers loop img/s | ratio | "
              "FLOPs/image | % of matmul peak | train steps/s | peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("ddim64", "ddim28"):
        if name in r:
            d = r[name]
            lines.append(f"| DDIM {d['unet_block_out_channels']} ({d['unet_parameters'] / 1e6:.1f} M params) | {d['image_size']} | "
                         f"{d['batch']} | {d['steps']} | {d['ours_images_per_s']:.3f} | {d['plain_images_per_s']:.3f} | "
                         f"{d['ratio_ours_over_plain']:.3f} | {d['flops_per_image'] / 1e9:.2f} G | "
                         f"{100 * d.get('fraction_of_matmul_peak', float('nan')):.0f}% | {d['train_steps_per_s']:.2f} (batch {d['train_batch']}) | "
                         f"{d['peak_rss_mib']:.0f} |")
    for name, label in (("dcgan64", "DCGAN ngf=ndf=32"), ("vae28", "conditional VAE [32,64,128]")):
        if name in r:
            d = r[name]
            lines.append(f"| {label} | {d['image_size']} | {d['batch']} | 1 | {d['images_per_s']:.0f} | | | | | "
                         f"{d['train_steps_per_s']:.2f} (batch {d['train_batch']}) | {d['peak_rss_mib']:.0f} |")
    for name in ("ddim64", "ddim28"):
        if name in r and "op_time_shares" in r[name]:
            shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r[name]["op_time_shares"].items())
            lines += ["", f"Where one forward pass of the {name} UNet spends its CPU time (torch.profiler, self time): {shares}."]
            f = r[name].get("unet_forward_share", {})
            if f:
                lines.append(f"Share of each loop's wall time spent inside UNet forward calls ({name}): ours "
                             f"{100 * f['ours']:.1f}%, plain {100 * f['plain']:.1f}%.")
    lines += ["", "## Why sampling does not reach the matmul peak", "",
              "The FLOPs are counted by torch's FlopCounterMode (convolutions, matmuls; 2 FLOPs per multiply-add); the "
              "peak is a large square fp32 matmul on the same threads. A UNet is not that: (1) its convolutions have "
              "few channels (16 to 128) on small maps (64 down to 8 pixels), so oneDNN's kernels work on short, "
              "memory-bound inner loops instead of the cache-blocked 1024x1024 tiles the peak is measured with; "
              "(2) GroupNorm, SiLU, the residual adds, up/down-sampling and the attention softmax do almost no FLOPs "
              "but read and write every activation, and their time (see the shares above) counts against the "
              "FLOP rate; (3) the batch (16 or 64 images) and one thread leave no room to hide memory latency. "
              "Both loops spend nearly all their time in the same UNet forward passes (shares above), which is why "
              "the ratio of our loop to the plain one is ~1: the scheduler step, the seeded noise and the uint8 "
              "conversion are small; ratios within a few percent of 1 are within the run-to-run spread (see "
              "`seconds` per repeat in the JSON). Our loop runs under torch.inference_mode (no autograd version counters), the plain loop "
              "under no_grad as in the docs; that is the only difference in the forward passes."]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
