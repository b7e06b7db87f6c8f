"""Automatic choice of a recipe (``genaug evaluate --select``, ``genaug recommend``), honestly nested.

1. A validation pool is drawn from the *training* split, stratified: every class gives the same
   share of its examples (at most half, and at most ``validation_size`` examples in all, seeded),
   so the pool has the class mix of your data and a weighted metric on it weighs the classes as
   the test split does. The pool is cut into ``folds`` disjoint folds. For fold f the runner trains on the
   training split minus fold f (few-shot subsets come from there) and scores on fold f. Joining
   the folds gives every pool example one prediction per (n, seed, arm), so the usual statistics
   (``summary.py``: paired bootstrap, Holm over every candidate) apply to the choice.
2. Per n the choice is ``summary.recommend`` on those validation rows: a candidate recipe only
   when it beats ``real+classic`` beyond noise after the correction, else ``real+classic`` (or
   ``real`` where classic augmentation hurt). Tables have no classic augmentation: there the
   reference is ``real`` and no candidate arm has ``+classic``.
3. The chosen recipe is retrained on the whole training split and scored once on the test
   split, beside ``real`` and ``real+classic`` (tables: ``real``).

The test split reaches step 3 only: nothing in steps 1-2 sees it.

Candidates (``default_grid``): generator kinds x their key sample options x synthetic share,
sized for a 2-core CPU; pass your own list of ``GeneratorSpec`` to search something else.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..data.datasets import LabelledData, LabelledImages
from ..progress import ProgressCallback, ProgressEvent
from .metrics import classification_metrics, decode_predictions, encode_predictions
from .protocol import ALL_ARMS, GENERATOR_ARMS, GeneratorSpec, Protocol, SampleVariant, arm_name, default_arms, evaluate
from .summary import recommend, summarise

SELECTION_FOLDS = 2
# The pool's size in examples. The search's cost is the training of its cells, not scoring, so a
# larger pool costs little; a small one leaves real gains inside the noise. PROBEN1 thyroid
# (bench/proben1.py --select): the earlier pool of at most 100 per class (263 rows, a class mix of
# 24/38/38 % against 2/5/93 % in the data) kept no gain that the test split showed; half of every
# class (2,699 rows) kept the gains at n = 30 and 50.
VALIDATION_SIZE = 2000
# The small generators of --quick (request.py) and of the quick search grid. Measured on flowers
# at 64 px, n = 10: a per-class VAE of the default width at 300 steps took 171 s per seed (its
# batch is the 10 images of a class); half the width at 150 steps takes 39 s.
QUICK_VAE = {"mode": "per_class", "steps": 150, "channels": [32, 64, 128]}
QUICK_TABLE_VAE = {"mode": "per_class", "steps": 500}


def default_grid(data: LabelledData, *, quick: bool = False, kinds: Optional[list[str]] = None) -> list[GeneratorSpec]:
    """The default candidates: per kind a CPU-sized config and its key sample options, each at a
    synthetic share of 1:1 and 4:1, with and without classic augmentation (images).

    Images: ``vae`` (per class; samplers prior and interpolation+noise) and ``ddim`` (per class,
    img2img from your images at strength 0.3 and 0.6; left out of ``quick``). Tables:
    ``tabular_vae`` (per class; prior and interpolation+noise)."""
    images = isinstance(data, LabelledImages)
    mixed = ["real+synthetic", "real+synthetic+classic"] if images else ["real+synthetic"]
    shares = (1.0, 4.0)
    grid: dict[str, GeneratorSpec] = {}
    if images:
        vae_config = dict(QUICK_VAE) if quick else {"mode": "per_class", "steps": 1500}
        grid["vae"] = GeneratorSpec(label="vae", kind="vae", config=vae_config,
                                    variants=[SampleVariant(label=f"{sampler},{share:g}:1", ratio=share, arms=mixed,
                                                            options={"sampler": sampler})
                                              for sampler in ("prior", "interpolation+noise") for share in shares])
        if not quick:
            grid["ddim"] = GeneratorSpec(
                label="ddim", kind="ddim", config={"mode": "per_class", "preset": "tiny", "steps": 1500},
                variants=[SampleVariant(label=f"img2img-{strength},{share:g}:1", ratio=share, arms=mixed,
                                        options={"mode": "img2img", "strength": strength, "steps": 25})
                          for strength in (0.3, 0.6) for share in shares])
    else:
        grid["tabular_vae"] = GeneratorSpec(
            label="tabular_vae", kind="tabular_vae", config=dict(QUICK_TABLE_VAE) if quick else {"mode": "per_class", "steps": 3000},
            variants=[SampleVariant(label=f"{sampler},{share:g}:1", ratio=share, arms=mixed, options={"sampler": sampler})
                      for sampler in ("prior", "interpolation+noise") for share in shares])
    if kinds is not None:
        unknown = sorted(set(kinds) - set(grid))
        if unknown:
            raise ValueError(f"select: no default candidates for {unknown}; the grid for this data has "
                             f"{', '.join(grid)} (or pass your own GeneratorSpecs)")
        grid = {k: v for k, v in grid.items() if k in kinds}
    return list(grid.values())


def validation_pool_sizes(counts: np.ndarray, size: Optional[int] = VALIDATION_SIZE,
                          per_class: Optional[int] = None) -> np.ndarray:
    """How many examples of each class (``counts``) go to the validation pool: the same share of
    every class -- half, or less so the pool holds about ``size`` examples (None: no total cap) --
    and at least one of every class with two or more (which can add up to one per class to
    ``size``); ``per_class`` caps each class on top."""
    if size is not None and size < 1:
        raise ValueError(f"validation_size: {size} must be at least 1 (None: half of every class)")
    if per_class is not None and per_class < 1:
        raise ValueError(f"validation_per_class: {per_class} must be at least 1 (None: no cap per class)")
    counts = np.asarray(counts, dtype=np.int64)
    share = 0.5 if size is None else min(0.5, size / max(int(counts.sum()), 1))
    take = np.maximum(np.floor(share * counts).astype(np.int64), np.minimum(1, counts // 2))
    return take if per_class is None else np.minimum(take, per_class)


def _fold_assignment(takes: list[int], folds: int) -> list[np.ndarray]:
    """Per class, the fold of each of its ``takes[c]`` pool examples: round-robin within the class,
    so each fold keeps the class mix. When classes give fewer examples than there are folds, that
    would leave a fold empty; the round-robin then runs across the whole pool instead."""
    per_class = [np.arange(take) % folds for take in takes]
    if sum(takes) >= folds and any(not any(int((f == k).sum()) for f in per_class) for k in range(folds)):
        offsets = np.cumsum([0] + list(takes[:-1]))
        per_class = [(offset + np.arange(take)) % folds for offset, take in zip(offsets, takes)]
    return per_class


def validation_folds(train: LabelledData, folds: int = SELECTION_FOLDS, *, size: Optional[int] = VALIDATION_SIZE,
                     per_class: Optional[int] = None, seed: int = 0) -> list[tuple[LabelledData, LabelledData]]:
    """``folds`` pairs (inner training set, validation fold), both from ``train`` alone: a stratified
    pool (``validation_pool_sizes``) cut into disjoint folds; the inner set of fold f is ``train``
    minus fold f."""
    if folds < 2:
        raise ValueError("select: at least 2 validation folds")
    if size is not None and size < folds:
        raise ValueError(f"validation_size: {size} is smaller than the {folds} folds it is cut into")
    rng = np.random.default_rng(10_000 + seed)
    counts = np.bincount(train.labels, minlength=len(train.class_names))
    takes = [int(t) for t in validation_pool_sizes(counts, size, per_class)]
    assignment = np.full(len(train), -1)
    for label, (take, fold_of) in enumerate(zip(takes, _fold_assignment(takes, folds))):
        idx = rng.permutation(np.flatnonzero(train.labels == label))[:take]
        assignment[idx] = fold_of
    if (assignment >= 0).sum() < folds:
        raise ValueError("select: the training split is too small for validation folds (it needs at least two "
                         "examples in some class)")
    return [(train.subset(np.flatnonzero(assignment != f)), train.subset(np.flatnonzero(assignment == f)))
            for f in range(folds)]


def _join_folds(results: list[dict]) -> dict:
    """One result whose 'test set' is the union of the validation folds: per (n, seed, arm) the
    folds' predictions are concatenated and the metrics recomputed on the joined labels."""
    first = results[0]
    y_true = np.concatenate([np.asarray(r["test_labels"]) for r in results])
    keyed: dict[tuple, list[dict]] = {}
    for r in results:
        for cell in r["cells"]:
            keyed.setdefault((cell["n"], cell["seed"], cell["arm"]), []).append(cell)
    cells = []
    for (n, seed, arm), parts in keyed.items():
        if len(parts) != len(results):  # a cell missing in one fold (e.g. cached_only): not comparable
            continue
        y_pred = np.concatenate([decode_predictions(c["predictions"]) for c in parts])
        cell = {**parts[0], **classification_metrics(y_true, y_pred, first["class_names"]),
                "predictions": encode_predictions(y_pred),
                "cpu_seconds": round(sum(c.get("cpu_seconds", 0) for c in parts), 2),
                "generator_fit_cpu_seconds": round(sum(c.get("generator_fit_cpu_seconds", 0) or 0 for c in parts), 2)}
        cells.append(cell)
    return {**{k: v for k, v in first.items() if k not in ("cells", "samples", "test_labels", "n_test")},
            "cells": cells, "test_labels": y_true.tolist(), "n_test": int(len(y_true)), "samples": {}}


