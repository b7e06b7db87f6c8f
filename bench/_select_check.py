"""The check a `--select` benchmark makes of its own choice (issue 12's target): against the
reference arm (``real`` for tables, ``real+classic`` for images), the choice never loses beyond
its interval, and when some candidate beats the reference on the test split beyond noise, the
choice keeps a gain. The test-split scores of every candidate (the "oracle") serve this check
only; the choice never sees them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from _common import warning_bullets
from genaug.data import LabelledData
from genaug.evaluate import GeneratorSpec, Protocol, evaluate, summarise
from genaug.evaluate.report import markdown_table
from genaug.evaluate.select import VALIDATION_SIZE, select_recipe, selection_sentences
from genaug.evaluate.statistics import holm_adjust
from genaug.evaluate.summary import ALPHA, result_warnings

DELTA_KEY = {"real": "delta_vs_real", "real+classic": "delta_vs_classic"}


def winners_on_test_split(oracle_rows: list[dict], reference: str = "real") -> list[str]:
    """The candidate arms that beat ``reference`` on the test split beyond noise: paired-bootstrap
    p-values Holm-corrected over every candidate, as the report's own verdict corrects them."""
    key = DELTA_KEY[reference]
    candidates = [r for r in oracle_rows if r["arm"] not in ("real", reference) and r.get(key)]
    adjusted = holm_adjust([r[key]["p_value"] for r in candidates]) if candidates else []
    return [r["arm"] for r, p in zip(candidates, adjusted) if p < ALPHA and r[key]["mean"] > 0]


def difference_to_reference(choice_row: dict, oracle_rows: list[dict], reference: str) -> Optional[dict]:
    """The choice's paired difference to the reference; ``real`` against ``real+classic`` is the
    reference's own difference to ``real``, negated (the summary gives ``real`` no delta of its own)."""
    if choice_row["arm"] == reference:
        return None
    if choice_row["arm"] == "real" and reference == "real+classic":
        classic = next((r for r in oracle_rows if r["arm"] == "real+classic"), None)
        d = None if classic is None else classic.get("delta_vs_real")
        return None if d is None else {"mean": -d["mean"], "low": -d["high"], "high": -d["low"]}
    return choice_row.get(DELTA_KEY[reference])


def select_check(choice_row: dict, oracle_rows: list[dict], reference: str = "real",
                 reference_rows: Optional[list[dict]] = None) -> str:
    """The issue's target for one n, in words, ending in **met** or **not met**: the choice never
    loses to ``reference`` beyond its interval, and when some candidate beats ``reference`` on the
    test split beyond noise, the choice keeps a gain -- it is one of those winners, or its own test
    gain over ``reference`` is beyond noise. ``reference_rows``: the rows the choice's own
    difference is read from (the final run's, so the report prints the number it judges; default
    ``oracle_rows``); the winners always come from ``oracle_rows``."""
    d = difference_to_reference(choice_row, oracle_rows if reference_rows is None else reference_rows, reference)
    loses = d is not None and d["high"] < 0
    winners = winners_on_test_split(oracle_rows, reference)
    kept = not winners or choice_row["arm"] in winners or (d is not None and d["low"] > 0)
    parts = [f"loses to {reference} beyond the interval" if loses else f"does not lose to {reference} beyond the interval"]
    if not winners:
        parts.append(f"no candidate beats {reference} on the test split beyond noise (Holm over the grid), so there "
                     "was no gain to keep")
    else:
        parts.append(f"{len(winners)} candidate(s) beat {reference} on the test split beyond noise "
                     f"({', '.join(winners)}); " + ("the choice keeps a gain" if kept else "the choice gave that gain up"))
    return "; ".join(parts) + (": **met**" if (not loses and kept) else ": **not met**")


def choice_checks(selection: dict, final_rows: list[dict], oracle_rows: list[dict], reference: str,
                  prefix: str = "") -> list[str]:
    """One line per n: the choice, its test difference to ``reference`` (from the final run, the
    number the report prints) and ``select_check``'s verdict (winners from the oracle)."""
    lines = []
    for choice in selection["choices"]:
        final_at_n = [r for r in final_rows if r["n"] == choice["n"]]
        row = next(r for r in final_at_n if r["arm"] == choice["arm"])
        d = difference_to_reference(row, final_at_n, reference)
        lines.append(f"{prefix}n={choice['n']}: chose {choice['arm']}; test Δ vs {reference} "
                     + (f"{d['mean']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})" if d else f"0 (it is {reference})")
                     + "; " + select_check(row, [r for r in oracle_rows if r["n"] == choice["n"]], reference,
                                           reference_rows=final_at_n))
    return lines


def pool_rule(size: Optional[int], per_class: Optional[int], unit: str = "examples") -> str:
    """The validation pool's rule in words, for a report (``unit``: rows, images, examples)."""
    rule = "half of every class" if not size else f"the same share of every class, at most half, {size} {unit} in all"
    return rule + (f", at most {per_class} {unit} per class" if per_class else "")


