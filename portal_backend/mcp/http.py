"""Streamable HTTP at ``/mcp``, inside the portal's app.

Every HTTP request carries a portal token (``Authorization: Bearer``), resolved to the
caller before the MCP transport sees the request; a missing or refused token is answered
401 (403 for a token that may not read) in the REST API's error shape. Stateless mode:
no MCP session outlives its request, so each call runs with the rights its token has
at that moment (a revoked token stops at once) and any portal process can answer it.
Bearer tokens only, never the web UI's cookie: a web page cannot make a browser call
tools on its user's behalf.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from anyio import to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from catalog.errors import AuthenticationError, PortalError
from portal_backend.auth.service import Principal
from portal_backend.errors import error_response
from portal_backend.mcp.portal import Portal
from portal_backend.mcp.server import build_server

PATH = "/mcp"
STATE_KEY = "mcp_principal"  # not "principal": the audit trail records tool writes itself


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    kind, _, token = value.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    request = ctx.request
    principal = (getattr(request, "scope", None) or {}).get("state", {}).get(STATE_KEY)
    if not isinstance(principal, Principal):  # the endpoint below always sets it
        raise MCPError(types.INVALID_REQUEST, "no authenticated caller for this request")
    return principal


class McpEndpoint:
    """The ASGI endpoint mounted at ``/mcp``: authenticate, then the SDK's transport."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.server = build_server(portal, _principal_of)
        self.sessions = StreamableHTTPSessionManager(
            app=self.server, stateless=True, json_response=True
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The transport's task group, for the app's lifespan."""
        async with self.sessions.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            token = _bearer(Headers(scope=scope))
            principal = await to_thread.run_sync(self.portal.principal_for_token, token)
        except PortalError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="rag-portal"'}
            if not isinstance(exc, AuthenticationError):
                headers = {}
            response = error_response(Request(scope), exc.status_code, exc.message, headers=headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = principal
        await self.sessions.handle_request(scope, receive, send)
