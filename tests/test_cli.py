"""The CLI end to end, in-process through Typer's runner, on a real image folder and a real registry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import genaug
from genaug.cli import app
from genaug.data import load_digits_dataset

runner = CliRunner()
TINY = ["--set", "steps=20", "--set", "channels=[4,8]", "--set", "hidden=16", "--set", "latent_dim=2",
        "--set", "mode=conditional"]


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAUG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def digit_folder(tmp_path) -> Path:
    data = load_digits_dataset()
    root = tmp_path / "digits folder"
    for label in range(3):
        (root / f"class {label}").mkdir(parents=True)
        for i in np.flatnonzero(data.labels == label)[:8]:
            Image.fromarray(data.images[i][..., 0]).resize((16, 16)).save(root / f"class {label}" / f"{i}.png")
    (root / "class 0" / "broken.png").write_bytes(b"not an image at all")
    return root


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.mark.parametrize("command", ["ingest", "train", "models", "generate", "evaluate", "demo", "kinds"])
def test_every_command_has_help_with_examples(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if command in ("ingest", "train", "generate", "evaluate"):
        assert "Example" in result.output


def test_kinds_lists_config_sample_options_and_capabilities():
    """``genaug kinds`` shows each kind's sample options from its SampleOptions model, not a copy."""
    from genaug.generators.base import get_generator_class

    result = runner.invoke(app, ["kinds"])
    assert result.exit_code == 0, result.output
    out = result.output

    def section(kind: str, following: str) -> str:  # each kind's block starts with "<kind> (<data kind>;"
        return out[out.index(f"{kind} (images;"):out.index(f"{following} (images;")]

    dcgan = section("dcgan", "ddim")
    assert "sample options (generate --set):" in dcgan and "truncation = None" in dcgan
    assert "can: --parent (transfer)" in dcgan
    ddim = section("ddim", "ddpm")
    assert "can: --unlabeled in mode single; --parent (transfer)" in ddim
    for option in get_generator_class("ddim").sample_options():
        assert f"    {option} = " in ddim
    classic = section("classic", "dafusion")
    assert "sample options" not in classic and "can:" not in classic


