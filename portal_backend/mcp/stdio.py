"""``ragportal mcp``: the same MCP server over stdin/stdout, for clients that start their
servers as commands. It runs with this machine's settings (its database, its task queue:
tasks it creates are run by the portal's workers) and the rights of one portal token,
checked again at every request, so a revoked token stops working mid-session."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from catalog.errors import PortalError
from portal_backend.auth.identity import AccessPolicy
from portal_backend.auth.service import Principal
from portal_backend.db import make_engine, make_session_factory
from portal_backend.mcp.portal import Portal
from portal_backend.mcp.server import build_server
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.settings import Settings
from portal_backend.task_queue import installed_task_queue


def portal_for(settings: Settings) -> Portal:
    """The app-wide objects, built as ``create_app`` builds them."""
    factory = make_session_factory(make_engine(settings.database_url))
    return Portal(
        settings=settings,
        session_factory=factory,
        dispatch=installed_task_queue(settings).dispatch(),
        access_policy=AccessPolicy(admin_group=settings.admin_group),
    )


def serve(settings: Settings, token: str | None) -> None:
    """Serve MCP on stdin/stdout until the client closes it. A missing, unknown or
    read-less token is refused at start (PortalError), not at the first call."""
    portal = portal_for(settings)
    portal.principal_for_token(token)
    register_shipped_templates(settings, portal.session_factory)

    def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
        try:
            return portal.principal_for_token(token)
        except PortalError as exc:
            raise MCPError(types.INVALID_REQUEST, exc.message) from exc

    server = build_server(portal, principal_of)

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(run)
