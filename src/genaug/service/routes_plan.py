"""Routes a client needs before it starts anything: the service's limits (the one source of the
accepted file types, the name rule and the size limits) and a measured training-time estimate."""
from __future__ import annotations

import logging
from typing import Any, Optional

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .. import api
from ..data.archives import ARCHIVE_SUFFIXES
from ..data.ingest_images import IMAGE_EXTENSIONS
from ..jobs.params import SubmitLimits, check_config_size
from ..presets import (EstimateBusyError, EstimateFailedError, describe_seconds, estimate_training,
                       with_progress_grids)
from ..store.datasets import dataset_dir, stored_dataset_shape
from ..store.registry import NAME_PATTERN
from .auth import State, Writer
from .routes_data import dataset_json

router = APIRouter(prefix="/api")
log = logging.getLogger("genaug.service")

NAME_RULE = "letters, digits, '.', '_' and '-'; 1-64 characters; starts with a letter or digit"


@router.get("/limits", tags=["service"])
def limits(state: State) -> dict[str, Any]:
    """What this service accepts: file types, the name rule, upload and job limits (always open,
    like /api/health: a client reads it before it has a token)."""
    settings = state.settings
    return {"image_extensions": sorted(IMAGE_EXTENSIONS), "archive_extensions": list(ARCHIVE_SUFFIXES),
            "name_pattern": NAME_PATTERN.pattern, "name_rule": NAME_RULE,
            "max_upload_bytes": settings.max_upload_bytes, "max_files_per_upload": settings.max_files_per_upload,
            "max_image_pixels": settings.max_image_pixels, "max_generate_n": settings.max_generate_n,
            "max_train_steps": settings.max_train_steps, "max_request_bytes": settings.max_request_bytes,
            "read_requires_token": settings.read_requires_token}


class EstimateRequest(BaseModel):
    """The training to estimate: a kind's config and the data, as a stored dataset or its shape."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(default_factory=dict, description="the kind's config fields; others default")
    dataset: Optional[str] = Field(None, description="a stored dataset: its image shape and classes are used")
    image_size: Optional[int] = Field(None, ge=8, le=1024, description="square image side, when no dataset")
    channels: int = Field(3, description="1 (grayscale) or 3 (colour), when no dataset")
    class_count: Optional[int] = Field(None, ge=1, le=1000, description="number of classes, when no dataset")
    images_per_class: int = Field(100, ge=1, description="images in the largest class")


@router.post("/kinds/{kind}/estimate", tags=["kinds"])
def estimate(kind: str, body: EstimateRequest, state: State, _: Writer) -> Any:
    """How long training ``kind`` with this config would take on this server, measured by timing
    one short run of the real training on random data of the same shape, in a child process
    with a time limit (cached: seconds the first time for a config, then at once). Needs a token:
    it uses the server's CPU. 429 while another estimate is being measured."""
    kinds = api.generator_kinds()
    if kind not in kinds:
        raise HTTPException(404, f"kind: no generator kind {kind!r}; known: {', '.join(sorted(kinds))}")
    if kinds[kind].data_kind != "images":
        raise HTTPException(422, f"kind: time estimates are for image generators; '{kind}' trains on tables")
    per_class = body.images_per_class
    if body.dataset is not None:
        if not NAME_PATTERN.fullmatch(body.dataset) or not dataset_dir(body.dataset, state.home).is_dir():
            raise HTTPException(404, f"dataset: no stored dataset {body.dataset!r}")
        data_kind, shape, class_names = stored_dataset_shape(body.dataset, state.home)
        if data_kind != "images":
            raise HTTPException(422, f"dataset: {body.dataset!r} holds a table, and '{kind}' trains on images")
        counts = dataset_json(dataset_dir(body.dataset, state.home)).get("counts") or {}
        per_class = max(counts.values(), default=per_class)  # the stored data's own largest class
    else:
        if body.image_size is None or body.class_count is None:
            raise HTTPException(422, "image_size and class_count: give both, or a stored dataset")
        if body.channels not in (1, 3):
            raise HTTPException(422, f"channels: 1 or 3, got {body.channels}")
        shape, class_names = (body.image_size, body.image_size, body.channels), \
            [f"class-{i}" for i in range(body.class_count)]
    try:
        config = api.validate_config(kind, body.config).model_dump(mode="json")
        settings = state.settings
        check_config_size(kind, config, shape, class_names,
                          SubmitLimits(settings.max_generate_n, settings.max_train_steps,
                                       settings.max_model_parameters), field="config")
    except (KeyError, ValueError) as error:
        raise HTTPException(422, f"config: {str(error).removeprefix('config: ')}") from None
    try:
        result = estimate_training(kind, with_progress_grids(kind, body.config), shape, class_names, per_class,
                                   settings.job_threads or None, wait=False)
    except EstimateBusyError as error:
        return JSONResponse({"detail": str(error)}, status_code=429, headers={"Retry-After": "5"})
    except EstimateFailedError as error:
        log.warning("estimate of %s failed: %s", kind, error)
        raise HTTPException(422, f"config: {error}") from None
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    return {**result.to_dict(), "text": describe_seconds(result.seconds), "kind": kind,
            "image_shape": list(shape), "class_count": len(class_names)}
