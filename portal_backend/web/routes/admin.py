"""Admin: API tokens (create with scope, shown once, revoke); price table and budgets."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from portal_backend.auth.service import SCOPES, create_token, list_tokens, revoke_token
from portal_backend.db import session_scope
from portal_backend.errors import PortalError
from portal_backend.web.security import check_csrf, require_page
from portal_backend.web.templating import render

router = APIRouter()


def _admin_page(request: Request, **extra: object) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        tokens = [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.token_prefix,
                "scope": t.scope,
                "purpose": t.purpose,
                "subject": t.subject,
                "group": t.owner_group,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
            }
            for t in list_tokens(session)
        ]
    context = {"tokens": tokens, "scopes": SCOPES, "created": None, "error": None, "form": {}}
    context.update(extra)
    status = 400 if context.get("error") else 200
    return render(request, "admin.html", context, status_code=status)


@router.get("/admin")
def admin(request: Request) -> Response:
    require_page(request, "admin")
    return _admin_page(request)


@router.post("/admin/tokens")
def create(
    request: Request,
    name: str = Form(""),
    scope: str = Form("read"),
    subject: str = Form(""),
    owner_group: str = Form(""),
    expires_in_days: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    principal = require_page(request, "admin")
    check_csrf(request, csrf)
    form = {"name": name, "scope": scope, "subject": subject, "owner_group": owner_group}
    days: int | None = None
    if expires_in_days.strip():
        if not expires_in_days.strip().isdigit() or not 1 <= int(expires_in_days) <= 3650:
            return _admin_page(
                request, error="Expires in days must be a whole number from 1 to 3650.", form=form
            )
        days = int(expires_in_days)
    try:
        with session_scope(request.app.state.session_factory) as session:
            created = create_token(
                session,
                name=name,
                scope=scope,
                subject=subject.strip() or principal.subject,
                owner_group=owner_group.strip() or None,
                created_by=principal.subject,
                expires_in_days=days,
            )
            shown = {"name": created.record.name, "scope": scope, "token": created.token}
    except PortalError as exc:
        return _admin_page(request, error=exc.message, form=form)
    # The plain token is rendered once in this response and never stored.
    return _admin_page(request, created=shown)


@router.post("/admin/tokens/{token_id}/revoke")
def revoke(request: Request, token_id: str, csrf: str = Form("")) -> Response:
    require_page(request, "admin")
    check_csrf(request, csrf)
    with session_scope(request.app.state.session_factory) as session:
        revoke_token(session, token_id)
    return RedirectResponse("/admin#tokens", status_code=303)
