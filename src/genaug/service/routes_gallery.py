"""Routes for looking at a generate job's images before downloading them: a paged gallery per
class (with the filter's verdict where the model filtered) and the images themselves."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from urllib.parse import quote

from ..jobs.executors import job_dir
from ..jobs.table import SUCCEEDED
from .auth import Reader, State
from .routes_jobs import _job

router = APIRouter(prefix="/api", tags=["jobs"])
SAFE_PART = re.compile(r"[^/\\\x00]{1,255}")
MAX_PAGE = 200


def _output(state: State, job_id: str) -> Path:
    row = _job(state, job_id)
    if row.type != "generate":
        raise HTTPException(404, f"job {job_id}: a {row.type} job has no generated images")
    if row.status != SUCCEEDED:
        raise HTTPException(409, f"job {job_id} is {row.status}: its images are shown when it has succeeded")
    folder = job_dir(state.home, row.id) / "output"
    if not folder.is_dir():
        raise HTTPException(410, f"job {job_id}: its output was removed")
    return folder


def _manifest(folder: Path) -> list[dict[str, Any]]:
    path = folder / "manifest.jsonl"
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue  # a torn last line is skipped, never shown as an error
    return lines


def _verdict(line: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The filters' verdict on one written sample: the filter stage's scores (every written sample
    passed them; the generative classifier's ``p_real`` among them). Sets made before the stage
    carry the old in-model verdict ("accepted" or "forced") with its p_real."""
    filters = line.get("filters")
    if not isinstance(filters, dict):
        return None
    staged = {name: {k: v for k, v in value.items() if k != "verdict"} for name, value in filters.items()
              if isinstance(value, dict)}
    if "generative_classifier" in filters:
        return {"verdict": filters.get("generative_classifier"), "p_real": filters.get("p_real"), "scores": staged}
    return {"verdict": "accepted", "scores": staged} if staged else None


@router.get("/jobs/{job_id}/gallery")
def gallery(job_id: str, state: State, _: Reader, label: Optional[str] = None, offset: int = 0,
            limit: int = 48) -> dict[str, Any]:
    """One page of a generate job's images: ``classes`` (every class with its count), then the
    images of ``label`` (default: the first class) from ``offset``, each with its URL, index and
    the filters' verdict and scores (``accepted``; ``forced`` only in sets made before the filter stage)."""
    if offset < 0:
        raise HTTPException(422, f"offset: must be 0 or more, got {offset}")
    if not 1 <= limit <= MAX_PAGE:
        raise HTTPException(422, f"limit: must lie in 1..{MAX_PAGE}, got {limit}")
    folder = _output(state, job_id)
    lines = [line for line in _manifest(folder) if str(line.get("file", "")).endswith(".png")]
    classes: dict[str, int] = {}
    for line in lines:
        classes[str(line.get("label"))] = classes.get(str(line.get("label")), 0) + 1
    if label is None:
        label = next(iter(classes), None)
    elif label not in classes:
        raise HTTPException(404, f"label: job {job_id} has no images of class {label!r}; "
                                 f"it has {', '.join(classes) or 'none'}")
    chosen = [line for line in lines if str(line.get("label")) == label]
    page = chosen[offset:offset + limit]
    items = [{"url": f"/api/jobs/{job_id}/images/{quote(line['file'], safe='/')}", "label": label,
              "index": offset + i, "filter": _verdict(line)} for i, line in enumerate(page)]
    return {"classes": [{"label": name, "count": count} for name, count in classes.items()], "label": label,
            "offset": offset, "limit": limit, "total": len(chosen), "items": items,
            "filtered": any(item["filter"] for item in items)}


@router.get("/jobs/{job_id}/images/{folder_name}/{file_name}", response_class=FileResponse)
def gallery_image(job_id: str, folder_name: str, file_name: str, state: State, _: Reader) -> FileResponse:
    """One generated image of a generate job (``<class folder>/<index>.png``, as in the zip)."""
    folder = _output(state, job_id)
    if not (SAFE_PART.fullmatch(folder_name) and SAFE_PART.fullmatch(file_name)) or \
            folder_name in (".", "..") or not file_name.endswith(".png"):
        raise HTTPException(404, f"job {job_id}: no image {folder_name}/{file_name}")
    path = (folder / folder_name / file_name).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise HTTPException(404, f"job {job_id}: no image {folder_name}/{file_name}")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
