"""The FastAPI application: wiring only. Domains bring their routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import quote

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.middleware.sessions import SessionMiddleware

from product_importer import __version__, wiring
from product_importer.accounts import routes as account_routes
from product_importer.audit import routes as audit_routes
from product_importer.auth import routes as auth_routes
from product_importer.auth.dependencies import (
    LoginRequired,
    PageForbidden,
    PasswordChangeRequired,
    Viewer,
)
from product_importer.auth.ratelimit import SignInGuard
from product_importer.backups import routes as backup_routes
from product_importer.catalog import fields_routes
from product_importer.catalog import routes as catalog_routes
from product_importer.changes import routes as changes_routes
from product_importer.db import Database, is_lock_wait
from product_importer.feeds import routes as feed_routes
from product_importer.imports import routes as import_routes
from product_importer.observability.metrics import QueueDepthCollector
from product_importer.observability.middleware import HttpMetricsMiddleware
from product_importer.settings import Settings
from product_importer.system import metrics_routes
from product_importer.system import routes as system_routes
from product_importer.system.queues import queue_depth_metrics
from product_importer.tasks.dispatch import Dispatcher
from product_importer.tasks.embedded import EmbeddedDispatcher
from product_importer.tasks.registry import TaskContext
from product_importer.templating import STATIC_DIR, templates
from product_importer.web import routes as web_routes
from product_importer.web.request_limit import RequestLimit
from product_importer.web.security import SecurityHeadersMiddleware
from product_importer.webhooks import routes as webhook_routes

log = logging.getLogger(__name__)

API_DESCRIPTION = """
Import, manage and publish a product catalogue.

Authenticate with `Authorization: Bearer <token>` (create one with
`product-importer token create NAME`) or a signed-in browser session; browser requests that
change state also send the `X-CSRF-Token` header. Errors are `{"detail": ...}`.
"""


def _health_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["system"])
    def healthz(request: Request) -> JSONResponse:
        """Liveness and database reachability; needs no credentials."""
        database: Database = request.app.state.database
        try:
            database.ping()
        except SQLAlchemyError:
            return JSONResponse(
                {"status": "error", "database": "unreachable"},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    return router


BUSY_DETAIL = (
    "The catalogue is being changed by a long operation (an import being merged, a "
    "delete-all); nothing was changed. Try again in a few seconds."
)
BUSY_HEADERS = {"Retry-After": "5"}


def _docs_router(app: FastAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    def openapi(_principal: Viewer) -> dict[str, Any]:
        return app.openapi()

    @router.get("/docs")
    def docs(request: Request, _principal: Viewer) -> Response:
        return templates.TemplateResponse(request, "docs.html", {})

    return router


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    dispatcher: Dispatcher | None = None,
) -> FastAPI:
    wiring.connect()
    settings = settings or Settings()
    settings.ensure_home()
    database = database or Database(settings.resolved_database_url)
    if dispatcher is None and settings.distributed:
        from product_importer.tasks.celery_app import CeleryDispatcher

        dispatcher = CeleryDispatcher(settings)
    dispatcher = dispatcher or EmbeddedDispatcher(
        {"webhooks": settings.worker_threads, "default": 2}
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = TaskContext(database=database, settings=settings)
        database.dispatcher = dispatcher
        dispatcher.start(context)
        try:
            yield
        finally:
            dispatcher.stop()
            database.dispatcher = None

    app = FastAPI(
        title="Product Importer",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.signin_guard = SignInGuard(settings, database)
    # Collectors read at each scrape of /metrics (queue depths).
    app.state.metrics_collectors = [
        QueueDepthCollector(partial(queue_depth_metrics, settings, database))
    ]
    # Innermost: requests wait their turn for the pool (web/request_limit.py).
    app.add_middleware(RequestLimit, limit=database.request_slots())
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie="pi_session",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure)
    app.add_middleware(HttpMetricsMiddleware)  # outermost: sees every answer, even redirects

    @app.exception_handler(OperationalError)
    async def database_busy(_request: Request, exc: OperationalError) -> JSONResponse:
        # A request gave up waiting for a lock another writer holds (db.REQUEST_LOCK_WAIT_MS):
        # nothing was written, and the same request can be sent again shortly.
        if not is_lock_wait(exc):
            raise exc
        return JSONResponse(
            {"detail": BUSY_DETAIL}, status_code=status.HTTP_423_LOCKED, headers=BUSY_HEADERS
        )

    @app.exception_handler(PoolTimeout)
    async def pool_exhausted(_request: Request, _exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection free within the pool's timeout")
        return JSONResponse(
            {"detail": "The server is too busy to answer now; try again in a few seconds."},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers=BUSY_HEADERS,
        )

    @app.exception_handler(LoginRequired)
    async def redirect_to_login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def page_forbidden(request: Request, exc: PageForbidden) -> Response:
        return web_routes.forbidden_page(request, exc)

    @app.exception_handler(PasswordChangeRequired)
    async def password_change_required(request: Request, _exc: PasswordChangeRequired) -> Response:
        return RedirectResponse("/account#password-form", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default handler echoes the whole input back; keep the location and reason only.
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(_health_router())
    app.include_router(_docs_router(app))
    app.include_router(metrics_routes.router)
    app.include_router(auth_routes.router)
    app.include_router(changes_routes.router)  # before catalog: /api/products/history
    app.include_router(account_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(import_routes.router)
    app.include_router(feed_routes.router)
    app.include_router(import_routes.mappings_router)
    app.include_router(catalog_routes.router)
    app.include_router(fields_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(backup_routes.router)
    app.include_router(system_routes.router)
    app.include_router(web_routes.router)
    return app
