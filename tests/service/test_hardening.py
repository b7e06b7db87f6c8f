"""The service against a careless or hostile client: every parameter checked on submit, bodies
capped, owners enforced, and nothing about the server (paths, host, processes, tracebacks) in
any response -- over real HTTP against ``genaug serve``."""
from __future__ import annotations

import json
import re
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import TINY_VAE, digit_pngs, start_service, stop_service, zip_bytes

from genaug.store.registry import Registry
from genaug.store.tokens import create_token

pytestmark = pytest.mark.timeout(600)


def _token(service, module_database_url, name: str, admin: bool = False) -> dict[str, str]:
    with Registry.open(service.home, module_database_url) as registry:
        return {"Authorization": f"Bearer {create_token(registry, name, admin=admin)}"}


@pytest.fixture(scope="module")
def trained(service):
    """A dataset (kept) and a ready model trained from it without the filter, by the tester token."""
    assert service.upload("hard", digit_pngs(per_class=6), image_size=16).status_code == 201
    job = service.submit("train", {"dataset": "hard", "kind": "vae", "name": "hard-vae", "keep_data": True,
                                   "config": TINY_VAE}).json()
    assert service.wait(job["id"])["status"] == "succeeded"
    return "hard-vae"


def test_every_parameter_is_checked_when_submitted(service, trained):
    cases = [
        # generate options: their types and bounds come from the kind's own schemas
        ("generate", {"model": trained, "n_per_class": 1, "options": {"alpha": "lots"}}, 422, "params.options.alpha"),
        ("generate", {"model": trained, "n_per_class": 1, "options": {"alpha": -3}}, 422, "params.options.alpha"),
        ("generate", {"model": trained, "n_per_class": 1, "options": {"k": -1}}, 422, "params.options.k"),
        ("generate", {"model": trained, "n_per_class": 1, "options": {"filter": True}}, 422, "params.options.filter"),
        # the generative classifier is a filter of the stage, and this model was trained without it
        ("generate", {"model": trained, "n_per_class": 1, "filters": ["generative-classifier"]}, 422,
         "params.filters"),
        ("generate", {"model": trained, "balance": True}, 422, "params.balance"),
        # a table generator on an image dataset
        ("train", {"dataset": "hard", "kind": "tabular_vae", "name": "t"}, 422, "params.kind"),
        ("evaluate", {"dataset": "hard", "generators": [{"kind": "tabular_vae"}]}, 422, "params.generators[0].kind"),
        # the name of a ready model, without replace
        ("train", {"dataset": "hard", "kind": "vae", "name": trained, "config": TINY_VAE}, 409, "params.name"),
        # sizes a worker cannot afford
        ("train", {"dataset": "hard", "kind": "vae", "name": "big", "config": {**TINY_VAE, "steps": 10**15}}, 422,
         "params.config.steps"),
        ("train", {"dataset": "hard", "kind": "vae", "name": "wide",
                   "config": {**TINY_VAE, "channels": [100000, 100000]}}, 422, "params.config: these networks"),
        ("evaluate", {"dataset": "hard", "generators": [{"kind": "vae", "config": {"steps": 10**15}}]}, 422,
         "params.generators[0].config.steps"),
        # a pretrained model is named within the service's models folder (none here), never by server path
        ("train", {"dataset": "hard", "kind": "dafusion", "name": "sd", "config": {"model_path": "/etc"}}, 422,
         "params.config.model_path: this service offers no pretrained models"),
        ("evaluate", {"dataset": "hard", "generators": [{"kind": "dafusion", "config": {"model_path": "/usr"}}]},
         422, "params.generators[0].config.model_path"),
    ]
    with service.client() as client:
        before = len(client.get("/api/jobs").json())
        for job_type, params, status, field in cases:
            response = client.post("/api/jobs", headers=service.auth, json={"type": job_type, "params": params})
            assert response.status_code == status and field in response.json()["detail"], (params, response.text)
        assert len(client.get("/api/jobs").json()) == before  # nothing was queued
        # A 20 MB JSON body is refused before it is read, and never stored.
        huge = json.dumps({"type": "generate", "params": {"model": trained, "n_per_class": 1,
                                                          "options": {"x": "y" * 20_000_000}}})
        refused = client.post("/api/jobs", headers={**service.auth, "content-type": "application/json"},
                              content=huge)
        assert refused.status_code == 413 and "limit" in refused.json()["detail"]
        # Also when the client does not say how long it is (chunked).
        chunked = client.post("/api/jobs", headers={**service.auth, "content-type": "application/json"},
                              content=iter([huge[i:i + 65536].encode() for i in range(0, len(huge), 65536)]))
        assert chunked.status_code == 413
        assert len(client.get("/api/jobs").content) < 1_000_000


