"""Catalog list: filters, search, sort, facets with counts, cursor paging."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.web import data
from portal_backend.web.catalog_view import FACETS, PAGE_SIZES, SORTS, CatalogView
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()


@router.get("/catalog")
def catalog(request: Request) -> Response:
    require_page(request, "read")
    view = CatalogView.from_query(request.query_params)
    sort_field, order, _ = SORTS[view.sort]
    with session_scope(request.app.state.session_factory) as session:
        service = CatalogService(session)
        result = service.query_entities(
            filters=view.filters(),
            order_field=sort_field,
            order=order,
            term=view.q or None,
            cursor=view.cursor,
            limit=view.limit,
        )
        # Each facet counts what the other filters leave, so a choice can be widened.
        facets: dict[str, list[dict[str, Any]]] = {}
        for name, (key, _label) in FACETS.items():
            counted = service.facets([key], view.filters(without=name))["facets"][key]
            facets[name] = counted[:30]
        # Owners read by their team's title, not as refs.
        owners = [f["value"] for f in facets["owner"]]
        owners += [(e.get("spec") or {}).get("owner") for e in result["items"]]
        owner_titles = data.owner_titles(session, [o for o in owners if o])
        has_groups = bool(owner_titles) or data.has_groups(session)
    return render(
        request,
        "catalog.html",
        {
            "view": view,
            "items": result["items"],
            "total": result["totalItems"],
            "page_info": result["pageInfo"],
            "facets": facets,
            "facet_labels": {name: label for name, (_k, label) in FACETS.items()},
            "sorts": SORTS,
            "page_sizes": PAGE_SIZES,
            "owner_titles": owner_titles,
            "has_groups": has_groups,
        },
    )
