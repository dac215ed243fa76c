"""Jinja2 environment and the one render helper every page uses."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from starlette.responses import HTMLResponse

from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.web import links
from portal_backend.web.security import csrf_token, page_principal

TEMPLATE_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
TOKEN_LABEL_KEY = "token_label"


def _when(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC" if value.tzinfo else "%Y-%m-%d %H:%M")
    return str(value)


def _money(value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def _entity_url(ref_or_entity: Any) -> str:
    if isinstance(ref_or_entity, dict):
        meta = ref_or_entity.get("metadata", {})
        kind = str(ref_or_entity.get("kind", "")).lower()
        return f"/catalog/{meta.get('namespace', 'default')}/{kind}/{meta.get('name', '')}"
    kind, _, rest = str(ref_or_entity).partition(":")
    namespace, _, name = rest.rpartition("/")
    return f"/catalog/{namespace or 'default'}/{kind.lower()}/{name}"


def _ref_label(ref: Any) -> str:
    """``group:default/team-a`` -> ``team-a``: the name a person reads (the namespace only
    when it is not the default); the full ref stays in links and titles."""
    text = str(ref or "")
    _kind, _, rest = text.rpartition(":")
    namespace, _, name = rest.rpartition("/")
    return f"{namespace}/{name}" if namespace and namespace != "default" else name


@pass_context
def _web_url(context: Any, url: Any) -> str:
    """A link a browser can follow (this portal's repositories as browser pages)."""
    return links.browser_url(context["request"].app.state.settings, str(url or ""))


templates.env.filters["when"] = _when
templates.env.filters["ref_label"] = _ref_label
templates.env.filters["web_url"] = _web_url
templates.env.tests["cluster_internal"] = lambda url: links.is_cluster_internal(str(url or ""))
templates.env.filters["money"] = _money
templates.env.filters["entity_url"] = _entity_url
templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)


def _session_label(request: Request, principal: Principal | None) -> str | None:
    """The name of the API token the browser signed in with (a person may hold several
    acting as one subject), read once per session."""
    if principal is None or principal.token_id is None:
        return None
    cached = request.session.get(TOKEN_LABEL_KEY)
    if isinstance(cached, list) and len(cached) == 2 and cached[0] == principal.token_id:
        return str(cached[1])
    with session_scope(request.app.state.session_factory) as session:
        record = session.get(ApiToken, principal.token_id)
        name = record.name if record is not None else None
    if name:
        request.session[TOKEN_LABEL_KEY] = [principal.token_id, name]
    return name


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    principal = page_principal(request)
    ctx = {
        "principal": principal,
        "session_label": _session_label(request, principal),
        "csrf": csrf_token(request),
        "active": request.url.path.split("/")[1] if request.url.path != "/" else "home",
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
