"""Catalog list (filters, search, sort, facets, cursor paging) and the entity page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from catalog.errors import NotAllowedError, NotFoundError, PortalError
from catalog.service import CatalogService
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import scaffolder_dispatch
from portal_backend.provisioning import targets
from portal_backend.rag import access, ask, operations
from portal_backend.web import panels
from portal_backend.web.catalog_view import FACETS, PAGE_SIZES, SORTS, CatalogView
from portal_backend.web.graph import relation_graph
from portal_backend.web.security import check_csrf, require_page
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
        },
    )


def _entity(session: Any, namespace: str, kind: str, name: str) -> dict[str, Any]:
    entity = CatalogService(session).get_by_name(kind, namespace, name)
    if entity is None:
        raise NotFoundError(f"There is no {kind} named {namespace}/{name} in the catalog.")
    return entity


@router.get("/catalog/{namespace}/{kind}/{name}")
def entity_page(
    request: Request, namespace: str, kind: str, name: str, window: str = "24h"
) -> Response:
    return _entity_page(request, namespace, kind, name, window)


def _entity_page(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    window: str = "24h",
    extra: dict[str, Any] | None = None,
) -> Response:
    principal = require_page(request, "read")
    with session_scope(request.app.state.session_factory) as session:
        entity = _entity(session, namespace, kind, name)
        service_panels = panels.rag_panels(session, entity, window)
    may_change = service_panels is not None and access.may_change(principal, entity)
    return render(
        request,
        "entity.html",
        {
            "entity": entity,
            "graph": relation_graph(entity),
            "rag": service_panels,
            "can_delete": may_change,
            "can_operate": may_change,
            "deploy_targets": panels.deploy_choices(request.app.state.settings),
            **(extra or {}),
        },
    )


@router.post("/catalog/{namespace}/{kind}/{name}/ask")
def ask_service(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    question: str = Form(""),
) -> Response:
    """The Ask panel: the service's own /query answers (counted in its SLA)."""
    require_page(request, "read")
    check_csrf(request, csrf)
    with session_scope(request.app.state.session_factory) as session:
        service = operations.service_name(_entity(session, namespace, kind, name))
    result: dict[str, Any]
    try:
        result = {"answer": ask.ask(request.app.state.session_factory, service, question)}
    except PortalError as exc:
        result = {"error": exc.message, "details": [d.message for d in exc.details]}
    return _entity_page(
        request, namespace, kind, name, extra={"ask": {"question": question, **result}}
    )


def _service_to_change(
    request: Request, csrf: str, namespace: str, kind: str, name: str, action: str
) -> tuple[Principal, dict[str, Any]]:
    """The signed-in writer and the service's entity, when they may ``action`` it."""
    principal = require_page(request, "write")
    check_csrf(request, csrf)
    with session_scope(request.app.state.session_factory) as session:
        entity = _entity(session, namespace, kind, name)
    if not access.may_change(principal, entity):
        raise NotAllowedError(f"only the owning group or an admin may {action} this service")
    return principal, entity


@router.post("/catalog/{namespace}/{kind}/{name}/deploy")
def deploy_service(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    target: str = Form("auto"),
) -> Response:
    """Deploy again (local runtime, a cluster, or a plan): a task with a live log."""
    principal, _ = _service_to_change(request, csrf, namespace, kind, name, "deploy")
    kind_name, _, cluster = target.partition(":")
    task_id = operations.submit_deploy(
        request.app.state.settings,
        request.app.state.session_factory,
        entity_ref=f"{kind}:{namespace}/{name}",
        target=kind_name,
        cluster=cluster or None,
        environment=None,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )
    return RedirectResponse(f"/tasks/{task_id}", status_code=303)


@router.post("/catalog/{namespace}/{kind}/{name}/evaluate")
def evaluate_service(
    request: Request, namespace: str, kind: str, name: str, csrf: str = Form("")
) -> Response:
    """Run the repository's evaluation set against the running service: a task."""
    principal, _ = _service_to_change(request, csrf, namespace, kind, name, "evaluate")
    task_id = operations.submit_evaluate(
        request.app.state.settings,
        request.app.state.session_factory,
        entity_ref=f"{kind}:{namespace}/{name}",
        judge=True,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )
    return RedirectResponse(f"/tasks/{task_id}", status_code=303)


@router.post("/catalog/{namespace}/{kind}/{name}/delete")
def delete_service(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    confirm_name: str = Form(""),
) -> Response:
    principal, entity = _service_to_change(request, csrf, namespace, kind, name, "delete")
    if confirm_name.strip() != name:
        return RedirectResponse(
            f"/catalog/{namespace}/{kind}/{name}?delete_error=1#delete", status_code=303
        )
    # Wherever it runs (cluster objects or local processes), then its catalog entities,
    # secrets and tokens.
    targets.teardown(
        request.app.state.settings,
        request.app.state.session_factory,
        operations.service_name(entity),
    )
    return RedirectResponse(f"/catalog?deleted={name}", status_code=303)
