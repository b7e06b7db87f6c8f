"""Routes for jobs: create, list, get, cancel, live events, the training grid, outputs."""
from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..jobs.executors import job_dir
from ..jobs.params import NameTakenError, SubmitLimits, check_params
from ..jobs.table import FINISHED, JOB_STATUSES, JOB_TYPES, SUCCEEDED, JobNotFoundError, JobRow, as_utc
from ..store.registry import json_safe
from .auth import Admin, Reader, State, Writer, check_owner
from .public import public_text, public_tree, public_worker
from .routes_data import latest_grid, model_owner

router = APIRouter(prefix="/api", tags=["jobs"])
SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,200}")
EVENT_POLL_SECONDS = 0.5
EVENT_KEEPALIVE_SECONDS = 15.0


class JobRequest(BaseModel):
    """``{"type": "train" | "generate" | "evaluate", "params": {...}}``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["train", "generate", "evaluate"]
    params: dict[str, Any] = Field(default_factory=dict)


def _iso(moment) -> Optional[str]:
    moment = as_utc(moment)
    return moment.isoformat() if moment else None


PRIVATE_PROGRESS = ("work_dir", "traceback")  # a server path; the admin-only traceback
PRIVATE_PARAMS = ("cache",)  # an evaluation grid unit's cache folder: a server path


def job_json(row: JobRow, home: Optional[Path] = None) -> dict[str, Any]:
    """A job as the API shows it: no traceback, server path, host name or process id."""
    result = public_tree(dict(row.result or {}), home)
    if row.type == "generate" and row.status == SUCCEEDED:
        result["download"] = f"/api/jobs/{row.id}/samples.zip"
        if result.get("data_kind", "images") == "images":  # rows of a table have no gallery
            result["gallery"] = f"/api/jobs/{row.id}/gallery"
    progress = public_tree({k: v for k, v in (row.progress or {}).items() if k not in PRIVATE_PROGRESS}, home)
    params = {k: v for k, v in (row.params or {}).items() if k not in PRIVATE_PARAMS}
    return {"id": row.id, "type": row.type, "status": row.status, "params": params, "owner": row.owner,
            "progress": progress, "log": [public_text(line, home) for line in row.log or []],
            "error": public_text(row.error, home), "result": result,
            "attempts": row.attempts, "cancel_requested": bool(row.cancel_requested),
            "worker": public_worker(row.worker),
            "created_at": _iso(row.created_at), "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at), "revision": row.revision,
            "grid_url": f"/api/jobs/{row.id}/grid.png" if row.type == "train" else None}


def _job(state: State, job_id: str) -> JobRow:
    try:
        return state.jobs.get(job_id)
    except JobNotFoundError:
        raise HTTPException(404, f"job: no job with id {job_id!r}") from None


@router.post("/jobs", status_code=201)
def create_job(request_body: JobRequest, state: State, caller: Writer) -> dict[str, Any]:
    """Queue a train, generate or evaluate job (params are checked now, not when it runs)."""
    settings = state.settings
    limits = SubmitLimits(settings.max_generate_n, settings.max_train_steps, settings.max_model_parameters,
                          settings.models_dir)
    try:
        params = check_params(request_body.type, request_body.params, state.home, limits=limits)
    except NameTakenError as error:
        raise HTTPException(409, str(error)) from None
    except ValidationError as error:
        problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else
                             f"params: {e['msg']}" for e in error.errors())
        raise HTTPException(422, problems) from None
    except LookupError as error:
        raise HTTPException(404, str(error.args[0] if error.args else error)) from None
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    if request_body.type == "train" and params.get("replace"):
        owner = model_owner(state, params["name"])
        if owner is not False:
            check_owner(caller, owner, f"params.name: model {params['name']!r}")
    return job_json(state.jobs.submit(request_body.type, params, caller.name), state.home)


@router.get("/jobs")
def list_jobs(state: State, _: Reader, type: Optional[str] = None, status: Optional[str] = None,  # noqa: A002
              limit: int = 100) -> list[dict[str, Any]]:
    """Jobs, newest first."""
    if type is not None and type not in JOB_TYPES:
        raise HTTPException(422, f"type: {type!r} is not one of {', '.join(JOB_TYPES)}")
    if status is not None and status not in JOB_STATUSES:
        raise HTTPException(422, f"status: {status!r} is not one of {', '.join(JOB_STATUSES)}")
    if not 1 <= limit <= 1000:
        raise HTTPException(422, f"limit: must lie in 1..1000, got {limit}")
    return [job_json(row, state.home) for row in state.jobs.list(type, status, limit)]


@router.get("/jobs/{job_id}")
def get_job(job_id: str, state: State, _: Reader) -> dict[str, Any]:
    """One job: status, progress (losses, ETA, loss history), log tail, error, result."""
    return job_json(_job(state, job_id), state.home)


@router.get("/jobs/{job_id}/traceback")
def job_traceback(job_id: str, state: State, _: Admin) -> dict[str, Any]:
    """A failed job's Python traceback (admins only: it names server files)."""
    row = _job(state, job_id)
    return {"id": row.id, "status": row.status, "error": row.error,
            "traceback": (row.progress or {}).get("traceback")}


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, state: State, caller: Writer) -> dict[str, Any]:
    """Cancel a job: a queued one at once, a running one within seconds; a finished one is left as it is."""
    check_owner(caller, _job(state, job_id).owner, f"job {job_id}")
    return job_json(state.jobs.cancel(job_id), state.home)


