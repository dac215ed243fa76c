"""Sign in with an API token (kept in the signed session cookie), sign out."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from portal_backend.auth.service import authenticate
from portal_backend.db import session_scope
from portal_backend.web.security import check_csrf, safe_next
from portal_backend.web.templating import render

router = APIRouter()


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    token: str = Form(""),
    next: str = Form("/"),
    csrf: str = Form(""),
) -> Response:
    check_csrf(request, csrf)
    target = safe_next(next)
    token = token.strip()
    error = None
    if not token:
        error = "Paste an API token to sign in (create one with `ragportal token create`)."
    else:
        settings = request.app.state.settings
        with session_scope(request.app.state.session_factory) as session:
            principal = authenticate(session, token, settings.bootstrap_token)
        if principal is None:
            error = "That token is not valid: it is unknown, revoked or expired."
        elif principal.purpose != "api":
            error = "That is an ingest token; it can only push usage. Use an API token."
    if error:
        return render(request, "login.html", {"next": target, "error": error}, status_code=401)
    request.session.clear()  # a fresh session (and CSRF token) for the new identity
    request.session["token"] = token
    return RedirectResponse(target, status_code=303)


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
