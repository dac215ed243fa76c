"""Web UI: server-rendered pages (Jinja2 + htmx) over the same domain services as the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from portal_backend.settings import Settings
from portal_backend.web.errors import install_html_error_pages
from portal_backend.web.routes import adapter_diff, router
from portal_backend.web.session import resolve_session_secret

STATIC_DIR = Path(__file__).parent / "static"


def mount_web(app: FastAPI, settings: Settings) -> None:
    """Session cookie, static files, HTML error pages and the page routes."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=resolve_session_secret(settings),
        session_cookie="ragportal_session",
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
        max_age=8 * 3600,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_html_error_pages(app)
    # Before the entity pages: .../resource/<name>/adapter-diff is not an entity tab.
    app.include_router(adapter_diff.router)
    app.include_router(router)
