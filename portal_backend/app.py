"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import Response

from portal_backend import __version__
from portal_backend.db import make_engine, make_session_factory
from portal_backend.errors import error_response, install_error_handlers
from portal_backend.logging import get_logger
from portal_backend.metrics import metrics_middleware
from portal_backend.routers import catalog as catalog_router
from portal_backend.routers import health, tokens
from portal_backend.routers import rag_services as rag_services_router
from portal_backend.routers import rag_sizing as rag_sizing_router
from portal_backend.routers import scaffolder as scaffolder_router
from portal_backend.routers import sla as sla_router
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.settings import Settings, get_settings
from portal_backend.web import mount_web

log = get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("portal.start", database=settings.database_url.split("@")[-1])
        register_shipped_templates(settings, app.state.session_factory)
        yield
        app.state.engine.dispose()

    app = FastAPI(title="rag-portal", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.session_factory = make_session_factory(app.state.engine)

    install_error_handlers(app)
    app.middleware("http")(metrics_middleware)

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next):  # type: ignore[no-untyped-def]
        # Refuse oversized bodies by their declared length before reading them.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_request_body_bytes:
            return error_response(
                request,
                413,
                f"request body of {length} bytes exceeds the limit of "
                f"{settings.max_request_body_bytes} bytes",
            )
        response: Response = await call_next(request)
        return response

    app.include_router(health.router)
    app.include_router(tokens.router)
    app.include_router(rag_sizing_router.router)
    app.include_router(rag_services_router.router)
    app.include_router(catalog_router.router)
    app.include_router(scaffolder_router.router)
    app.include_router(sla_router.router)
    mount_web(app, settings)  # web UI at `/`; after the API routers
    sla_router.install_usage_fast_path(app)  # outermost: the usage push skips the layers
    return app