def _find(candidates: list[GeneratorSpec], arm: str) -> tuple[GeneratorSpec, SampleVariant, str]:
    for spec in candidates:
        for variant in spec.variants:
            for base in GENERATOR_ARMS:
                if arm_name(base, spec, variant) == arm:
                    return spec, variant, base
    raise LookupError(arm)


def _search_cost(result: dict) -> float:
    """CPU seconds of a (joined) run: classifier cells plus each generator fit once."""
    fits = {}
    for c in result["cells"]:
        if c.get("generator"):
            fits[(c["n"], c["seed"], c["generator"])] = c.get("generator_fit_cpu_seconds") or 0
    return round(sum(c.get("cpu_seconds", 0) for c in result["cells"]) + sum(fits.values()), 1)


def _merged_generators(finals: list[dict]) -> list[dict]:
    """The generators of the final runs (JSON, as ``evaluate`` returns them), one entry per label
    with the union of its chosen variants (one spec may win at several n, with one variant or two)."""
    merged: dict[str, dict] = {}
    for result in finals:
        for spec in result["generators"]:
            entry = merged.setdefault(spec["label"], {**spec, "variants": []})
            for variant in spec["variants"]:
                if variant not in entry["variants"]:
                    entry["variants"].append(variant)
    return list(merged.values())


