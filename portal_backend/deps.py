"""What HTTP adapters (routers, web pages) get from the request: who is calling and
whether they may, and the app-wide objects ``create_app`` built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_origin

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from catalog.errors import AuthenticationError, ErrorDetail, InputError, NotAllowedError
from portal_backend.auth.identity import AccessPolicy
from portal_backend.auth.service import ANONYMOUS, Principal
from portal_backend.auth.sessions import session_principal
from portal_backend.auth.token_cache import TokenCache
from portal_backend.db import session_scope
from portal_backend.read_pool import ReadPool
from portal_backend.scaffolder.engine import Dispatch
from portal_backend.sla.usage_push import UsagePush

# -- app-wide objects (built once in create_app) --------------------------------------


def scaffolder_dispatch(request: Request) -> Dispatch:
    """Sends a newly submitted scaffolder task's next step to the task queue."""
    dispatch: Dispatch = request.app.state.scaffolder_dispatch
    return dispatch


def token_cache(request: Request) -> TokenCache:
    """This process's cache of verified tokens (the usage push's)."""
    cache: TokenCache = request.app.state.token_cache
    return cache


def access_policy(request: Request) -> AccessPolicy:
    """Site-wide rules that turn a user's groups into rights (the admin group)."""
    policy: AccessPolicy = request.app.state.access_policy
    return policy


def read_pool(request: Request) -> ReadPool:
    """The few threads short catalog reads run on (``portal_backend.read_pool``)."""
    pool: ReadPool = request.app.state.read_pool
    return pool


def usage_push(request: Request) -> UsagePush:
    push: UsagePush = request.app.state.usage_push
    return push


# -- the caller ------------------------------------------------------------------------


# Declares the bearer token in the OpenAPI description (with the scope each route needs,
# as OpenAPI 3.1 allows for any scheme); the header itself is read by _bearer below,
# which also takes the web UI's cookie and answers a malformed header with a clear 401.
BEARER = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="rp_...",
    description="an API token (`ragportal token create`); scopes: read < write < admin",
    auto_error=False,
)
BearerDeclared = HTTPAuthorizationCredentials | None

SESSION_TOKEN_KEY = "token"  # the web UI's pasted API token, in the signed cookie
SESSION_ID_KEY = "sid"  # a session signed in through the identity provider


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <token>'")
        return value.strip()
    return None


def current_principal(request: Request) -> Principal | None:
    """The caller, or None when no credentials were presented: a bearer token, else the
    web UI's session cookie (a pasted token or a signed-in session). One model for both,
    so every rule below applies to people and automation alike."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _bearer(request)
    cookie = request.scope.get("session") or {}
    if token is None:
        token = cookie.get(SESSION_TOKEN_KEY)
    session_id = None if token is not None else cookie.get(SESSION_ID_KEY)
    if token is None and session_id is None:
        return None
    settings = request.app.state.settings
    factory = request.app.state.session_factory
    if token is not None:
        principal = token_cache(request).principal(factory, token, settings.bootstrap_token)
    else:
        with session_scope(factory) as session:
            principal = session_principal(session, str(session_id), access_policy(request))
    if principal is None:
        raise AuthenticationError(
            "invalid, expired or revoked token"
            if token is not None
            else "your session has ended; sign in again"
        )
    request.state.principal = principal
    return principal


async def resolve_principal(request: Request) -> Principal | None:
    """``current_principal`` for the dependencies below: a bearer token this process
    verified in the last few seconds (``TokenCache``), or no credentials at all, are
    answered on the event loop; anything else is looked up on a thread."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _bearer(request)
    if token is not None:
        principal = token_cache(request).cached(token)
        if principal is not None:
            request.state.principal = principal
            return principal
    elif not request.scope.get("session"):
        return None  # no token, no session cookie: anonymous
    return await run_in_threadpool(current_principal, request)


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller must hold ``scope`` (read < write < admin)."""

    async def dependency(request: Request, _: BearerDeclared = Depends(BEARER)) -> Principal:
        principal = await resolve_principal(request)
        if principal is None:
            if scope == "read" and request.app.state.settings.anonymous_read:
                return ANONYMOUS
            raise AuthenticationError(
                "authentication required: send 'Authorization: Bearer <token>' "
                "(create one with `ragportal token create`)"
            )
        if not principal.has_scope(scope):
            raise NotAllowedError(
                f"this token has scope '{principal.scope}' ({principal.purpose}); "
                f"'{scope}' is needed"
            )
        return principal

    return dependency


def require_principal() -> Callable[..., Awaitable[Principal]]:
    """Any authenticated caller, whatever its purpose (ingest tokens included)."""

    async def dependency(request: Request, _: BearerDeclared = Depends(BEARER)) -> Principal:
        principal = await resolve_principal(request)
        if principal is None:
            raise AuthenticationError(
                "authentication required: send 'Authorization: Bearer <token>'"
            )
        return principal

    return dependency


# -- query strings as shared request models --------------------------------------------

Model = TypeVar("Model", bound=BaseModel)


def query_model(model: type[Model]) -> Callable[[Request], Model]:
    """Dependency: the query string parsed into ``model`` (a request model another adapter,
    the MCP server, shares). A bad value is a 400 naming the parameter, as the catalog's
    hand-parsed parameters always answered (FastAPI's own query models answer 422)."""
    lists = {name for name, f in model.model_fields.items() if get_origin(f.annotation) is list}

    def dependency(request: Request) -> Model:
        params = request.query_params
        raw: dict[str, Any] = {
            name: params.getlist(name) if name in lists else params.get(name)
            for name in model.model_fields
            if name in params
        }
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            details = [
                ErrorDetail(".".join(str(part) for part in error["loc"]), error["msg"])
                for error in exc.errors()
            ]
            summary = "; ".join(f"{d.path}: {d.message}" for d in details)
            raise InputError(f"invalid query parameters: {summary}", details) from None

    return dependency


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI description of ``model``'s fields as query parameters (for a route
    that parses them with ``query_model``)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field}
        for name, field in schema["properties"].items()
    ]


ReadPrincipal = Security(require_scope("read"), scopes=["read"])
WritePrincipal = Security(require_scope("write"), scopes=["write"])
AdminPrincipal = Security(require_scope("admin"), scopes=["admin"])
