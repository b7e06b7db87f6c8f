"""SIGKILL after a checkpoint, then the same training again: it resumes from that checkpoint.

A real ``genaug.api.train`` subprocess trains a conditional VAE (a kind built on the shared
training helper) with a checkpoint every 50 steps; the test kills it once a checkpoint
exists, starts the same training again in this process, and checks that the step counter
continues from the checkpoint, the loss history has no gap and equals an uninterrupted
run's, and the model is ready and loads.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _checkpoints import first_checkpoint

from genaug import api
from genaug.data import few_shot_subset, load_digits_dataset
from genaug.store import Registry
from genaug.training import latest_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

CONFIG = {"mode": "conditional", "channels": [8, 16], "hidden": 16, "latent_dim": 4, "steps": 400,
          "batch_size": 16, "checkpoint_every": 50, "sample_every": 100}
SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from genaug import api
from genaug.data import few_shot_subset, load_digits_dataset
data = few_shot_subset(load_digits_dataset(), 10, seed=0)
api.train(data, "vae", sys.argv[1], config=json.loads(sys.argv[2]),
          progress=lambda event: print("STEP", event.step, flush=True))
print("TRAINED", flush=True)
"""


def _data():
    return few_shot_subset(load_digits_dataset(), 10, seed=0)


def test_training_killed_after_a_checkpoint_resumes_there(tmp_path, monkeypatch):
    home = tmp_path / "home"
    env = {**os.environ, "GENAUG_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # GENAUG_DATABASE_URL stays: the child uses the test's database (tests/conftest.py).
    log = tmp_path / "train.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-c", SCRIPT, "digits-vae", json.dumps(CONFIG)], env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        checkpoint = first_checkpoint(home / "work", "digits-vae-*/vae-all", process, 120)
        assert checkpoint is not None, f"no checkpoint appeared; log:\n{log.read_text()}"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert "TRAINED" not in log.read_text()
    with Registry.open(home) as registry:
        assert registry.get("digits-vae").status == "training"  # its owner is dead: reusable
    resume_point = int(latest_checkpoint(checkpoint.parent.parent).name[5:11])
    assert 50 <= resume_point < 400

    events = []
    info = api.train(_data(), "vae", "digits-vae", config=CONFIG, home=home, progress=events.append)
    assert info.status == "ready"
    record = info.metrics["training"]["all"]
    assert record["resumed_from"] == resume_point and record["steps_done"] == 400
    assert events[0].step > resume_point  # the step counter continued, it did not restart at 1

    history_file = Path(info.path) / "training" / "vae-all" / "history.jsonl"
    history = [json.loads(line) for line in history_file.read_text().splitlines()]
    assert [row["step"] for row in history] == list(range(1, 401))
    assert (Path(info.path) / "training" / "vae-all" / "losses.png").exists()
    assert list((Path(info.path) / "training" / "vae-all" / "samples").glob("step-*.png"))
    assert not list((home / "work").glob("digits-vae-*")), "checkpoints are removed once the model is ready"

    # The resumed training is the uninterrupted one: same batches, same updates.
    reference = api.train(_data(), "vae", "reference", config=CONFIG, home=home)
    ref_file = Path(reference.path) / "training" / "vae-all" / "history.jsonl"
    ref_history = [json.loads(line) for line in ref_file.read_text().splitlines()]
    for got, expected in zip(history, ref_history):
        assert got == pytest.approx(expected, rel=1e-5)
    first = api.load_model("digits-vae", home=home).sample(8, seed=1).data
    second = api.load_model("reference", home=home).sample(8, seed=1).data
    assert abs(first.astype(int) - second.astype(int)).max() <= 1
