"""The genaug command line: a thin shell over ``genaug.api`` and ``genaug.evaluate``.

Every command's logic lives in the library; this file parses options, shows progress bars
and prints results.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import api
from .progress import RECOMPUTED_MARK, ProgressEvent
from .store import ModelNotFoundError, ModelNotReadyError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="genaug: generative data augmentation for small labelled datasets, with the numbers to prove it helps.")
console = Console()
err = Console(stderr=True)


# -- helpers -----------------------------------------------------------------

class ProgressBars:
    """A rich progress bar (with ETA and the latest losses) fed by ``ProgressEvent``s."""

    def __init__(self):
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=err, transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if RECOMPUTED_MARK in event.message:  # the bar shows 60 characters: this one is read in full
            self.progress.console.print(f"{event.stage}: {event.message}", markup=False, highlight=False)
        losses = [(k, v) for k, v in event.losses.items() if k != "images_per_s"][:3]
        info = " ".join(f"{k}={v:.4g}" for k, v in losses) or event.message[:60]
        if "images_per_s" in event.losses:
            info += f" ({event.losses['images_per_s']:.0f} img/s)"
        if event.stage not in self.tasks:
            self.tasks[event.stage] = self.progress.add_task(event.stage, total=event.total, info=info)
        self.progress.update(self.tasks[event.stage], completed=event.step, total=event.total, info=info)


def parse_assignments(items: Optional[list[str]]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as YAML scalars/lists (``steps=500``, ``channels=[32,64]``)."""
    values: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"'{item}' is not key=value", param_hint="--set")
        key, raw = item.split("=", 1)
        values[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return values


def read_config_file(path: Optional[Path]) -> dict[str, Any]:
    """A YAML or JSON config file as a dict (clear error naming the file)."""
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise typer.BadParameter(f"{path}: {error}", param_hint="--config") from error
    if not isinstance(loaded, dict):
        raise typer.BadParameter(f"{path}: expected a mapping of config fields", param_hint="--config")
    return loaded


def show_verdict(markdown: str, verdict: list[str]) -> None:
    """Print the verdict table as plain text: arm names contain [...] that rich would read as markup,
    and a table must not be wrapped at the terminal width."""
    print(markdown)
    print()
    for line in verdict:
        print(line)


def fail(message: str) -> None:
    """Print an error and exit 1 (no traceback for user errors)."""
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def load_data(source: str, image_size: Optional[int] = None):
    """A stored dataset by name, or any path genaug can ingest; returns (data, test, source)."""
    path = Path(source)
    if path.exists():
        result = api.ingest(path, image_size=image_size)
        for line in result.report.summary_lines(limit=20):
            err.print(f"  {line}")
        return result.data, result.test, None
    data, test, _ = api.load_dataset(source)
    return data, test, str(api.dataset_dir(source))


# -- commands ----------------------------------------------------------------

@app.command()
def ingest(path: Path = typer.Argument(..., help="image folder (one subfolder per class), .zip/.tar, .npz, .csv or PROBEN1 .dt"),
           name: Optional[str] = typer.Option(None, help="store the validated copy under this name (default: the file/folder name)"),
           image_size: Optional[int] = typer.Option(None, help="resize images to this square size"),
           aspect: str = typer.Option("center_crop", help="center_crop or pad, when resizing changes the aspect"),
           channels: str = typer.Option("auto", help="auto, L or RGB"),
           max_pixels: int = typer.Option(50_000_000, help="refuse images larger than this (decompression bombs)"),
           label_column: str = typer.Option("label", help="CSV: the label column"),
           replace: bool = typer.Option(False, help="overwrite a stored dataset of the same name"),
           report_json: Optional[Path] = typer.Option(None, help="also write the ingest report here")):
    """Validate a dataset, print the report, and store it for `genaug train`.

    Examples: `genaug ingest ./flowers --image-size 64`, `genaug ingest parts.zip --name parts`,
    `genaug ingest table.csv --label-column class`.
    """
    if not path.exists():
        fail(f"{path}: no such file or folder")
    try:
        with ProgressBars() as bars:
            result = api.ingest(path, image_size=image_size, aspect=aspect, channels=channels,
                                max_pixels=max_pixels, label_column=label_column, progress=bars)
    except ValueError as error:
        report = getattr(error, "report", None)
        if report is not None:
            for line in report.summary_lines(limit=50):
                err.print(f"  {line}")
        fail(str(error))
    for line in result.report.summary_lines(limit=200):
        console.print(f"  {line}")
    for note in result.report.notes:
        console.print(f"  [dim]note:[/dim] {note}")
    dataset_name = name or api.safe_dataset_name(path)
    try:
        folder = api.save_dataset(dataset_name, result.data, result.test, result.report.to_dict(), replace=replace)
    except (FileExistsError, ValueError) as error:
        fail(str(error))
    if report_json:
        result.report.save(report_json)
    console.print(f"[green]stored[/green] dataset '{dataset_name}': {len(result.data)} examples, "
                  f"classes {result.data.counts()} -> {folder}")


@app.command()
def kinds():
    """List the generator kinds: one-line summary, capabilities, config fields (``train --set``) and
    sample options (``generate --set``)."""
    for kind, cls in sorted(api.generator_kinds().items()):
        console.print(f"[bold]{kind}[/bold] ({cls.data_kind}; a saved model keeps training data: "
                      f"{cls.keeps_training_data}): {cls.summary}")
        able = ([f"--unlabeled in mode {', '.join(cls.uses_unlabeled_pool)}"] if cls.uses_unlabeled_pool else []) + \
            (["--parent (transfer)"] if cls.supports_warm_start else [])
        if able:
            console.print(f"  can: {'; '.join(able)}")
        console.print("  config (train --set):")
        for field, info in cls.Config.model_fields.items():
            console.print(f"    {field} = {info.default!r}  [dim]{info.description or ''}[/dim]")
        options = cls.sample_options()
        if options:
            console.print("  sample options (generate --set):")
            for option, schema in options.items():
                console.print(f"    {option} = {schema.get('default')!r}  [dim]{schema.get('description', '')}[/dim]")


def preset_config(kind: str, preset: Optional[str]) -> dict:
    """The config fields of ``kind``'s preset ``preset`` (none without one); a clear error otherwise."""
    if preset is None:
        return {}
    from .presets import kind_presets

    presets = {p["name"]: p["config"] for p in kind_presets(kind)}
    if preset not in presets:
        raise typer.BadParameter(f"'{preset}' is not a preset of {kind}; it has "
                                 f"{', '.join(presets) or 'none (nothing to train)'}", param_hint="--preset")
    return presets[preset]


@app.command()
def train(data: str = typer.Argument(..., help="a stored dataset name (from `genaug ingest`) or a path to ingest now"),
          kind: str = typer.Option(..., "--kind", "-k", help="generator kind (see `genaug kinds`)"),
          name: str = typer.Option(..., "--name", "-n", help="model name in the registry"),
          config: Optional[Path] = typer.Option(None, help="YAML/JSON file of config fields"),
          set_: Optional[list[str]] = typer.Option(None, "--set", help="config field override key=value (repeatable)"),
          preset: Optional[str] = typer.Option(None, help="quick, standard or best: sizes for a CPU, under --config and --set"),
          keep_data: bool = typer.Option(False, help="keep the stored dataset after training (default: delete it)"),
          replace: bool = typer.Option(False, help="replace a ready model of the same name"),
          image_size: Optional[int] = typer.Option(None, help="when ingesting a path: resize images"),
          unlabeled: Optional[Path] = typer.Option(None, help="images without labels (folder/zip/npz) mode single of vae/ddim/ddpm also learns from"),
          parent: Optional[str] = typer.Option(None, help="start from this ready model of the same kind (transfer) and fine-tune"),
          fresh: bool = typer.Option(False, help="ignore checkpoints of an interrupted run of the same training (default: resume)"),
          quality_samples: Optional[int] = typer.Option(None, help="samples per class of the quality card made after training (0 = none; default $GENAUG_QUALITY_SAMPLES or 32)")):
    """Train a generator and keep it in the registry.

    Examples: `genaug train digits --kind vae --name digits-vae --preset quick`,
    `genaug train digits --kind vae --name digits-vae --set steps=2000 --set mode=conditional`,
    `genaug train ./flowers --kind ddim --name flowers-ddim --image-size 64 --set steps=20000`,
    `genaug train ./tulips --kind ddim --name tulips --parent flowers-ddim --set steps=2000`.

    An interrupted training (crash, Ctrl-C, kill) resumes from its latest checkpoint when the
    same command is run again. The loss plot, the loss history and sample grids are written
    into the model's folder under `training/`.
    """
    try:
        dataset, _, source = load_data(data, image_size)
        pool = None
        if unlabeled is not None:
            pool_data, _, _ = load_data(str(unlabeled), image_size=dataset.images.shape[1])
            pool = pool_data.images  # labels (folder names) are ignored: the pool is unlabeled
        overrides = parse_assignments(set_)
        base = {**preset_config(kind, preset), **(read_config_file(config) or {})}
        with ProgressBars() as bars:
            info = api.train(dataset, kind, name, config=base, overrides=overrides,
                             progress=bars, keep_data=keep_data, data_source=source, replace=replace,
                             unlabeled=pool, parent=parent, resume=not fresh, quality_samples=quality_samples)
    except (ValueError, FileNotFoundError, TypeError, ModelNotFoundError, ModelNotReadyError) as error:
        fail(str(error))
    if info is None:
        return  # an extra process of `accelerate launch`: the main process reports
    console.print(f"[green]ready[/green]: model '{info.name}' ({info.kind}), classes {info.class_names}, "
                  f"{info.metrics.get('training_seconds', 0):.1f} s")
    if info.training_data_note:
        console.print(f"[yellow]note[/yellow]: {info.training_data_note}")
    card = info.metrics.get("quality") or {}
    if "overall" in card:
        console.print(f"quality: {quality_summary(card)} (details: `genaug models --details {info.name}`)")
    elif "error" in card:
        console.print(f"[yellow]quality card[/yellow]: {card['error']}")
    record = Path(info.path) / "training" if info.path else None
    if record is not None and record.is_dir():
        plots = sorted(record.glob("*/losses.png"))
        grids = sorted(record.glob("*/samples/*.png"))
        # soft_wrap: paths are for copying, a wrapped path is a broken one
        console.print(f"loss plot{'s' if len(plots) > 1 else ''}: {', '.join(map(str, plots))}", soft_wrap=True)
        if grids:
            console.print(f"sample grids: {len(grids)} in {record}/<phase>/samples/ (latest: {grids[-1]})",
                          soft_wrap=True)


@app.command()
def models(all_: bool = typer.Option(False, "--all", help="include models still training or failed"),
           as_json: bool = typer.Option(False, "--json", help="print JSON"),
           details: Optional[str] = typer.Option(None, "--details", help="one model's details and quality card")):
    """List the models in the registry (ready ones by default), or one model's details.

    Examples: `genaug models`, `genaug models --details digits-vae`.
    """
    if details is not None:
        show_model_details(details, as_json)
        return
    infos = api.list_models(include_all=all_)
    if as_json:
        console.print_json(json.dumps([i.to_dict() for i in infos]))
        return
    table = Table("name", "kind", "status", "classes", "created")
    for info in infos:
        table.add_row(info.name, info.kind, info.status, ", ".join(info.class_names)[:60], info.created_at or "")
    console.print(table if infos else "no models yet: `genaug train DATA --kind vae --name NAME`")


def show_model_details(name: str, as_json: bool) -> None:
    """Print one model: kind, classes, config, training time and its quality card explained."""
    try:
        info = api.get_model(name)
    except ModelNotFoundError as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps(info.to_dict()))
        return
    console.print(f"[bold]{info.name}[/bold] ({info.kind}, {info.status}); classes: {', '.join(info.class_names)}")
    seconds = info.metrics.get("training_seconds")
    if seconds is not None:
        console.print(f"trained in {seconds:.1f} s; created {info.created_at}")
    card = info.metrics.get("quality")
    if not card:
        console.print("no quality card (trained with GENAUG_QUALITY_SAMPLES=0, on a table, or before cards existed)")
        return
    if "error" in card:
        console.print(f"[yellow]quality card[/yellow]: {card['error']}")
        return
    console.print(f"quality card: {card['samples_per_class']} samples per class against {card['reference']} "
                  f"({card['feature_space']} features, {card['seconds']} s)")
    print_quality_table(card, title=None)


