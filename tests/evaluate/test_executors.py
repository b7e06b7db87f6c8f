"""The evaluation grid fanned out over dask workers (issue 16 item 4) gives the local run's cells:
a LocalCluster bound to 127.0.0.1 and a running scheduler named by address. Real data (digits)."""
from __future__ import annotations

import pytest
from _tiny_grid import comparable_cells as _cells
from _tiny_grid import tiny_grid as _grid

from genaug.evaluate import evaluate
from genaug.evaluate.executors import parse_executor, run_on_dask, unit_label, unit_protocol, work_units

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = [pytest.mark.no_database, pytest.mark.timeout(600)]

# Slow (a local dask cluster of two worker processes, ~30 s): run by .ci/run beside make test, which
# keeps the CLI's dask run (tests/test_cli.py) and the jobs executor's same-cells test.
@pytest.mark.slow
def test_dask_workers_compute_the_same_cells_as_a_local_run(tmp_path):
    train, test, specs, protocol = _grid()
    local = evaluate(train, test, specs, protocol, cache_dir=tmp_path / "local")
    events = []
    fanned = run_on_dask(train, test, specs, protocol, address=None, dataset_name="data",
                         cache_dir=tmp_path / "dask", progress=events.append)
    assert len(fanned["cells"]) == len(local["cells"]) == 8
    assert _cells(fanned) == _cells(local)  # same cells, same order, same numbers
    # One task per (n, seed): 2 n x 2 seeds.
    assert [e.step for e in events] == [1, 2, 3, 4] and all("dask worker" in e.message for e in events)
    assert "127.0.0.1" in fanned["executor"]["address"] and fanned["executor"]["wall_seconds"] > 0

    # A running scheduler named by address (here one we start on loopback).
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        kind, address = parse_executor("dask://" + cluster.scheduler_address.removeprefix("tcp://"))
        assert kind == "dask" and address == cluster.scheduler_address
        remote = run_on_dask(train, test, specs, protocol.model_copy(update={"seeds": [1]}), address=address,
                             dataset_name="data", cache_dir=tmp_path / "remote")
    assert _cells(remote) == [c for c in _cells(local) if c["seed"] == 1]


def test_executor_values_and_refusals(tmp_path):
    assert parse_executor(None) == ("local", None) and parse_executor("dask") == ("dask", None)
    assert parse_executor("jobs") == ("jobs", None)
    with pytest.raises(ValueError, match="executor: 'ray' is not one of local, dask, dask://HOST:PORT, jobs"):
        parse_executor("ray")
    train, test, specs, protocol = _grid()
    with pytest.raises(ValueError, match="needs a cache folder"):
        run_on_dask(train, test, specs, protocol, address=None, dataset_name="data", cache_dir=None)
    bad = protocol.model_copy(update={"arms": ["real", "nonsense"]})
    with pytest.raises(ValueError, match="arms: unknown"):  # refused before any cluster starts
        run_on_dask(train, test, specs, bad, address=None, dataset_name="data", cache_dir=tmp_path)


def test_work_units_are_n_seed_pairs_unless_a_generator_is_pool_trained():
    _, _, specs, protocol = _grid()
    assert work_units(protocol, specs) == [((3,), 0), ((5,), 0), ((3,), 1), ((5,), 1)]
    repeated = protocol.model_copy(update={"seeds": [1, 1], "shots": [5, 3, 5]})
    assert work_units(repeated, specs) == [((5,), 1), ((3,), 1)]
    pooled = [specs[0].model_copy(update={"unlabeled_pool": True})]
    # a pool fit serves every n of its seed: every n of one seed is one unit
    assert work_units(protocol, pooled) == [((3, 5), 0), ((3, 5), 1)]
    # None is "the whole training split" (--shots all): a unit of its own, never "every n"
    whole = protocol.model_copy(update={"shots": [5, None]})
    units = work_units(whole, specs)
    assert units == [((5,), 0), ((None,), 0), ((5,), 1), ((None,), 1)]
    assert [unit_protocol(whole, u).shots for u in units] == [[5], [None], [5], [None]]
    assert [unit_label(u) for u in units[:2]] == ["n=5 seed=0", "n=all seed=0"]
    assert unit_label(work_units(whole, pooled)[0]) == "n=5,all seed=0"


# Slow (a worker process that loads EfficientNet-Lite0, ~30 s): run by .ci/run beside make test.
@pytest.mark.slow
def test_a_dask_worker_computes_lite0_linear_at_the_submitters_precision(tmp_path, monkeypatch):
    """A worker process started under bf16 computes the fp32 submitter's cells in fp32, so the
    submitter's read-back finds them (without the carried precision it would refuse: the cells would
    be cached under the worker's bf16 identity)."""
    from distributed import LocalCluster

    from genaug.evaluate import Protocol
    from genaug.pretrained import lite0

    train, test, _, _ = _grid()
    protocol = Protocol(shots=[2], seeds=[0], classifier="lite0-linear", classifier_steps=2, classifier_batch=8,
                        arms=["real"])
    monkeypatch.setenv(lite0.PRECISION_ENV, "bf16")  # the worker process inherits this at its start
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        monkeypatch.setenv(lite0.PRECISION_ENV, "fp32")  # the submitter's own choice
        fanned = run_on_dask(train, test, [], protocol, address=cluster.scheduler_address, dataset_name="data",
                             cache_dir=tmp_path)
        # read back under the submitter's fp32 identity (run_on_dask refuses cells it cannot find)
        assert [(c["n"], c["seed"], c["arm"]) for c in fanned["cells"]] == [(2, 0, "real")]
    monkeypatch.setenv(lite0.PRECISION_ENV, "bf16")  # the same plan at bf16 is not what the worker cached
    partial = evaluate(train, test, [], protocol, dataset_name="data", cache_dir=tmp_path, cached_only=True)
    assert partial["cells"] == [] and partial["not_cached"]["under_other_identity"] == 1
