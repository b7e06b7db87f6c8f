"""Keep the cells of an unfinished benchmark run in a JSON file, so that a fresh clone resumes it.

The cell cache (``--cache``, default ``bench/cache``) lives outside git; a run stopped before it
wrote its report would leave nothing a fresh clone could pick up. This writes every cell cached
under the dataset names that start with a ``--prefix`` (a run's own name catches its
``-select-fold<k>`` search caches too; give the ``--select`` oracle's name as a second prefix
where it differs, as with a non-default pool), each with the name of its cache, into a file that
the MNIST and PROBEN1 scripts' ``--restore-from`` read back:

    python bench/keep_cells.py --prefix mnist_fewshot-select-quick+pool_shalf \\
        --prefix mnist_fewshot-select-quick+pool --shots 20,50 \\
        --out bench/results/issue12/my-unfinished-run/cells.json

(the second prefix also matches the first one's caches; a cell is kept once). The flowers script
keeps its cells under ``bench/cache/flowers``: pass ``--cache bench/cache/flowers`` for its runs.

The file says it is not a result: it holds no report, and no choice or score in it was checked.
Cells written before cache files named their arm are left out (counted on the output).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import CACHE_DIR, write_json

from genaug.evaluate.cell_cache import CellCache


def kept_cells(cache_dir: Path, prefixes: list[str], shots: set | None = None) -> tuple[list[dict], int]:
    """The cells under every cache name starting with one of ``prefixes`` (of the given n only,
    when ``shots`` is given; "all" is the whole training split), each with its ``dataset``; and how
    many files in those caches were left out."""
    found, left_out = [], 0
    for directory in sorted(p for p in cache_dir.glob("*") if p.is_dir() and p.name.startswith(tuple(prefixes))):
        cells, skipped = CellCache(cache_dir, directory.name).cells()
        left_out += skipped
        found += [{**cell, "dataset": directory.name} for cell in cells
                  if shots is None or ("all" if cell["n"] is None else str(cell["n"])) in shots]
    return found, left_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", required=True, action="append",
                        help="keep the caches whose names start with this (a run's dataset name); repeat for more")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="the cell cache root (default: %(default)s)")
    parser.add_argument("--shots", default=None, help="keep only these n, comma-separated (e.g. 20,50; 'all')")
    args = parser.parse_args(argv)
    if not args.cache.is_dir():
        parser.error(f"--cache: no cache folder at {args.cache}")
    shots = None if args.shots is None else {s.strip() for s in args.shots.split(",") if s.strip()}
    if shots is not None and not shots:
        parser.error("--shots: name at least one n (e.g. 20,50 or all)")
    cells, left_out = kept_cells(args.cache, args.prefix, shots)
    if not cells:
        print(f"no cells under {args.cache} whose cache name starts with {' or '.join(map(repr, args.prefix))}"
              + (f" (n in {sorted(shots)})" if shots else ""), file=sys.stderr)
        return 1
    write_json(args.out, {"partial": "an unfinished run's cells, kept so that a fresh clone resumes it (not a result)",
                          "prefixes": args.prefix, "cells": cells})
    names = sorted({c["dataset"] for c in cells})
    print(f"kept {len(cells)} cells from {len(names)} caches ({', '.join(names)}) in {args.out}"
          + (f"; left out {left_out} file{'' if left_out == 1 else 's'} without its arm or unreadable"
             if left_out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
