"""What a worker does for each job type: thin calls into genaug's public API.

Every executor takes the job's validated params, the genaug home, the job's own folder
(``$GENAUG_HOME/jobs/<id>``), a progress callback and the token that submitted the job
(``owner``: a trained model belongs to it), and returns the job's ``result``.
A job started again after its worker died does the same work again; ``genaug.train``
resumes from its checkpoints and ``genaug.evaluate`` from its cell cache, so nothing long
is repeated.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..progress import ProgressCallback
from .grid import run_evaluate_cells

JOBS_DIR = "jobs"


def job_dir(home: Path, job_id: str) -> Path:
    """``$GENAUG_HOME/jobs/<id>``: a job's output and caches (ids are uuids, never user text)."""
    return Path(home) / JOBS_DIR / job_id


def with_augmented_copies(data, copies: int, seed: int = 0):
    """``data`` plus ``copies`` classic-augmented ('strong' preset) versions of every image.

    The thesis's augmentation toggle (seed 002 ch. 3.3.4): a small dataset made larger
    before a generator learns it.
    """
    from .. import LabelledImages, get_generator_class

    if copies <= 0:
        return data
    if not isinstance(data, LabelledImages):
        raise ValueError("augment: classic augmentation applies to image datasets only")
    classic = get_generator_class("classic")({"preset": "strong"}).fit(data)
    images, labels, sources = [data.images], [data.labels], list(data.sources)
    for class_index in range(len(data.class_names)):
        count = int((data.labels == class_index).sum()) * copies
        if count == 0:
            continue
        samples = classic.sample(count, label=class_index, seed=seed * 1000 + class_index)
        images.append(samples.data)
        labels.append(samples.labels)
        sources += [f"classic-augmented:{p.get('source', '') if isinstance(p, dict) else ''}"
                    for p in samples.provenance]
    return LabelledImages(np.concatenate(images), np.concatenate(labels).astype(np.int64),
                          list(data.class_names), sources)


def run_train(params: dict[str, Any], home: Path, folder: Path, progress: ProgressCallback,
              note: Callable[[dict], None], *, owner: Optional[str] = None) -> dict[str, Any]:
    """Train and register a model from a stored dataset."""
    from .. import api
    from ..store.datasets import dataset_dir, load_dataset

    data, _test, _report = load_dataset(params["dataset"], home)
    data = with_augmented_copies(data, int(params.get("augment", 0)))
    # The training's work folder (checkpoints, sample grids): the service shows the newest grid.
    parent_id = api.get_model(params["parent"], home).id if params.get("parent") else None
    work = api.training_work_dir(Path(home), params["name"], params["kind"],
                                 api.validate_config(params["kind"], params["config"]).model_dump(mode="json"),
                                 data.fingerprint(), parent_id)
    note({"work_dir": work.relative_to(home).as_posix()})
    info = api.train(data, params["kind"], params["name"], config=params["config"], progress=progress, home=home,
                     keep_data=bool(params.get("keep_data")),
                     data_source=str(dataset_dir(params["dataset"], home)),
                     replace=bool(params.get("replace")), parent=params.get("parent"), created_by=owner,
                     quality_samples=params.get("quality_samples"))
    return {"model": info.name, "model_id": info.id, "kind": info.kind, "class_names": info.class_names,
            "metrics": {k: v for k, v in info.metrics.items() if k != "sources"}}


def run_generate(params: dict[str, Any], home: Path, folder: Path, progress: ProgressCallback,
                 note: Callable[[dict], None], *, owner: Optional[str] = None) -> dict[str, Any]:
    """Generate images from a ready model into the job's ``output`` folder."""
    from .. import api

    out = folder / "output"
    shutil.rmtree(out, ignore_errors=True)  # a re-run after a dead worker starts clean
    result = api.generate(params["model"], out, n_per_class=params.get("n_per_class"), counts=params.get("counts"),
                          balance=bool(params.get("balance")), seed=int(params.get("seed", 0)),
                          batch_size=int(params.get("batch_size", 64)), progress=progress, home=home,
                          filters=params.get("filters"), quality=bool(params.get("quality", True)),
                          **(params.get("options") or {}))
    from ..store.manifest import TABLE_FILE

    quality = result.quality or {}
    return {"model": result.model, "model_id": result.model_id, "counts": result.counts, "total": result.total,
            "seconds": result.seconds, "options": result.options,
            "data_kind": "table" if (out / TABLE_FILE).exists() else "images", "filters": result.filters,
            "quality": {key: quality[key] for key in ("overall", "feature_space", "reference", "warnings",
                                                      "explanations", "skipped") if key in quality} or None}


def run_evaluate(params: dict[str, Any], home: Path, folder: Path, progress: ProgressCallback,
                 note: Callable[[dict], None], *, owner: Optional[str] = None) -> dict[str, Any]:
    """Run the evaluation request (plain, quick, select or a stored model) and write the report."""
    from .. import stratified_split
    from ..api import evaluate_request
    from ..store.datasets import load_dataset
    from .params import EvaluateParams

    typed = EvaluateParams.model_validate(params)
    data, test, _ = load_dataset(typed.dataset, home)
    if test is None:
        data, test = stratified_split(data, typed.test_fraction, seed=0)
    report_dir = folder / "report"
    written = evaluate_request(data, test, typed.request(), report_dir, dataset_name=typed.dataset,
                               cache_dir=folder / "cache", progress=progress, home=home)
    files = sorted(p.name for p in report_dir.iterdir() if p.is_file())
    table = [{"n": r["n"], "arm": r["arm"], "plain_name": r["plain_name"], "metric": r["metric"],
              "mean": r[f"{r['metric']}_mean"], "low": r[f"{r['metric']}_low"], "high": r[f"{r['metric']}_high"],
              "delta_vs_real": _delta(r.get("delta_vs_real")), "delta_vs_classic": _delta(r.get("delta_vs_classic")),
              "gqi": r.get("gqi"), "seeds": len(r["seeds"])} for r in written["rows"]]
    return {"mode": written["mode"], "recommendation": written["verdict"], "verdict": written["verdict"],
            "warnings": written["warnings"], "explanations": written["explanations"], "rows": table,
            "classifier": (written["rows"][0]["classifier"] if written["rows"] else None),
            "selection": written.get("selection"), "table": written["markdown"], "files": files,
            "report": (report_dir / "results.md").read_text()}


def _delta(entry: Optional[dict]) -> Optional[dict]:
    if not entry:
        return None
    return {k: entry[k] for k in ("mean", "low", "high", "within_noise") if k in entry}


EXECUTORS = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate,
             "evaluate_cells": run_evaluate_cells}
