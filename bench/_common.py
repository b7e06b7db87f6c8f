"""Shared bits of the benchmark scripts: argument parsing, timing, writing results with the command."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = BENCH_DIR / "cache"


def setup(description: str) -> argparse.ArgumentParser:
    """Common options; one torch thread per process (small models run faster, two benches fit on two cores)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="cell cache (resume: rerun the same command)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check the script runs (not a result)")
    return parser


def machine() -> dict:
    """Where the numbers were measured."""
    from genaug.hardware import cpu_description
    from genaug.pretrained.lite0 import classifier_precision

    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "device": "cpu", "cpu": cpu_description(),
            "platform": platform.platform(),
            "lite0_linear_precision": classifier_precision(),
            "command": " ".join(shlex.quote(a) for a in [sys.executable.split("/")[-1]] + sys.argv),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def command_sentence(payload: dict, budgets: str = "", wall: bool = True) -> str:
    """A report's first line: the command, the machine and threads it ran on, then ``budgets`` (a
    sentence, or none) and, with ``wall``, the invocation's wall time."""
    m = payload["machine"]
    parts = [f"Command: `{m['command']}` on {m['platform']}, CPU, {m['threads']} torch thread(s)."]
    if budgets:
        parts.append(budgets)
    if wall:
        parts.append(f"Wall time of this invocation: {payload['wall_seconds_this_invocation']} s "
                     "(cached cells cost nothing).")
    return " ".join(parts)


def warn_not_cached(result: dict, name: str) -> None:
    """A partial report (--cached-only / --report-only) says which cells it left out, and whether
    they are cached under other settings (e.g. lite0-linear features at another precision)."""
    from genaug.evaluate.protocol import not_cached_sentence

    sentence = not_cached_sentence(result)
    if sentence:
        print(f"warning: {name}: {sentence}", file=sys.stderr, flush=True)


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)


def write_section(target: Path, begin: str, end: str, section: str) -> None:
    """Put ``section`` (which starts with the ``begin`` marker and ends with ``end``) into the markdown
    file ``target``: in place of the old section between the markers, else appended. Other
    benchmarks' sections of the same file stay as they are."""
    text = target.read_text() if target.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    target.write_text(text)


CELL_LISTS = ("cells", "fold_cells", "final_cells", "oracle_cells")


def stored_cells(payload: dict, dataset: str | None = None) -> list[dict]:
    """Every cell a results file keeps, each with the ``dataset`` its cache is named by: its
    ``cells`` (``dataset`` where a cell names none), and a ``--select`` report's search, final and
    oracle cells (at the top level or per run; those without a name of their own -- reports
    written before they carried one -- are left out, since their cache is not the script's)."""
    runs = payload.get("runs")
    parts = [payload] + ([run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else [])
    found = []
    for part in parts:
        for key in CELL_LISTS:
            for cell in part.get(key, []):
                name = cell.get("dataset", dataset if key == "cells" else None)
                if name is not None:
                    found.append({**cell, "dataset": name})
    return found


def restore_cells(results: Path, cache_dir: Path, dataset: str | None = None) -> int:
    """Put the cells of a committed results file back into the runner's cell cache (those not
    cached already); returns how many.

    The cache lives outside git, the results file in it: a fresh clone resumes where the
    committed results stopped. Each cell keeps its identity, so one computed under other
    settings is still recomputed. Cells name their cache with a ``dataset`` field, else
    ``dataset`` is used."""
    if not results.exists():
        return 0
    return restore_cell_list(stored_cells(json.loads(results.read_text()), dataset), cache_dir)


def restore_cell_list(cells: list[dict], cache_dir: Path) -> int:
    """Put ``cells`` (each naming its cache with a ``dataset`` field) into the runner's cell cache,
    those not cached already; returns how many."""
    from genaug.evaluate.cell_cache import CellCache

    caches: dict[str, CellCache] = {}
    restored = 0
    for cell in cells:
        name = cell["dataset"]
        cache = caches.setdefault(name, CellCache(cache_dir, name))
        restored += cache.restore({k: v for k, v in cell.items() if k != "dataset"})
    return restored


def warning_bullets(warnings: list[str], prefix: str = "") -> list[str]:
    """Markdown bullets for the library report's warnings (``genaug.evaluate.summary.result_warnings``:
    fewer than 3 seeds, test classes under 30 examples, cells from more than one kind of CPU), so a
    benchmark report warns where ``genaug evaluate`` would."""
    return [f"- {prefix}warning: {w}" for w in warnings]