def quality_summary(card: dict) -> str:
    """A quality card in one line: KID and the near-copy share over all samples."""
    overall = card["overall"]
    kid_text = f"KID {overall['kid']['mean'] * 1000:.2f}x1e-3, " if "kid" in overall else ""
    return f"{kid_text}near-copies {overall['near_copy_share']['value']:.1%} of {overall['samples']} samples"


def print_quality_table(card: dict, title: Optional[str]) -> None:
    """A quality card as a table (overall, then per class), its warnings and one line per number."""
    table = Table(title=title)
    for column in ("class", "samples", "KID (x1000)", "FID", "precision", "recall", "density", "coverage", "near-copies"):
        table.add_column(column)
    for name, block in [("all", card["overall"])] + list(card["per_class"].items()):
        kid_text = f"{block['kid']['mean'] * 1000:.2f} ± {block['kid']['std'] * 1000:.2f}" if "kid" in block else "–"
        share = block["near_copy_share"]
        table.add_row(name, str(block["samples"]), kid_text, f"{block['fid']:.1f}" if "fid" in block else "–",
                      *(f"{block[k]:.2f}" if k in block else "–" for k in ("precision", "recall", "density", "coverage")),
                      f"{share['value']:.1%} [{share['low']:.1%}, {share['high']:.1%}]")
    console.print(table)
    score = card["overall"].get("inception_score")
    if score:
        console.print(f"Inception Score (all samples): {score['mean']:.2f} ± {score['std']:.2f} ({score['network']})",
                      soft_wrap=True)
    for line in card.get("warnings", []):
        console.print(f"[yellow]warning[/yellow]: {line}")
    for line in card.get("explanations", {}).values():
        console.print(f"[dim]{line}[/dim]")


