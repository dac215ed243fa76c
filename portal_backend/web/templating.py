"""Jinja2 environment and the one render helper every page uses."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from portal_backend.web.security import csrf_token, page_principal

TEMPLATE_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATE_DIR))


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


templates.env.filters["when"] = _when
templates.env.filters["money"] = _money
templates.env.filters["entity_url"] = _entity_url
templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    principal = page_principal(request)
    ctx = {
        "principal": principal,
        "csrf": csrf_token(request),
        "active": request.url.path.split("/")[1] if request.url.path != "/" else "home",
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)
