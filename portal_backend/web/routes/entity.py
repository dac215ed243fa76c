"""The entity page, Backstage style: a header band and one URL per tab (Overview,
Deployment, SLA & cost, Evaluation, Scorecard, Ask, API, Docs, Dependencies), and what a RAG
service's owner can do from it (ask, deploy, re-provision, stop, evaluate, delete)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from catalog.errors import NotAllowedError, NotFoundError, PortalError
from catalog.service import CatalogService
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import scaffolder_dispatch
from portal_backend.provisioning.local.runtime import LocalRuntime, LocalRuntimeError
from portal_backend.rag import access, ask, operations, removal
from portal_backend.scorecards import service as scorecards
from portal_backend.web import docs_view, entity_view, panels
from portal_backend.web.graph import relation_graph
from portal_backend.web.security import check_csrf, require_page
from portal_backend.web.templating import render

router = APIRouter()
REPORT_TABS = ("sla", "evaluation")


def _entity(session: Any, namespace: str, kind: str, name: str) -> dict[str, Any]:
    entity = CatalogService(session).get_by_name(kind, namespace, name)
    if entity is None:
        raise NotFoundError(f"There is no {kind} named {namespace}/{name} in the catalog.")
    return entity


def _page(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    tab: str,
    extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    principal = require_page(request, "read")
    settings = request.app.state.settings
    window = request.query_params.get("window", "24h")
    with session_scope(request.app.state.session_factory) as session:
        entity = _entity(session, namespace, kind, name)
        rag = panels.rag_panels(session, entity, window, reports=tab in REPORT_TABS)
        related = entity_view.related_entities(session, entity)
        apis = entity_view.apis(entity, related) if tab == "api" else []
    repository = entity_view.repository_of(settings, entity)
    tabs = entity_view.tabs_for(entity, rag=rag is not None, repository=repository)
    if tab not in tabs:
        raise NotFoundError(f"{entity['metadata']['name']} has no {tab} tab.")
    url = f"/catalog/{namespace}/{kind}/{name}"
    context: dict[str, Any] = {
        "entity": entity,
        "entity_url": url,
        "tab": tab,
        "tabs": [(t, entity_view.TAB_LABELS[t]) for t in tabs],
        "rag": rag,
        "related": related,
        "owner_ref": entity_view.owner_ref(entity),
        "repository": repository,
        "can_operate": rag is not None and access.may_change(principal, entity),
        **(extra or {}),
    }
    if tab == "overview":
        context["graph"] = relation_graph(entity, related)
    elif tab == "deployment" and rag is not None:
        choices = panels.deploy_choices(settings)
        context["deploy_targets"] = choices
        context["current_target"] = panels.current_target(rag["deployment"])
        context["preferred_target"] = panels.preferred_target(choices, context["current_target"])
        context["next_steps"] = panels.next_steps(rag["deployment"], settings)
    elif tab == "api":
        context["apis"] = apis
    elif tab == "docs":
        page = request.query_params.get("page")
        context["docs"] = (
            docs_view.service_docs(repository.hosted, repository.ref, f"{url}/docs", page)
            if repository is not None and repository.hosted is not None
            else None
        )
    elif tab == "dependencies":
        context["dependencies"] = entity_view.dependencies(entity, related)
    elif tab == "scorecard":
        with session_scope(request.app.state.session_factory) as session:
            context["scorecard"] = scorecards.service_page(
                session, settings, entity_view.entity_ref(entity)
            )
    return render(request, "entity.html", context, status_code=status_code)


@router.get("/catalog/{namespace}/{kind}/{name}")
def overview(request: Request, namespace: str, kind: str, name: str) -> Response:
    return _page(request, namespace, kind, name, "overview")


def _delete_page(
    request: Request, entity: dict[str, Any], error: str | None = None, status_code: int = 200
) -> Response:
    meta = entity["metadata"]
    hosted = removal.hosted_repository(
        request.app.state.settings, request.app.state.session_factory, entity
    )
    return render(
        request,
        "entity_delete.html",
        {
            "entity": entity,
            "entity_url": f"/catalog/{meta.get('namespace') or 'default'}/"
            f"{entity['kind'].lower()}/{meta['name']}",
            "hosted": hosted,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/catalog/{namespace}/{kind}/{name}/delete")
def delete_form(request: Request, namespace: str, kind: str, name: str) -> Response:
    """Confirm the delete, and choose what happens to the repository."""
    _principal, entity = _service_to_change(request, None, namespace, kind, name, "delete")
    return _delete_page(request, entity)


@router.get("/catalog/{namespace}/{kind}/{name}/{tab}")
def tab_page(request: Request, namespace: str, kind: str, name: str, tab: str) -> Response:
    if tab not in entity_view.TAB_LABELS or tab == "overview":
        raise NotFoundError("There is no page at this address.")
    return _page(request, namespace, kind, name, tab)


@router.post("/catalog/{namespace}/{kind}/{name}/ask")
def ask_service(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    question: str = Form(""),
) -> Response:
    """The Ask tab: the service's own /query answers (counted in its SLA). With htmx only
    the answer is sent back; without JavaScript, the whole tab."""
    require_page(request, "read")
    check_csrf(request, csrf)
    with session_scope(request.app.state.session_factory) as session:
        service = operations.service_name(_entity(session, namespace, kind, name))
    result: dict[str, Any]
    try:
        result = {"answer": ask.ask(request.app.state.session_factory, service, question)}
    except PortalError as exc:
        result = {"error": exc.message, "details": [d.message for d in exc.details]}
    answer = {"ask": {"question": question, **result}}
    if request.headers.get("HX-Request"):
        return render(request, "entity/_ask_result.html", answer)
    return _page(request, namespace, kind, name, "ask", extra=answer)


def _service_to_change(
    request: Request, csrf: str | None, namespace: str, kind: str, name: str, action: str
) -> tuple[Principal, dict[str, Any]]:
    """The signed-in writer and the service's entity, when they may ``action`` it."""
    principal = require_page(request, "write")
    if csrf is not None:
        check_csrf(request, csrf)
    with session_scope(request.app.state.session_factory) as session:
        entity = _entity(session, namespace, kind, name)
    if not panels.is_rag_service(entity):
        raise NotFoundError(f"{kind}:{namespace}/{name} is not a RAG service.")
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
    """Deploy (local runtime, a cluster, or a plan) or re-provision: a task with a live log."""
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
    return RedirectResponse(f"/create/tasks/{task_id}", status_code=303)