@app.command()
def generate(name: str = typer.Argument(..., help="model name (see `genaug models`)"),
             out: Path = typer.Option(..., "--out", "-o", help="output folder (new or empty)"),
             n_per_class: Optional[int] = typer.Option(None, help="samples per class"),
             balance: bool = typer.Option(False, help="fill every class up to the largest training class"),
             count: Optional[list[str]] = typer.Option(None, help="class=N (repeatable)"),
             seed: int = typer.Option(0),
             set_: Optional[list[str]] = typer.Option(None, "--set", help="sample option key=value, e.g. sampler=interpolation+noise"),
             filter_: Optional[list[str]] = typer.Option(
                 None, "--filter", help="post-sample filter (repeatable): confidence[:P] keeps samples a classifier "
                                        "of the real images names with probability >= P (default 0.5); "
                                        "near-copy[:R] rejects copies of training images (ratio R, default 1/3); "
                                        "generative-classifier[:P] applies the real-vs-noise network the model "
                                        "trained with (the default for such models)"),
             no_filter: bool = typer.Option(False, "--no-filter",
                                            help="apply no filter, not even the model's own generative classifier"),
             reference: Optional[str] = typer.Option(
                 None, help="the model's training images (a stored dataset or a path) for the filters and "
                            "quality.json; default: the reference the model stored when it was trained"),
             max_filter_rounds: int = typer.Option(10, help="redraw rejected samples at most this many times per batch"),
             quality: bool = typer.Option(True, "--quality/--no-quality",
                                          help="write quality.json (the quality card of the generated images)")):
    """Generate samples from a stored model: an ImageFolder of PNGs (or a CSV) plus manifest.jsonl,
    quality.json and, with filters, filters.json.

    Examples: `genaug generate digits-vae --n-per-class 100 --out synth/`,
    `genaug generate parts-vae --balance --out balanced/`,
    `genaug generate flowers-ddim --n-per-class 50 --filter confidence:0.6 --filter near-copy --out kept/`.
    """
    counts = None
    if count:
        counts = {k: int(v) for k, v in parse_assignments(count).items()}
    if no_filter and filter_:
        fail("--no-filter and --filter contradict each other; give one")
    filters = [] if no_filter else (filter_ or None)  # None: the model's own filter, if it has one
    try:
        reference_data = load_data(reference)[0] if reference else None
        with ProgressBars() as bars:
            result = api.generate(name, out, n_per_class=n_per_class, counts=counts, balance=balance, seed=seed,
                                  progress=bars, filters=filters, reference=reference_data, quality=quality,
                                  max_filter_rounds=max_filter_rounds, **parse_assignments(set_))
    except (ValueError, LookupError, FileExistsError, FileNotFoundError) as error:
        fail(str(error))
    console.print(f"[green]wrote[/green] {result.total} samples {result.counts} to {result.out_dir} "
                  f"(manifest: {result.manifest})", soft_wrap=True)
    if result.filters:
        show_filter_summary(result.filters)
    if result.quality and "overall" in result.quality:
        console.print(f"quality: {quality_summary(result.quality)} (quality.json; `genaug models --details {name}` "
                      "explains each number)", soft_wrap=True)
    elif result.quality:
        console.print(f"quality.json: not scored: {result.quality.get('skipped') or result.quality.get('error')}",
                      soft_wrap=True)


