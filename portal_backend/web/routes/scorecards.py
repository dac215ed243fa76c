"""The scorecards page: every scored RAG service worst first, and each owner team's
summary worst first too; filtered by team (``?owner=``) and level (``?level=``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from portal_backend.db import session_scope
from portal_backend.scorecards import service as scorecards
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()


@router.get("/scorecards")
def fleet_page(request: Request, owner: str = "", level: str = "") -> Response:
    require_page(request, "read")
    settings = request.app.state.settings
    with session_scope(request.app.state.session_factory) as session:
        fleet = scorecards.fleet(session, settings, owner=owner or None, level=level or None)
    return render(
        request,
        "scorecards.html",
        {"fleet": fleet, "owner": owner, "level": level, "no_level": scorecards.NO_LEVEL},
    )
