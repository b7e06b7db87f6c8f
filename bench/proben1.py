"""Reproduction of seed 001 tables 6.2 (PROBEN1, whole training split) and 6.3 (thyroid few-shot).

Table 6.2: for card, diabetes, gene, glass, horse, thyroid (permutation 1, the .dt file's
own split: training + validation examples to train on, its test examples to score), the
classifier on real rows (baseline) against real + per-class tabular-VAE rows, without and
with the generative classifier, for beta = 1.0 and the normalised beta (beta * d / N), with
each data set's "balance" and "mix data" setting of the seed's table. 3 seeds.
Table 6.3: thyroid few-shot, n per class in {5, 10, 20, 30, 50}, as many generated rows as
real ones. Resumable: every cell is cached, and the cells of the results file the run writes
(``--out``) go back into the cache first, so a fresh clone rebuilds a committed report without
recomputing it: `python bench/proben1.py --out bench/results/issue12` for the current one (the
default --out, bench/results, holds the previous runner's report, whose cells are never reused).

    python bench/proben1.py            # full run (resumes)
    python bench/proben1.py --quick    # smoke test of the script
    python bench/proben1.py --select   # table 6.3's few-shot grid through `genaug evaluate --select`

--select runs the automatic choice (genaug.evaluate.select: the default candidate grid, chosen on
validation folds of the training split, retrained and scored once on the test split) for every n
of table 6.3, and beside it the same candidates scored directly on the test split (the oracle:
for this report only, it never reaches the choice) to say whether the choice lost a gain that
exists or picked an arm that loses.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from _common import command_sentence, machine, restore_cell_list, setup, warning_bullets, write_json
from _select_check import pool_rule, pool_suffix, seed_list, seeds_suffix, select_sections, select_with_oracle
from genaug.data import load_proben1
from genaug.evaluate import GeneratorSpec, Protocol, SampleVariant, evaluate, summarise
from genaug.evaluate.report import markdown_table
from genaug.evaluate.summary import result_warnings
from genaug.evaluate.select import VALIDATION_SIZE, default_grid

# Seed 001 table 6.2: (balance, mix data) and weighted F1 (baseline, VAE, VAE+GC) for beta norm and 1.0.
SEED_62 = {
    "card": ((True, False), {"norm": (0.871, 0.873, 0.869), "1.0": (0.871, 0.876, 0.871)}),
    "diabetes": ((True, False), {"norm": (0.823, 0.831, 0.826), "1.0": (0.823, 0.827, 0.833)}),
    "gene": ((False, True), {"norm": (0.813, 0.802, 0.814), "1.0": (0.813, 0.812, 0.813)}),
    "glass": ((True, False), {"norm": (0.985, 0.977, 0.985), "1.0": (0.985, 0.984, 0.985)}),
    "horse": ((True, False), {"norm": (0.828, 0.837, 0.844), "1.0": (0.828, 0.836, 0.828)}),
    "thyroid": ((False, True), {"norm": (0.954, 0.952, 0.956), "1.0": (0.954, 0.925, 0.954)}),
}
# Seed 001 table 6.3: thyroid few-shot, n: (baseline, VAE, VAE+GC).
SEED_63 = {5: (0.619, 0.693, 0.675), 10: (0.727, 0.778, 0.761), 20: (0.735, 0.753, 0.778),
           30: (0.772, 0.786, 0.796), 50: (0.818, 0.815, 0.808)}


def vae_spec(label: str, beta_normalise: bool, balance: bool, mix: bool, steps: int) -> GeneratorSpec:
    """Per-class tabular VAE, d = 2 (seed 001 ch. 6.3), generative classifier trained alongside."""
    variants = [SampleVariant(label="vae", options={}, ratio=1.0, balance=balance),
                SampleVariant(label="vae+gc", filters=["generative-classifier"], ratio=1.0, balance=balance)]
    return GeneratorSpec(label=label, kind="tabular_vae", variants=variants, config=dict(
        mode="per_class", latent_dim=2, beta=1.0, beta_normalise=beta_normalise, mix_data=0.2 if mix else 0.0,
        steps=steps, batch_size=32, generative_classifier=True, gc_sigma=0.5, gc_steps=600))


def score(row: dict) -> str:
    """Weighted F1 with its bootstrap interval (over seeds and test rows)."""
    return f"{row['weighted_f1_mean']:.3f} ({row['weighted_f1_low']:.3f} to {row['weighted_f1_high']:.3f})"


def delta(row: dict) -> str:
    """Paired difference to the baseline with its paired-bootstrap interval."""
    d = row["delta_vs_real"]
    return f"{d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})"


def main() -> None:
    parser = setup(__doc__)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--vae-steps", type=int, default=3000)
    parser.add_argument("--classifier-steps", type=int, default=2000)
    parser.add_argument("--only", choices=["6.2", "6.3"], default=None)
    parser.add_argument("--select", action="store_true", help="table 6.3's grid through the automatic choice (see above)")
    parser.add_argument("--validation-size", type=int, default=VALIDATION_SIZE,
                        help="with --select: the validation pool's size in rows, stratified (at most half of each "
                             "class); 0 = half of every class")
    parser.add_argument("--search-seeds", default=None,
                        help="with --select: the search's seeds, comma separated (default --seeds); the final "
                             "runs and the oracle keep --seeds")
    parser.add_argument("--validation-per-class", type=int, default=None,
                        help="with --select: cap each class's share of the pool at this many rows (the pool rule "
                             "before 2026-12-05 was --validation-size 0 --validation-per-class 100)")
    parser.add_argument("--restore-from", type=Path, default=None,
                        help="tables 6.2 / 6.3: a results JSON whose cells go back into the cache first (default: "
                             "the file this run writes in --out)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    vae_steps = 30 if args.quick else args.vae_steps
    clf_steps = 50 if args.quick else args.classifier_steps
    started = time.time()
    tag = "_quick" if args.quick else ""

    def show(event):
        print(f"[{time.time() - started:7.0f}s] {event.step}/{event.total} {event.message}", flush=True)

    sections, payload = [], {"benchmark": "seed 001 tables 6.2 and 6.3, PROBEN1", "machine": machine(),
                             "quick": args.quick, "budgets": {"vae_steps_per_class": vae_steps, "classifier": f"MLP, {clf_steps} steps",
                                         "seeds": seeds}, "table_6_2": {}, "table_6_3": None}
    protocol = Protocol(shots=[None], seeds=seeds, arms=["real", "real+synthetic"], classifier_steps=clf_steps,
                        classifier="mlp")
    if args.select:
        return select_benchmark(args, protocol, vae_steps, tag, show, started)
    if args.restore_from is not None and not args.restore_from.is_file():
        parser.error(f"--restore-from: no results file at {args.restore_from}")
    restored = restore_tables(args.restore_from or args.out / f"proben1{tag}.json", args.cache)
    if restored:
        print(f"restored {restored} cells into {args.cache}", flush=True)
    if args.only in (None, "6.2"):
        warnings = []
        lines = ["| data set | balance / mix | beta | seed: baseline | seed: VAE | seed: VAE+GC | ours: baseline | ours: VAE | ours: VAE+GC | ours: Δ VAE | ours: Δ VAE+GC |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, ((balance, mix), seed_rows) in SEED_62.items():
            train, test = load_proben1(name, 1)
            specs = [vae_spec("beta-norm", True, balance, mix, vae_steps), vae_spec("beta-1.0", False, balance, mix, vae_steps)]
            result = evaluate(train, test, specs, protocol, dataset_name=table_62_cache(name, tag), cache_dir=args.cache,
                              progress=show)
            rows = {r["arm"]: r for r in summarise(result)}
            found = result_warnings(result, list(rows.values()))
            warnings += warning_bullets(found, prefix=f"{name}: ")
            payload["table_6_2"][name] = {"summary": list(rows.values()), "warnings": found, "cells": result["cells"]}
            for beta_label, seed_key in (("beta-norm", "norm"), ("beta-1.0", "1.0")):
                base = rows["real"]
                vae = rows[f"real+synthetic[{beta_label}/vae]"]
                gc = rows[f"real+synthetic[{beta_label}/vae+gc]"]
                s = seed_rows[seed_key]
                lines.append(f"| {name} | {'yes' if balance else 'no'} / {'yes' if mix else 'no'} | {seed_key} | "
                             f"{s[0]:.3f} | {s[1]:.3f} | {s[2]:.3f} | {score(base)} | {score(vae)} | {score(gc)} | "
                             f"{delta(vae)} | {delta(gc)} |")
        sections += ["## Table 6.2: whole training split (weighted F1, mean and 95% bootstrap interval over seeds and test rows)", ""] \
            + lines + [""] + (warnings + [""] if warnings else [])
    if args.only in (None, "6.3"):
        train, test = load_proben1("thyroid", 1)
        few_protocol = protocol.model_copy(update={"shots": [5] if args.quick else [5, 10, 20, 30, 50]})
        result = evaluate(train, test, [vae_spec("beta-norm", True, False, True, vae_steps)], few_protocol,
                          dataset_name=table_63_cache(tag), cache_dir=args.cache, progress=show)
        rows = summarise(result)
        found = result_warnings(result, rows)
        payload["table_6_3"] = {"summary": rows, "warnings": found, "cells": result["cells"]}
        lines = ["| n | seed: baseline | seed: VAE | seed: VAE+GC | ours: baseline | ours: VAE | ours: VAE+GC | ours: Δ VAE | ours: Δ VAE+GC |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for n in sorted({r["n"] for r in rows}):
            here = {r["arm"]: r for r in rows if r["n"] == n}
            base, vae, gc = here["real"], here["real+synthetic[beta-norm/vae]"], here["real+synthetic[beta-norm/vae+gc]"]
            s = SEED_63.get(n, (float("nan"),) * 3)
            lines.append(f"| {n} | {s[0]:.3f} | {s[1]:.3f} | {s[2]:.3f} | {score(base)} | {score(vae)} | {score(gc)} | "
                         f"{delta(vae)} | {delta(gc)} |")
        sections += ["## Table 6.3: thyroid few-shot (weighted F1)", ""] + lines + [""] \
            + (warning_bullets(found) + [""] if found else []) + ["### All arms", "", markdown_table(rows), ""]
    payload["wall_seconds_this_invocation"] = round(time.time() - started, 1)
    payload["machine"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")  # machine() ran at the start
    write_json(args.out / f"proben1{tag}.json", payload)
    header = ["# PROBEN1 (seed 001 tables 6.2 and 6.3)", "",
              command_sentence(payload, f"Budgets: {payload['budgets']}."),
              "", "The .dt files' own splits (training + validation to train on, test to score). Per-class tabular VAE, "
              "d = 2; the generative classifier is trained with every VAE and used in the VAE+GC column. Δ = paired "
              "difference to our baseline over the same seeds. Per-cell CPU seconds are in the JSON.", ""]
    (args.out / f"proben1{tag}.md").write_text("\n".join(header + sections) + "\n")
    print("\n".join(header + sections))


def table_62_cache(name: str, tag: str) -> str:
    """The cell cache of table 6.2's run on data set ``name`` (``tag``: "_quick" for --quick)."""
    return f"proben1-{name}{tag}"