def show_filter_summary(summary: dict) -> None:
    """One line of what the filters did, and one per class left short."""
    by = ", ".join(f"{name} {count}" for name, count in summary["rejected_by"].items())
    console.print(f"filters {' + '.join(summary['filters'])}: drew {summary['drawn']}, rejected {summary['rejected']} "
                  f"({summary['rejection_rate']:.0%}; by {by}), kept {summary['accepted']}", soft_wrap=True)
    for label, missing in summary["short"].items():
        console.print(f"[yellow]class {label}: {missing} short[/yellow] -- the filters rejected too many after "
                      f"{summary['max_rounds']} rounds (lower a threshold or raise --max-filter-rounds)", soft_wrap=True)


def _split(data: str, test_fraction: float):
    from .data import stratified_split

    dataset, test, _ = load_data(data)
    if test is None:
        dataset, test = stratified_split(dataset, test_fraction, seed=0)
    return dataset, test


def _run_request(data: str, request_fields: dict, out: Path, cache: Optional[Path], test_fraction: float,
                 executor: Optional[str] = None) -> None:
    """Build the request (errors name the option), run it, print the answer first, then the table."""
    import pydantic

    from .api import evaluate_request
    from .evaluate.executors import ExecutorError
    from .evaluate.request import EvaluationRequest

    try:
        request = EvaluationRequest(**request_fields)
    except pydantic.ValidationError as error:
        fail("; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-') or 'options'}: {e['msg']}"
                       for e in error.errors()))
    dataset, test = _split(data, test_fraction)
    started = time.time()
    if (executor or "").strip() == "jobs":
        from .jobs.grid import jobs_executor

        executor = jobs_executor()  # the registry of $GENAUG_HOME / $GENAUG_DATABASE_URL, as `genaug worker`
    try:
        with ProgressBars() as bars:
            written = evaluate_request(dataset, test, request, out, dataset_name=Path(data).stem, cache_dir=cache,
                                       progress=bars, executor=executor)
    except (ValueError, LookupError, ModelNotReadyError, ExecutorError) as error:
        fail(str(error))
    show_answer(written)
    console.print(f"report: {out / 'results.md'} ({time.time() - started:.0f} s)", soft_wrap=True)


