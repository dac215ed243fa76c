"""Template versions on the entity pages: on a generated Component, "template v1.0.0 ->
v1.1.0 available" with the changelog and an Upgrade button; on a Template, which services
are on which version (drift), a fleet upgrade button and the last fleet upgrade's summary.

Self-contained: the pages load ``<entity url>/template-upgrade`` (htmx, or as a page of
its own without JavaScript); the buttons post here and go to the task (or the template).
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from catalog.errors import NotFoundError, PortalError
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.deps import scaffolder_dispatch
from portal_backend.rag import access
from portal_backend.scaffolder import fleet, upgrades
from portal_backend.web.security import check_csrf, require_page
from portal_backend.web.templating import render

router = APIRouter()


def _entity(request: Request, namespace: str, kind: str, name: str) -> dict[str, Any]:
    with session_scope(request.app.state.session_factory) as session:
        entity = CatalogService(session).get_by_name(kind, namespace, name)
    if entity is None:
        raise NotFoundError(f"There is no {kind} named {namespace}/{name} in the catalog.")
    return entity


def _panel(
    request: Request, namespace: str, kind: str, name: str, extra: dict[str, Any] | None = None
) -> Response:
    principal = require_page(request, "read")
    entity = _entity(request, namespace, kind, name)
    factory = request.app.state.session_factory
    context: dict[str, Any] = {
        "entity": entity,
        "entity_url": f"/catalog/{namespace}/{kind}/{name}",
        "fragment": request.headers.get("hx-request") == "true",
        "can_write": principal.has_scope("write"),
        **(extra or {}),
    }
    if entity["kind"] == "Template":
        try:
            context["drift"] = fleet.drift(factory, fleet.template_ref_of(namespace, kind, name))
        except NotFoundError:
            context["drift"] = None  # an unversioned template
        context["can_fleet"] = principal.is_admin
    else:
        context["service"] = fleet.service_drift(factory, entity)
        context["can_write"] = context["can_write"] and access.may_change(principal, entity)
    return render(request, "upgrades/_panel_page.html", context)


@router.get("/catalog/{namespace}/{kind}/{name}/template-upgrade")
def upgrade_panel(request: Request, namespace: str, kind: str, name: str) -> Response:
    return _panel(request, namespace, kind, name)


def _answers(raw: str) -> dict[str, Any] | None:
    """The form's "answers for the new version" box: YAML key: value lines."""
    if not raw.strip():
        return None
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PortalError(f"answers: not YAML ({exc})") from exc
    if not isinstance(parsed, dict):
        raise PortalError("answers: write one key: value per line")
    return parsed


def _error(exc: PortalError) -> dict[str, Any]:
    return {"error": exc.message, "details": [f"{d.path}: {d.message}" for d in exc.details]}


@router.post("/catalog/{namespace}/{kind}/{name}/upgrade")
def upgrade_service(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    to_version: str = Form(""),
    from_version: str = Form(""),
    answers: str = Form(""),
) -> Response:
    """The Upgrade button: a task with a live log (the branch, never the default one)."""
    principal = require_page(request, "write")
    check_csrf(request, csrf)
    entity = _entity(request, namespace, kind, name)
    if not access.may_change(principal, entity):
        return _panel(request, namespace, kind, name, {"error": "only its owners may upgrade it"})
    try:
        answer = upgrades.submit_upgrade(
            request.app.state.settings,
            request.app.state.session_factory,
            entity_ref=f"{kind}:{namespace}/{name}",
            user_ref=principal.subject,
            dispatch=scaffolder_dispatch(request),
            to_version=to_version or None,
            from_version=from_version or None,
            values=_answers(answers),
        )
    except PortalError as exc:
        return _panel(request, namespace, kind, name, {**_error(exc), "answers": answers})
    if answer["id"] is None:
        return _panel(request, namespace, kind, name, {"notice": "Already on the latest version."})
    return RedirectResponse(f"/tasks/{answer['id']}", status_code=303)


@router.post("/catalog/{namespace}/{kind}/{name}/fleet-upgrade")
def upgrade_fleet(
    request: Request,
    namespace: str,
    kind: str,
    name: str,
    csrf: str = Form(""),
    to_version: str = Form(""),
    answers: str = Form(""),
) -> Response:
    """Upgrade every service behind on the template (admins): one task each."""
    principal = require_page(request, "admin")
    check_csrf(request, csrf)
    try:
        fleet.submit_fleet(
            request.app.state.settings,
            request.app.state.session_factory,
            template_ref=fleet.template_ref_of(namespace, kind, name),
            user_ref=principal.subject,
            dispatch=scaffolder_dispatch(request),
            to_version=to_version or None,
            values=_answers(answers),
        )
    except PortalError as exc:
        return _panel(request, namespace, kind, name, {**_error(exc), "answers": answers})
    return RedirectResponse(f"/catalog/{namespace}/{kind}/{name}/template-upgrade", status_code=303)
