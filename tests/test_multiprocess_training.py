"""Multi-process training: ``accelerate launch --multi_gpu --num_processes 2 -m genaug.cli train``
on the CPU (two processes, gloo), the recipe of the README's multi-GPU section.

A tiny class-conditional DDIM trains with checkpoints; the whole launch (launcher and both
training processes) is SIGKILLed once a checkpoint exists, and the same command is run again.
The test checks that the second launch resumes at that checkpoint and completes, that only the
main process reports and registers the model, that the model records the two processes, and
that the stored model loads and samples like one trained by a single process (same weights'
names and shapes, same sample shape, deterministic samples).

Slow (two launches of two processes each, ~1 min): ``make test-slow``; ``.ci/run`` runs it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _checkpoints import first_checkpoint

from genaug import api
from genaug.data import LabelledImages, few_shot_subset, load_digits_dataset
from genaug.store import Registry
from genaug.training import latest_checkpoint

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")]

STEPS = 300
# max_seconds far above the run's length: every step then agrees on "not out of time" across the
# processes (the all-reduce of Trainer._any_process), without stopping the run.
SETTINGS = {"preset": "tiny", "steps": STEPS, "batch_size": 8, "num_train_timesteps": 50, "sample_steps": 4,
            "checkpoint_every": 40, "flip": False, "max_seconds": 36000}
DEADLINE = 600  # seconds for one launch: generous, the machine may be busy


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _data() -> LabelledImages:
    return few_shot_subset(load_digits_dataset(), 10, seed=0)


def _launch(data_file: Path, home: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--num_cpu_threads_per_process", "1", "--main_process_ip", "127.0.0.1",
               "--main_process_port", str(_free_port()),
               "-m", "genaug.cli", "train", str(data_file), "--kind", "ddim", "--name", "digits-ddim",
               "--quality-samples", "0"]
    for key, value in SETTINGS.items():
        command += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    # No GPU even where there is one: two CPU processes joined by gloo, as the docstring says.
    env = {**os.environ, "GENAUG_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "COLUMNS": "200", "CUDA_VISIBLE_DEVICES": ""}
    # GENAUG_DATABASE_URL stays: the launch uses the test's database (tests/conftest.py).
    with open(log, "w") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def _kill_launch(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it at once (torchrun starts its training
    processes in sessions of their own, so the launcher's process group does not reach them)."""
    import psutil

    try:
        everyone = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        everyone = []
    for member in everyone:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=60)
    psutil.wait_procs(everyone, timeout=60)


def test_two_process_training_survives_sigkill_and_stores_a_normal_model(tmp_path):
    home = tmp_path / "home"
    data = _data()
    data_file = tmp_path / "digits.npz"
    np.savez(data_file, x_train=data.images, y_train=data.labels)

    first_log = tmp_path / "first.log"
    first = _launch(data_file, home, first_log)
    try:
        checkpoint = first_checkpoint(home / "work", "digits-ddim-*/unet", first, DEADLINE, poll=0.05)
        assert checkpoint is not None, f"no checkpoint appeared; log:\n{first_log.read_text()}"
    finally:
        _kill_launch(first)
    assert "ready: model" not in first_log.read_text()
    with Registry.open(home) as registry:
        row = registry.get("digits-ddim")
        assert row.status == "training"  # its owner died with the launch: the name is reusable
    resume_point = int(latest_checkpoint(checkpoint.parent.parent).name[5:11])
    assert 40 <= resume_point < STEPS and resume_point % 40 == 0

    second_log = tmp_path / "second.log"
    second = _launch(data_file, home, second_log)
    try:
        second.wait(timeout=DEADLINE)
    finally:
        if second.poll() is None:
            _kill_launch(second)
    output = second_log.read_text()
    assert second.returncode == 0, output
    assert output.count("ready: model 'digits-ddim'") == 1, output  # only the main process reports

    info = api.get_model("digits-ddim", home=home)
    assert info.status == "ready"
    record = info.metrics["training"]["unet"]
    assert record.get("processes") == 2, (record, output)
    assert record["resumed_from"] == resume_point and record["steps_done"] == STEPS
    assert record["stopped_early"] is False
    history_file = Path(info.path) / "training" / "unet" / "history.jsonl"
    steps = [json.loads(line)["step"] for line in history_file.read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # resumed: no gap, no step twice
    assert not list((home / "work").glob("digits-ddim-*")), "checkpoints are removed once the model is ready"

    # The same training in one process: the stored models are alike, and both load and sample.
    single = api.train(data, "ddim", "single", config=SETTINGS, home=home, quality_samples=0)
    assert "processes" not in single.metrics["training"]["unet"]
    multi_model, single_model = api.load_model("digits-ddim", home=home), api.load_model("single", home=home)
    multi_state, single_state = multi_model.unets.state_dict(), single_model.unets.state_dict()
    assert {k: tuple(v.shape) for k, v in multi_state.items()} == {k: tuple(v.shape) for k, v in single_state.items()}
    # Two processes drew other batches than one: the weights differ (they would not if both
    # processes had drawn the same batch, whose averaged gradient is the single process's).
    assert any(not np.allclose(multi_state[k].numpy(), single_state[k].numpy()) for k in multi_state)
    drawn = multi_model.sample(6, label=3, seed=1)
    again = multi_model.sample(6, label=3, seed=1)
    reference = single_model.sample(6, label=3, seed=1)
    assert drawn.data.shape == reference.data.shape == (6, 8, 8, 1) and drawn.data.dtype == np.uint8
    assert np.array_equal(drawn.data, again.data)
    assert list(drawn.labels) == [3] * 6