def show_answer(written: dict) -> None:
    """The recommendation in plain sentences, the warnings, then the compact table and what it means."""
    print("Recommendation:")
    for line in written["verdict"]:
        print(f"  {line}")
    if written.get("warnings"):
        print()
        print("Warnings:")
        for line in written["warnings"]:
            print(f"  - {line}")
    print()
    print(written["markdown"])
    print()
    for line in written.get("explanations", []):
        print(f"  {line}")


def _numbers(text: Optional[str], field: str) -> Optional[list]:
    if text is None:
        return None
    try:
        return [None if s.strip() == "all" else int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--{field}: '{text}' is not a comma-separated list of integers")


def _generators(items: Optional[list[str]]) -> list[dict]:
    choices = []
    for text in items or []:
        kind, _, opts = text.partition(":")
        # Commas separate options, except inside [...] lists (channels=[32,64]).
        config = parse_assignments([o for o in re.split(r",(?![^\[]*\])", opts) if o]) if opts else {}
        choices.append({"kind": kind, "config": config, "label": kind if not opts else f"{kind}({opts})"})
    return choices


@app.command()
def evaluate(data: str = typer.Argument(..., help="stored dataset name or path (its test split, or a stratified 20% split)"),
             generator: Optional[list[str]] = typer.Option(None, "--generator", "-g", help="kind[:key=value,...] (repeatable), e.g. vae:mode=conditional,steps=1000"),
             model: Optional[str] = typer.Option(None, "--model", help="a stored model: does its data help? (the test split must not overlap its training data)"),
             select: bool = typer.Option(False, "--select", help="search kinds x options x share on validation folds of the training split; score the choice once on the test split"),
             select_kinds: Optional[str] = typer.Option(None, help="with --select: only these kinds, comma separated (e.g. vae)"),
             validation_size: Optional[int] = typer.Option(None, help="with --select: examples in the validation pool, drawn from the training split with its class mix (default 2000, at most half of each class)"),
             search_seeds: Optional[str] = typer.Option(None, help="with --select: the search's seeds, comma separated (default: --seeds); more seeds resolve smaller gains at small n, at their cost"),
             quick: bool = typer.Option(False, "--quick", help="a first answer in minutes: n=10, 3 seeds, real / + classic / + one small VAE"),
             classifier: Optional[str] = typer.Option(None, help="cnn (default), lite0-linear, lite0-finetune, supcon; mlp, gbm for tables; or module:function"),
             shots: Optional[str] = typer.Option(None, help="n per class, comma separated; 'all' = the whole training split (default 5,10; quick 10; --model all)"),
             seeds: Optional[str] = typer.Option(None, help="comma separated (default 0,1,2)"),
             per_class: Optional[int] = typer.Option(None, help="synthetic samples per class (default: 1:1 with the real ones)"),
             steps: Optional[int] = typer.Option(None, help="classifier training steps per arm (default 1000; quick 300)"),
             out: Path = typer.Option(Path("genaug-report"), help="report folder"),
             cache: Optional[Path] = typer.Option(None, help="cell cache folder: rerun resumes"),
             test_fraction: float = typer.Option(0.2, help="test share when the data has no test split"),
             executor: str = typer.Option("local", help="where the cells run: local, dask (2 local worker processes "
                                                        "on 127.0.0.1), dask://HOST:PORT (a running scheduler) or "
                                                        "jobs (jobs of the registry database for `genaug worker`s); "
                                                        "--cache must be a folder every worker shares")):
    """Does synthetic data help? The same classifier, same budget, on your images alone, with classic
    augmentation and with generated images; the answer comes first, in one sentence per n.

    Examples: `genaug evaluate flowers --quick`, `genaug evaluate digits -g vae -g ddim --shots 5,10`,
    `genaug evaluate flowers --model flowers-vae`, `genaug evaluate flowers --select --classifier lite0-linear`,
    `genaug evaluate digits -g vae --executor dask --cache ./cells`,
    `genaug evaluate digits -g vae --executor jobs --cache /shared/cells` (with `genaug worker`s running).
    """
    fields = {"generators": _generators(generator), "model": model, "select": select, "quick": quick,
              "select_kinds": None if select_kinds is None else [k.strip() for k in select_kinds.split(",")],
              "validation_size": validation_size, "search_seeds": _numbers(search_seeds, "search-seeds"),
              "classifier": classifier, "shots": _numbers(shots, "shots"), "seeds": _numbers(seeds, "seeds"),
              "per_class": per_class, "classifier_steps": steps}
    _run_request(data, fields, out, cache, test_fraction, executor)


@app.command()
def recommend(data: str = typer.Argument(..., help="stored dataset name or path"),
              quick: bool = typer.Option(False, "--quick", help="the small search grid (VAE only, short budgets)"),
              kinds: Optional[str] = typer.Option(None, help="only these kinds, comma separated"),
              validation_size: Optional[int] = typer.Option(None, help="examples in the validation pool, drawn from the training split with its class mix (default 2000, at most half of each class)"),
              search_seeds: Optional[str] = typer.Option(None, help="the search's seeds, comma separated (default: --seeds); more seeds resolve smaller gains at small n, at their cost"),
              classifier: Optional[str] = typer.Option(None, help="cnn (default), lite0-linear, lite0-finetune, supcon; mlp, gbm; module:function"),
              shots: Optional[str] = typer.Option(None, help="n per class (default 5,10; 'all' = every training image)"),
              seeds: Optional[str] = typer.Option(None, help="comma separated (default 0,1,2)"),
              out: Path = typer.Option(Path("genaug-report"), help="report folder"),
              cache: Optional[Path] = typer.Option(None, help="cell cache folder: rerun resumes"),
              test_fraction: float = typer.Option(0.2, help="test share when the data has no test split")):
    """Which synthetic data, if any, should I use? Short for `genaug evaluate DATA --select`."""
    fields = {"select": True, "quick": quick, "classifier": classifier, "validation_size": validation_size,
              "search_seeds": _numbers(search_seeds, "search-seeds"),
              "select_kinds": None if kinds is None else [k.strip() for k in kinds.split(",")],
              "shots": _numbers(shots, "shots"), "seeds": _numbers(seeds, "seeds")}
    _run_request(data, fields, out, cache, test_fraction)


@app.command()
def quality(real: Path = typer.Argument(..., help="real images: a folder with one subfolder per class (or a zip, .npz)"),
            synthetic: Path = typer.Argument(..., help="generated images, the same layout (e.g. `genaug generate`'s output)"),
            space: str = typer.Option("lite0", help="feature space: lite0 (fast on a CPU) or inception (the usual FID space)"),
            reference: str = typer.Option("training images", help="what REAL is, for the report: e.g. training images, held-out images"),
            out: Optional[Path] = typer.Option(None, help="also write the card here as JSON"),
            image_size: Optional[int] = typer.Option(None, help="resize both sets to this square size first")):
    """Score generated images against real ones: KID, FID, precision / recall / density / coverage
    and the share of near-copies of real images, overall and per class.

    Examples: `genaug quality ./flowers ./synthetic`,
    `genaug quality ./flowers ./synthetic --space inception --out quality.json`.
    Class folders are matched by name; a synthetic class with no real folder of its name is an error.
    """
    from .quality import score_sets

    try:
        real_data, _, _ = load_data(str(real), image_size)
        fake_data, _, _ = load_data(str(synthetic), image_size or int(real_data.images.shape[1]))
        names = list(real_data.class_names)
        unknown = sorted(set(fake_data.class_names) - set(names))
        if unknown:
            fail(f"{synthetic}: classes {unknown} have no folder of that name in {real} (it has {names})")
        fake_labels = np.array([names.index(fake_data.class_names[i]) for i in fake_data.labels], dtype=np.int64)
        with Progress(TextColumn("[bold]features[/bold]"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), console=err) as bars:
            task = bars.add_task("features", total=len(real_data) + len(fake_data))
            done = {"base": 0, "last": 0}

            def tick(finished: int, total: int) -> None:
                if finished < done["last"]:  # the second set started
                    done["base"] += done["last"]
                done["last"] = finished
                bars.update(task, completed=done["base"] + finished)

            card = score_sets(real_data.images, real_data.labels, fake_data.images, fake_labels, names, space=space,
                              reference=reference, progress=tick)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    print_quality_table(card, title=f"Quality of {synthetic} against {real} ({card['reference']}; "
                                    f"{card['feature_space']} features)")
    if out is not None:
        out.write_text(json.dumps(card, indent=2))
        console.print(f"written: {out}", soft_wrap=True)


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), help="report folder"),
         shots: str = typer.Option("5,10", help="n per class for the few-shot sweep"),
         seeds: str = typer.Option("0,1,2")):
    """The whole flow on sklearn's bundled digits: few-shot subset, VAE trained and registered,
    samples generated, the verdict table printed and a report written (a few minutes on a CPU)."""
    from .demo import run_demo

    started = time.time()
    with ProgressBars() as bars:
        summary = run_demo(out, shots=[int(s) for s in shots.split(",")], seeds=[int(s) for s in seeds.split(",")],
                           progress=bars, log=lambda m: err.print(m))
    show_verdict(summary["markdown"], summary["verdict"])
    console.print(f"report: {out / 'report' / 'results.md'}; samples: {summary['samples_dir']}; "
                  f"{time.time() - started:.0f} s")


