"""Scaffolder tasks as the API and the pages show them (Backstage's task and event
shapes), and the changes a user may make to one: cancel and retry.

One implementation for both adapters, so the task page and the API never disagree.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ErrorDetail, InputError, NotAllowedError, NotFoundError
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.scaffolder import engine, store
from portal_backend.scaffolder.tables import ScaffolderEvent, ScaffolderStep, ScaffolderTask
from portal_backend.scaffolder.templates import Template, parameter_schema, template_ref
from portal_backend.settings import Settings

Factory = sessionmaker[Session]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def task_view(task: ScaffolderTask, steps: list[ScaffolderStep]) -> dict[str, Any]:
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


def event_view(event: ScaffolderEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "taskId": event.task_id,
        "type": event.type,
        "body": event.body,
        "createdAt": _iso(event.created_at),
    }


def get_task(factory: Factory, task_id: str) -> dict[str, Any]:
    with session_scope(factory) as session:
        task = store.get_task(session, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        return task_view(task, store.get_steps(session, task_id))


def list_tasks(
    factory: Factory,
    *,
    created_by: str | None = None,
    status: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> dict[str, Any]:
    with session_scope(factory) as session:
        tasks, total = store.list_tasks(
            session, created_by=created_by, status=status, limit=limit, offset=offset
        )
        items = [task_view(t, store.get_steps(session, t.id)) for t in tasks]
    return {"tasks": items, "totalTasks": total}


def list_events(factory: Factory, task_id: str, after: int | None = None) -> list[dict[str, Any]]:
    get_task(factory, task_id)  # 404 for an unknown task
    with session_scope(factory) as session:
        return [event_view(e) for e in store.list_events(session, task_id, after)]


def events_since(
    factory: Factory, task_id: str, after: int | None
) -> tuple[list[dict[str, Any]], str]:
    """The events after ``after`` and the task's status (for the live event stream)."""
    with session_scope(factory) as session:
        # State first: a finished task's final event was committed with its state, so
        # reading events afterwards cannot miss it.
        task = store.get_task(session, task_id)
        status = task.status if task else "failed"
        events = [event_view(e) for e in store.list_events(session, task_id, after)]
        return events, status


def may_change(principal: Principal, task: dict[str, Any]) -> bool:
    return principal.is_admin or task["createdBy"] == principal.subject


def _check_may_change(principal: Principal, task: dict[str, Any]) -> None:
    if not may_change(principal, task):
        raise NotAllowedError("only the user who started the task (or an admin) may change it")


def cancel(factory: Factory, task_id: str, principal: Principal) -> dict[str, Any]:
    _check_may_change(principal, get_task(factory, task_id))
    return {"id": task_id, "status": engine.cancel(factory, task_id)}


def retry(
    factory: Factory, task_id: str, principal: Principal, dispatch: engine.Dispatch
) -> dict[str, Any]:
    """Resumes a failed task from its failed step."""
    _check_may_change(principal, get_task(factory, task_id))
    return {"id": task_id, "resumeAt": engine.retry(factory, task_id, dispatch)}


def template_parameter_schema(
    settings: Settings, factory: Factory, namespace: str, kind: str, name: str
) -> dict[str, Any]:
    if kind.lower() != "template":
        raise NotFoundError(f"{kind}:{namespace}/{name} is not a template")
    return parameter_schema(engine.find(settings, factory, template_ref(namespace, name)))


def _inline_template(
    entity: dict[str, Any], directory_contents: list[dict[str, Any]], scratch: Path
) -> Template:
    if entity.get("kind") != "Template":
        raise InputError(
            "template must be a Template entity",
            [ErrorDetail("template.kind", "expected 'Template'")],
        )
    for item in directory_contents:
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


def dry_run(
    settings: Settings,
    factory: Factory,
    *,
    ref: str | None,
    inline: dict[str, Any] | None,
    directory_contents: list[dict[str, Any]],
    values: dict[str, Any],
    secrets: dict[str, str] | None,
    user_ref: str,
) -> dict[str, Any]:
    """Runs a registered template (``ref``) or an uploaded Template entity (``inline``,
    with its files) without publishing anything."""
    scratch = Path(tempfile.mkdtemp(prefix="ragportal-dry-template-"))
    try:
        if ref:
            found = engine.find(settings, factory, ref)
        elif inline:
            found = _inline_template(inline, directory_contents, scratch)
        else:
            raise InputError(
                "give templateRef or template",
                [ErrorDetail("templateRef", "required without template")],
            )
        return engine.dry_run(
            settings, factory, template=found, values=values, secrets=secrets, user_ref=user_ref
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
