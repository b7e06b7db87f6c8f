"""Routes for generator kinds, datasets (upload, list, delete) and models (list, details, grid, delete)."""
from __future__ import annotations

import functools
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from .. import api
from ..data import LabelledImages
from ..data.report import IngestError
from ..store.datasets import DATASETS_DIR, dataset_dir, save_dataset
from ..store.registry import READY, ModelBusyError, ModelNotFoundError, validate_name
from .auth import Reader, State, Writer, check_owner
from .public import public_tree
from .uploads import UploadError, receive_upload

router = APIRouter(prefix="/api")


# -- kinds ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _kind_document(kind: str, cls) -> str:
    # Building every JSON schema takes a fraction of a second per kind: once per process is enough.
    return json.dumps(kind_json(kind, cls))


def warm_kind_documents() -> None:
    """Build every kind's document once (imports the kinds: seconds), e.g. when the app starts."""
    for kind, cls in api.generator_kinds().items():
        _kind_document(kind, cls)


def kind_json(kind: str, cls) -> dict[str, Any]:
    """A generator kind as the UI needs it: summary, plain description, config schema and defaults,
    presets, sample options."""
    from ..presets import kind_presets

    defaults = cls.Config().model_dump(mode="json")
    return {"kind": kind, "summary": cls.summary, "description": cls.description or cls.summary,
            "presets": kind_presets(kind), "data_kind": cls.data_kind,
            "keeps_training_data": cls.keeps_training_data, "schema": cls.Config.model_json_schema(),
            "defaults": defaults, "sample_options": cls.sample_options(),
            "preselected": list(cls.preselected),
            "capabilities": {"unlabeled_pool_modes": list(cls.uses_unlabeled_pool),
                             "warm_start": bool(cls.supports_warm_start)}}


@router.get("/kinds", tags=["kinds"])
def list_kinds(_: Reader) -> list[dict[str, Any]]:
    """Every registered generator kind (built-in and plugins)."""
    return [json.loads(_kind_document(kind, cls)) for kind, cls in sorted(api.generator_kinds().items())]


@router.get("/kinds/{kind}", tags=["kinds"])
def get_kind(kind: str, _: Reader) -> dict[str, Any]:
    """One generator kind."""
    kinds = api.generator_kinds()
    if kind not in kinds:
        raise HTTPException(404, f"kind: no generator kind {kind!r}; known: {', '.join(sorted(kinds))}")
    return json.loads(_kind_document(kind, kinds[kind]))


# -- datasets -----------------------------------------------------------------------------

def _dataset_name(name: str) -> str:
    try:
        return validate_name(name)
    except ValueError as error:
        raise HTTPException(422, f"name: {str(error).replace('model name', 'dataset name')}") from None


def dataset_owner(folder: Path) -> Optional[str]:
    """The token that uploaded a stored dataset (None: stored by the CLI or the library)."""
    try:
        return (json.loads((folder / "report.json").read_text()).get("service") or {}).get("owner")
    except (OSError, ValueError):
        return None


def model_owner(state: State, name: str) -> Optional[str] | bool:
    """The token that trained model ``name`` (None: the CLI or library), or False: no such model."""
    try:
        return api.get_model(name, state.home).created_by
    except ModelNotFoundError:
        return False


def dataset_json(folder: Path, with_report: bool = False) -> dict[str, Any]:
    """Summary of a stored dataset, read from its ingest report (the data itself is not loaded)."""
    report = json.loads((folder / "report.json").read_text()) if (folder / "report.json").exists() else {}
    meta = report.get("service", {})
    counts = report.get("class_counts") or meta.get("counts") or {}
    item = {"name": folder.name, "n": int(sum(counts.values())), "counts": counts,
            "data_kind": "images" if (folder / "train.npz").exists() else "table",
            "image_size": meta.get("image_size"), "has_test_split": any(folder.glob("test.*")),
            "owner": meta.get("owner"),
            "created_at": datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc).isoformat()}
    if with_report:
        item["report"] = public_tree(report, folder.parent.parent)
    return item


