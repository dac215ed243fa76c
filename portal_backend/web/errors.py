"""HTML error pages for browser routes; the API keeps Backstage's JSON error body."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from portal_backend.errors import PortalError, error_response
from portal_backend.logging import get_logger
from portal_backend.web.security import LoginRequired
from portal_backend.web.templating import render

log = get_logger(__name__)

# Machine endpoints keep the JSON error body; everything else is a page.
_NOT_BROWSER_PREFIXES = (
    "/api/",
    "/api",
    "/metrics",
    "/healthz",
    "/readyz",
    "/static/",
    "/openapi.json",
    "/docs",
)

_TITLES = {
    400: "That request was not right",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    409: "Conflict",
    422: "That input was not right",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def is_browser_request(request: Request) -> bool:
    path = request.url.path
    if any(path == p.rstrip("/") or path.startswith(p) for p in _NOT_BROWSER_PREFIXES):
        return False
    # Everything outside the API is a page or a page's form post.
    return True


def error_page(request: Request, status: int, message: str) -> Response:
    return render(
        request,
        "error.html",
        {"status": status, "title": _TITLES.get(status, "Error"), "message": message},
        status_code=status,
    )


async def _answer(response: Response | Awaitable[Response]) -> Response:
    """A handler's response: Starlette's handlers may be plain or async functions."""
    return await response if inspect.isawaitable(response) else response


def install_html_error_pages(app: FastAPI) -> None:
    """Wrap the API's handlers: browser routes get an HTML page, the rest keep JSON."""
    api_portal = app.exception_handlers[PortalError]
    api_http = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.next_url, status_code=303)

    @app.exception_handler(PortalError)
    async def _portal(request: Request, exc: PortalError) -> Response:
        if not is_browser_request(request):
            return await _answer(api_portal(request, exc))
        return error_page(request, exc.status_code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not is_browser_request(request):
            return await _answer(api_http(request, exc))
        message = "There is no page at this address." if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, message)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error("web.unhandled", path=request.url.path, error=repr(exc))
        if not is_browser_request(request):
            return error_response(request, 500, "internal error; see the portal log")
        return error_page(request, 500, "The portal hit an unexpected error; it has been logged.")
