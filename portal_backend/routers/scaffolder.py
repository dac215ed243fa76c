"""Scaffolder API, ``/api/scaffolder/v2``, shaped like Backstage's scaffolder backend.

Thin: task views and changes are portal_backend.scaffolder.tasks, the work the engine's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from catalog.errors import NotAllowedError
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import AdminPrincipal, ReadPrincipal, WritePrincipal, scaffolder_dispatch
from portal_backend.openapi import MAX_INT
from portal_backend.rag import access
from portal_backend.scaffolder import engine, fleet, registration, store, tasks, upgrades
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import all_actions
from portal_backend.scaffolder.api_models import DryRun, TaskCreate, TaskEventsQuery

router = APIRouter(prefix="/api/scaffolder/v2", tags=["scaffolder"])


@router.get("/templates/{namespace}/{kind}/{name}/parameter-schema")
def get_parameter_schema(
    namespace: str, kind: str, name: str, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    return tasks.template_parameter_schema(
        request.app.state.settings, request.app.state.session_factory, namespace, kind, name
    )


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
        dispatch=scaffolder_dispatch(request),
    )
    return {"id": task_id}


@router.get("/tasks")
def list_tasks(
    request: Request,
    createdBy: str | None = None,  # noqa: N803
    status: str | None = Query(None, pattern="^(open|processing|failed|cancelled|completed)$"),
    limit: int = Query(20, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_INT),
    principal: Principal = ReadPrincipal,
) -> dict[str, Any]:
    if createdBy == "me":
        createdBy = principal.subject  # noqa: N806
    return tasks.list_tasks(
        request.app.state.session_factory,
        created_by=createdBy,
        status=status,
        limit=limit,
        offset=offset,
    )


@router.get("/tasks/{task_id}")
def get_task(task_id: str, request: Request, principal: Principal = ReadPrincipal) -> dict:
    return tasks.get_task(request.app.state.session_factory, task_id)


@router.get("/tasks/{task_id}/events")
def get_events(
    task_id: str,
    request: Request,
    query: Annotated[TaskEventsQuery, Query()],
    principal: Principal = ReadPrincipal,
) -> list[dict[str, Any]]:
    return tasks.list_events(request.app.state.session_factory, task_id, query.after)


@router.get("/tasks/{task_id}/eventstream")
async def event_stream(
    task_id: str,
    request: Request,
    after: int | None = Query(None, ge=0, le=MAX_INT),
    principal: Principal = ReadPrincipal,
) -> EventSourceResponse:
    factory = request.app.state.session_factory
    await run_in_threadpool(tasks.get_task, factory, task_id)
    last_event_id = request.headers.get("last-event-id", "")
    if after is None and last_event_id.isdigit():
        after = int(last_event_id)  # an EventSource reconnecting after a drop

    async def events() -> AsyncIterator[dict[str, str]]:
        last = after
        while not await request.is_disconnected():
            batch, status = await run_in_threadpool(tasks.events_since, factory, task_id, last)
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
    return tasks.cancel(request.app.state.session_factory, task_id, principal)


@router.post("/tasks/{task_id}/retry", status_code=201)
def retry_task(task_id: str, request: Request, principal: Principal = WritePrincipal) -> dict:
    return tasks.retry(
        request.app.state.session_factory, task_id, principal, scaffolder_dispatch(request)
    )


@router.post("/dry-run")
def dry_run(body: DryRun, request: Request, principal: Principal = WritePrincipal) -> dict:
    return tasks.dry_run(
        request.app.state.settings,
        request.app.state.session_factory,
        ref=body.templateRef,
        inline=body.template,
        directory_contents=body.directoryContents,
        values=body.values,
        secrets=body.secrets,
        user_ref=principal.subject,
    )


class UpgradeRequest(BaseModel):
    entityRef: str = Field(min_length=1)  # noqa: N815
    toVersion: str | None = None  # noqa: N815
    fromVersion: str | None = Field(  # noqa: N815
        default=None, description="for a repository without an answers file (adoption)"
    )
    values: dict[str, Any] | None = None


class FleetUpgradeRequest(BaseModel):
    toVersion: str | None = None  # noqa: N815
    values: dict[str, Any] | None = None


@router.post("/upgrades", status_code=201)
def create_upgrade(
    body: UpgradeRequest,
    request: Request,
    response: Response,
    principal: Principal = WritePrincipal,
) -> dict[str, Any]:
    """Upgrade one service's repository to a newer template version (a task; 200 with
    status up-to-date and no task when it already is on it). Only its owners (or an
    admin) may."""
    with session_scope(request.app.state.session_factory) as session:
        entity = upgrades.entity_of(session, body.entityRef)[1]
    if not access.may_change(principal, entity):
        raise NotAllowedError("only the owning group or an admin may upgrade this service")
    answer = upgrades.submit_upgrade(
        request.app.state.settings,
        request.app.state.session_factory,
        entity_ref=body.entityRef,
        to_version=body.toVersion,
        from_version=body.fromVersion,
        values=body.values,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )
    if answer["id"] is None:
        response.status_code = 200
    return answer


@router.get("/templates/{namespace}/{kind}/{name}/versions")
def template_versions(
    namespace: str, kind: str, name: str, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    """The template's recorded versions and which services are on each (drift)."""
    return fleet.drift(
        request.app.state.session_factory, fleet.template_ref_of(namespace, kind, name)
    )


@router.post("/templates/{namespace}/{kind}/{name}/versions", status_code=201)
def register_template_version(
    namespace: str,
    kind: str,
    name: str,
    request: Request,
    response: Response,
    principal: Principal = AdminPrincipal,
) -> dict[str, Any]:
    """Record the template's folder as its spec.version (409 if it changed under a
    version already recorded)."""
    answer = registration.register_template_version(
        request.app.state.settings,
        request.app.state.session_factory,
        fleet.template_ref_of(namespace, kind, name),
    )
    if not answer["created"]:
        response.status_code = 200
    return answer


@router.post("/templates/{namespace}/{kind}/{name}/versions/refresh")
def refresh_template_versions(
    namespace: str, kind: str, name: str, request: Request, principal: Principal = WritePrincipal
) -> dict[str, Any]:
    """Re-read each service's answers file on its default branch into the catalog."""
    return fleet.refresh(
        request.app.state.settings,
        request.app.state.session_factory,
        fleet.template_ref_of(namespace, kind, name),
    )


@router.post("/templates/{namespace}/{kind}/{name}/upgrades", status_code=202)
def create_fleet_upgrade(
    namespace: str,
    kind: str,
    name: str,
    request: Request,
    body: FleetUpgradeRequest | None = None,
    principal: Principal = AdminPrincipal,
) -> dict[str, Any]:
    """Upgrade every service behind on the template: one task each."""
    body = body or FleetUpgradeRequest()
    return fleet.submit_fleet(
        request.app.state.settings,
        request.app.state.session_factory,
        template_ref=fleet.template_ref_of(namespace, kind, name),
        to_version=body.toVersion,
        values=body.values,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )


@router.get("/fleet-upgrades/{fleet_id}")
def get_fleet_upgrade(
    fleet_id: str, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    """A fleet upgrade's summary: merged clean, conflicts, failed, running."""
    return fleet.get_fleet(request.app.state.session_factory, fleet_id)
