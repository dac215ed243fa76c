"""HTTP mapping of domain errors to Backstage's error body.

Body: ``{error: {name, message, details?}, request: {method, url}, response: {statusCode}}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        return error_response(
            request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
        )
