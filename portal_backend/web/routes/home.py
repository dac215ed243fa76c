"""Home: my services (owned by me or my groups, or created by me), fleet summary, recent
tasks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from catalog.service import CatalogService
from portal_backend import metadata_keys
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.scaffolder import tasks
from portal_backend.sla import reports
from portal_backend.sla.clock import utcnow
from portal_backend.web import data
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()
RAG_FILTER = f"kind=component,spec.type={metadata_keys.RAG_SERVICE_TYPE}"


def _created_service_refs(request: Request, principal: Principal) -> list[str]:
    """Services this user created: the catalog entities their completed tasks produced."""
    if principal.is_anonymous:
        return []
    result = tasks.list_tasks(
        request.app.state.session_factory,
        created_by=principal.subject,
        status="completed",
        limit=50,
    )
    refs: list[str] = []
    for task in result["tasks"]:
        for link in (task.get("output") or {}).get("links") or []:
            ref = link.get("entityRef")
            if ref and ref not in refs:
                refs.append(ref)
    return refs


def _fleet(session: Any) -> dict[str, Any]:
    service = CatalogService(session)
    facets = service.facets(["status.deployment.state", "status.slo.state"], [RAG_FILTER])["facets"]
    total = service.query_entities(filters=[RAG_FILTER], limit=1)["totalItems"]
    spend = reports.cost_summary(session, "service", "30d", utcnow())
    mtd = sum(item["mtdUsd"] for item in spend["items"])
    budget = sum(item["budgetUsd"] or 0 for item in spend["items"])
    over = [i["id"] for i in spend["items"] if i["budgetUsd"] and i["mtdUsd"] > i["budgetUsd"]]
    return {
        "total": total,
        "deployment": facets["status.deployment.state"],
        "slo": facets["status.slo.state"],
        "breached": next(
            (f["count"] for f in facets["status.slo.state"] if f["value"] == "breached"), 0
        ),
        "mtd_usd": mtd,
        "budget_usd": budget,
        "over_budget": over,
    }


def _owned_services(session: Any, principal: Principal) -> list[dict[str, Any]]:
    """RAG services owned by the user or one of their groups (repeated filters are ORed)."""
    owners = [] if principal.is_anonymous else principal.owner_refs
    if not owners:
        return []
    filters = [f"{RAG_FILTER},relations.ownedby={ref}" for ref in owners]
    return list(CatalogService(session).query_entities(filters=filters, limit=50)["items"])


@router.get("/")
def home(request: Request) -> Response:
    principal = require_page(request, "read")
    created_refs = _created_service_refs(request, principal)
    recent = tasks.list_tasks(request.app.state.session_factory, limit=8)["tasks"]
    with session_scope(request.app.state.session_factory) as session:
        mine = _owned_services(session, principal)
        known = {(e["metadata"]["namespace"], e["metadata"]["name"]) for e in mine}
        for entity in CatalogService(session).get_by_refs(created_refs):
            key = (entity or {}).get("metadata", {})
            if entity is not None and (key["namespace"], key["name"]) not in known:
                mine.append(entity)
        fleet = _fleet(session)
        # A fresh portal: the first steps, in order (a team, then its services).
        has_groups = data.has_groups(session)
    return render(
        request,
        "home.html",
        {
            "me": principal,
            "mine": mine,
            "fleet": fleet,
            "recent": recent,
            "has_groups": has_groups,
        },
    )