def smoke_test_grid(candidates: list[GeneratorSpec]) -> list[GeneratorSpec]:
    """--quick: the grid's VAE candidates at a smoke test's budget (a check that the script runs,
    not a result); the other kinds are left out."""
    tiny = {"steps": 20, "channels": [8, 16], "hidden": 16}
    return [spec.model_copy(update={"config": {**spec.config, **tiny}}) for spec in candidates if spec.kind == "vae"]


def pool_suffix(validation_size: Optional[int], per_class: Optional[int] = None) -> str:
    """Names a search over another validation pool's cells and report apart from the default's
    (``--validation-size``, 0 or None: half of every class; ``--validation-per-class``)."""
    if (validation_size, per_class) == (VALIDATION_SIZE, None):
        return ""
    return f"_s{validation_size or 'half'}" + (f"_pc{per_class}" if per_class else "")


def seed_list(value: Optional[str]) -> Optional[list[int]]:
    """--search-seeds as a list (None: the protocol's seeds)."""
    return None if value is None else [int(s) for s in value.split(",") if s.strip()]


def seeds_suffix(seeds: Optional[list[int]]) -> str:
    """Names a report of a search over other seeds apart from the default's: seeds 0..k-1
    ``_seeds<k>``, one other seed ``_seed<s>``, any other list its seeds joined by ``-`` (never a
    bare number), so no two seed lists share a report."""
    if not seeds:
        return ""
    if seeds == list(range(len(seeds))):
        return f"_seeds{len(seeds)}"
    return f"_seed{seeds[0]}" if len(seeds) == 1 else "_seeds" + "-".join(map(str, seeds))


def select_with_oracle(train: LabelledData, test: LabelledData, protocol: Protocol, oracle_protocol: Protocol,
                       candidates: list[GeneratorSpec], *, final_name: str, oracle_name: str, cache_dir: Path,
                       show: Callable, reference: str, prefix: str = "", validation_size: Optional[int] = VALIDATION_SIZE,
                       validation_per_class: Optional[int] = None, search_seeds: Optional[list[int]] = None,
                       search_name: Optional[str] = None) -> dict:
    """One ``--select`` benchmark run: ``select_recipe`` (search on validation folds of ``train``,
    final cells cached under ``final_name``) beside the oracle (``oracle_protocol``'s arms for every
    candidate on the test split, cached under ``oracle_name``; for the check only), the check against
    ``reference`` and the report's sentences. Every cell is tagged with the cache it lives in, so
    restoring the report (``_common.restore_cells``, a script's ``--restore-from``) puts the whole
    run back into a fresh clone's cache."""
    selection = select_recipe(train, test, protocol, candidates, dataset_name=final_name, cache_dir=cache_dir,
                              progress=show, validation_size=validation_size, validation_per_class=validation_per_class,
                              search_seeds=search_seeds, search_name=search_name)
    oracle = evaluate(train, test, candidates, oracle_protocol, dataset_name=oracle_name, cache_dir=cache_dir,
                      progress=show, keep_samples=False)
    final_rows, oracle_rows = summarise(selection["final"]), summarise(oracle)
    for cell in oracle["cells"]:
        cell["dataset"] = oracle_name
    for cell in selection["final"]["cells"]:
        cell["dataset"] = final_name
    return {"protocol": protocol.model_dump(mode="json"), "choices": selection["choices"], "cost": selection["cost"],
            "candidates": selection["candidates"],
            "checks": choice_checks(selection, final_rows, oracle_rows, reference, prefix=prefix),
            "sentences": selection_sentences(selection, final_rows),
            "warnings": result_warnings(selection["final"], final_rows),
            "validation_summary": summarise(selection["validation"]), "final_summary": final_rows,
            "final_cells": selection["final"]["cells"], "oracle_summary": oracle_rows, "oracle_cells": oracle["cells"],
            "fold_cells": selection["fold_cells"]}


def select_sections(run: dict, split: str = "test split", heading: str = "") -> list[str]:
    """A run's markdown after its check: the choice's sentences and the final runs' warnings (as
    ``genaug evaluate --select`` prints them; none in reports written before they were kept), then
    the test tables of the chosen recipes and of every candidate (the oracle), then what the search saw on the validation folds.
    ``heading`` (e.g. ``"## "``) makes each part a heading rather than a lead-in line."""
    def title(text: str) -> list[str]:
        return [f"{heading}{text}", ""] if heading else [f"{text}:", ""]

    capital = split[0].upper() + split[1:]
    return ([f"- {line}" for line in run["sentences"]] + warning_bullets(run.get("warnings", [])) + [""]
            + title(f"{capital}, the chosen recipes") + [markdown_table(run["final_summary"]), ""]
            + title(f"{capital}, every candidate (the oracle, not used by the choice)")
            + [markdown_table(run["oracle_summary"]), ""]
            + title("Validation folds, what the choice saw") + [markdown_table(run["validation_summary"]), ""])