# -- the service ------------------------------------------------------------------

@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 for every interface)"),
          port: int = typer.Option(8000, help="TCP port"),
          workers: int = typer.Option(1, min=0, help="job worker processes to start beside the API"),
          log_level: str = typer.Option("info", help="uvicorn log level")):
    """Run the REST API and web UI (http://HOST:PORT/) with job workers.

    Settings come from the environment: GENAUG_HOME, GENAUG_DATABASE_URL, GENAUG_READ_REQUIRES_TOKEN,
    GENAUG_MAX_UPLOAD_BYTES, ... (see docs/service-api.md). Writes need a token: `genaug token create NAME`.
    """
    from .service.server import serve as run_server

    console.print(f"genaug service on http://{host}:{port}/ (API docs: /docs), {workers} worker(s)")
    run_server(host=host, port=port, workers=workers, log_level=log_level)


@app.command()
def worker(max_jobs: Optional[int] = typer.Option(None, help="exit after this many jobs")):
    """Run one job worker against the same GENAUG_HOME / GENAUG_DATABASE_URL as the service."""
    from .jobs.worker import main as worker_main

    worker_main([] if max_jobs is None else ["--max-jobs", str(max_jobs)])


token_app = typer.Typer(no_args_is_help=True, help="API tokens for the service (writes need one).")
app.add_typer(token_app, name="token")


