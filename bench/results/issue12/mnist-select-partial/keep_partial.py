"""Keep the cells of an unfinished MNIST --select run (n = 20, 50) in a JSON that
bench/_common.restore_cells reads back (each cell names its cache in "dataset"; a cached cell
file holds neither its n, seed nor arm, which come from its path: the arm from its file name,
matched against the arms of the committed n = 2, 5, 10 report)."""
import json
import sys
from pathlib import Path

from genaug.evaluate.cell_cache import slug

cache, committed, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
report = json.loads(committed.read_text())["runs"][0]
arms = {r["arm"] for r in report["oracle_summary"] + report["validation_summary"] + report["final_summary"]}
by_slug = {slug(arm): arm for arm in arms}
assert len(by_slug) == len(arms)
prefix = "mnist_fewshot-select-quick+pool"
cells = {"fold_cells": [], "final_cells": []}
for directory in sorted(cache.glob(prefix + "*")):
    for n in (20, 50):
        for path in sorted((directory / f"n={n}").glob("seed=*/*.json")):
            cell = json.loads(path.read_text())
            key = "fold_cells" if "-select-fold" in directory.name else "final_cells"
            cells[key].append({**cell, "n": n, "seed": int(path.parent.name.split("=")[1]),
                               "arm": by_slug[path.stem], "dataset": directory.name})
payload = {"partial": "an unfinished run's cells, kept so that a fresh clone resumes it (not a result)", **cells}
out.write_text(json.dumps(payload))
print({k: len(v) for k, v in cells.items()}, out.stat().st_size)
