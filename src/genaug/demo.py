"""``genaug demo``: the whole flow on the embedded default, sklearn's bundled digits.

1. split digits into a fixed training and test split;
2. take a few-shot subset of the training split, train a VAE on it and register it;
3. generate samples from the registered model (PNGs + manifest);
4. evaluate: the same classifier on real / real+classic / synthetic / real+synthetic /
   real+synthetic+classic over a few-shot sweep and seeds, and write the report.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional

import torch

from . import api
from .data import few_shot_subset, load_digits_dataset, stratified_split
from .evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, write_report
from .generators.classic import ClassicConfig
from .progress import ProgressCallback

# Small enough for a 2-core CPU in a few minutes; large enough to be a real model.
DEMO_VAE = dict(mode="conditional", channels=[32, 64], hidden=64, latent_dim=8, steps=800, batch_size=64,
                batchnorm=False, beta=1.0)
DEMO_SAMPLES_PER_CLASS = 100
DEMO_CLASSIFIER_STEPS = 300


def run_demo(out: Path, *, shots: list[int], seeds: list[int], progress: Optional[ProgressCallback] = None,
             log: Callable[[str], None] = print, model_name: str = "demo-digits-vae") -> dict:
    """Run the demo into ``out`` (registry under ``out/home`` unless GENAUG_HOME is set); returns the summary."""
    # One thread: these models are small, and two threads on two busy cores slow down
    # many times over (OpenMP threads waiting on each other), while one thread never does.
    torch.set_num_threads(1)
    out = Path(out)
    home = Path(os.environ.get("GENAUG_HOME") or out / "home")
    data = load_digits_dataset()
    train, test = stratified_split(data, test_fraction=0.3, seed=0)
    log(f"digits: {len(train)} training / {len(test)} test images, 10 classes (test split never reaches a generator)")

    few = few_shot_subset(train, max(shots), seed=seeds[0])
    log(f"training a conditional VAE on a {max(shots)}-per-class subset ({len(few)} images) -> registry {home}")
    info = api.train(few, "vae", model_name, config=DEMO_VAE, progress=progress, home=home, replace=True)
    samples_dir = out / "samples"
    if samples_dir.exists():
        shutil.rmtree(samples_dir)
    generated = api.generate(info.name, samples_dir, n_per_class=20, seed=0, home=home)
    log(f"generated {generated.total} samples -> {samples_dir} (manifest.jsonl beside them)")

    spec = GeneratorSpec(label="vae-conditional", kind="vae", config=DEMO_VAE,
                         variants=[SampleVariant(label=f"prior,{DEMO_SAMPLES_PER_CLASS}",
                                                 per_class=DEMO_SAMPLES_PER_CLASS, ratio=None)])
    protocol = Protocol(shots=shots, seeds=seeds, classifier_steps=DEMO_CLASSIFIER_STEPS,
                        classic=ClassicConfig(preset="mild"))
    log(f"evaluating: shots {shots}, seeds {seeds}, {DEMO_CLASSIFIER_STEPS} classifier steps per arm")
    result = evaluate(train, test, [spec], protocol, dataset_name="digits", progress=progress)
    written = write_report(result, out / "report", title="genaug demo: digits few-shot")
    return {**written, "samples_dir": str(samples_dir), "model": info.to_dict()}
