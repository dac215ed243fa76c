"""Home: my services and my group's, fleet summary, recent tasks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()


@router.get("/")
def home(request: Request) -> Response:
    principal = require_page(request, "read")
    return render(request, "home.html", {"me": principal})
