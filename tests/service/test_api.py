"""Every route of the REST API, over real HTTP, against ``genaug serve`` with a real worker process."""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import time
import zipfile

import httpx
import pytest
from PIL import Image
from conftest import TINY_VAE, InProcessServer, digit_pngs, zip_bytes

from genaug.service.settings import ServiceSettings

pytestmark = pytest.mark.timeout(300)


# -- reads, kinds, docs ---------------------------------------------------------------

def test_health_openapi_and_ui_are_served(service):
    with service.client() as client:
        health = client.get("/api/health").json()
        assert health["status"] == "ok" and health["read_requires_token"] is False
        paths = client.get("/openapi.json").json()["paths"]
        for route in ("/api/kinds", "/api/kinds/{kind}", "/api/datasets", "/api/datasets/{name}", "/api/models",
                      "/api/models/{name}", "/api/models/{name}/grid.png", "/api/jobs", "/api/jobs/{job_id}",
                      "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/grid.png",
                      "/api/jobs/{job_id}/samples.zip", "/api/jobs/{job_id}/files/{file_name}"):
            assert route in paths, route
        assert client.get("/docs").status_code == 200
        index = client.get("/")
        assert index.status_code == 200 and "<html" in index.text.lower()


def test_kinds_carry_schema_defaults_and_sample_options(service):
    with service.client() as client:
        kinds = {k["kind"]: k for k in client.get("/api/kinds").json()}
        assert {"classic", "vae", "dcgan", "ddim", "ddpm"} <= set(kinds)
        ddim = client.get("/api/kinds/ddim").json()
        assert "mode" in ddim["schema"]["properties"] and "description" in ddim["schema"]["properties"]["steps"]
        assert ddim["defaults"]["mode"] in ("conditional", "per_class", "single")
        assert {"steps", "guidance_scale", "strength", "mode"} <= set(ddim["sample_options"])
        assert kinds["vae"]["summary"] and "steps" in kinds["vae"]["schema"]["properties"]
        assert (ddim["keeps_training_data"], kinds["vae"]["keeps_training_data"], kinds["dcgan"]["keeps_training_data"]) \
            == ("images", "encodings", "none")
        # Capabilities and UI hints come from the kinds themselves (no kind names in the UI's code).
        assert ddim["capabilities"] == {"unlabeled_pool_modes": ["single"], "warm_start": True}
        assert kinds["classic"]["capabilities"] == {"unlabeled_pool_modes": [], "warm_start": False}
        assert "train" in kinds["vae"]["preselected"] and kinds["classic"]["preselected"] == ["evaluate"]
        missing = client.get("/api/kinds/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]


# -- auth -----------------------------------------------------------------------------------

def test_writes_need_a_valid_token_and_reads_are_open_by_default(service):
    with service.client() as client:
        no_token = client.post("/api/jobs", json={"type": "generate", "params": {}})
        assert no_token.status_code == 401 and "token" in no_token.json()["detail"]
        assert no_token.headers.get("www-authenticate") == "Bearer"
        bad = client.post("/api/jobs", json={"type": "generate", "params": {}},
                          headers={"Authorization": "Bearer ga_not-a-real-token"})
        assert bad.status_code == 401 and "not valid" in bad.json()["detail"]
        assert client.delete("/api/datasets/anything").status_code == 401
        assert client.post("/api/jobs/x/cancel").status_code == 401
        for read in ("/api/models", "/api/datasets", "/api/jobs", "/api/kinds"):
            assert client.get(read).status_code == 200, read


def test_reads_can_require_a_token(service, module_database_url):
    settings = ServiceSettings(home=service.home, database_url=module_database_url, read_requires_token=True)
    # A crashed server's leftover upload (hours old) is removed when a server starts; a fresh one is not.
    stale, fresh = service.home / "uploads" / "left-by-a-crash", service.home / "uploads" / "in-progress"
    for folder in (stale, fresh):
        (folder / "images" / "c0").mkdir(parents=True)
        (folder / "images" / "c0" / "a.png").write_bytes(b"x")
    old = time.time() - 7200
    for path in (stale / "images" / "c0" / "a.png", stale / "images" / "c0", stale / "images", stale):
        os.utime(path, (old, old))
    with InProcessServer(settings) as url, httpx.Client(base_url=url) as client:
        assert not stale.exists() and fresh.exists()
        shutil.rmtree(fresh)
        assert client.get("/api/health").json()["read_requires_token"] is True
        closed = client.get("/api/models")
        assert closed.status_code == 401 and "reads private" in closed.json()["detail"]
        assert client.get("/api/kinds", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/models", headers=service.auth).status_code == 200


# -- uploads ----------------------------------------------------------------------------------

def test_upload_reports_every_bad_file_and_keeps_the_rest(service):
    files = digit_pngs(per_class=6)
    png = files["c0/0.png"]
    huge = io.BytesIO()
    Image.new("L", (1200, 1000)).save(huge, format="PNG")  # 1.2 MP > GENAUG_MAX_IMAGE_PIXELS=1,000,000
    bad = {"c1/huge.png": huge.getvalue(),
           "c0/corrupt.jpg": b"\xff\xd8\xff\xe0 this is not really a jpeg",
           "c1/truncated.png": png[: len(png) // 2],
           "c1/empty.png": b"",
           "c0/readme.txt": b"hello",
           "loose.png": png}
    response = service.upload("mixed-bag", {**files, **bad}, image_size=16)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["counts"] == {"c0": 6, "c1": 6} and body["n"] == 12
    reasons = {r["file"]: r["reason"] for r in body["report"]["rejected"]}
    assert set(reasons) == {"c1/00013_huge.png", "c0/00014_corrupt.jpg", "c1/00015_truncated.png",
                            "c1/00016_empty.png", "c0/readme.txt", "loose.png"}, reasons
    assert "class folder" in reasons["loose.png"] and "not a .png" in reasons["c0/readme.txt"]
    assert "pixel" in reasons["c1/00013_huge.png"] and "1000000" in reasons["c1/00013_huge.png"].replace(",", "")
    with service.client() as client:
        listed = {d["name"]: d for d in client.get("/api/datasets").json()}
        assert listed["mixed-bag"]["counts"] == {"c0": 6, "c1": 6}
        detail = client.get("/api/datasets/mixed-bag").json()
        assert detail["report"]["source"] == "upload"  # never the server's temporary path
        assert str(service.home) not in json.dumps(detail)
    assert not any((service.home / "uploads").iterdir())  # the temporary upload is gone


def test_upload_of_an_archive_and_zip_slip_members(service):
    files = digit_pngs(per_class=5)
    archive = zip_bytes({f"digits/{k}": v for k, v in files.items()}
                        | {"../../evil.png": files["c0/0.png"], "/abs/evil.png": files["c0/1.png"]})
    response = service.upload("zipped", {"my digits.zip": archive}, image_size=16)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["counts"] == {"c0": 5, "c1": 5}
    slips = [r for r in body["report"]["rejected"] if "zip-slip" in r["reason"]]
    assert len(slips) == 2, body["report"]
    assert not list(service.home.parent.rglob("evil.png"))


def test_upload_errors_name_the_field(service):
    files = digit_pngs(per_class=3)
    bad_name = service.upload("../etc", files)
    assert bad_name.status_code == 422 and bad_name.json()["detail"].startswith("name:")
    bad_size = service.upload("sized", files, image_size="huge")
    assert bad_size.status_code == 422 and "image_size" in bad_size.json()["detail"]
    assert service.upload("twice", files, image_size=16).status_code == 201
    again = service.upload("twice", files, image_size=16)
    assert again.status_code == 409 and "exists" in again.json()["detail"]
    assert service.upload("twice", files, image_size=16, replace="true").status_code == 201
    one_class = service.upload("one-class", {"c0/0.png": files["c0/0.png"], "c0/1.png": files["c0/1.png"]})
    assert one_class.status_code == 422 and "2 class" in one_class.json()["detail"]
    assert str(service.home) not in one_class.json()["detail"]
    nothing = service.upload("nothing", {"a/readme.txt": b"x"})
    assert nothing.status_code == 422 and "no images" in nothing.json()["detail"]
    with service.client() as client:
        not_multipart = client.post("/api/datasets", headers=service.auth, json={"name": "x"})
        assert not_multipart.status_code == 415 and "multipart" in not_multipart.json()["detail"]
        assert client.get("/api/datasets/nope").status_code == 404
        # Names never become paths: traversal attempts find nothing and delete nothing.
        for path in ("/api/datasets/..%2F..%2Fregistry.db", "/api/datasets/.hidden", "/api/models/..%2Fregistry.db",
                     "/api/jobs/..%2F..%2Fregistry.db"):
            assert client.get(path).status_code in (404, 422), path
        for path in ("/api/datasets/..%2Fmodels", "/api/datasets/..", "/api/models/..%2F..%2Fdatasets"):
            assert client.delete(path, headers=service.auth).status_code in (404, 405, 422), path
        assert (service.home / "models").is_dir() and (service.home / "datasets" / "twice").is_dir()


def test_upload_limits_give_413(service):
    too_many = {f"c{i % 2}/{i}.png": b"x" for i in range(301)}  # GENAUG_MAX_FILES_PER_UPLOAD=300
    response = service.upload("many", too_many)
    assert response.status_code == 413 and "300" in response.json()["detail"]
    too_big = service.upload("big", {"c0/big.png": b"\0" * 3_100_000})  # GENAUG_MAX_UPLOAD_BYTES=3,000,000
    assert too_big.status_code == 413 and "upload limit of 3,000,000 bytes" in too_big.json()["detail"]
    assert "GENAUG_" not in too_big.json()["detail"]  # no server setting names reach the user
    with service.client() as client:
        names = [d["name"] for d in client.get("/api/datasets").json()]
    assert "many" not in names and "big" not in names
    assert not any((service.home / "uploads").iterdir())


def test_upload_cut_off_mid_stream_leaves_nothing(service):
    boundary = "cutoffboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ncutoff\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"c0/a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + b"\x89PNG" + b"\0" * 50_000
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall((f"POST /api/datasets HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {service.token}\r\n"
                            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                            f"Content-Length: 2000000\r\n\r\n").encode() + head)
        time.sleep(0.5)  # the server has written part of the file by now
    deadline = time.monotonic() + 10
    while any((service.home / "uploads").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any((service.home / "uploads").iterdir())
    with service.client() as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/datasets/cutoff").status_code == 404


# -- jobs: the whole flow --------------------------------------------------------------------

def test_train_generate_download_evaluate_delete(service):
    assert service.upload("flow", digit_pngs(per_class=12), image_size=16).status_code == 201
    created = service.submit("train", {"dataset": "flow", "kind": "vae", "name": "flow-vae", "config": TINY_VAE,
                                       "keep_data": True})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and job["owner"] == "tester" and job["params"]["config"]["steps"] == 40
    with service.client() as client:
        with client.stream("GET", f"/api/jobs/{job['id']}/events") as events:
            text = "".join(events.iter_text())
        assert text.count("event: job") >= 2 and text.rstrip().endswith("data: {}") and "event: end" in text
        done = client.get(f"/api/jobs/{job['id']}").json()
        assert done["status"] == "succeeded", done
        assert done["progress"]["fraction"] == 1.0 and done["progress"]["history"]
        assert done["result"]["model"] == "flow-vae" and "sources" not in done["result"]["metrics"]
        assert any("succeeded" in line for line in done["log"])
        assert client.get(f"/api/jobs/{job['id']}/grid.png").headers["content-type"] == "image/png"

        models = {m["name"]: m for m in client.get("/api/models").json()}
        assert models["flow-vae"]["status"] == "ready" and models["flow-vae"]["class_names"] == ["c0", "c1"]
        model = client.get("/api/models/flow-vae").json()
        assert model["metrics"]["training_seconds"] > 0 and "path" not in model
        assert model["keeps_training_data"] == "encodings" and "latent codes of its" in model["training_data_note"]
        grid = client.get("/api/models/flow-vae/grid.png")
        assert grid.status_code == 200 and grid.content[:4] == b"\x89PNG"

        gen = service.submit("generate", {"model": "flow-vae", "n_per_class": 4, "seed": 3,
                                          "options": {"sampler": "noise"}}).json()
        not_yet = client.get(f"/api/jobs/{gen['id']}/samples.zip")
        assert not_yet.status_code in (200, 409)
        finished = service.wait(gen["id"])
        assert finished["status"] == "succeeded" and finished["result"]["counts"] == {"c0": 4, "c1": 4}
        download = client.get(finished["result"]["download"])
        assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
            names = archive.namelist()
            manifest = [json.loads(line) for line in archive.read("manifest.jsonl").splitlines()]
        assert sorted(n for n in names if n.endswith(".png")) == [f"c{c}/{i:06d}.png" for c in (0, 1) for i in range(4)]
        assert len(manifest) == 8 and {m["model"] for m in manifest} == {"flow-vae"}

        evaluation = service.submit("evaluate", {"dataset": "flow", "generators": [{"kind": "classic"}],
                                                 "shots": [3], "seeds": [0], "classifier_steps": 15}).json()
        evaluated = service.wait(evaluation["id"], timeout=180)
        assert evaluated["status"] == "succeeded", evaluated
        result = evaluated["result"]
        assert "results.md" in result["files"] and result["verdict"] and result["mode"] == "compare"
        assert result["recommendation"][0].startswith("At 3 per class:")
        assert any("only 1 seed" in w for w in result["warnings"]) and result["classifier"] == "cnn"
        assert [r["plain_name"] for r in result["rows"]][:2] == ["your images", "your images + classic augmentation"]
        assert all(0 <= r["low"] <= r["mean"] <= r["high"] <= 1 for r in result["rows"])

        # flow-vae learnt every image of 'flow': its 20% test split is refused at submit, naming the overlap.
        overlap = service.submit("evaluate", {"dataset": "flow", "model": "flow-vae", "seeds": [0]})
        assert overlap.status_code == 422 and "flow-vae was trained on" in overlap.json()["detail"]
        report = client.get(f"/api/jobs/{evaluation['id']}/files/results.md")
        assert report.status_code == 200 and "real+classic" in report.text
        assert client.get(f"/api/jobs/{evaluation['id']}/files/..%2Fregistry.db").status_code == 404
        assert client.get(f"/api/jobs/{evaluation['id']}/files/secret.txt").status_code == 404

        listed = client.get("/api/jobs", params={"type": "generate"}).json()
        assert [j["id"] for j in listed][:1] == [gen["id"]] and all(j["type"] == "generate" for j in listed)
        assert client.get("/api/jobs", params={"status": "bogus"}).status_code == 422

        output = service.home / "jobs" / gen["id"] / "output"
        assert output.is_dir()
        assert client.delete(f"/api/jobs/{gen['id']}").status_code == 401
        assert client.delete(f"/api/jobs/{gen['id']}", headers=service.auth).status_code == 204
        assert client.get(f"/api/jobs/{gen['id']}").status_code == 404 and not output.parent.exists()
        assert client.get(f"/api/jobs/{gen['id']}/samples.zip").status_code == 404

        assert client.delete("/api/models/flow-vae", headers=service.auth).status_code == 204
        assert client.get("/api/models/flow-vae").status_code == 404
        assert client.delete("/api/datasets/flow", headers=service.auth).status_code == 204
        assert client.get("/api/datasets/flow").status_code == 404


def test_job_params_are_checked_before_queueing(service):
    assert service.upload("checks", digit_pngs(per_class=4), image_size=16).status_code == 201
    cases = [
        ({"type": "paint", "params": {}}, 422, "type"),
        ({"type": "train", "params": {"dataset": "nope", "kind": "vae", "name": "m"}}, 404, "params.dataset"),
        ({"type": "train", "params": {"dataset": "checks", "kind": "vae", "name": "m", "config": {"steps": -1}}},
         422, "config field 'steps'"),
        ({"type": "train", "params": {"dataset": "checks", "kind": "nope", "name": "m"}}, 422, "nope"),
        ({"type": "train", "params": {"dataset": "checks", "kind": "vae"}}, 422, "params.name"),
        ({"type": "train", "params": {"dataset": "checks", "kind": "vae", "name": "m", "colour": 1}}, 422, "colour"),
        ({"type": "generate", "params": {"model": "missing", "n_per_class": 1}}, 404, "params.model"),
        ({"type": "evaluate", "params": {"dataset": "checks", "generators": [{"kind": "nope"}]}}, 422,
         "params.generators[0]"),
        ({"type": "evaluate", "params": {"dataset": "checks", "model": "m", "select": True}}, 422, "choose one way"),
        ({"type": "evaluate", "params": {"dataset": "checks", "classifier": "os:system"}}, 422, "params.classifier"),
        ({"type": "evaluate", "params": {"dataset": "checks", "model": "missing"}}, 404, "params.model"),
    ]
    with service.client() as client:
        for body, status, text in cases:
            response = client.post("/api/jobs", headers=service.auth, json=body)
            assert response.status_code == status and text in response.json()["detail"], (body, response.text)


def test_generate_limits_and_options_are_checked(service):
    assert service.upload("small", digit_pngs(per_class=6), image_size=16).status_code == 201
    job = service.submit("train", {"dataset": "small", "kind": "vae", "name": "small-vae", "config": TINY_VAE}).json()
    assert service.wait(job["id"])["status"] == "succeeded"
    too_many = service.submit("generate", {"model": "small-vae", "n_per_class": 251})  # 502 > 500
    assert too_many.status_code == 422 and "at most 500 per request" in too_many.json()["detail"]
    assert "GENAUG_" not in too_many.json()["detail"]  # no server settings in what a user reads
    unknown = service.submit("generate", {"model": "small-vae", "n_per_class": 1, "options": {"strength": 0.5}})
    assert unknown.status_code == 422 and "strength" in unknown.json()["detail"]
    two_ways = service.submit("generate", {"model": "small-vae", "n_per_class": 1, "balance": True})
    assert two_ways.status_code == 422 and "exactly one" in two_ways.json()["detail"]
    # Training deleted the uploaded data (keep_data false): the thesis's behaviour.
    with service.client() as client:
        assert client.get("/api/datasets/small").status_code == 404


def test_cancel_stops_a_running_job_within_seconds(service):
    assert service.upload("long", digit_pngs(per_class=6), image_size=16).status_code == 201
    job = service.submit("train", {"dataset": "long", "kind": "vae", "name": "long-vae", "keep_data": True,
                                   "config": {**TINY_VAE, "steps": 200_000, "sample_every": 0}}).json()
    queued = service.submit("generate", {"model": "nothing-yet", "n_per_class": 1})
    assert queued.status_code == 404  # (a model that does not exist cannot be queued)
    running = service.wait(job["id"], timeout=60, until=("running", "failed"))
    assert running["status"] == "running"
    with service.client() as client:
        while not client.get(f"/api/jobs/{job['id']}").json()["progress"].get("step"):
            time.sleep(0.2)
        started = time.monotonic()
        flagged = client.post(f"/api/jobs/{job['id']}/cancel", headers=service.auth).json()
        assert flagged["cancel_requested"] is True
        cancelled = service.wait(job["id"], timeout=30)
        seconds = time.monotonic() - started
        assert cancelled["status"] == "cancelled" and seconds < 10, (cancelled["status"], seconds)
        model = client.get("/api/models/long-vae")
        assert model.status_code == 404 or model.json()["status"] == "failed"
        assert "long-vae" not in [m["name"] for m in client.get("/api/models").json()]
        # A queued job is cancelled at once, without a worker.
        second = service.submit("train", {"dataset": "long", "kind": "vae", "name": "long-vae-2", "keep_data": True,
                                          "config": {**TINY_VAE, "steps": 200_000, "sample_every": 0}}).json()
        third = service.submit("train", {"dataset": "long", "kind": "vae", "name": "long-vae-3",
                                         "config": TINY_VAE}).json()
        now = client.post(f"/api/jobs/{third['id']}/cancel", headers=service.auth).json()
        assert now["status"] == "cancelled"
        busy = client.delete(f"/api/jobs/{second['id']}", headers=service.auth)
        assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
        client.post(f"/api/jobs/{second['id']}/cancel", headers=service.auth)
        assert service.wait(second["id"], timeout=30)["status"] == "cancelled"
        assert client.get("/api/jobs/nope").status_code == 404
