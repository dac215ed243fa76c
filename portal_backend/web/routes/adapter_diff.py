"""A LoRA adapter version's diff against another version (issue 20): spec, adapter
config and weights per layer, as a page and as an htmx fragment the entity page loads.
Thin: ``portal_backend.rag.adapters`` computes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from catalog.errors import PortalError
from portal_backend.db import session_scope
from portal_backend.rag import adapters
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/catalog/{namespace}/resource/{name}/adapter-diff")
def adapter_diff(request: Request, namespace: str, name: str) -> Response:
    require_page(request, "read")
    params = request.query_params
    context: dict[str, Any] = {
        "name": name,
        "entity_url": f"/catalog/{namespace}/resource/{name}",
        "diff": None,
        "problem": None,
    }
    try:
        with session_scope(request.app.state.session_factory) as session:
            context["diff"] = adapters.adapter_diff(
                session,
                request.app.state.settings,
                f"resource:{namespace}/{name}",
                params.get("from") or None,
                params.get("to") or None,
            )
    except PortalError as exc:  # no previous version, unreadable weights: said, not raised
        context["problem"] = exc.message
        context["status"] = exc.status_code
    fragment = request.headers.get("HX-Request") == "true"
    return render(request, "_adapter_diff.html" if fragment else "adapter_diff.html", context)
