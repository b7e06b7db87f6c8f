"""The routes a person needs before and after a job, over real HTTP against ``genaug serve``:
the service's limits (the one source of accepted file types and the name rule), the measured
training-time estimate, training grids by default, and the gallery of a generate job's images."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from conftest import TINY_VAE, digit_pngs

from genaug.data.archives import ARCHIVE_SUFFIXES
from genaug.data.ingest_images import IMAGE_EXTENSIONS

pytestmark = pytest.mark.timeout(300)


def test_limits_are_open_and_name_the_accepted_types(service):
    with service.client() as client:
        limits = client.get("/api/limits")  # no token: a client reads it first
    assert limits.status_code == 200
    body = limits.json()
    assert body["image_extensions"] == sorted(IMAGE_EXTENSIONS)
    assert body["archive_extensions"] == list(ARCHIVE_SUFFIXES)
    assert body["max_upload_bytes"] == 3_000_000 and body["max_files_per_upload"] == 300  # the test limits
    assert body["max_generate_n"] == 500 and body["read_requires_token"] is False
    assert "letters, digits" in body["name_rule"]


def test_a_loose_bmp_is_accepted_like_the_ingest_accepts_it(service):
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 200).save(buffer, format="BMP")
    files = {**digit_pngs(per_class=4), "c0/extra.bmp": buffer.getvalue()}
    response = service.upload("with-bmp", files, image_size=16)
    assert response.status_code == 201, response.text
    assert response.json()["counts"]["c0"] == 5  # the bmp counted with class c0's four PNGs


def test_kinds_carry_a_plain_description_and_presets_that_validate(service):
    from genaug import api

    with service.client() as client:
        kinds = {k["kind"]: k for k in client.get("/api/kinds").json()}
    for kind in ("vae", "dcgan", "ddim", "ddpm"):
        presets = kinds[kind]["presets"]
        assert [p["name"] for p in presets] == ["quick", "standard", "best"], kind
        assert presets[0]["label"] == "Quick look" and presets[0]["help"]
        for preset in presets:
            api.validate_config(kind, preset["config"])  # raises on a bad field
        # quick is smaller than best
        assert presets[0]["config"]["steps"] < presets[2]["config"].get("steps", kinds[kind]["defaults"]["steps"])
    assert kinds["classic"]["presets"] == []  # nothing to train
    for kind in kinds.values():
        assert kind["description"] and "seed 00" not in kind["description"] and "PROBEN1" not in kind["description"]


@pytest.mark.database_agnostic  # the measurement never opens the registry; tokens are checked on both in test_api
def test_estimate_is_measured_needs_a_token_and_checks_its_input(service):
    quick = {"mode": "conditional", "steps": 400, "channels": [8, 16], "hidden": 16, "latent_dim": 2}
    body = {"config": quick, "image_size": 16, "channels": 1, "class_count": 3, "images_per_class": 10}
    with service.client() as client:
        assert client.post("/api/kinds/vae/estimate", json=body).status_code == 401
        answer = client.post("/api/kinds/vae/estimate", json=body, headers=service.auth)
        assert answer.status_code == 200, answer.text
        first = answer.json()
        assert first["seconds"] > 0 and first["seconds_per_step"] > 0 and first["models"] == 1
        assert first["text"].startswith("about ") and first["class_count"] == 3
        assert first["image_shape"] == [16, 16, 1]
        # Twice the steps: twice the stepping time, from the same (cached) measurement.
        double = client.post("/api/kinds/vae/estimate", json={**body, "config": {**quick, "steps": 800}},
                             headers=service.auth).json()
        assert double["seconds_per_step"] == first["seconds_per_step"]
        assert double["measured_seconds"] == first["measured_seconds"]
        # (the answer's numbers are rounded: 0.1 s, and 4 decimals per step)
        assert double["seconds"] - first["seconds"] == pytest.approx(400 * first["seconds_per_step"], abs=0.25)
        assert double["seconds"] > first["seconds"]
        # One network per class: three classes, three networks.
        per_class = client.post("/api/kinds/vae/estimate", json={**body, "config": {**quick, "mode": "per_class"}},
                                headers=service.auth).json()
        assert per_class["models"] == 3

        bad = client.post("/api/kinds/vae/estimate", json={**body, "config": {"steps": "lots"}}, headers=service.auth)
        assert bad.status_code == 422 and "steps" in bad.json()["detail"]
        huge = client.post("/api/kinds/vae/estimate", json={**body, "config": {"channels": [100000, 100000]}},
                           headers=service.auth)
        assert huge.status_code == 422 and "parameters" in huge.json()["detail"]
        too_long = client.post("/api/kinds/vae/estimate", json={**body, "config": {"steps": 10**9}},
                               headers=service.auth)
        assert too_long.status_code == 422 and "limit" in too_long.json()["detail"]
        assert client.post("/api/kinds/nope/estimate", json=body, headers=service.auth).status_code == 404
        table = client.post("/api/kinds/tabular_vae/estimate", json=body, headers=service.auth)
        assert table.status_code == 422 and "tables" in table.json()["detail"]
        no_shape = client.post("/api/kinds/vae/estimate", json={"config": quick}, headers=service.auth)
        assert no_shape.status_code == 422 and "image_size" in no_shape.json()["detail"]


def test_training_writes_grids_unless_told_not_to_and_the_gallery_pages_the_images(service):
    assert service.upload("gallery-digits", digit_pngs(per_class=8), image_size=16).status_code == 201
    config = {k: v for k, v in TINY_VAE.items() if k != "sample_every"}  # the service picks it
    trained = service.submit("train", {"dataset": "gallery-digits", "kind": "vae", "name": "gallery-vae",
                                       "config": config, "keep_data": True})
    assert trained.status_code == 201, trained.text
    assert trained.json()["params"]["config"]["sample_every"] == TINY_VAE["steps"] // 10
    explicit = service.submit("train", {"dataset": "gallery-digits", "kind": "vae", "name": "no-grids-vae",
                                        "config": {**config, "sample_every": 0}, "keep_data": True})
    assert explicit.json()["params"]["config"]["sample_every"] == 0  # a config that says so is kept
    assert service.wait(trained.json()["id"])["status"] == "succeeded"
    assert service.wait(explicit.json()["id"])["status"] == "succeeded"
    # Grids were written during the training (every 4 of 40 steps), only at the end when told so.
    with service.client() as client:
        ids = {m["name"]: m["id"] for m in client.get("/api/models").json()}

    def grids(name: str) -> dict[str, list[str]]:  # per network (one per class here): its grids
        found = sorted((service.home / "models" / ids[name] / "training").glob("*/samples/step-*.png"))
        return {phase: [g.name for g in found if g.parent.parent.name == phase]
                for phase in sorted({g.parent.parent.name for g in found})}

    assert grids("gallery-vae") == {p: [f"step-{s:06d}.png" for s in range(4, 41, 4)] for p in ("vae-class0", "vae-class1")}
    assert grids("no-grids-vae") == {p: ["step-000040.png"] for p in ("vae-class0", "vae-class1")}

    job = service.submit("generate", {"model": "gallery-vae", "n_per_class": 7, "seed": 3})
    assert job.status_code == 201, job.text
    done = service.wait(job.json()["id"])
    assert done["status"] == "succeeded"
    gallery_path = done["result"]["gallery"]
    with service.client() as client:
        first = client.get(gallery_path, params={"limit": 5}).json()
        assert first["classes"] == [{"label": "c0", "count": 7}, {"label": "c1", "count": 7}]
        assert first["label"] == "c0" and first["total"] == 7 and len(first["items"]) == 5
        assert [item["index"] for item in first["items"]] == [0, 1, 2, 3, 4]
        assert first["filtered"] is False and first["items"][0]["filter"] is None  # trained without the filter
        rest = client.get(gallery_path, params={"label": "c1", "offset": 5, "limit": 5}).json()
        assert rest["label"] == "c1" and [item["index"] for item in rest["items"]] == [5, 6]
        image = client.get(first["items"][0]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == (16, 16)
        assert str(service.home) not in str(first) and "/tmp" not in str(first)

        job_id = done["id"]
        assert client.get(gallery_path, params={"label": "7"}).status_code == 404
        assert client.get(gallery_path, params={"limit": 0}).status_code == 422
        assert client.get(gallery_path, params={"offset": -1}).status_code == 422
        output = service.home / "jobs" / job_id / "output"
        (output / "c0" / "outside.png").symlink_to(service.home.parent / "secret.png")
        (service.home.parent / "secret.png").write_bytes(first["items"][0]["url"].encode())
        for bad in ("..%2F..%2Fmanifest.jsonl", "c0/..%2F..%2F..%2Fregistry.db", "c0/000000.txt", "c0/nope.png",
                    "%2E%2E/000000.png", "..%2Fc0/000000.png", "c0/outside.png"):
            assert client.get(f"/api/jobs/{job_id}/images/{bad}").status_code == 404, bad
        train_gallery = client.get(f"/api/jobs/{trained.json()['id']}/gallery")
        assert train_gallery.status_code == 404 and "no generated images" in train_gallery.json()["detail"]


def test_generate_jobs_filter_against_the_models_reference_and_report_quality(service):
    # 12 per class: enough for the per-class blocks of the card (quality.MIN_PER_CLASS), so the
    # whole card -- per class, FID, precision/recall, inception score -- goes through the registry.
    assert service.upload("filter-digits", digit_pngs(per_class=12), image_size=16).status_code == 201
    trained = service.submit("train", {"dataset": "filter-digits", "kind": "classic", "name": "filter-classic",
                                       "keep_data": True, "quality_samples": 12})
    plain = service.submit("train", {"dataset": "filter-digits", "kind": "classic", "name": "plain-classic",
                                     "keep_data": True, "quality_samples": 0})
    assert service.wait(trained.json()["id"])["status"] == "succeeded"
    assert service.wait(plain.json()["id"])["status"] == "succeeded"
    with service.client() as client:
        models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models["filter-classic"]["filter_reference"] is True and models["plain-classic"]["filter_reference"] is False
    with service.client() as client:
        card = client.get("/api/models/filter-classic").json()["metrics"]["quality"]
    assert card["samples_per_class"] == 12 and set(card["per_class"]) == {"c0", "c1"}
    for block in card["per_class"].values():
        assert block["samples"] == block["references"] == 12 and block["kid"]["mean"] is not None
        assert block["fid"] >= 0 and 0 <= block["precision"] <= 1
    assert card["overall"]["inception_score"]["mean"] >= 1

    refused = service.submit("generate", {"model": "plain-classic", "n_per_class": 3, "filters": ["near-copy"]})
    assert refused.status_code == 422 and "params.filters" in refused.json()["detail"]
    unknown = service.submit("generate", {"model": "filter-classic", "n_per_class": 3, "filters": ["sharpness"]})
    assert unknown.status_code == 422 and "sharpness" in unknown.json()["detail"]

    job = service.submit("generate", {"model": "filter-classic", "n_per_class": 6,
                                      "filters": ["confidence:0.5", "near-copy:0.2"]})
    assert job.status_code == 201, job.text
    assert job.json()["params"]["filters"] == ["confidence:0.5", "near-copy:0.2"]
    done = service.wait(job.json()["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    summary = result["filters"]
    assert summary["accepted"] == result["total"] == sum(result["counts"].values())
    assert summary["drawn"] == summary["accepted"] + summary["surplus"] + summary["rejected"]
    assert "kid" in result["quality"]["overall"] and result["quality"]["explanations"]["kid"]
    with service.client() as client:
        page = client.get(result["gallery"], params={"limit": 4}).json()
    scores = page["items"][0]["filter"]["scores"]
    assert page["filtered"] is True and scores["confidence"]["p_label"] >= 0.5 and scores["near-copy"]["ratio"] >= 0.2
