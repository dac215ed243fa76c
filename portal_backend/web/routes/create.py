"""Create: template picker, the template's form, and the task page (live log)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import scaffolder_dispatch
from portal_backend.scaffolder import store
from portal_backend.scaffolder import tasks as scaffolder_tasks
from portal_backend.web import data
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
        owners = data.group_refs(session)
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
        "pages": pages,
        "sizing": sizing_fields(pages),
    }
    return render(request, "create_form.html", {"schema": schema, "config": config, "pages": pages})


def _task_view(request: Request, task_id: str, principal: Principal) -> dict[str, Any]:
    # The scaffolder API's own views, so the page and the API never disagree.
    factory = request.app.state.session_factory
    task = scaffolder_tasks.get_task(factory, task_id)
    events = scaffolder_tasks.list_events(factory, task_id)
    values = task["spec"]["parameters"] or {}
    return {
        "task": task,
        "name": values.get("name") or values.get("service_name"),
        "steps": task["steps"],
        "events": events,
        "output": task.get("output") or {},
        "terminal": task["status"] in store.TERMINAL,
        "may_change": scaffolder_tasks.may_change(principal, task),
    }


@router.get("/create/tasks/{task_id}")
def task_page(request: Request, task_id: str) -> Response:
    principal = require_page(request, "read")
    return render(request, "task.html", _task_view(request, task_id, principal))


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
