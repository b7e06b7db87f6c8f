"""After a server restart, jobs and models are as they were; a job running at shutdown resumes."""
from __future__ import annotations

import time

import pytest
from conftest import TINY_VAE, digit_pngs, start_service, stop_service

pytestmark = pytest.mark.timeout(300)


def test_restart_keeps_jobs_and_models_and_resumes_the_running_job(tmp_path, module_database_url):
    home = tmp_path / "home"
    first = start_service(home, module_database_url)
    try:
        assert first.upload("restart", digit_pngs(per_class=8), image_size=16).status_code == 201
        done = first.wait(first.submit("train", {"dataset": "restart", "kind": "vae", "name": "kept",
                                                 "config": TINY_VAE, "keep_data": True}).json()["id"])
        assert done["status"] == "succeeded"
        long_config = {**TINY_VAE, "steps": 800, "checkpoint_every": 100, "sample_every": 0}
        running = first.submit("train", {"dataset": "restart", "kind": "vae", "name": "interrupted",
                                         "config": long_config}).json()
        with first.client() as client:
            while (client.get(f"/api/jobs/{running['id']}").json()["progress"].get("step") or 0) < 150:
                time.sleep(0.1)
            jobs_before = {j["id"]: j["status"] for j in client.get("/api/jobs").json()}
    finally:
        stop_service(first)  # SIGTERM: the worker puts its running job back in the queue

    second = start_service(home, module_database_url, log_name="serve-2.log", token_name="after-restart")
    try:
        with second.client() as client:
            assert [m["name"] for m in client.get("/api/models").json()] == ["kept"]
            jobs_after = {j["id"]: j["status"] for j in client.get("/api/jobs").json()}
            assert set(jobs_after) == set(jobs_before) and jobs_after[done["id"]] == "succeeded"
            resumed = second.wait(running["id"], timeout=200)
            assert resumed["status"] == "succeeded", resumed["log"][-8:]
            assert any("re-queued: its worker shut down" in line for line in resumed["log"]), "\n".join(resumed["log"])
            metrics = client.get("/api/models/interrupted").json()["metrics"]["training"]
            assert metrics["class0"]["resumed_from"] >= 100  # from its checkpoint, not from scratch
            assert {m["name"] for m in client.get("/api/models").json()} == {"kept", "interrupted"}
    finally:
        stop_service(second)


def test_sigterm_to_the_process_group_requeues_the_job_and_never_fails_its_model(tmp_path, module_database_url):
    """systemd's default stop (KillMode=control-group): SIGTERM reaches the server, its workers
    and the job's own process at once. That is a shutdown, not the user's cancel."""
    import os
    import signal

    from genaug.store.registry import FAILED, Registry

    home = tmp_path / "home"
    first = start_service(home, module_database_url, token_name="group-stop")
    long_config = {**TINY_VAE, "steps": 800, "checkpoint_every": 100, "sample_every": 0}
    try:
        assert first.upload("group", digit_pngs(per_class=8), image_size=16).status_code == 201
        running = first.submit("train", {"dataset": "group", "kind": "vae", "name": "grouped",
                                         "config": long_config}).json()
        with first.client() as client:
            deadline = time.monotonic() + 240
            while (client.get(f"/api/jobs/{running['id']}").json()["progress"].get("step") or 0) < 150:
                assert time.monotonic() < deadline, first.log_tail()
                time.sleep(0.1)
        os.killpg(first.process.pid, signal.SIGTERM)
        first.process.wait(120)  # the whole group stops by itself, within the workers' grace
    finally:
        stop_service(first)
    with Registry.open(home, module_database_url) as registry:
        row = registry.find("grouped")
        assert row is None or row.status != FAILED, f"the shutdown failed the model: {row.error}"
    second = start_service(home, module_database_url, log_name="serve-2.log", token_name="after-group-stop")
    try:
        resumed = second.wait(running["id"], timeout=240)
        assert resumed["status"] == "succeeded", resumed["log"][-8:]
        log = "\n".join(resumed["log"])
        assert "re-queued: its worker shut down" in log and "cancel" not in log, log
        with second.client() as client:
            model = client.get("/api/models/grouped").json()
        assert model["status"] == "ready"
        assert model["metrics"]["training"]["class0"]["resumed_from"] >= 100  # from its checkpoint
    finally:
        stop_service(second)
