"""Two runs that share a cache root never train the same pool fit at once.

The benchmarks run one script per core, one dataset name per classifier, under one cache root:
both may reach the same pool-trained generator (fitted once per seed on the whole training
split). Two real processes here: A trains the fit and is held inside it (a gate file) until B
has reached the fit; B must say it is waiting, then load A's finished fit -- not train it into
the same checkpoint folder at the same time. Every wait is on an event, with a deadline that
only stops a hung test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

# One deadline for the whole test, inside pytest's own 600 s, so a hang fails with both logs.
# Two processes importing torch on two busy cores take a minute or more.
DEADLINE = 480.0
RUN = """
import json, sys, time
from pathlib import Path
from genaug.data import load_digits_dataset, stratified_split
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate
from genaug.generators.diffusion import DiffusionGenerator

cache, name, out, gate = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
train, test = stratified_split(load_digits_dataset(), test_fraction=0.3, seed=0)
spec = GeneratorSpec(label="pool", kind="ddim", config={**DiffusionGenerator.tiny_config().model_dump(),
                     "mode": "single"}, unlabeled_pool=True,
                     variants=[SampleVariant(label="v", options={"strength": 0.5, "steps": 2})])
original = DiffusionGenerator.fit
trainings = []

def held_fit(self, data, **kwargs):
    result = original(self, data, **kwargs)
    trainings.extend([t["resumed_from"], t["total_steps"]] for t in self.meta["training"].values())
    if gate != "-":  # hold this fit (and its lock) until the test lets it go
        print("FITTED", flush=True)
        given_up = time.monotonic() + 600  # never outlive a test that was killed
        while not Path(gate).exists():
            if time.monotonic() > given_up:
                sys.exit(3)
            time.sleep(0.05)
    return result

DiffusionGenerator.fit = held_fit
result = evaluate(train, test, [spec], Protocol(shots=[2], seeds=[0], classifier_steps=5, arms=["real+synthetic"]),
                  dataset_name=name, cache_dir=cache, progress=lambda e: print("EVENT", e.message, flush=True))
out.write_text(json.dumps({"seconds": result["cells"][0]["generator_fit_cpu_seconds"], "trainings": trainings}))
print("DONE", flush=True)
"""


def _start(cache: Path, name: str, out: Path, gate: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-c", RUN, str(cache), name, str(out), gate], env=env,
                                stdout=output, stderr=subprocess.STDOUT)


def _wait_for_line(process: subprocess.Popen, log: Path, text: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before printing {text!r}; log:\n{log.read_text()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"timed out (the test's {DEADLINE:.0f} s) waiting for {text!r}; log:\n{log.read_text()}")


def test_a_second_run_waits_for_the_pool_fit_another_run_is_training_and_loads_it(tmp_path):
    cache, gate = tmp_path / "cache", tmp_path / "gate"
    deadline = time.monotonic() + DEADLINE
    first = _start(cache, "digits-cnn", tmp_path / "a.json", str(gate), tmp_path / "a.log")
    second = None
    try:
        _wait_for_line(first, tmp_path / "a.log", "FITTED", deadline)  # A has trained the fit and still holds it
        second = _start(cache, "digits-lite0", tmp_path / "b.json", "-", tmp_path / "b.log")
        _wait_for_line(second, tmp_path / "b.log", "waiting for another run's fit of pool", deadline)
        assert not (tmp_path / "b.json").exists()
        gate.touch()
        for process, log in ((first, "a.log"), (second, "b.log")):
            assert process.wait(max(1.0, deadline - time.monotonic())) == 0, (tmp_path / log).read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(30)
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["trainings"] and all(start == 0 for start, _ in a["trainings"]), "A trains the fit from its first step"
    assert b["trainings"] and all(start == total > 0 for start, total in b["trainings"]), \
        "B must load A's finished fit, not train it again"
    assert a["seconds"] > 0 and b["seconds"] == a["seconds"], "B reports what A's fit cost"
    [lock] = (cache / "fitted").glob("pool-pool-*.lock")
    assert lock.with_suffix("").is_dir()
