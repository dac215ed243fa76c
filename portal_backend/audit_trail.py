"""Records every write request in the audit log (pure ASGI middleware).

A write is any POST, PUT, PATCH or DELETE, through the API or a page's form, made by an
authenticated caller (a request refused for want of credentials has no "who" to record).
The row is written when the answer's status is known and before the answer leaves, so
a client that got its answer finds the write in the log. Not recorded: the usage push
(telemetry from services, several a second, not a change anyone made) and sign-in and
sign-out, which the sign-in pages record themselves with what they know.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal_backend.auth import audit
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.logging import get_logger

log = get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_AUDITED_PREFIXES = ("/api/sla/usage", "/login", "/logout")


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or scope["path"].startswith(NOT_AUDITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        recorded = False

        async def send_after_recording(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await to_thread.run_sync(self._record, scope, message["status"])
            await send(message)

        await self.app(scope, receive, send_after_recording)

    @staticmethod
    def _record(scope: Scope, status: int) -> None:
        principal = (scope.get("state") or {}).get("principal")
        if not isinstance(principal, Principal) or principal.is_anonymous:
            return
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"]
        params: dict[str, Any] = scope.get("path_params") or {}
        target = " ".join(f"{k}={v}" for k, v in params.items())
        details: dict[str, Any] = {"path": scope["path"]}
        if scope.get("query_string"):
            details["query"] = scope["query_string"].decode("latin-1")[:500]
        try:
            factory = scope["app"].state.session_factory
            with session_scope(factory) as session:
                audit.record_for(
                    session,
                    principal,
                    f"{scope['method']} {template}",
                    target,
                    status,
                    details,
                )
        except Exception as exc:  # the write happened: its answer must still go out
            log.error("audit.record_failed", path=scope["path"], error=repr(exc))
