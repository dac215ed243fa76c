"""Sign in (the identity provider when one is configured, or a pasted API token), sign
out. Both kinds end up in the signed session cookie and resolve to one principal model
(portal_backend.deps.current_principal)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from portal_backend.auth import audit
from portal_backend.auth.oidc import OidcClient, SignInError
from portal_backend.auth.service import authenticate
from portal_backend.auth.sessions import end_session, session_principal
from portal_backend.auth.signin import SignInRefused, SignInRules, sign_in
from portal_backend.db import session_scope
from portal_backend.deps import SESSION_ID_KEY, SESSION_TOKEN_KEY, access_policy
from portal_backend.logging import get_logger
from portal_backend.web.security import check_csrf, safe_next
from portal_backend.web.templating import render

router = APIRouter()
log = get_logger(__name__)

# What the browser carries between leaving for the provider and coming back.
PENDING_KEY = "oidc_pending"
ID_TOKEN_KEY = "oidc_id_token"


def _oidc(request: Request) -> OidcClient | None:
    client: OidcClient | None = request.app.state.oidc
    return client


def _login_page(
    request: Request, next_url: str, error: str | None = None, status: int = 200
) -> Response:
    client = _oidc(request)
    context: dict[str, Any] = {
        "next": next_url,
        "error": error,
        "oidc": client is not None,
        "issuer_host": urlsplit(client.config.issuer).netloc if client else None,
        "signed_out": request.query_params.get("signed_out") == "1",
    }
    return render(request, "login.html", context, status_code=status)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    token: str = Form(""),
    next: str = Form("/"),
    csrf: str = Form(""),
) -> Response:
    """Sign in with a pasted API token (automation users, and the embedded default)."""
    check_csrf(request, csrf)
    target = safe_next(next)
    token = token.strip()
    error = None
    principal = None
    if not token:
        error = "Paste an API token to sign in (create one with `ragportal token create`)."
    else:
        settings = request.app.state.settings
        with session_scope(request.app.state.session_factory) as session:
            principal = authenticate(
                session, token, settings.bootstrap_token, access_policy(request)
            )
            if principal is not None and principal.purpose == "api":
                audit.record_for(session, principal, "auth.signin", "api token")
        if principal is None:
            error = "That token is not valid: it is unknown, revoked or expired."
        elif principal.purpose != "api":
            error = "That is an ingest token; it can only push usage. Use an API token."
    if error:
        return _login_page(request, target, error, status=401)
    request.session.clear()  # a fresh session (and CSRF token) for the new identity
    request.session[SESSION_TOKEN_KEY] = token
    return RedirectResponse(target, status_code=303)


@router.get("/login/oidc")
def login_oidc(request: Request, next: str = "/") -> Response:
    """Off to the identity provider (authorization code + PKCE)."""
    client = _oidc(request)
    if client is None:
        return _login_page(request, safe_next(next), "No identity provider is configured.", 404)
    try:
        start = client.begin()
    except SignInError as exc:
        return _login_page(request, safe_next(next), exc.message, exc.status_code)
    request.session[PENDING_KEY] = {
        "state": start.state,
        "nonce": start.nonce,
        "verifier": start.code_verifier,
        "next": safe_next(next),
    }
    return RedirectResponse(start.url, status_code=303)


@router.get("/login/oidc/callback")
def login_oidc_callback(request: Request) -> Response:
    """Back from the identity provider: check its answer, find the user in the catalog,
    start a session."""
    client = _oidc(request)
    pending = request.session.pop(PENDING_KEY, None) or {}
    target = safe_next(pending.get("next"))
    if client is None:
        return _login_page(request, target, "No identity provider is configured.", 404)
    params = request.query_params
    if params.get("error"):
        message = params.get("error_description") or params["error"]
        return _login_page(request, target, f"The identity provider said: {message}", 401)
    factory = request.app.state.session_factory
    try:
        signed_in = client.finish(
            code=params.get("code", ""),
            state=params.get("state", ""),
            expected_state=pending.get("state", ""),
            nonce=pending.get("nonce", ""),
            code_verifier=pending.get("verifier", ""),
            issuer=params.get("iss"),
        )
        rules = SignInRules.from_settings(request.app.state.settings)
        with session_scope(factory) as session:
            user_session = sign_in(session, signed_in.claims, rules, client.config.issuer)
            principal = session_principal(session, user_session.id, access_policy(request))
            if principal is not None:
                audit.record_for(session, principal, "auth.signin", client.config.issuer)
    except SignInRefused as exc:
        log.info("auth.signin_refused", reason=exc.message)
        return render(request, "signin_refused.html", {"message": exc.message}, 403)
    except SignInError as exc:
        log.info("auth.signin_failed", reason=exc.message)
        return _login_page(request, target, exc.message, exc.status_code)
    request.session.clear()  # a fresh session (and CSRF token) for the new identity
    request.session[SESSION_ID_KEY] = user_session.id
    request.session[ID_TOKEN_KEY] = signed_in.id_token
    return RedirectResponse(target, status_code=303)


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request) -> Response:
    """Ends the session here (a copied cookie stops working too) and, for a session from
    the identity provider, there as well (RP-initiated logout)."""
    session_id = request.session.get(SESSION_ID_KEY)
    id_token = request.session.get(ID_TOKEN_KEY)
    if session_id:
        with session_scope(request.app.state.session_factory) as session:
            principal = session_principal(session, str(session_id), access_policy(request))
            end_session(session, str(session_id))
            if principal is not None:
                audit.record_for(session, principal, "auth.signout")
    request.session.clear()
    client = _oidc(request)
    if session_id and client is not None:
        back = request.app.state.settings.base_url.rstrip("/") + "/login?signed_out=1"
        url = client.logout_url(id_token, back)
        if url:
            return RedirectResponse(url, status_code=303)
    return RedirectResponse("/login?signed_out=1", status_code=303)
