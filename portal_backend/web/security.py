"""Who is looking at a page, and what they may do there.

Pages use the same tokens as the API: the token sits in the signed session cookie and is
checked on every request, so a revoked token logs the browser out at once.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

from fastapi import Request

from catalog.errors import AuthenticationError, NotAllowedError
from portal_backend.auth.service import ANONYMOUS, Principal
from portal_backend.deps import current_principal

CSRF_KEY = "csrf"


class LoginRequired(Exception):
    """Raised by a page that needs a signed-in user; answered with a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def page_principal(request: Request) -> Principal | None:
    """The signed-in principal, anonymous read when enabled, else None."""
    try:
        principal = current_principal(request)
    except AuthenticationError:
        # A revoked or expired token in the cookie: forget it and treat as signed out.
        request.session.pop("token", None)
        principal = None
    if principal is None and request.app.state.settings.anonymous_read:
        return ANONYMOUS
    return principal


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


def require_page(request: Request, scope: str = "read") -> Principal:
    principal = page_principal(request)
    if principal is None or (principal.is_anonymous and scope != "read"):
        raise LoginRequired(login_url(request))
    if not principal.has_scope(scope):
        raise NotAllowedError(
            f"your token has scope '{principal.scope}'; this page needs '{scope}'. "
            "Sign in with a token that has it."
        )
    return principal


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(24)
        request.session[CSRF_KEY] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Form posts must echo the session's CSRF token (SameSite=Lax covers the rest)."""
    expected = request.session.get(CSRF_KEY)
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise NotAllowedError("the form expired or came from another site; reload and retry")


def safe_next(value: str | None) -> str:
    """Only same-site relative paths may be redirect targets after login."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