@router.delete("/jobs/{job_id}", status_code=204)
def delete_job(job_id: str, state: State, caller: Writer) -> Response:
    """Delete a finished job and its files (outputs, report, caches); models it trained stay."""
    row = _job(state, job_id)
    check_owner(caller, row.owner, f"job {job_id}")
    if row.status not in FINISHED:
        raise HTTPException(409, f"job {job_id} is {row.status}: cancel it first")
    if state.jobs.delete(job_id):
        # Row first, then files: a crash in between leaves an orphan folder, never a job without its files.
        shutil.rmtree(job_dir(state.home, job_id), ignore_errors=True)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, state: State, _: Reader) -> StreamingResponse:
    """Server-sent events: ``job`` with the job whenever it changes, ``end`` once it has finished."""
    _job(state, job_id)

    async def stream():
        revision, quiet = None, 0.0
        while True:
            row = await run_in_threadpool(state.jobs.get, job_id)
            if row.revision != revision:
                revision, quiet = row.revision, 0.0
                yield f"event: job\ndata: {json.dumps(json_safe(job_json(row, state.home)))}\n\n"
            if row.status in FINISHED:
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_POLL_SECONDS)
            quiet += EVENT_POLL_SECONDS
            if quiet >= EVENT_KEEPALIVE_SECONDS:  # proxies drop silent connections
                quiet = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/grid.png", response_class=FileResponse)
def job_grid(job_id: str, state: State, _: Reader) -> FileResponse:
    """A train job's newest sample grid: from its checkpoints while it runs, then from the model."""
    row = _job(state, job_id)
    if row.type != "train":
        raise HTTPException(404, f"job {job_id}: only train jobs have a sample grid")
    grid = None
    work = (row.progress or {}).get("work_dir")
    if work:
        folder = (state.home / work).resolve()
        if folder.is_relative_to((state.home / "work").resolve()):  # the value came from our worker; check anyway
            grid = latest_grid(folder)
    model_id = (row.result or {}).get("model_id")
    if grid is None and model_id:
        grid = latest_grid(state.home / "models" / model_id / "training") if SAFE_FILE.fullmatch(model_id) else None
    if grid is None:
        raise HTTPException(404, f"job {job_id}: no sample grid yet")
    return FileResponse(grid, media_type="image/png", headers={"Cache-Control": "no-store"})


class _ZipSink(io.RawIOBase):
    """A write-only, unseekable file: what zipfile writes, handed out chunk by chunk."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


def zip_stream(folder: Path) -> Iterator[bytes]:
    """Zip ``folder`` while sending it: one file at a time, never the whole archive in memory."""
    sink = _ZipSink()
    with zipfile.ZipFile(sink, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            # PNGs are compressed already; the manifest and CSVs are text and shrink a lot.
            method = zipfile.ZIP_STORED if path.suffix.lower() == ".png" else zipfile.ZIP_DEFLATED
            archive.write(path, path.relative_to(folder).as_posix(), compress_type=method)
            yield sink.take()
    yield sink.take()


@router.get("/jobs/{job_id}/samples.zip")
def job_samples(job_id: str, state: State, _: Reader) -> StreamingResponse:
    """A generate job's images (``<class>/<i>.png``) and ``manifest.jsonl`` as a zip stream."""
    row = _job(state, job_id)
    if row.type != "generate":
        raise HTTPException(404, f"job {job_id}: a {row.type} job has no samples to download")
    if row.status != SUCCEEDED:
        raise HTTPException(409, f"job {job_id} is {row.status}: the samples are ready when it has succeeded")
    folder = job_dir(state.home, row.id) / "output"
    if not folder.is_dir():
        raise HTTPException(410, f"job {job_id}: its output was removed")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str((row.result or {}).get("model") or "samples"))
    return StreamingResponse(zip_stream(folder), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}-{row.id[:8]}.zip"'})


@router.get("/jobs/{job_id}/files/{file_name}", response_class=FileResponse)
def job_file(job_id: str, file_name: str, state: State, _: Reader) -> FileResponse:
    """One file of an evaluate job's report (the names are listed in ``result.files``)."""
    row = _job(state, job_id)
    listed = (row.result or {}).get("files") or []
    if not SAFE_FILE.fullmatch(file_name) or file_name not in listed:
        raise HTTPException(404, f"job {job_id}: no report file {file_name!r}; it has {', '.join(listed) or 'none'}")
    path = job_dir(state.home, row.id) / "report" / file_name
    if not path.is_file():
        raise HTTPException(410, f"job {job_id}: {file_name} was removed")
    return FileResponse(path)