def test_ingest_train_models_generate(home, digit_folder, tmp_path):
    result = invoke("ingest", digit_folder, "--name", "digits3")
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output and "stored" in result.output
    assert (home / "datasets" / "digits3" / "train.npz").exists()

    result = invoke("train", "digits3", "--kind", "vae", "--name", "d3", *TINY, "--keep-data")
    assert result.exit_code == 0, result.output
    assert "ready" in result.output
    assert "latent codes of its" in " ".join(result.output.split()), "the note on what the model keeps of its data"
    assert (home / "datasets" / "digits3").exists(), "--keep-data keeps the ingested copy"

    result = invoke("models", "--json")
    assert result.exit_code == 0
    listed = json.loads(result.output)
    assert [m["name"] for m in listed] == ["d3"] and listed[0]["status"] == "ready"

    out = tmp_path / "synthetic"
    result = invoke("generate", "d3", "--n-per-class", 4, "--out", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 12
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 12 and {m["label"] for m in manifest} == {"class 0", "class 1", "class 2"}
    assert all(m["model"] == "d3" and m["kind"] == "vae" for m in manifest)

    # Training from the stored copy without --keep-data deletes that copy afterwards.
    result = invoke("train", "digits3", "--kind", "classic", "--name", "d3-classic")
    assert result.exit_code == 0, result.output
    assert not (home / "datasets" / "digits3").exists()


def test_user_errors_are_clear_and_exit_1(home, digit_folder, tmp_path):
    result = invoke("train", digit_folder, "--kind", "vae", "--name", "x", "--set", "latent_dim=0")
    assert result.exit_code == 1
    assert "latent_dim" in result.output
    result = invoke("train", digit_folder, "--kind", "nope", "--name", "x")
    assert result.exit_code == 1 and "unknown generator kind 'nope'" in result.output
    result = invoke("train", "no-such-dataset", "--kind", "vae", "--name", "x")
    assert result.exit_code == 1 and "no stored dataset" in result.output
    result = invoke("generate", "missing-model", "--n-per-class", 1, "--out", tmp_path / "o")
    assert result.exit_code == 1
    result = invoke("train", digit_folder, "--kind", "vae", "--name", "../evil")
    assert result.exit_code == 1 and not (tmp_path / "evil").exists()


def test_evaluate_writes_report(home, tmp_path):
    out = tmp_path / "report"
    result = invoke("evaluate", "../nonexistent", "--shots", "2")
    assert result.exit_code != 0
    data = load_digits_dataset()
    np.savez(tmp_path / "digits.npz", x_train=data.images[:600, ..., 0], y_train=data.labels[:600],
             x_test=data.images[600:900, ..., 0], y_test=data.labels[600:900])
    result = invoke("evaluate", tmp_path / "digits.npz", "-g", "vae:mode=conditional,steps=20,channels=[4,8],hidden=16",
                    "--shots", "2", "--seeds", "0", "--steps", "10", "--out", out)
    assert result.exit_code == 0, result.output
    output = result.output
    # The answer first, in a plain sentence; then the warnings (1 seed, a small test split); then the table.
    assert output.index("Recommendation:") < output.index("Warnings:") < output.index("| n/class |")
    assert "At 2 per class:" in output and "only 1 seed" in output.lower()
    assert "your images + classic augmentation" in output and "real+synthetic" in output
    assert (out / "results.md").exists() and (out / "results.json").exists()
    assert json.loads((out / "results.json").read_text())["classifier"]["name"] == "cnn"

    result = invoke("evaluate", tmp_path / "digits.npz", "--model", "m", "--select")
    assert result.exit_code == 1 and "choose one way" in result.output
    result = invoke("evaluate", tmp_path / "digits.npz", "--validation-size", "200")
    assert result.exit_code == 1 and "validation_size: only with select" in result.output
    result = invoke("evaluate", tmp_path / "digits.npz", "--search-seeds", "0,1,2,3")
    assert result.exit_code == 1 and "search_seeds: only with select" in result.output
    result = invoke("evaluate", tmp_path / "digits.npz", "--select", "--search-seeds", "0,1,1")
    assert result.exit_code == 1 and "--search-seeds" in result.output and "distinct" in result.output
    result = invoke("recommend", tmp_path / "digits.npz", "--validation-size", "3")
    assert result.exit_code == 1 and "--validation-size" in result.output
    result = invoke("evaluate", tmp_path / "digits.npz", "--shots", "two")
    assert result.exit_code == 1 and "--shots" in result.output


def test_evaluate_model_refuses_a_test_split_it_was_trained_on_and_runs_on_one_it_was_not(home, tmp_path):
    data = load_digits_dataset()
    np.savez(tmp_path / "digits.npz", x_train=data.images[:600, ..., 0], y_train=data.labels[:600],
             x_test=data.images[600:900, ..., 0], y_test=data.labels[600:900])
    np.savez(tmp_path / "all.npz", x_train=data.images[:900, ..., 0], y_train=data.labels[:900])
    result = invoke("train", tmp_path / "digits.npz", "--kind", "vae", "--name", "dv", *TINY)
    assert result.exit_code == 0, result.output
    # A file without a split: its 20% test share comes from images the model was trained on.
    result = invoke("evaluate", tmp_path / "all.npz", "--model", "dv", "--seeds", "0", "--steps", "5")
    assert result.exit_code == 1
    assert "model dv was trained on" in result.output and "test items" in result.output
    out = tmp_path / "model-report"
    result = invoke("evaluate", tmp_path / "digits.npz", "--model", "dv", "--seeds", "0", "--steps", "5",
                    "--per-class", "20", "--out", out)
    assert result.exit_code == 0, result.output
    assert "With all your images:" in result.output
    assert "your images + 20 dv images per class" in result.output


def test_single_vae_with_unlabeled_pool_is_recorded(home, digit_folder, tmp_path):
    data = load_digits_dataset()
    pool = tmp_path / "pool"
    (pool / "any").mkdir(parents=True)
    (pool / "other").mkdir(parents=True)
    for i in range(100, 140):
        Image.fromarray(data.images[i][..., 0]).resize((16, 16)).save(pool / ("any" if i % 2 else "other") / f"{i}.png")
    result = invoke("train", digit_folder, "--kind", "vae", "--name", "pooled", "--set", "mode=single",
                    "--set", "steps=10", "--set", "channels=[4,8]", "--set", "hidden=16", "--unlabeled", pool)
    assert result.exit_code == 0, result.output
    listed = json.loads(invoke("models", "--json").output)
    model = next(m for m in listed if m["name"] == "pooled")
    assert model["data_summary"]["unlabeled_pool"] == 40
    assert model["metrics"]["unlabeled_pool_size"] == 40


def test_train_shows_losses_and_eta_and_writes_grids_and_loss_plot(home, digit_folder):
    result = invoke("train", digit_folder, "--kind", "vae", "--name", "shown", *TINY[2:], "--set", "steps=60",
                    "--set", "sample_every=20")
    assert result.exit_code == 0, result.output
    output = result.output
    assert "train vae" in output and "60/60" in output
    assert "loss=" in output and "kl=" in output and "eta" in output and "img/s" in output
    assert "loss plot: " in output and "sample grids: 3" in output
    plot = Path(output.split("loss plot: ")[1].split()[0])
    assert plot.name == "losses.png" and plot.stat().st_size > 1000
    grids = sorted(plot.parent.glob("samples/step-*.png"))
    assert [g.name for g in grids] == ["step-000020.png", "step-000040.png", "step-000060.png"]
    assert Image.open(grids[-1]).size[0] >= 64


def test_train_from_a_parent_model_records_it(home, digit_folder):
    assert invoke("train", digit_folder, "--kind", "vae", "--name", "base", *TINY).exit_code == 0
    result = invoke("train", digit_folder, "--kind", "vae", "--name", "child", *TINY, "--parent", "base")
    assert result.exit_code == 1 and "cannot start from another model" in result.output
    result = invoke("train", digit_folder, "--kind", "classic", "--name", "child", "--parent", "base")
    assert result.exit_code == 1 and "'vae' model" in result.output
    result = invoke("train", digit_folder, "--kind", "vae", "--name", "child", *TINY, "--parent", "nobody")
    assert result.exit_code == 1 and "nobody" in result.output


def test_token_create_list_revoke(home):
    from genaug.store import Registry
    from genaug.store.tokens import check_token, list_tokens

    created = invoke("token", "create", "alice")
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ga_") and len(secret) > 40
    with Registry.open(home) as registry:
        assert check_token(registry, secret) == "alice"
        assert [row.name for row in list_tokens(registry)] == ["alice"]
        assert all(secret not in (row.token_hash or "") for row in list_tokens(registry))  # only the hash is kept
    again = invoke("token", "create", "alice")
    assert again.exit_code == 1 and "exists already" in again.output
    assert "alice" in invoke("token", "list").output
    assert invoke("token", "create", "../bad").exit_code == 1
    assert invoke("token", "revoke", "alice").exit_code == 0
    with Registry.open(home) as registry:
        assert check_token(registry, secret) is None
    missing = invoke("token", "revoke", "alice")
    assert missing.exit_code == 1 and "no token named" in missing.output


def test_train_with_a_preset_and_overrides_on_top(home, digit_folder):
    assert invoke("ingest", digit_folder, "--name", "digits-p").exit_code == 0
    result = invoke("train", "digits-p", "--kind", "vae", "--name", "quick-one", "--preset", "quick",
                    "--set", "steps=15", "--keep-data")
    assert result.exit_code == 0, result.output
    listed = json.loads(invoke("models", "--json").output)
    config = next(m for m in listed if m["name"] == "quick-one")["config"]
    assert config["mode"] == "conditional" and config["channels"] == [16, 32, 64]  # from the preset
    assert config["steps"] == 15  # --set wins over the preset

    bad = invoke("train", "digits-p", "--kind", "vae", "--name", "x", "--preset", "huge")
    assert bad.exit_code != 0 and "huge" in bad.output and "standard" in bad.output


def test_dafusion_trains_and_generates_on_a_local_stable_diffusion_folder(home, digit_folder, tmp_path, monkeypatch):
    """`genaug train DATA --kind dafusion --set model_path=DIR` end to end on the tiny random model;
    without a model path the error says what to set."""
    from genaug.generators.dafusion_tiny import tiny_stable_diffusion

    monkeypatch.delenv("GENAUG_SD_MODEL", raising=False)
    result = invoke("train", digit_folder, "--kind", "dafusion", "--name", "nopath", "--set", "steps=2")
    assert result.exit_code == 1
    assert "model_path: dafusion needs a local Stable Diffusion folder" in result.output and "GENAUG_SD_MODEL" in result.output
    model = tiny_stable_diffusion()
    result = invoke("train", digit_folder, "--kind", "dafusion", "--name", "df", "--set", f"model_path={model}",
                    "--set", "resolution=32", "--set", "steps=3", "--set", "batch_size=2", "--set", "sample_steps=4",
                    "--set", "checkpoint_every=0")
    assert result.exit_code == 0, result.output
    listed = {m["name"]: m for m in json.loads(invoke("models", "--json").output)}
    assert listed["df"]["status"] == "ready" and listed["df"]["kind"] == "dafusion"
    out = tmp_path / "generated"
    result = invoke("generate", "df", "--n-per-class", "2", "--out", out, "--seed", "0", "--set", "strength=0.75",
                    "--no-filter")
    assert result.exit_code == 0, result.output
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 6 and {row["strength"] for row in manifest} == {0.75}
    assert all(row["token"].startswith("<genaug-c") and row["source"] for row in manifest)


def test_the_solver_is_chosen_at_generation_time(home, digit_folder, tmp_path):
    """One trained DDIM, sampled with DPM-Solver++ and UniPC through the CLI and the API; each
    image's manifest line names the solver and the steps; an unknown solver is a clear error."""
    assert invoke("ingest", digit_folder, "--name", "digits-solvers").exit_code == 0
    result = invoke("train", "digits-solvers", "--kind", "ddim", "--name", "dd", "--set", "preset=tiny",
                    "--set", "steps=10", "--set", "mode=conditional")
    assert result.exit_code == 0, result.output
    out = tmp_path / "dpm"
    result = invoke("generate", "dd", "--n-per-class", 2, "--out", out, "--set", "solver=dpm++2m", "--set", "steps=5")
    assert result.exit_code == 0, result.output
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 6 and {(m["scheduler"], m["steps"]) for m in manifest} == {("dpm++2m", 5)}
    via_api = genaug.generate("dd", tmp_path / "unipc", n_per_class=1, solver="unipc", steps=4)
    assert sum(via_api.counts.values()) == 3
    lines = (tmp_path / "unipc" / "manifest.jsonl").read_text().splitlines()
    assert {(json.loads(line)["scheduler"], json.loads(line)["steps"]) for line in lines} == {("unipc", 4)}
    result = invoke("generate", "dd", "--n-per-class", 1, "--out", tmp_path / "bad", "--set", "solver=heun")
    assert result.exit_code != 0 and "scheduler" in result.output and "Traceback" not in result.output


@pytest.mark.database_agnostic  # the dask workers never open the registry; the CLI's evaluate runs on both elsewhere
def test_evaluate_on_the_dask_executor_runs_the_grid_on_local_workers(home, digit_folder, tmp_path):
    out = tmp_path / "report"
    result = invoke("evaluate", digit_folder, "-g", "classic", "--shots", "3", "--seeds", "0,1", "--steps", "5",
                    "--executor", "dask", "--cache", tmp_path / "cells", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Recommendation:" in result.output and (out / "results.md").exists()
    cells = list((tmp_path / "cells").rglob("seed=*/*.json"))
    assert {c.parent.name for c in cells} == {"seed=0", "seed=1"}
    arms = {c.stem for c in cells}
    assert len(cells) == 2 * len(arms) and {"real", "real+classic"} < arms  # every arm, both seeds
    result = invoke("evaluate", digit_folder, "-g", "classic", "--executor", "dask", "--out", out)
    assert result.exit_code != 0 and "give --cache" in result.output
    result = invoke("evaluate", digit_folder, "--executor", "ray", "--cache", tmp_path / "c", "--out", out)
    assert result.exit_code != 0 and "executor: 'ray' is not one of" in result.output
