"""``POST /api/sla/usage`` served in front of the middleware stack (pure ASGI).

The usage push is the portal's one high-rate route (a batch of 1,000 records every few
milliseconds across a fleet). Going through FastAPI's dependency injection and the three
``BaseHTTPMiddleware``-style layers cost more CPU than parsing and storing the batch, so
this handler answers it directly, doing what those layers did for it: the body-size
limit (413), bearer-token authentication (through a short-TTL token cache), the
request metrics, and errors in the documented shape. Requests without an
``Authorization`` header (a browser session cookie) fall through to the regular route
in ``routers/sla.py``, which also documents the endpoint in the OpenAPI schema. Both
store through the app's one ``UsagePush`` (portal_backend.sla.usage_push).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.to_thread
import orjson
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.errors import AuthenticationError, InputError, PayloadTooLargeError, PortalError
from portal_backend.errors import database_unavailable, error_body
from portal_backend.metrics import HTTP_LATENCY, HTTP_REQUESTS
from portal_backend.settings import Settings

PATH = "/api/sla/usage"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def ingest_limiter(settings: Settings) -> anyio.CapacityLimiter | None:
    """Batches stored at once by this process (``sla_ingest_concurrency``, default 2; 0 =
    the thread pool's default). With one, the process's core idles while its batch waits
    on PostgreSQL (two statements and the commit); a second batch is parsed meanwhile.
    More than one costs where batches share rows: a batch holds its rollup rows locked
    from its first statement to its commit, and a second thread parsing keeps the GIL
    from the lock holder for up to the interpreter's 5 ms switch interval. Measured at
    1,000,000 records on 2 cores (README, SLA performance): 2 beat 1 by 10-20 % when 8
    services push (a fleet: different rows), and lost ~10 % when every batch is one
    service's (all on its hour and day rows). Built once per app by ``create_app``."""
    limit = settings.sla_ingest_concurrency
    return anyio.CapacityLimiter(limit) if limit else None


def _bearer(header: bytes) -> str:
    kind, _, value = header.decode("latin-1").partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    return value.strip()


def _push_with_token(state: Any, body: bytes, token: str) -> dict:
    try:
        principal = state.token_cache.principal(
            state.session_factory, token, state.settings.bootstrap_token
        )
        if principal is None:
            raise AuthenticationError("invalid, expired or revoked token")
        result: dict = state.usage_push.push(body, principal)
    except (OperationalError, InterfaceError) as exc:
        # This path is outside the app's exception handlers: the same 503 they answer
        # (the batch rolled back whole; sending it again stores it once).
        raise database_unavailable(exc) from exc
    except DataError as exc:
        reason = str(exc.orig).splitlines()[0]
        raise InputError(f"A value in the batch cannot be stored: {reason}") from exc
    return result


class UsagePushFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
        if authorization is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        start = time.perf_counter()
        status = 500
        try:
            limit = state.settings.max_request_body_bytes
            if length is not None and length.isdigit() and int(length) > limit:
                raise PayloadTooLargeError(
                    f"request body of {int(length)} bytes exceeds the limit of {limit} bytes"
                )
            token = _bearer(authorization)
            body = await _read_body(receive, limit)
            result = await anyio.to_thread.run_sync(
                _push_with_token, state, body, token, limiter=state.ingest_limiter
            )
            status = 200
            await _send(send, 200, orjson.dumps(result))
        except PortalError as exc:
            status = exc.status_code
            payload = error_body(
                Request(scope),
                status,
                exc.name,
                exc.message,
                [d.as_dict() for d in exc.details] or None,
            )
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await _send(send, status, orjson.dumps(payload), extra)
        finally:
            HTTP_REQUESTS.labels("POST", PATH, str(status)).inc()
            HTTP_LATENCY.labels("POST", PATH).observe(time.perf_counter() - start)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise PortalError("client disconnected before the body was read")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # chunked bodies carry no length to check up front
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