def test_owners_and_admins(service, trained, module_database_url):
    other = _token(service, module_database_url, "mallory")
    admin = _token(service, module_database_url, "root", admin=True)
    done = service.wait(service.submit("generate", {"model": trained, "n_per_class": 1}).json()["id"])
    with service.client() as client:
        # Somebody else's things: 403, and they are still there.
        assert client.delete("/api/datasets/hard", headers=other).status_code == 403
        assert client.delete(f"/api/models/{trained}", headers=other).status_code == 403
        refused = client.delete(f"/api/jobs/{done['id']}", headers=other)
        assert refused.status_code == 403 and "tester" in refused.json()["detail"]
        assert client.post(f"/api/jobs/{done['id']}/cancel", headers=other).status_code == 403
        replace = client.post("/api/jobs", headers=other, json={"type": "train", "params": {
            "dataset": "hard", "kind": "vae", "name": trained, "replace": True, "config": TINY_VAE}})
        assert replace.status_code == 403
        assert client.get(f"/api/models/{trained}").status_code == 200
        assert client.get("/api/datasets/hard").status_code == 200
        # Token management is for admins.
        assert client.post("/api/tokens", headers=other, json={"name": "x"}).status_code == 403
        assert client.get("/api/tokens", headers=other).status_code == 403
        assert client.get("/api/me", headers=other).json() == {"name": "mallory", "admin": False,
                                                                "authenticated": True}
        # An admin creates a token for a browser-only user; it works at once.
        created = client.post("/api/tokens", headers=admin, json={"name": "browser-user"})
        assert created.status_code == 201 and created.json()["token"].startswith("ga_")
        fresh = {"Authorization": f"Bearer {created.json()['token']}"}
        assert client.get("/api/me", headers=fresh).json()["name"] == "browser-user"
        assert {t["name"] for t in client.get("/api/tokens", headers=admin).json()} >= {"browser-user", "mallory"}
        assert all("token" not in t for t in client.get("/api/tokens", headers=admin).json())
        # The admin may delete what belongs to others.
        assert client.delete(f"/api/jobs/{done['id']}", headers=admin).status_code == 204
        assert client.delete(f"/api/models/{trained}", headers=admin).status_code == 204
        # ... and revoke a token: it stops working.
        assert client.delete("/api/tokens/browser-user", headers=admin).status_code == 204
        assert client.post("/api/jobs", headers=fresh, json={"type": "generate", "params": {}}).status_code == 401


def _process_ids(root_pid: int) -> set[int]:
    """The pids of the service's process group (server, workers, job processes)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == root_pid:  # process group id
                pids.add(int(entry.name))
    return pids


def test_no_read_route_shows_a_traceback_path_host_or_pid(service, module_database_url):
    # A job that fails when it runs: the first training deletes its uploaded data (keep_data
    # off), so the second, queued behind it, finds no dataset -- an error that names a file.
    assert service.upload("leaky", digit_pngs(per_class=6), image_size=16).status_code == 201
    first = service.submit("train", {"dataset": "leaky", "kind": "vae", "name": "leaky-1", "config": TINY_VAE}).json()
    second = service.submit("train", {"dataset": "leaky", "kind": "vae", "name": "leaky-2", "config": TINY_VAE}).json()
    assert service.wait(first["id"])["status"] == "succeeded"
    failed = service.wait(second["id"])
    assert failed["status"] == "failed" and failed["error"]
    pids = _process_ids(service.process.pid)
    assert len(pids) >= 2  # the server and its worker at least
    admin = _token(service, module_database_url, "auditor", admin=True)

    forbidden = {"server path": [str(service.home), str(service.home.resolve()), sys.prefix,
                                 str(Path(__file__).resolve().parents[2])],
                 "traceback": ["Traceback (most recent call last)", 'File "']}
    host = socket.gethostname()
    with service.client() as client:
        jobs = client.get("/api/jobs", params={"limit": 1000}).json()
        models = client.get("/api/models", params={"all": True}).json()
        routes = ["/api/health", "/api/kinds", "/api/kinds/vae", "/api/datasets", "/api/me", "/api/models",
                  "/api/models?all=true", "/api/jobs?limit=1000", "/api/models/nope", "/api/jobs/nope",
                  "/openapi.json"]
        routes += [f"/api/datasets/{d['name']}" for d in client.get("/api/datasets").json()]
        routes += [f"/api/models/{m['name']}" for m in models]
        routes += [f"/api/jobs/{j['id']}" for j in jobs] + [f"/api/jobs/{j['id']}/events" for j in jobs
                                                              if j["status"] in ("succeeded", "failed", "cancelled")]
        for route in routes:
            text = client.get(route).text
            for what, needles in forbidden.items():
                for needle in needles:
                    assert needle not in text, f"{route} shows a {what}: {needle!r}"
            assert not re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", text), f"{route} shows the host name"
            for pid in pids:
                assert not re.search(rf"(?<![\d.]){pid}(?![\d.])", text), f"{route} shows pid {pid}"
        # The traceback is kept, for admins only.
        assert client.get(f"/api/jobs/{second['id']}/traceback", headers=service.auth).status_code == 403
        kept = client.get(f"/api/jobs/{second['id']}/traceback", headers=admin).json()
        assert "Traceback (most recent call last)" in kept["traceback"]
    assert f"genaug job {second['id']} failed" in service.log_tail(400)  # and in the server log


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _bomb_zip() -> bytes:
    """512 MiB of zeros in a ~0.5 MB zip (about 1000:1), streamed: never held in memory."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/0.png", digit_pngs(per_class=1)["c0/0.png"])
        with archive.open("zero/bomb.png", "w", force_zip64=True) as member:
            chunk = bytes(8 << 20)
            for _ in range(64):
                member.write(chunk)
    return buffer.getvalue()