def select_recipe(train: LabelledData, test: LabelledData, protocol: Protocol,
                  candidates: Optional[list[GeneratorSpec]] = None, *, folds: int = SELECTION_FOLDS,
                  validation_size: Optional[int] = VALIDATION_SIZE, validation_per_class: Optional[int] = None,
                  search_seeds: Optional[list[int]] = None, dataset_name: str = "data",
                  cache_dir: Optional[Path] = None, progress: Optional[ProgressCallback] = None,
                  search_name: Optional[str] = None) -> dict:
    """Choose a recipe per n on validation folds of ``train``; retrain it on ``train`` and score it
    once on ``test``. Returns ``{"choices": [...], "validation": result, "final": result, "cost": {...},
    "candidates": [...], "fold_cells": [...]}`` (every search cell, with the ``dataset`` its cache is
    named by; the final cells live under ``dataset_name``).

    ``protocol``: shots, seeds, classifier and budget (its ``arms`` are ignored: the search runs
    ``real``, ``real+classic`` and every candidate arm -- those that exist for the data: tables
    have no ``+classic`` arms). ``validation_size`` / ``validation_per_class``: the validation
    pool (``validation_pool_sizes``). ``search_seeds``: the search's seeds (default the protocol's):
    at small n a few-shot draw moves the score more than the pool's size does, so more seeds
    resolve smaller gains; the final run keeps the protocol's seeds. ``search_name``: the folds'
    caches are ``{search_name}-select-fold{f}`` (default ``dataset_name``), so searches over other
    pools or grids keep their cells apart while their final runs share ``dataset_name``'s cache."""
    if search_seeds is not None and (not search_seeds or len(set(search_seeds)) != len(search_seeds)):
        raise ValueError(f"search_seeds: {list(search_seeds)} must be distinct seeds, at least one")
    candidates = candidates if candidates is not None else default_grid(train)
    started = time.monotonic()
    existing = default_arms(train)  # tables have no classic augmentation, so no "+classic" arms
    base_arms = [a for a in existing if a in ("real", "real+classic")]
    search_protocol = protocol.model_copy(update={"arms": base_arms + [a for a in GENERATOR_ARMS
                                                                       if a != "synthetic" and a in existing],
                                                  "seeds": list(search_seeds or protocol.seeds)})
    fold_results = []
    for f, (inner, validation) in enumerate(validation_folds(train, folds, size=validation_size,
                                                                       per_class=validation_per_class)):
        def fold_progress(event: ProgressEvent, f=f) -> None:
            if progress is not None:
                progress(ProgressEvent("select", event.step, event.total,
                                       message=f"search fold {f + 1}/{folds}: {event.message}",
                                       eta_seconds=event.eta_seconds))
        fold_results.append(evaluate(inner, validation, candidates, search_protocol,
                                     dataset_name=f"{search_name or dataset_name}-select-fold{f}", cache_dir=cache_dir,
                                     progress=fold_progress, keep_samples=False))
    # Each fold's cells, named by the cache they live in: a results file that keeps them lets a fresh
    # clone put them back (bench/_common.restore_cells) instead of searching again.
    fold_cells = [{**cell, "dataset": result["dataset"]} for result in fold_results for cell in result["cells"]]
    validation = _join_folds(fold_results)
    search_wall = time.monotonic() - started
    picks = recommend(summarise(validation))
    choices, final_cells, finals = [], [], []
    for pick in picks:
        n = pick["n"]
        final_arms = list(base_arms)
        specs = []
        recipe = {"arm": pick["arm"], "kind": None}
        if pick["arm"] not in ("real", "real+classic"):
            spec, variant, base = _find(candidates, pick["arm"])
            specs = [spec.model_copy(update={"variants": [variant.model_copy(update={"arms": [base]})]})]
            final_arms.append(base)  # the runner runs a variant's arms only where the protocol lists them
            recipe = {"arm": pick["arm"], "kind": spec.kind, "config": spec.config, "variant": variant.label,
                      "options": variant.options, "ratio": variant.ratio, "per_class": variant.per_class,
                      "classic": base.endswith("+classic")}
        if progress is not None:
            progress(ProgressEvent("select", 0, 1, message=f"final run at n={n}: {pick['arm']}"))
        final_protocol = protocol.model_copy(update={"shots": [n], "arms": final_arms})
        final = evaluate(train, test, specs, final_protocol, dataset_name=dataset_name, cache_dir=cache_dir,
                         progress=progress)
        if pick["arm"] not in {c["arm"] for c in final["cells"]}:  # never again a choice silently left out
            raise RuntimeError(f"select: the final run at n={n} did not score the chosen {pick['arm']}")
        finals.append(final)
        final_cells += final["cells"]
        choices.append({"n": n, "arm": pick["arm"], "plain_name": pick["plain_name"], "helps_on_validation": pick["helps"],
                        "validation_sentence": pick["sentence"], "recipe": recipe,
                        "candidates": pick["compared"], "reference": pick["reference"],
                        "runner_up": pick["runner_up"]})
    final = {**finals[0], "cells": final_cells,
             "protocol": protocol.model_dump(mode="json"),
             "arms": [a for a in ALL_ARMS if any(a in r["arms"] for r in finals)],
             "generators": _merged_generators(finals),
             "samples": {k: v for r in finals for k, v in r.get("samples", {}).items()}} if finals else None
    cost = {"search_cpu_seconds": _search_cost(validation), "search_wall_seconds": round(search_wall, 1),
            "final_cpu_seconds": 0.0 if final is None else _search_cost(final),
            "candidate_arms": sum(len(v.arms or []) for s in candidates for v in s.variants),
            "folds": folds, "validation_examples": validation["n_test"], "validation_size": validation_size,
            "validation_per_class": validation_per_class, "search_seeds": search_protocol.seeds}
    return {"choices": choices, "validation": validation, "final": final, "cost": cost,
            "candidates": [c.model_dump(mode="json") for c in candidates], "fold_cells": fold_cells}


