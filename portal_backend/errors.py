"""HTTP mapping of domain errors to Backstage's error body.

Body: ``{error: {name, message, details?}, request: {method, url}, response: {statusCode}}``.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from catalog.errors import (  # noqa: F401  (re-exported for the HTTP layer)
    AuthenticationError,
    ConflictError,
    ErrorDetail,
    InputError,
    NotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PortalError,
    ServiceUnavailableError,
    UnprocessableError,
)

_NAMES = {
    400: "InputError",
    401: "AuthenticationError",
    403: "NotAllowedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    422: "InputError",
    503: "ServiceUnavailableError",
}


def error_body(
    request: Request, status: int, name: str, message: str, details: list[dict[str, Any]] | None
) -> dict[str, Any]:
    error: dict[str, Any] = {"name": name, "message": message}
    if details:
        error["details"] = details
    return {
        "error": error,
        "request": {"method": request.method, "url": str(request.url.path)},
        "response": {"statusCode": status},
    }


def error_response(
    request: Request,
    status: int,
    message: str,
    name: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = error_body(request, status, name or _NAMES.get(status, "Error"), message, details)
    return JSONResponse(body, status_code=status, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PortalError)
    async def _portal_error(request: Request, exc: PortalError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return error_response(
            request,
            exc.status_code,
            exc.message,
            exc.name,
            [d.as_dict() for d in exc.details],
            headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"path": _field_path(err["loc"]), "message": err["msg"]} for err in exc.errors()]
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details)
        return error_response(request, 422, f"Invalid request: {summary}", "InputError", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(request, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_unavailable(request: Request, exc: Exception) -> Any:
        """The database went away under a request (restarted, unreachable, SQLite's file
        locked past the wait): a 503 that says so; the transaction rolled back whole and
        the pool reconnects, so the same request can simply be sent again."""
        answer = request.app.exception_handlers[PortalError](request, database_unavailable(exc))
        return await answer if inspect.isawaitable(answer) else answer

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Any:
        """The database refused a value the request carried (PostgreSQL's class 22: a NUL
        character in text, an integer beyond its column's range): bad input, a 400 with
        the database's reason, not a 500. SQLite stores such values, so only one of the
        two databases saw them fail (found by schemathesis, tests/api_contract)."""
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        error = InputError(f"A value in the request cannot be used: {reason}")
        # Through the PortalError handler installed last (the web UI wraps it in a page).
        answer = request.app.exception_handlers[PortalError](request, error)
        return await answer if inspect.isawaitable(answer) else answer


def database_unavailable(exc: Exception) -> ServiceUnavailableError:
    """What a request that met a lost or unreachable database answers (503)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return ServiceUnavailableError(
        f"The database is unavailable ({reason}); nothing was changed. Send the request again "
        "in a few seconds."
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own 405 names only the
    first route whose path matched, so a path served by a GET and a POST route answered
    ``Allow: POST`` to a PUT (RFC 9110: Allow lists all the target's methods)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)
