"""`genaug demo` end to end, as `make demo` runs it (minutes: slow)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from genaug import api
from genaug.cli import app


@pytest.mark.slow
def test_demo_prints_the_verdict_and_writes_the_report(tmp_path, monkeypatch, database_url):
    monkeypatch.delenv("GENAUG_HOME", raising=False)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "real+synthetic" in result.output and "best arm" in result.output
    report = json.loads((out / "report" / "results.json").read_text())
    arms = {row["arm"] for row in report["summary"]}
    assert {"real", "real+classic"} <= arms and any(a.startswith("real+synthetic[") for a in arms)
    assert len({c["seed"] for c in report["cells"]}) == 3
    assert (out / "report" / "f1_vs_n.png").exists()
    assert len(list((out / "samples").rglob("*.png"))) == 200
    assert (out / "samples" / "manifest.jsonl").exists()
    if database_url is None:  # the default registry: a SQLite file in the demo's home
        assert (out / "home" / "registry.db").exists()
    else:  # GENAUG_DATABASE_URL (the test's PostgreSQL database) holds the model instead
        assert not (out / "home" / "registry.db").exists()
        assert [m.name for m in api.list_models(home=out / "home")] == ["demo-digits-vae"]