def _unresolved_gain(choice: dict, cost: dict) -> str:
    """A sentence when the search kept the reference although a candidate was ahead of it on
    validation (so not beyond noise after the Holm correction): a gain the search may have given
    up, and what would resolve it (bench: MNIST n = 5 gave up +0.027 with a 1,995-image pool and
    kept it with 29,997). Silent where the choice is not the reference (e.g. your images alone,
    classic augmentation having hurt): the runner-up's difference is to the reference."""
    runner_up = choice.get("runner_up")
    if (choice.get("helps_on_validation") or not runner_up or choice["arm"] != choice.get("reference")
            or runner_up["delta"]["mean"] <= 0):
        return ""
    d = runner_up["delta"]
    # already half of every class: only more search seeds can help
    pool_at_most = cost.get("validation_size", VALIDATION_SIZE) is None and cost.get("validation_per_class") is None
    remedy = ("more search seeds (--search-seeds)" if pool_at_most else
              "a larger validation pool (--validation-size, up to half of every class) or more search seeds "
              "(--search-seeds)")
    return (f" On the validation folds {runner_up['plain_name']} was ahead of {choice['plain_name']} by {d['mean']:+.3f} "
            f"({d['low']:+.3f} to {d['high']:+.3f}), not beyond noise after the Holm correction over "
            f"{choice.get('candidates')} arms, so it was not chosen: a gain this small may exist and not be resolved "
            f"by {cost['validation_examples']} validation examples; {remedy} resolve smaller gains, at their cost.")


