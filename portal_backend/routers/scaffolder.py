"""Scaffolder API, ``/api/scaffolder/v2``, shaped like Backstage's scaffolder backend."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from catalog.errors import ErrorDetail, InputError, NotAllowedError, NotFoundError
from portal_backend.auth.deps import ReadPrincipal, WritePrincipal
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import scaffolder_dispatch
from portal_backend.scaffolder import engine, store
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import all_actions
from portal_backend.scaffolder.tables import ScaffolderEvent, ScaffolderStep, ScaffolderTask
from portal_backend.scaffolder.templates import Template, parameter_schema, template_ref

router = APIRouter(prefix="/api/scaffolder/v2", tags=["scaffolder"])


class TaskCreate(BaseModel):
    templateRef: str = Field(min_length=1)  # noqa: N815
    values: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] | None = None


class DryRun(BaseModel):
    templateRef: str | None = None  # noqa: N815
    template: dict[str, Any] | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] | None = None
    directoryContents: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def _dispatch(request: Request) -> engine.Dispatch:
    return scaffolder_dispatch(request)


def _task_view(task: ScaffolderTask, steps: list[ScaffolderStep]) -> dict[str, Any]:
    heartbeat = max((s.heartbeat_at for s in steps if s.heartbeat_at), default=None)
    return {
        "id": task.id,
        "spec": {
            "apiVersion": "scaffolder.backstage.io/v1beta3",
            "templateInfo": {"entityRef": task.template_ref},
            "parameters": task.values,
            "steps": task.spec.get("steps", []),
            "output": task.spec.get("output", {}),
            "user": {"ref": task.created_by},
        },
        "status": task.status,
        "createdBy": task.created_by,
        "createdAt": _iso(task.created_at),
        "lastHeartbeatAt": _iso(heartbeat),
        "completedAt": _iso(task.completed_at),
        "cancelRequested": task.cancel_requested,
        "output": task.output,
        "error": {"message": task.error} if task.error else None,
        "steps": [
            {
                "id": s.step_id,
                "name": s.name,
                "action": s.action,
                "status": s.status,
                "attempts": s.attempts,
                "startedAt": _iso(s.started_at),
                "endedAt": _iso(s.finished_at),
                "output": s.output,
                "error": s.error,
            }
            for s in steps
        ],
    }


def _event_view(event: ScaffolderEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "taskId": event.task_id,
        "type": event.type,
        "body": event.body,
        "createdAt": _iso(event.created_at),
    }


def _load_task(request: Request, task_id: str) -> dict[str, Any]:
    with session_scope(request.app.state.session_factory) as session:
        task = store.get_task(session, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        return _task_view(task, store.get_steps(session, task_id))


def _may_change(principal: Principal, task: dict[str, Any]) -> None:
    if not principal.is_admin and task["createdBy"] != principal.subject:
        raise NotAllowedError("only the user who started the task (or an admin) may change it")


@router.get("/templates/{namespace}/{kind}/{name}/parameter-schema")
def get_parameter_schema(
    namespace: str, kind: str, name: str, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    if kind.lower() != "template":
        raise NotFoundError(f"{kind}:{namespace}/{name} is not a template")
    settings = request.app.state.settings
    template = engine.find(
        settings, request.app.state.session_factory, template_ref(namespace, name)
    )
    return parameter_schema(template)


@router.get("/actions")
def list_actions(principal: Principal = ReadPrincipal) -> list[dict[str, Any]]:
    load_actions()
    return [
        {
            "id": action.id,
            "description": action.description,
            "schema": {"input": action.input_schema, "output": action.output_schema},
        }
        for action in sorted(all_actions().values(), key=lambda a: a.id)
    ]


@router.post("/tasks", status_code=201)
def create_task(
    body: TaskCreate, request: Request, principal: Principal = WritePrincipal
) -> dict[str, str]:
    task_id = engine.submit(
        request.app.state.settings,
        request.app.state.session_factory,
        template_ref=body.templateRef,
        values=body.values,
        secrets=body.secrets,
        user_ref=principal.subject,
        dispatch=_dispatch(request),
    )
    return {"id": task_id}


@router.get("/tasks")
def list_tasks(
    request: Request,
    createdBy: str | None = None,  # noqa: N803
    status: str | None = Query(None, pattern="^(open|processing|failed|cancelled|completed)$"),
    limit: int = Query(20, ge=1, le=500),
    offset: int = Query(0, ge=0),
    principal: Principal = ReadPrincipal,
) -> dict[str, Any]:
    if createdBy == "me":
        createdBy = principal.subject  # noqa: N806
    with session_scope(request.app.state.session_factory) as session:
        tasks, total = store.list_tasks(
            session, created_by=createdBy, status=status, limit=limit, offset=offset
        )
        items = [_task_view(t, store.get_steps(session, t.id)) for t in tasks]
    return {"tasks": items, "totalTasks": total}


@router.get("/tasks/{task_id}")
def get_task(task_id: str, request: Request, principal: Principal = ReadPrincipal) -> dict:
    return _load_task(request, task_id)


@router.get("/tasks/{task_id}/events")
def get_events(
    task_id: str,
    request: Request,
    after: int | None = Query(None, ge=0),
    principal: Principal = ReadPrincipal,
) -> list[dict[str, Any]]:
    _load_task(request, task_id)
    with session_scope(request.app.state.session_factory) as session:
        return [_event_view(e) for e in store.list_events(session, task_id, after)]


@router.get("/tasks/{task_id}/eventstream")
async def event_stream(
    task_id: str,
    request: Request,
    after: int | None = Query(None, ge=0),
    principal: Principal = ReadPrincipal,
) -> EventSourceResponse:
    await run_in_threadpool(_load_task, request, task_id)
    factory = request.app.state.session_factory
    last_event_id = request.headers.get("last-event-id", "")
    if after is None and last_event_id.isdigit():
        after = int(last_event_id)  # an EventSource reconnecting after a drop

    def poll(last: int | None) -> tuple[list[dict[str, Any]], str]:
        with session_scope(factory) as session:
            # State first: a finished task's final event was committed with its state,
            # so reading events afterwards cannot miss it.
            task = store.get_task(session, task_id)
            status = task.status if task else "failed"
            events = [_event_view(e) for e in store.list_events(session, task_id, last)]
            return events, status

    async def events() -> AsyncIterator[dict[str, str]]:
        last = after
        while not await request.is_disconnected():
            batch, status = await run_in_threadpool(poll, last)
            for event in batch:
                last = event["id"]
                yield {"event": event["type"], "data": json.dumps(event), "id": str(event["id"])}
            if not batch and status in store.TERMINAL:
                return  # everything up to the end was sent
            if not batch:
                await asyncio.sleep(0.25)

    return EventSourceResponse(events(), ping=15)


@router.post("/tasks/{task_id}/cancel")
def cancel_task(task_id: str, request: Request, principal: Principal = WritePrincipal) -> dict:
    _may_change(principal, _load_task(request, task_id))
    status = engine.cancel(request.app.state.session_factory, task_id)
    return {"id": task_id, "status": status}


@router.post("/tasks/{task_id}/retry", status_code=201)
def retry_task(task_id: str, request: Request, principal: Principal = WritePrincipal) -> dict:
    _may_change(principal, _load_task(request, task_id))
    resume_at = engine.retry(request.app.state.session_factory, task_id, _dispatch(request))
    return {"id": task_id, "resumeAt": resume_at}


def _inline_template(body: DryRun, scratch: Path) -> Template:
    entity = body.template or {}
    if entity.get("kind") != "Template":
        raise InputError(
            "template must be a Template entity",
            [ErrorDetail("template.kind", "expected 'Template'")],
        )
    for item in body.directoryContents:
        relative = Path(str(item.get("path", "")))
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise InputError(
                "directoryContents paths must be relative",
                [ErrorDetail("directoryContents.path", str(relative))],
            )
        target = scratch / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(str(item.get("base64Content", ""))))
    meta = entity.get("metadata") or {}
    ref = template_ref(meta.get("namespace") or "default", meta.get("name") or "dry-run")
    # Uploaded content is not trusted: its cookiecutter hooks never run.
    return Template(ref, entity, scratch, trusted=False)


@router.post("/dry-run")
def dry_run(body: DryRun, request: Request, principal: Principal = WritePrincipal) -> dict:
    settings = request.app.state.settings
    factory = request.app.state.session_factory
    scratch = Path(tempfile.mkdtemp(prefix="ragportal-dry-template-"))
    try:
        if body.templateRef:
            template = engine.find(settings, factory, body.templateRef)
        elif body.template:
            template = _inline_template(body, scratch)
        else:
            raise InputError(
                "give templateRef or template",
                [ErrorDetail("templateRef", "required without template")],
            )
        return engine.dry_run(
            settings,
            factory,
            template=template,
            values=body.values,
            secrets=body.secrets,
            user_ref=principal.subject,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
