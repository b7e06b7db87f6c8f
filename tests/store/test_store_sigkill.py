"""A training process killed with SIGKILL never leaves a ready model without its files,
and the name can be trained again right away.

Each test starts ``genaug.api.train`` in a real subprocess (GENAUG_HOME = a temporary
folder), watches the registry database until the row is ``training`` (or the artifact
folder is being written), kills the process with SIGKILL and checks what is left.
Every wait is bounded.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _tiny_generator as tiny
from genaug import api
from genaug.store import ModelRow, Registry

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

HERE = Path(__file__).resolve().parent
# Waits are on events (a row in the database, a line in a log); the deadlines only stop a hung
# test. Three processes importing torch at once on two busy cores take well over a minute.
START_TIMEOUT = 300.0
TRAIN_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import _tiny_generator as tiny
from genaug import api
kind, name, config, replace = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5] == "1"
api.train(tiny.tiny_images(), kind, name, config=config, replace=replace,
          progress=lambda event: print("STEP", event.step, flush=True))
print("TRAINED", flush=True)
"""


def start_training(home: Path, kind: str, name: str, config: dict, log: Path, replace: bool = False):
    """``api.train`` in a subprocess; its output goes to ``log`` (no pipe to fill up)."""
    env = {**os.environ, "GENAUG_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # GENAUG_DATABASE_URL stays: the child uses the test's database (tests/conftest.py).
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(HERE), kind, name, json.dumps(config),
                                 "1" if replace else "0"], env=env, stdout=output, stderr=subprocess.STDOUT)


def wait_for(condition, process: subprocess.Popen, log: Path, what: str, timeout: float = START_TIMEOUT):
    """Poll ``condition()`` until truthy; fail with the process log on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            return None  # finished (or crashed) before the condition held: the caller decides
        time.sleep(0.02)
    process.kill()
    process.wait(10)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; log:\n{log.read_text()}")


def row_of(registry: Registry, name: str, pid: int) -> ModelRow | None:
    row = registry.find(name)
    return row if row is not None and row.owner_pid == pid else None


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)  # reaped: the pid is really gone


def assert_no_incomplete_ready_model(home: Path) -> None:
    """Every model listed ready loads and samples; every other row is not listed."""
    listed = {info.name: info for info in api.list_models(home=home)}
    with Registry.open(home) as registry:
        rows = registry.list()
    assert set(listed) == {row.name for row in rows if row.status == "ready"}
    for name in listed:
        assert len(api.load_model(name, home=home).sample(2, seed=0)) == 2


def train_again_and_check(home: Path, kind: str, name: str, old_id: str) -> None:
    info = api.train(tiny.tiny_images(), kind, name, config=tiny.quick_config(kind), home=home)
    assert info.status == "ready" and info.id != old_id
    assert [m.name for m in api.list_models(home=home)] == [name]
    samples = api.load_model(name, home=home).sample(4, label="dog", seed=3)
    assert samples.data.shape == (4, 8, 8, 1) and list(samples.labels) == [1] * 4
    leftovers = [p.name for p in (home / "models").iterdir() if p.name != info.id]
    assert leftovers == []  # the killed run's folders went when the name was reused


@pytest.mark.parametrize("kind", tiny.kind_params())
def test_kill_during_training_leaves_no_ready_model(tmp_path, kind):
    home, log = tmp_path / "home", tmp_path / "train.log"
    process = start_training(home, kind, "flowers", tiny.long_config(kind), log)
    with Registry.open(home) as registry:
        row = wait_for(lambda: row_of(registry, "flowers", process.pid), process, log, "the training row")
        assert row is not None and row.status == "training", log.read_text()
        time.sleep(0.5)  # let it train a little
        assert process.poll() is None, log.read_text()
        kill(process)

        assert api.list_models(home=home) == []
        left = registry.get("flowers")
        assert left.status == "training" and left.id == row.id  # not ready, never will be
        assert not (home / "models" / row.id).exists()
    with pytest.raises(ValueError, match="not ready"):
        api.load_model("flowers", home=home)

    train_again_and_check(home, kind, "flowers", row.id)


def test_kill_while_artifacts_are_written(tmp_path):
    """Killed after the files are in the temporary folder but before the rename: not ready."""
    home, log = tmp_path / "home", tmp_path / "train.log"
    config = {"steps": 3, "save_sleep": 60.0}  # sleeps after writing, before fsync + rename
    process = start_training(home, "test_tiny", "parts", config, log)
    weights = wait_for(lambda: next((home / "models").glob(".tmp-*/weights.safetensors"), None),
                       process, log, "the artifact files in a temporary folder")
    assert weights is not None, log.read_text()
    kill(process)

    assert api.list_models(home=home) == []
    with Registry.open(home) as registry:
        row = registry.get("parts")
        assert row.status == "training" and not (home / "models" / row.id).exists()
        assert weights.parent.name.startswith(f".tmp-{row.id}-")
        report = registry.cleanup()
        assert report == {"failed": ["parts"], "removed": [weights.parent.name]}
        assert registry.get("parts").status == "failed"
    assert [m.status for m in api.list_models(include_all=True, home=home)] == ["failed"]

    train_again_and_check(home, "test_tiny", "parts", row.id)


def logged_step(log: Path) -> int:
    """The last training step the subprocess reported."""
    # The subprocess may be halfway through writing its last line ("STEP " without the number).
    steps = [int(parts[1]) for parts in (line.split() for line in log.read_text().splitlines())
             if len(parts) >= 2 and parts[0] == "STEP" and parts[1].isdigit()]
    return steps[-1] if steps else 0


@pytest.mark.timeout(1500)
def test_kills_at_random_moments_never_leave_an_incomplete_ready_model(tmp_path):
    """Three short trainings run at once (one registry) and are killed at random moments: one
    during fit, two around the end of fit -- while the files are written, renamed, or after
    the row is ready. Whatever the moment, a listed model is complete."""
    home = tmp_path / "home"
    steps, save_sleep = 20, 0.1
    config = {"steps": steps, "step_sleep": 0.01, "save_sleep": save_sleep}
    rng = random.Random(20240611)
    runs = []
    for attempt in range(3):
        log = tmp_path / f"train-{attempt}.log"
        runs.append({"process": start_training(home, "test_tiny", f"digits-{attempt}", config, log),
                     "log": log, "after_step": rng.randint(1, steps - 1) if attempt == 0 else steps,
                     "delay": 0.0 if attempt == 0 else rng.uniform(0.0, save_sleep + 0.05), "reached": None})
    deadline = time.monotonic() + 3 * START_TIMEOUT
    while any(run["process"].poll() is None for run in runs):
        assert time.monotonic() < deadline, [run["log"].read_text() for run in runs]
        for run in runs:
            if run["process"].poll() is not None:
                continue
            if run["reached"] is None and logged_step(run["log"]) >= run["after_step"]:
                run["reached"] = time.monotonic()
            if run["reached"] is not None and time.monotonic() >= run["reached"] + run["delay"]:
                kill(run["process"])
        time.sleep(0.005)
    assert_no_incomplete_ready_model(home)

    # Every name can be trained again; leftovers of the killed runs go with their rows.
    for attempt in range(3):
        info = api.train(tiny.tiny_images(), "test_tiny", f"digits-{attempt}",
                         config=tiny.quick_config("test_tiny"), home=home, replace=True)
        assert info.status == "ready" and api.load_model(info.name, home=home).sample(2, seed=1).data.shape[0] == 2
    assert sorted(p.name for p in (home / "models").iterdir()) == sorted(m.id for m in api.list_models(home=home))