def test_archive_bombs_are_refused_at_once_inside_genaug_home(tmp_path, module_database_url):
    import io
    import zipfile

    system_tmp = tmp_path / "system-tmp"  # where anything written outside GENAUG_HOME would go
    system_tmp.mkdir()
    service = start_service(tmp_path / "home", module_database_url, extra_env={"TMPDIR": str(system_tmp)},
                            token_name="bomb-tester")
    try:
        many = zip_bytes({f"c{i % 2}/{i}.png": b"x" for i in range(301)})  # the test limit is 300 files
        deep = io.BytesIO()
        with zipfile.ZipFile(deep, "w") as archive:
            archive.writestr("/".join(["d"] * 200) + "/x.png", digit_pngs(per_class=1)["c0/0.png"])
        cases = [("bomb.zip", _bomb_zip(), "archive bomb"), ("many.zip", many, "more than 300"),
                 ("deep.zip", deep.getvalue(), "nested 201 folders deep")]
        rss_before = _rss_bytes(service.process.pid)
        with service.client() as client:
            for name, body, message in cases:
                assert len(body) < 3_000_000  # under the upload limit: the archive itself is small
                started = time.monotonic()
                response = client.post("/api/datasets", headers=service.auth, data={"name": name[:-4]},
                                       files=[("files", (name, body, "application/zip"))])
                seconds = time.monotonic() - started
                assert response.status_code == 422 and message in response.json()["detail"], response.text
                assert seconds < 2, f"{name} took {seconds:.1f} s to refuse"
                assert str(service.home) not in response.text
            assert client.get("/api/datasets").json() == []
        assert _rss_bytes(service.process.pid) - rss_before < 200 * 1024 * 1024
        assert list(system_tmp.iterdir()) == []  # nothing was written outside GENAUG_HOME
        assert not any((service.home / "uploads").iterdir())  # and inside it, nothing is left
    finally:
        stop_service(service)


def test_a_pretrained_model_path_stays_inside_the_models_folder(tmp_path):
    """dafusion's model_path in a job: a subfolder of the service's models folder, resolved there;
    an absolute path, a way out (..) or a missing model is refused without saying what exists."""
    from genaug.jobs.params import confine_model_path

    models = tmp_path / "models"
    (models / "sd-tiny" / "unet").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    resolved = confine_model_path({"model_path": "sd-tiny", "steps": 3}, models, "params.config")
    assert resolved == {"model_path": str((models / "sd-tiny").resolve()), "steps": 3}
    assert confine_model_path({"steps": 3}, models, "params.config") == {"steps": 3}  # the server's default model
    for name in (str(outside), "../secret", "sd-tiny/../../secret", "~/x", "", "sd-tiny/unet/../.."):
        with pytest.raises(ValueError) as refused:
            confine_model_path({"model_path": name}, models, "params.config")
        message = str(refused.value)
        assert message.startswith("params.config.model_path:") and str(tmp_path) not in message, message
    with pytest.raises(ValueError, match="the service has no model 'nope'"):
        confine_model_path({"model_path": "nope"}, models, "params.config")
    with pytest.raises(ValueError, match="offers no pretrained models"):
        confine_model_path({"model_path": "sd-tiny"}, None, "params.config")
