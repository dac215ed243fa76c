"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from portal_backend import __version__
from portal_backend.audit_trail import AuditTrail
from portal_backend.auth import oidc
from portal_backend.auth.identity import AccessPolicy
from portal_backend.auth.token_cache import TokenCache
from portal_backend.db import make_engine, make_session_factory
from portal_backend.errors import error_response, install_error_handlers
from portal_backend.logging import get_logger
from portal_backend.mcp.http import PATH as MCP_PATH
from portal_backend.mcp.http import McpEndpoint
from portal_backend.mcp.portal import Portal
from portal_backend.metrics import MetricsMiddleware
from portal_backend.openapi import ERROR_RESPONSES
from portal_backend.read_pool import ReadPool
from portal_backend.routers import catalog as catalog_router
from portal_backend.routers import health, identity, tokens
from portal_backend.routers import rag_services as rag_services_router
from portal_backend.routers import rag_sizing as rag_sizing_router
from portal_backend.routers import scaffolder as scaffolder_router
from portal_backend.routers import scorecards as scorecards_router
from portal_backend.routers import sla as sla_router
from portal_backend.routers.sla_ingest import UsagePushFastPath, ingest_limiter
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.settings import Settings, get_settings
from portal_backend.sla.usage_push import UsagePush
from portal_backend.task_queue import TaskQueue, installed_task_queue
from portal_backend.web import mount_web

log = get_logger(__name__)


class BodySizeLimit:
    """Refuse oversized bodies by their declared length before reading them (pure ASGI).

    The limit is read per request, so a changed setting applies at once.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            limit = self.settings.max_request_body_bytes
            length = Headers(scope=scope).get("content-length")
            if length and length.isdecimal() and int(length) > limit:
                response = error_response(
                    Request(scope),
                    413,
                    f"request body of {length} bytes exceeds the limit of {limit} bytes",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, task_queue: TaskQueue | None = None) -> FastAPI:
    """The portal's ASGI app. ``task_queue``: where submitted scaffolder tasks go (default:
    the installed workers' Celery queue, see portal_backend.task_queue)."""
    settings = settings or get_settings()
    settings.ensure_dirs()
    task_queue = task_queue or installed_task_queue(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("portal.start", database=settings.database_url.split("@")[-1])
        register_shipped_templates(settings, app.state.session_factory)
        async with app.state.mcp.running():
            yield
        app.state.engine.dispose()

    app = FastAPI(title="rag-portal", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.session_factory = make_session_factory(app.state.engine)
    # App-wide objects: built here once, read by the HTTP adapters (portal_backend.deps).
    app.state.scaffolder_dispatch = task_queue.dispatch()
    app.state.access_policy = AccessPolicy(admin_group=settings.admin_group)
    app.state.token_cache = TokenCache(settings.token_cache_s, policy=app.state.access_policy)
    app.state.read_pool = ReadPool(settings.catalog_read_threads)
    app.state.oidc = oidc.client_from_settings(settings)  # None: token sign-in only
    app.state.usage_push = UsagePush(settings, app.state.session_factory)
    app.state.ingest_limiter = ingest_limiter(settings)
    # The MCP server (streamable HTTP at /mcp): the same domain calls, for AI clients.
    app.state.mcp = McpEndpoint(
        Portal(
            settings=settings,
            session_factory=app.state.session_factory,
            dispatch=app.state.scaffolder_dispatch,
            access_policy=app.state.access_policy,
        )
    )

    install_error_handlers(app)
    app.add_middleware(AuditTrail)  # every write, with the principal the request resolved
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodySizeLimit, settings=settings)

    app.include_router(health.router)
    for api in (
        tokens,
        identity,
        rag_sizing_router,
        rag_services_router,
        catalog_router,
        scaffolder_router,
        sla_router,
        scorecards_router,
    ):
        app.include_router(api.router, responses=ERROR_RESPONSES)  # the error body, documented
    app.router.routes.append(Route(MCP_PATH, endpoint=app.state.mcp))  # AI clients (MCP)
    mount_web(app, settings)  # web UI at `/`; after the API routers
    # Added last, so outermost: the usage push skips the other layers.
    app.add_middleware(UsagePushFastPath)
    return app
