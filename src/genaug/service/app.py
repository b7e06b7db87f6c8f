"""The FastAPI app: REST API under /api, the web UI at /, OpenAPI at /docs.

Route handlers only translate HTTP to genaug's Python API (and the job table) and back;
what a job does lives in ``genaug.jobs``.
"""
from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..jobs.table import JobStore
from ..store.registry import Registry
from .auth import ServiceState, State
from .body_limit import BodyLimitMiddleware
from .routes_data import router as data_router
from .routes_data import warm_kind_documents
from .routes_gallery import router as gallery_router
from .routes_jobs import router as jobs_router
from .routes_plan import router as plan_router
from .routes_tokens import router as tokens_router
from .settings import ServiceSettings
from .uploads import UploadError, remove_stale_uploads

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def _readable(errors: list[dict[str, Any]]) -> str:
    """FastAPI's validation errors as one line naming each field."""
    parts = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        parts.append(f"{'.'.join(location) or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(settings: Optional[ServiceSettings] = None) -> FastAPI:
    """The service's app for ``settings`` (default: read from the environment)."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        home = settings.home_path()
        registry = Registry.open(home, settings.database_url)
        remove_stale_uploads(home)
        app.state.genaug = ServiceState(settings, home, registry, JobStore(registry))
        # Import every generator kind and build their schemas now, in the background, so that
        # the first page load does not wait seconds for /api/kinds.
        threading.Thread(target=warm_kind_documents, daemon=True, name="genaug-warm-kinds").start()
        try:
            yield
        finally:
            registry.close()

    # /docs is served with Swagger UI's files from the swagger-ui-bundle package, not from a CDN:
    # the page works on a machine without internet. (ReDoc has no offline bundle: off.)
    app = FastAPI(title="genaug", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Generative data augmentation: upload images, train generators, generate, evaluate.")
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                       exempt=lambda method, path: method == "POST" and path.rstrip("/") == "/api/datasets")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        return JSONResponse({"detail": _readable(errors), "errors": jsonable(errors)}, status_code=422)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, error: UploadError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else str(error.detail)
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.get("/api/health", tags=["service"])
    def health(state: State) -> dict[str, Any]:
        """Liveness and the auth policy (always open)."""
        return {"status": "ok", "version": __version__, "read_requires_token": state.settings.read_requires_token}

    _mount_docs(app)
    app.include_router(data_router)
    app.include_router(jobs_router)
    app.include_router(tokens_router)
    app.include_router(plan_router)
    app.include_router(gallery_router)

    if WEB_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from local files (``/docs-assets``)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs/openapi.json", include_in_schema=False)
    def docs_schema() -> dict[str, Any]:
        # The Swagger UI that ships offline (4.x) refuses to draw an "openapi: 3.1" document;
        # FastAPI's schema reads fine under the 3.0 label. /openapi.json itself stays 3.1.
        return {**app.openapi(), "openapi": "3.0.3"}

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/docs/openapi.json", title="genaug API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


def jsonable(value: Any) -> Any:
    """Validation error details made JSON-safe (they may hold exceptions in ``ctx``)."""
    from fastapi.encoders import jsonable_encoder

    try:
        return jsonable_encoder(value)
    except Exception:  # noqa: BLE001
        return [{k: str(v) for k, v in item.items()} for item in value]