def selection_sentences(selection: dict, final_rows: list[dict]) -> list[str]:
    """Per n, the chosen recipe and its one test-split score against ``real`` and ``real+classic``."""
    lines = []
    cost = selection["cost"]
    for choice in selection["choices"]:
        n = choice["n"]
        row = next((r for r in final_rows if r["n"] == n and r["arm"] == choice["arm"]), None)
        at = "With all your images" if n is None else f"At {n} per class"
        if row is None:
            lines.append(f"{at}: the search chose {choice['plain_name']} (not scored on the test split yet).")
            continue
        metric = row["metric"]
        seeds = len(cost.get("search_seeds") or [])
        text = (f"{at}: the search over {choice['candidates']} candidate arms ({cost['folds']} validation folds "
                f"from your training split, {cost['validation_examples']} examples"
                + (f", {seeds} seed{'s' if seeds != 1 else ''}" if seeds else "") + f") chose {choice['plain_name']}. "
                f"On the test split: {metric} {row[f'{metric}_mean']:.3f} ({row[f'{metric}_low']:.3f} to "
                f"{row[f'{metric}_high']:.3f})")
        real = next((r for r in final_rows if r["n"] == n and r["arm"] == "real"), None)
        alone = f"{real['plain_name'] if real else 'your data'} alone"  # "your images" or "your rows"
        for key, name in (("delta_vs_real", alone), ("delta_vs_classic", "+ classic augmentation")):
            d = row.get(key)
            if d:
                text += (f"; {d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}) vs {name}"
                         + (" (within noise)" if d["within_noise"] else ""))
        lines.append(text + "." + _unresolved_gain(choice, cost))
    # The CPU seconds are the cells' own (kept with them); the wall time is this run's, in which
    # cells cached by an earlier run cost nothing, so it is labelled as such.
    lines.append(f"Search cost: {cost['search_cpu_seconds']:.0f} CPU s (this run: {cost['search_wall_seconds']:.0f} s "
                 f"wall; cached cells take none); final runs {cost['final_cpu_seconds']:.0f} CPU s.")
    return lines