@router.post("/catalog/{namespace}/{kind}/{name}/stop")
def stop_service(
    request: Request, namespace: str, kind: str, name: str, csrf: str = Form("")
) -> Response:
    """Stop a service on the local runtime; its data stays (Deploy starts it again)."""
    _principal, entity = _service_to_change(request, csrf, namespace, kind, name, "stop")
    runtime = LocalRuntime(request.app.state.settings, request.app.state.session_factory)
    try:
        runtime.stop(operations.service_name(entity))
    except LocalRuntimeError as exc:
        return _page(request, namespace, kind, name, "deployment", {"action_error": str(exc)}, 409)
    return RedirectResponse(f"/catalog/{namespace}/{kind}/{name}/deployment", status_code=303)


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
    return RedirectResponse(f"/create/tasks/{task_id}", status_code=303)


@router.post("/catalog/{namespace}/{kind}/{name}/delete")
def delete_service(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    confirm_name: str = Form(""),
    repository: str = Form(removal.KEEP),
) -> Response:
    _principal, entity = _service_to_change(request, csrf, namespace, kind, name, "delete")
    if confirm_name.strip() != name:
        return _delete_page(request, entity, f"Type {name} exactly to confirm.", 400)
    try:
        result = removal.delete_service(
            request.app.state.settings, request.app.state.session_factory, entity, repository
        )
    except PortalError as exc:
        return _delete_page(request, entity, exc.message, exc.status_code)
    done = result.get("repository", {}).get("action", removal.KEEP)
    return RedirectResponse(f"/catalog?deleted={name}&repository={done}", status_code=303)
