"""Create: template picker, the template's form, and the task page (live log)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import scaffolder_dispatch
from portal_backend.scaffolder import form_check, store
from portal_backend.scaffolder import tasks as scaffolder_tasks
from portal_backend.web import data, panels
from portal_backend.web.forms import to_editor_schema
from portal_backend.web.security import check_csrf, require_page
from portal_backend.web.sizing_fields import sizing_fields
from portal_backend.web.templating import render

router = APIRouter()


@router.get("/create")
def picker(request: Request) -> Response:
    require_page(request, "read")
    with session_scope(request.app.state.session_factory) as session:
        templates = data.entities_of_kind(session, "template")
    return render(request, "create_picker.html", {"templates": templates})


@router.get("/create/templates/{namespace}/{name}")
def form(request: Request, namespace: str, name: str) -> Response:
    require_page(request, "write")
    schema = scaffolder_tasks.template_parameter_schema(
        request.app.state.settings, request.app.state.session_factory, namespace, "template", name
    )
    with session_scope(request.app.state.session_factory) as session:
        owners = data.groups(session)
    pages = [
        {
            "title": step["title"],
            "description": step.get("description"),
            "schema": to_editor_schema(step["schema"], owners),
        }
        for step in schema["steps"]
    ]
    config: dict[str, Any] = {
        "templateRef": f"template:{namespace}/{name}",
        "checkUrl": f"/create/templates/{namespace}/{name}/check",
        "pages": pages,
        "sizing": sizing_fields(pages),
    }
    # A form whose owner must be a Group, on a catalog without one: say so first.
    needs_team = not owners and _has_owner_picker(schema)
    return render(
        request,
        "create_form.html",
        {"schema": schema, "config": config, "pages": pages, "needs_team": needs_team},
    )


def _has_owner_picker(schema: dict[str, Any]) -> bool:
    return any(
        isinstance(prop, dict) and prop.get("ui:field") in ("OwnerPicker", "OwnedEntityPicker")
        for step in schema["steps"]
        for prop in (step["schema"].get("properties") or {}).values()
    )


@router.post("/create/templates/{namespace}/{name}/check")
def check(request: Request, namespace: str, name: str, body: Any = Body(default=None)) -> Response:
    """What the server will say about these values at submit, without submitting: the
    actions' prechecks (only ``actions`` when given, e.g. the GPU sizing as the user
    types) and their previews. JSON for the form's script."""
    principal = require_page(request, "write")
    values = body.get("values") if isinstance(body, dict) else None
    actions = body.get("actions") if isinstance(body, dict) else None
    if not isinstance(values, dict):
        return JSONResponse({"error": {"message": "body must be {values: {...}}"}}, 400)
    report = form_check.check_values(
        request.app.state.settings,
        request.app.state.session_factory,
        f"template:{namespace}/{name}",
        values,
        principal.subject,
        actions=set(actions) if isinstance(actions, list) else None,
    )
    return JSONResponse(report)


def _shown_step(step: dict[str, Any], settings: Any) -> dict[str, Any]:
    """A step as the page shows it: a deploy that only recorded a plan applied nothing,
    so it reads "skipped" (with why), not a green "completed"."""
    output = step.get("output") or {}
    planned = (
        step["action"] == "rag:provision"
        and step["status"] == "completed"
        and output.get("state") == "Planned"
    )
    if not planned:
        return {**step, "shown": step["status"], "label": step["status"]}
    why = "plan only" if settings.clusters else "no cluster"
    note = panels.plan_reason(str(output.get("message") or "")) or "nothing was applied"
    return {**step, "shown": "skipped", "label": f"skipped: {why}", "note": note}


def _task_view(request: Request, task_id: str, principal: Principal) -> dict[str, Any]:
    # The scaffolder API's own views, so the page and the API never disagree.
    factory = request.app.state.session_factory
    task = scaffolder_tasks.get_task(factory, task_id)
    events = scaffolder_tasks.list_events(factory, task_id)
    values = task["spec"]["parameters"] or {}
    steps = [_shown_step(s, request.app.state.settings) for s in task["steps"]]
    return {
        "task": task,
        "name": values.get("name") or values.get("service_name"),
        "steps": steps,
        "nothing_deployed": next((s for s in steps if s.get("note")), None),
        "events": events,
        "output": task.get("output") or {},
        "terminal": task["status"] in store.TERMINAL,
        "may_change": scaffolder_tasks.may_change(principal, task),
    }


@router.get("/create/tasks/{task_id}")
def task_page(request: Request, task_id: str) -> Response:
    principal = require_page(request, "read")
    return render(request, "task.html", _task_view(request, task_id, principal))


@router.get("/tasks/{task_id}")
def task_short_url(task_id: str) -> Response:
    """``taskUrl`` of the deploy and evaluate APIs: the task page."""
    return RedirectResponse(f"/create/tasks/{task_id}", status_code=307)


@router.get("/create/tasks/{task_id}/steps")
def task_steps(request: Request, task_id: str) -> Response:
    """The steps and output fragment, refreshed by htmx while the task runs."""
    principal = require_page(request, "read")
    return render(request, "_task_state.html", _task_view(request, task_id, principal))


@router.post("/create/tasks/{task_id}/cancel")
def cancel(request: Request, task_id: str, csrf: str = Form("")) -> Response:
    principal = require_page(request, "write")
    check_csrf(request, csrf)
    scaffolder_tasks.cancel(request.app.state.session_factory, task_id, principal)
    return RedirectResponse(f"/create/tasks/{task_id}", status_code=303)


@router.post("/create/tasks/{task_id}/retry")
def retry(request: Request, task_id: str, csrf: str = Form("")) -> Response:
    principal = require_page(request, "write")
    check_csrf(request, csrf)
    scaffolder_tasks.retry(
        request.app.state.session_factory, task_id, principal, scaffolder_dispatch(request)
    )
    return RedirectResponse(f"/create/tasks/{task_id}", status_code=303)


STATUSES = ("open", "processing", "failed", "cancelled", "completed")


@router.get("/tasks")
def tasks(request: Request, status: str = "", mine: str = "", page: int = 1) -> Response:
    principal = require_page(request, "read")
    limit = 25
    page = max(page, 1)
    status = status if status in STATUSES else ""
    result = scaffolder_tasks.list_tasks(
        request.app.state.session_factory,
        created_by=principal.subject if mine else None,
        status=status or None,
        limit=limit,
        offset=(page - 1) * limit,
    )
    total = result["totalTasks"]
    items = [
        {
            "id": t["id"],
            "template_ref": t["spec"]["templateInfo"]["entityRef"],
            "status": t["status"],
            "created_by": t["createdBy"],
            "created_at": t["createdAt"],
            "name": (t["spec"]["parameters"] or {}).get("name"),
        }
        for t in result["tasks"]
    ]
    return render(
        request,
        "tasks.html",
        {
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // limit)),
            "status": status,
            "mine": mine,
            "statuses": STATUSES,
        },
    )


@router.get("/templates")
def templates(request: Request) -> Response:
    require_page(request, "read")
    with session_scope(request.app.state.session_factory) as session:
        items = data.entities_of_kind(session, "template")
    return render(request, "templates.html", {"templates": items})
