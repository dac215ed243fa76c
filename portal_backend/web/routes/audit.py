"""The audit log (admins): every write, newest first, filtered by who or what."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from portal_backend.auth import audit
from portal_backend.db import session_scope
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()
PAGE = 50


@router.get("/audit")
def audit_log(
    request: Request, actor: str = "", action: str = "", before: int | None = None
) -> Response:
    require_page(request, "admin")
    with session_scope(request.app.state.session_factory) as session:
        found = audit.list_events(
            session, limit=PAGE, before=before, actor=actor or None, action=action or None
        )
    return render(
        request,
        "audit.html",
        {
            "events": found["items"],
            "next_before": found["nextBefore"],
            "actor": actor,
            "action": action,
        },
    )
