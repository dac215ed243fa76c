"""Docs (the sidebar's entry, Backstage's TechDocs index): every catalog entity whose
repository this portal hosts, linked to its Docs tab. FastAPI keeps ``/docs`` for the
API explorer, so the index lives at ``/techdocs``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.web import entity_view
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()
SHOWN = 500


@router.get("/techdocs")
def docs_index(request: Request) -> Response:
    require_page(request, "read")
    settings = request.app.state.settings
    with session_scope(request.app.state.session_factory) as session:
        components = CatalogService(session).query_entities(
            filters=["kind=component"], order_field="metadata.name", limit=SHOWN
        )["items"]
    documented = []
    for entity in components:
        repository = entity_view.repository_of(settings, entity)
        if repository is not None and repository.hosted is not None:
            documented.append({"entity": entity, "repository": repository})
    return render(request, "techdocs.html", {"items": documented})
