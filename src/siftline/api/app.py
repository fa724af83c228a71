"""The FastAPI application: routers, the one error envelope, start-up and shut-down."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from siftline import __version__
from siftline.api import ui
from siftline.api.bodies import BodyLimit
from siftline.api.hot import HotPaths
from siftline.api.routes import (
    collections,
    documents,
    evaluations,
    executions,
    health,
    interactions,
    metrics,
    namespaces,
    retrievers,
)
from siftline.api.telemetry import HttpMetrics
from siftline.config import Settings
from siftline.errors import (
    BadRequestError,
    InternalServerError,
    NotFoundError,
    SiftlineError,
    UnauthorizedError,
    ValidationError,
)
from siftline.service.container import Services

log = logging.getLogger("siftline")

_BY_STATUS: dict[int, type[SiftlineError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    422: ValidationError,
}


def _envelope(error: SiftlineError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=error.status, headers=error.headers)


def _validation_errors(exc: RequestValidationError) -> ValidationError:
    errors = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, str | int)]
        errors.append({"loc": loc, "msg": err.get("msg", "invalid"), "type": err.get("type", "value_error")})
    listed = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10])
    return ValidationError(f"Request validation failed: {listed}", errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SiftlineError)
    async def _siftline(_: Request, exc: SiftlineError) -> JSONResponse:
        if exc.status == 503:  # the database is away: said once per request, no traceback
            log.warning("unavailable: %s", exc.message)
        elif exc.status >= 500:
            log.error("internal error: %s", exc.message, exc_info=exc)
        return _envelope(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _envelope(_validation_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _BY_STATUS.get(exc.status_code, BadRequestError)
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; see /docs for the API."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}; see /docs."
        error = cls(message)
        error.status = exc.status_code
        return _envelope(error)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _envelope(InternalServerError("Internal server error; the server log has the details."))


def create_app(
    settings: Settings | None = None, services: Services | None = None, *, close_services: bool = False
) -> FastAPI:
    """The application; ``services`` may be given (tests), otherwise opened from ``settings``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None or close_services  # closed at shutdown, before the process exits
        svc = services or Services.open(settings)
        svc.bootstrap()
        if svc.storage.count_keys() == 0:
            where = (
                "SIFTLINE_STORAGE=postgres SIFTLINE_POSTGRES_URL=<the same URL> siftline keys create"
                if svc.settings.storage == "postgres"
                else f"siftline keys create --data-dir {svc.settings.data_dir}"
            )
            log.warning(
                "No API key exists yet: create one with `%s` (every route but /v1/health needs one).", where
            )
        app.state.services = svc
        # Blocking handlers run on this many threads at once; more only add GIL hand-offs (measured by
        # benchmarks/load.py: see docs/BENCHMARKS.md), the rest wait their turn on the event loop.
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        # A bulk load makes millions of short-lived objects; the cyclic collector's default young
        # generation (700 allocations) ran it over and over (measured: +12 % NDJSON ingest rate at 50k).
        gc.freeze()  # what start-up made stays: never traversed again
        gc.set_threshold(50_000, 20, 50)
        try:
            yield
        finally:
            if owned:
                svc.close()

    app = FastAPI(
        title="Siftline",
        version=__version__,
        description="Self-hosted retrieval engine speaking Mixpeek's retriever protocol.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    app.add_middleware(HotPaths)  # inside BodyLimit: the size limit applies to it too
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    if settings.metrics_access != "off":
        app.add_middleware(HttpMetrics)  # outermost: counts what BodyLimit refuses too

    for module in (
        health,
        namespaces,
        collections,
        documents,
        interactions,
        evaluations,
        executions,
        retrievers,
    ):
        app.include_router(module.router)
    if settings.metrics_access != "off":
        app.include_router(metrics.router)
    ui.install(app)  # the execution inspector at /ui (its own cookie sessions; /v1 keeps Bearer keys)
    return app


def app_factory() -> Any:
    """For ``uvicorn --factory siftline.api.app:app_factory``: settings from the environment."""
    return create_app(Settings())
