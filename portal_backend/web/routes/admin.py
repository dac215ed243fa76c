"""Admin: API tokens (create with scope, shown once, revoke); price table and budgets."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from portal_backend.auth import revocation
from portal_backend.auth.service import SCOPES, create_token, list_tokens
from portal_backend.db import session_scope
from portal_backend.deps import token_cache
from portal_backend.errors import PortalError
from portal_backend.sla import budgets, costs
from portal_backend.sla.clock import utcnow
from portal_backend.web.security import check_csrf, require_page
from portal_backend.web.templating import render

router = APIRouter()


def _admin_page(request: Request, **extra: object) -> Response:
    require_page(request, "admin")
    with session_scope(request.app.state.session_factory) as session:
        prices = sorted(costs.get_prices(session).items())
        service_budgets = budgets.list_budgets(session)["items"]
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
    context: dict[str, Any] = {
        "tokens": tokens,
        "scopes": SCOPES,
        "created": None,
        "error": None,
        "form": {},
        "prices": prices,
        "price_error": None,
        "budgets": service_budgets,
        "budget_error": None,
        "saved": request.query_params.get("saved"),
    }
    context.update(extra)
    failed = any(context.get(k) for k in ("error", "price_error", "budget_error"))
    status = 400 if failed else 200
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
    acts_as_user: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    principal = require_page(request, "admin")
    check_csrf(request, csrf)
    form = {
        "name": name,
        "scope": scope,
        "subject": subject,
        "owner_group": owner_group,
        "acts_as_user": bool(acts_as_user),
    }
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
                acts_as_user=bool(acts_as_user),
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
    # The same revocation as the API's: the token is refused at once, cached or not.
    revocation.revoke(request.app.state.session_factory, token_cache(request), token_id)
    return RedirectResponse("/admin#tokens", status_code=303)


@router.post("/admin/prices")
async def save_prices(request: Request) -> Response:
    """The whole price table at once: one input per item, plus one new item."""
    principal = require_page(request, "admin")
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    prices: dict[str, float] = {}
    problems: list[str] = []
    rows = [
        (str(k)[len("price:") :], str(v)) for k, v in form.items() if str(k).startswith("price:")
    ]
    new_item = str(form.get("new_item") or "").strip().lower()
    if new_item:
        rows.append((new_item, str(form.get("new_usd") or "")))
    for item, text in rows:
        if not text.strip():
            continue  # an emptied price removes the item
        try:
            prices[item] = float(text)
        except ValueError:
            problems.append(f"{item}: '{text}' is not a number")
    if problems:
        return _admin_page(request, price_error="; ".join(problems))
    try:
        with session_scope(request.app.state.session_factory) as session:
            costs.set_prices(session, prices, utcnow(), principal.subject)
    except PortalError as exc:
        details = "; ".join(f"{d.path}: {d.message}" for d in exc.details)
        return _admin_page(
            request, price_error=f"{exc.message}: {details}" if details else exc.message
        )
    return RedirectResponse("/admin?saved=prices#prices", status_code=303)


def _split_ref(ref: str) -> tuple[str, str, str]:
    kind, _, rest = ref.strip().partition(":")
    if not rest:
        kind, rest = "component", kind
    namespace, _, name = rest.rpartition("/")
    return kind.lower(), (namespace or "default").lower(), name.lower()


@router.post("/admin/budgets")
def save_budget(
    request: Request, ref: str = Form(""), monthly_usd: str = Form(""), csrf: str = Form("")
) -> Response:
    principal = require_page(request, "admin")
    check_csrf(request, csrf)
    kind, namespace, name = _split_ref(ref)
    try:
        amount = float(monthly_usd)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount):
        return _admin_page(request, budget_error=f"Monthly budget '{monthly_usd}' is not a number.")
    if not name or amount < 0:
        return _admin_page(
            request, budget_error="Give a service or group ref and a budget of 0 or more USD."
        )
    try:
        ref = budgets.budget_ref(kind, namespace, name)
        with session_scope(request.app.state.session_factory) as session:
            budgets.set_budget(session, ref, amount, by=principal.subject, now=utcnow())
    except PortalError as exc:
        return _admin_page(request, budget_error=exc.message)
    return RedirectResponse("/admin?saved=budgets#budgets", status_code=303)


@router.post("/admin/budgets/delete")
def delete_budget(request: Request, ref: str = Form(""), csrf: str = Form("")) -> Response:
    require_page(request, "admin")
    check_csrf(request, csrf)
    budget = budgets.budget_ref(*_split_ref(ref))
    with session_scope(request.app.state.session_factory) as session:
        budgets.delete_budget(session, budget)
    return RedirectResponse("/admin?saved=budgets#budgets", status_code=303)