def relabel_path(path: str, root: Path) -> str:
    """``path`` relative to ``root`` (an upload's folder): the name the client knows, no server path."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name if Path(path).is_absolute() else path


def relabel_sources(data, root: Path):
    """``data`` with every source path made relative to ``root``."""
    if not isinstance(data, LabelledImages):
        return data
    return LabelledImages(data.images, data.labels, list(data.class_names),
                          [relabel_path(s, root) for s in data.sources])


def _upload_report(report: dict[str, Any], root: Path, skipped: list[dict[str, str]]) -> dict[str, Any]:
    """The ingest report with upload-folder paths made relative (the client's own names)."""
    relative = lambda path: relabel_path(path, root)  # noqa: E731
    entries = report.get("entries", [])
    rejected = [{"file": relative(e.get("path", "")), "reason": e.get("reason", "")}
                for e in entries if e.get("status") == "rejected"]
    return {"accepted": sum(1 for e in entries if e.get("status") in ("loaded", "repaired")),
            "rejected": rejected + skipped,
            "duplicates": [relative(e.get("path", "")) for e in entries if e.get("status") == "duplicate"],
            "notes": report.get("notes", []), "class_counts": report.get("class_counts", {})}


@router.post("/datasets", status_code=201, tags=["datasets"])
async def upload_dataset(request: Request, state: State, caller: Writer) -> dict[str, Any]:
    """Upload images (``files`` parts named CLASS/FILE) or one archive; ingest and store them.

    Streams to disk; bad files are listed in the report and do not stop the rest.
    """
    settings = state.settings
    upload = await receive_upload(request, state.home, max_bytes=settings.max_upload_bytes,
                                  max_files=settings.max_files_per_upload)
    try:
        name = _dataset_name(upload.fields.get("name", "").strip())
        try:
            image_size = int(upload.fields.get("image_size") or 64)
        except ValueError:
            raise HTTPException(422, f"image_size: expected an integer, got {upload.fields.get('image_size')!r}")
        if not 8 <= image_size <= 1024:
            raise HTTPException(422, f"image_size: must lie in 8..1024, got {image_size}")
        replace = upload.fields.get("replace", "").lower() in ("1", "true", "yes", "on")
        if dataset_dir(name, state.home).exists():
            if not replace:
                raise HTTPException(409, f"name: a dataset named {name!r} exists already (delete it, pick another "
                                         "name, or send replace=true)")
            check_owner(caller, dataset_owner(dataset_dir(name, state.home)), f"name: dataset {name!r}")
        if upload.archives and upload.images:
            raise HTTPException(422, "files: send either images (CLASS/FILE) or one archive, not both")
        if len(upload.archives) > 1:
            raise HTTPException(422, f"files: one archive per upload, got {len(upload.archives)}")
        if not upload.archives and not upload.images:
            detail = "; ".join(f"{s['file']}: {s['reason']}" for s in upload.skipped[:5])
            raise HTTPException(422, "files: no images in the upload" + (f" ({detail})" if detail else ""))
        source = upload.archives[0] if upload.archives else upload.image_folder

        def ingest_and_store() -> dict[str, Any]:
            try:
                # Every temporary file stays inside GENAUG_HOME (the upload's own folder).
                result = api.ingest(source, image_size=image_size, max_pixels=settings.max_image_pixels,
                                    max_extracted_bytes=settings.max_extracted_bytes(),
                                    max_ratio=settings.max_archive_ratio,
                                    max_members=settings.max_files_per_upload, work_dir=upload.folder / "work")
            except IngestError as error:
                report = error.report.to_dict() if getattr(error, "report", None) else {}
                summary = _upload_report(report, source if source.is_dir() else source.parent, upload.skipped)
                message = str(error).replace(str(source), "upload")  # no server paths in answers
                raise HTTPException(422, f"files: {message}" + "".join(
                    f"; {r['file']}: {r['reason']}" for r in summary["rejected"][:5])) from None
            root = source if source.is_dir() else source.parent
            # Sources are the client's names (class/file), not this server's temporary paths.
            data, test = (None if part is None else relabel_sources(part, root) for part in (result.data, result.test))
            report = result.report.to_dict()
            report["source"] = "upload" if source.is_dir() else "upload (archive)"
            for entry in report["entries"]:
                entry["path"] = relabel_path(entry["path"], root)
            report["service"] = {"owner": caller.name, "image_size": image_size, "counts": result.data.counts(),
                                 "skipped": upload.skipped}
            folder = save_dataset(name, data, test, report, home=state.home, replace=replace)
            item = dataset_json(folder)
            item["report"] = _upload_report(report, source if source.is_dir() else source.parent, upload.skipped)
            return item

        return await run_in_threadpool(ingest_and_store)
    finally:
        upload.discard()


@router.get("/datasets", tags=["datasets"])
def list_datasets(state: State, _: Reader) -> list[dict[str, Any]]:
    """Stored datasets, by name."""
    root = state.home / DATASETS_DIR
    if not root.exists():
        return []
    return [dataset_json(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _stored_dataset(state: State, name: str) -> Path:
    folder = dataset_dir(_dataset_name(name), state.home)
    if not folder.is_dir():
        raise HTTPException(404, f"dataset: no stored dataset {name!r}")
    return folder


@router.get("/datasets/{name}", tags=["datasets"])
def get_dataset(name: str, state: State, _: Reader) -> dict[str, Any]:
    """One dataset with its full ingest report."""
    return dataset_json(_stored_dataset(state, name), with_report=True)


@router.delete("/datasets/{name}", status_code=204, tags=["datasets"])
def delete_dataset(name: str, state: State, caller: Writer) -> Response:
    """Delete a stored dataset (models trained on it stay); its owner or an admin only."""
    folder = _stored_dataset(state, name)
    check_owner(caller, dataset_owner(folder), f"dataset {name!r}")
    shutil.rmtree(folder)
    return Response(status_code=204)


# -- models --------------------------------------------------------------------------------

def latest_grid(folder: Path) -> Optional[Path]:
    """The newest training sample grid under ``folder`` (``**/samples/step-*.png``)."""
    grids = list(folder.glob("**/samples/step-*.png")) if folder.is_dir() else []
    return max(grids, key=lambda p: (p.stat().st_mtime, p.name)) if grids else None


def model_json(info: api.ModelInfo, home: Optional[Path] = None) -> dict[str, Any]:
    """A model as the API shows it (no server paths, host names or process ids)."""
    item = info.to_dict()
    for private in ("path", "artifact_dir", "owner_pid", "owner_host"):
        item.pop(private, None)
    item["owner"] = item.pop("created_by", None)
    source = (item.get("data_summary") or {}).get("source")
    if source:
        # Which stored dataset it learned from, by name; never where that lies on this server.
        folder = Path(source)
        item["data_summary"]["source"] = (f"dataset '{folder.name}'" if folder.parent.name == DATASETS_DIR
                                          else folder.name)
    item = public_tree(item, home)
    sources = item["metrics"].pop("sources", None)
    if sources is not None:
        item["metrics"]["n_sources"] = len(sources)
    item["grid_url"] = f"/api/models/{info.name}/grid.png" if info.status == READY else None
    return item


def _model(state: State, name: str) -> api.ModelInfo:
    try:
        return api.get_model(name, state.home)
    except ModelNotFoundError:
        raise HTTPException(404, f"model: no model named {name!r}") from None


@router.get("/models", tags=["models"])
def list_models(state: State, _: Reader, all: bool = False) -> list[dict[str, Any]]:  # noqa: A002
    """Ready models (``?all=true``: also those training or failed), oldest first."""
    return [model_json(info, state.home) for info in api.list_models(include_all=all, home=state.home)]


@router.get("/models/{name}", tags=["models"])
def get_model(name: str, state: State, _: Reader) -> dict[str, Any]:
    """One model: kind, classes, config, metrics, data summary, parent."""
    return model_json(_model(state, name), state.home)


@router.get("/models/{name}/grid.png", tags=["models"], response_class=FileResponse)
def model_grid(name: str, state: State, _: Reader) -> FileResponse:
    """The model's latest training sample grid."""
    info = _model(state, name)
    grid = latest_grid(Path(info.path) / "training") if info.path else None
    if grid is None:
        raise HTTPException(404, f"model {name}: no sample grid (this kind does not write one, or it is not ready)")
    return FileResponse(grid, media_type="image/png")


@router.delete("/models/{name}", status_code=204, tags=["models"])
def delete_model(name: str, state: State, caller: Writer) -> Response:
    """Delete a model and its files (its owner or an admin); one still training is refused."""
    check_owner(caller, _model(state, name).created_by, f"model {name!r}")
    try:
        api.delete_model(name, state.home)
    except ModelBusyError:
        raise HTTPException(409, f"model: {name} is still training: cancel its job first") from None
    return Response(status_code=204)