def table_63_cache(tag: str) -> str:
    """The cell cache of table 6.3's run (thyroid few-shot)."""
    return f"proben1-thyroid-fewshot{tag}"


def restore_tables(results: Path, cache_dir: Path) -> int:
    """Put the cells of a tables 6.2 / 6.3 results file back into the cell cache, each table's cells
    under the cache name the run that wrote the file used (--quick or not, from the file: its
    "quick" field, or for files written before it, its name); returns how many were not cached
    already."""
    if not results.exists():
        return 0
    payload = json.loads(results.read_text())
    quick = payload.get("quick", results.name.endswith("_quick.json"))
    tag = "_quick" if quick else ""
    cells = [{**cell, "dataset": table_62_cache(name, tag)}
             for name, table in (payload.get("table_6_2") or {}).items() for cell in table.get("cells", [])]
    cells += [{**cell, "dataset": table_63_cache(tag)} for cell in (payload.get("table_6_3") or {}).get("cells", [])]
    # a file of kept cells (keep_cells.py) names each cell's cache itself
    cells += [cell for cell in payload.get("cells", []) if "dataset" in cell]
    return restore_cell_list(cells, cache_dir)


def select_benchmark(args, protocol: Protocol, vae_steps: int, tag: str, show, started: float) -> None:
    """Table 6.3's few-shot grid through ``select_recipe``, with the oracle run beside it."""
    train, test = load_proben1("thyroid", 1)
    shots = [5] if args.quick else [5, 10, 20, 30, 50]
    few_protocol = protocol.model_copy(update={"shots": shots})
    candidates = [spec.model_copy(update={"config": {**spec.config, "steps": vae_steps}}) for spec in default_grid(train)]
    size, per_class = args.validation_size or None, args.validation_per_class
    search_seeds = seed_list(args.search_seeds)
    # another pool is another experiment: its own cells and report beside the default's (the oracle is shared)
    pool = tag + pool_suffix(size, per_class)
    # more search seeds: the same pool's cells (cached under its name) plus the new seeds' cells
    suffix = pool + seeds_suffix(search_seeds)
    run = select_with_oracle(train, test, few_protocol, few_protocol.model_copy(update={"arms": ["real", "real+synthetic"]}),
                             candidates, final_name=f"proben1-thyroid-select{pool}",
                             oracle_name=f"proben1-thyroid-oracle{tag}", cache_dir=args.cache, show=show,
                             reference="real", validation_size=size, validation_per_class=per_class,
                             search_seeds=search_seeds)
    payload = {"benchmark": "seed 001 table 6.3 grid through --select", "machine": machine(),
               "quick": args.quick, "budgets": {"vae_steps_per_class": vae_steps, "classifier": f"MLP, {protocol.classifier_steps} steps",
                           "seeds": protocol.seeds, "shots": shots, "validation_size": size, "search_seeds": search_seeds,
                           "validation_per_class": per_class},
               **{k: v for k, v in run.items() if k != "protocol"},
               "wall_seconds_this_invocation": round(time.time() - started, 1)}
    write_json(args.out / f"proben1_select{suffix}.json", payload)
    md = ["# PROBEN1 thyroid few-shot through `--select` (issue 12, item 8)", "",
          command_sentence(payload, f"Budgets: {payload['budgets']}."), "",
          "The choice: the default candidate grid for tables (per-class tabular VAE; samplers prior and "
          "interpolation+noise; 1:1 and 4:1 synthetic rows per real row; no classic augmentation for tables), "
          f"{run['cost']['folds']} validation folds drawn from the training split only (a stratified pool: "
          f"{pool_rule(size, per_class, 'rows')}: {run['cost']['validation_examples']} rows; seeds "
          f"{run['cost']['search_seeds']} in the search, {protocol.seeds} in the final runs), the chosen recipe "
          "retrained on the whole few-shot subset and scored once on the test split. The oracle scores every "
          "candidate on the test split directly -- for this check only; the choice never sees it.", "",
          "## Target: the choice never loses to the reference beyond the interval and keeps the gains that exist", ""]
    md += [f"- {line}" for line in run["checks"]] + ["", "## The choice, per n", ""] \
        + select_sections(run, heading="## ")
    (args.out / f"proben1_select{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
