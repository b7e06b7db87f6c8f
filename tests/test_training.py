"""The shared training helper: checkpoints, exact resume, EMA, budgets, progress, grids and plots."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from genaug.progress import ProgressEvent
from genaug.training import (EMA, Trainer, TrainingConfig, image_grid, latest_checkpoint, load_matching_weights,
                             read_history)

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _regression(seed: int = 0):
    """A tiny real learning problem: fit y = X w with an MLP; batches drawn from the trainer's rng."""
    data_rng = np.random.default_rng(123)
    x = torch.from_numpy(data_rng.standard_normal((256, 4)).astype(np.float32))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    return x, y, model


def _run(tmp_path, steps=40, stop_after=None, settings=None, progress=None, phase="mlp"):
    """Train the regression for ``steps``; ``stop_after`` simulates a kill by raising at that step."""
    x, y, model = _regression()
    settings = settings or TrainingConfig(steps=steps, checkpoint_every=10, ema_decay=0.9, lr=1e-2)
    rng = np.random.default_rng(settings.seed)
    trainer = Trainer(settings, phase=phase, modules={"mlp": model},
                      optimisers={"mlp": torch.optim.Adam(model.parameters(), lr=settings.lr)}, rng=rng,
                      work_dir=tmp_path, progress=progress, ema=("mlp",), images_per_step=16,
                      sample_fn=lambda: np.full((4, 8, 8, 1), 128, np.uint8), progress_every=5)

    def step(number):
        if stop_after is not None and number > stop_after:
            raise KeyboardInterrupt("killed")
        rows = rng.integers(0, len(x), size=16)
        loss = nn.functional.mse_loss(trainer.modules["mlp"](x[rows]), y[rows])
        trainer.optimisers["mlp"].zero_grad()
        trainer.backward(loss)
        trainer.optimisers["mlp"].step()
        return {"loss": loss, "noise": float(torch.rand(()))}  # torch RNG is part of the state

    return trainer, trainer.run(step)


def test_uninterrupted_training_learns_and_writes_its_files(tmp_path):
    events: list[ProgressEvent] = []
    trainer, result = _run(tmp_path, steps=60, progress=events.append)
    assert result.steps_done == 60 and not result.stopped_early and result.resumed_from == 0
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 3
    assert [row["step"] for row in result.history] == list(range(1, 61))
    phase = tmp_path / "mlp"
    assert read_history(phase) == result.history
    assert (phase / "losses.png").stat().st_size > 1000
    assert sorted(p.name for p in (phase / "checkpoints").iterdir()) == ["step-000050.pt", "step-000060.pt"]
    assert list((phase / "samples").glob("step-*.png"))
    assert events and events[-1].step == 60 and events[-1].total == 60 and "loss" in events[-1].losses
    assert "images_per_s" in events[-1].losses and events[0].eta_seconds is not None
    lines = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 60 and lines[-1]["phase"] == "mlp"


def test_resume_after_a_kill_continues_exactly(tmp_path):
    _, reference = _run(tmp_path / "reference", steps=40)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", steps=40, stop_after=27)
    assert latest_checkpoint(tmp_path / "killed" / "mlp").name == "step-000020.pt"
    trainer, resumed = _run(tmp_path / "killed", steps=40)
    assert resumed.resumed_from == 20
    assert [row["step"] for row in resumed.history] == list(range(1, 41))  # no gap, no duplicate
    # Same batches, same torch RNG, same optimiser state: the resumed run equals the uninterrupted one.
    assert len(resumed.history) == len(reference.history)
    for got, expected in zip(resumed.history, reference.history):
        assert got == pytest.approx(expected, rel=1e-6)
    assert read_history(tmp_path / "killed" / "mlp") == resumed.history


def test_a_finished_phase_is_not_trained_again(tmp_path):
    _run(tmp_path, steps=30)
    calls = []
    x, y, model = _regression()
    settings = TrainingConfig(steps=30, checkpoint_every=10, ema_decay=0.9, lr=1e-2)
    trainer = Trainer(settings, phase="mlp", modules={"mlp": model},
                      optimisers={"mlp": torch.optim.Adam(model.parameters())}, rng=np.random.default_rng(0),
                      work_dir=tmp_path, ema=("mlp",))
    result = trainer.run(lambda step: calls.append(step) or {"loss": 0.0})
    assert calls == [] and result.steps_done == 30 and result.resumed_from == 30


def test_a_changed_budget_starts_afresh(tmp_path):
    _run(tmp_path, steps=20)
    _, result = _run(tmp_path, steps=30)
    assert result.resumed_from == 0 and result.steps_done == 30


def test_wall_clock_budget_stops_early_with_a_checkpoint(tmp_path):
    settings = TrainingConfig(steps=10_000_000, checkpoint_every=0, max_seconds=0.3, lr=1e-2)
    _, result = _run(tmp_path, settings=settings)
    assert result.stopped_early and 0 < result.steps_done < 10_000_000
    assert latest_checkpoint(tmp_path / "mlp").name == f"step-{result.steps_done:06d}.pt"


def test_ema_tracks_the_weights_with_warm_up():
    module = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    ema = EMA(module, decay=0.99)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)
    first = ema.module.weight.item()
    assert 0 < first < 1  # warm-up decay (2/11) moves it most of the way, not all
    assert first == pytest.approx(1 - 2 / 11)
    for _ in range(2000):
        ema.update(module)
    assert ema.module.weight.item() == pytest.approx(1.0, abs=1e-3)
    assert not ema.module.weight.requires_grad


def test_load_matching_weights_skips_what_does_not_fit():
    parent = nn.ModuleDict({"body": nn.Linear(4, 8), "classes": nn.Embedding(10, 8)})
    child = nn.ModuleDict({"body": nn.Linear(4, 8), "classes": nn.Embedding(3, 8)})
    report = load_matching_weights(child, parent.state_dict())
    assert set(report["loaded"]) == {"body.weight", "body.bias"} and report["skipped"] == ["classes.weight"]
    assert torch.equal(child["body"].weight, parent["body"].weight)
    with pytest.raises(ValueError, match="no weight of the parent"):
        load_matching_weights(nn.Linear(3, 3), parent.state_dict())


def test_image_grid_tiles_with_gaps():
    images = np.zeros((5, 4, 4, 1), np.uint8)
    grid = image_grid(images, columns=3)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    assert grid[0, 0, 0] == 255 and grid[1, 1, 0] == 0