def _open_registry():
    from .service.settings import ServiceSettings
    from .store import Registry

    settings = ServiceSettings()
    return Registry.open(settings.home_path(), settings.database_url)


@token_app.command("create")
def token_create(name: str = typer.Argument(..., help="who or what the token is for, e.g. alice or ci"),
                 admin: bool = typer.Option(False, "--admin", help="an admin token: may delete anyone's datasets, "
                                                                   "models and jobs and manage tokens over the API")):
    """Create a token and print it (once: only its hash is stored)."""
    from .store.tokens import TokenExistsError, create_token

    with _open_registry() as registry:
        try:
            secret = create_token(registry, name, admin=admin)
        except (TokenExistsError, ValueError) as error:
            fail(str(error))
    err.print(f"{'admin ' if admin else ''}token '{name}' created; keep it, it is not shown again. "
              "Send it as 'Authorization: Bearer <token>' (the web UI asks for it once).")
    print(secret)


@token_app.command("list")
def token_list():
    """List token names and when they were created and last used."""
    from .store.tokens import list_tokens

    with _open_registry() as registry:
        for row in list_tokens(registry):
            used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
            console.print(f"{row.name}{'  (admin)' if row.admin else ''}  created {row.created_at:%Y-%m-%d %H:%M}  "
                          f"{used}")


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="the token's name")):
    """Delete a token: requests with it are refused from now on."""
    from .store.tokens import revoke_token

    with _open_registry() as registry:
        if not revoke_token(registry, name):
            fail(f"no token named {name!r}")
    console.print(f"token '{name}' revoked")


if __name__ == "__main__":
    app()
