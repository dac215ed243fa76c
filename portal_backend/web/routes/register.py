"""Getting things into the catalog from the browser: Backstage's "Register existing
component" (``/catalog-import``: analyze a URL or a file, preview, import) and "Create a
team" (the first Group of a fresh portal, so the create form has an owner to offer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from catalog.analyze import analyze_location
from catalog.errors import ConflictError, PortalError
from catalog.location_registry import LocationRegistry
from portal_backend import catalog_teams
from portal_backend.catalog_policy import catalog_file_choices, location_policy
from portal_backend.db import session_scope
from portal_backend.web import data
from portal_backend.web.security import check_csrf, require_page, safe_next
from portal_backend.web.templating import render

router = APIRouter()


def _import_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    principal = require_page(request, "write")
    with session_scope(request.app.state.session_factory) as session:
        has_groups = data.has_groups(session)
    settings = request.app.state.settings
    defaults: dict[str, Any] = {
        "form": {"type": "url", "target": ""},
        "error": None,
        "analysis": None,
        "imported": None,
        "may_use_files": principal.is_admin,
        "file_roots": [str(r) for r in settings.file_roots()] if principal.is_admin else [],
        "file_choices": catalog_file_choices(settings) if principal.is_admin else [],
        "has_groups": has_groups,
    }
    return render(request, "catalog_import.html", {**defaults, **context}, status_code)


@router.get("/catalog-import")
def import_form(request: Request) -> Response:
    return _import_page(request)


def _location(request: Request, location_type: str, target: str) -> tuple[str, str]:
    principal = require_page(request, "write")
    location_type = location_type if location_type in ("url", "file") else "url"
    if location_type == "file" and not principal.is_admin:
        # As the API: a file location reads the server's disk.
        raise _FormError("A file on this server can only be registered with an admin token.")
    if not target.strip():
        raise _FormError("Give the URL of a catalog-info.yaml, or of the repository holding it.")
    return location_type, target.strip()


class _FormError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _grouped(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Analyzed entities by the file they come from, as the preview lists them."""
    files: dict[str, dict[str, Any]] = {}
    for found in analysis["existingEntityFiles"]:
        location = found["location"]
        key = f"{location['type']}:{location['target']}"
        entry = files.setdefault(
            key, {"location": location, "registered": found["isRegistered"], "entities": []}
        )
        entry["entities"].append(found["entity"])
    return list(files.values())


@router.post("/catalog-import/analyze")
def analyze(
    request: Request,
    csrf: str = Form(""),
    type: str = Form("url"),
    target: str = Form(""),
) -> Response:
    check_csrf(request, csrf)
    form = {"type": type, "target": target}
    try:
        location_type, target = _location(request, type, target)
        with session_scope(request.app.state.session_factory) as session:
            registry = LocationRegistry(session, policy=location_policy(request.app.state.settings))
            analysis = analyze_location(
                registry, {"location": {"type": location_type, "target": target}}
            )
    except _FormError as exc:
        return _import_page(request, 400, form=form, error=exc.message)
    except PortalError as exc:
        return _import_page(request, exc.status_code, form=form, error=exc.message)
    files = _grouped(analysis)
    with session_scope(request.app.state.session_factory) as session:
        groups = data.groups(session)
    return _import_page(
        request,
        form=form,
        analysis={
            "files": files,
            # The location to register: the first file read (its Location entities lead
            # to the others, and registering reads them again).
            "root": files[0]["location"] if files else None,
            "generated": analysis["generateEntities"],
            "groups": groups,
        },
    )


@router.post("/catalog-import/import")
def import_location(
    request: Request,
    csrf: str = Form(""),
    type: str = Form("url"),
    target: str = Form(""),
) -> Response:
    principal = require_page(request, "write")
    check_csrf(request, csrf)
    form = {"type": type, "target": target}
    try:
        location_type, target = _location(request, type, target)
        with session_scope(request.app.state.session_factory) as session:
            registry = LocationRegistry(session, policy=location_policy(request.app.state.settings))
            result = registry.add_location(
                location_type,
                target,
                managed_by=principal.subject,
                owner_group=principal.write_owners,
            )
    except _FormError as exc:
        return _import_page(request, 400, form=form, error=exc.message)
    except ConflictError as exc:
        return _import_page(
            request,
            409,
            form=form,
            error=f"{exc.message}. It is in the catalog already; refresh it from there.",
        )
    except PortalError as exc:
        return _import_page(request, exc.status_code, form=form, error=exc.message)
    return _import_page(request, form={"type": "url", "target": ""}, imported=result)


def _team_page(request: Request, status_code: int = 200, **context: Any) -> Response:
    require_page(request, "write")
    with session_scope(request.app.state.session_factory) as session:
        groups = data.groups(session)
    defaults: dict[str, Any] = {
        "form": {},
        "errors": {},
        "error": None,
        "groups": groups,
        "next": safe_next(request.query_params.get("next")),
    }
    return render(request, "team_new.html", {**defaults, **context}, status_code)


@router.get("/teams/new")
def team_form(request: Request) -> Response:
    return _team_page(request)


@router.post("/teams/new")
def create_team(
    request: Request,
    csrf: str = Form(""),
    name: str = Form(""),
    title: str = Form(""),
    description: str = Form(""),
    parent: str = Form(""),
    next: str = Form("/"),
) -> Response:
    principal = require_page(request, "write")
    check_csrf(request, csrf)
    form = {"name": name, "title": title, "description": description, "parent": parent}
    try:
        team = catalog_teams.create_team(
            request.app.state.settings,
            request.app.state.session_factory,
            name=name,
            title=title,
            description=description,
            parent=parent or None,
            created_by=principal.subject,
        )
    except PortalError as exc:
        errors = {d.path: d.message for d in exc.details}
        return _team_page(
            request, exc.status_code, form=form, errors=errors, error=exc.message, next=next
        )
    target = safe_next(next)
    if target == "/":
        target = f"/catalog/default/group/{team['metadata']['name']}"
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}team={team['metadata']['name']}", 303)
