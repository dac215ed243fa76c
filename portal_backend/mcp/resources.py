"""Catalog entities and task logs as MCP resources (read scope, like the REST reads)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from catalog.api_models import EntityQueryParams
from catalog.by_query import query_json
from catalog.entity_reads import EntityReads
from catalog.errors import InputError, NotFoundError
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.mcp.portal import Portal, require
from portal_backend.scaffolder import tasks

ENTITY_TEMPLATE = "ragportal://entities/{kind}/{namespace}/{name}"
TASK_LOG_TEMPLATE = "ragportal://tasks/{task_id}/log"
_ENTITY = re.compile(r"^ragportal://entities/(?P<kind>[^/]+)/(?P<namespace>[^/]+)/(?P<name>[^/]+)$")
_TASK_LOG = re.compile(r"^ragportal://tasks/(?P<task_id>[^/]+)/log$")
LISTED_SERVICES = 100
LISTED_TASKS = 20


@dataclass(frozen=True)
class Listed:
    uri: str
    name: str
    title: str
    description: str
    mime_type: str


@dataclass(frozen=True)
class Contents:
    uri: str
    mime_type: str
    text: str


def list_resources(portal: Portal, principal: Principal) -> list[Listed]:
    """The RAG services in the catalog and the caller's most recent tasks."""
    require(principal, "read", "list resources")
    params = EntityQueryParams(
        filter=["kind=component,spec.type=rag-service"],
        orderField=["metadata.name,asc"],
        limit=LISTED_SERVICES,
        fields=["kind", "metadata"],
        totalItems="exclude",
    )
    with session_scope(portal.session_factory) as session:
        services = json.loads(query_json(session, params))["items"]
    listed = [
        Listed(
            uri=ENTITY_TEMPLATE.format(
                kind="component",
                namespace=e["metadata"].get("namespace", "default"),
                name=e["metadata"]["name"],
            ),
            name=e["metadata"]["name"],
            title=e["metadata"].get("title") or e["metadata"]["name"],
            description=e["metadata"].get("description") or "RAG service",
            mime_type="application/json",
        )
        for e in services
    ]
    mine = tasks.list_tasks(
        portal.session_factory, created_by=principal.subject, limit=LISTED_TASKS
    )
    for task in mine["tasks"]:
        template = task["spec"]["templateInfo"]["entityRef"]
        listed.append(
            Listed(
                uri=TASK_LOG_TEMPLATE.format(task_id=task["id"]),
                name=f"task {task['id']}",
                title=f"Log of {template} ({task['status']})",
                description=f"created {task['createdAt']}",
                mime_type="text/plain",
            )
        )
    return listed


def read_resource(portal: Portal, principal: Principal, uri: str) -> Contents:
    require(principal, "read", "read resources")
    if match := _ENTITY.match(uri):
        with session_scope(portal.session_factory) as session:
            entity = EntityReads(session).get_by_name(
                match["kind"], match["namespace"], match["name"]
            )
        if entity is None:
            raise NotFoundError(f"no entity {match['kind']}:{match['namespace']}/{match['name']}")
        return Contents(uri, "application/json", json.dumps(entity, indent=2))
    if match := _TASK_LOG.match(uri):
        task = tasks.get_task(portal.session_factory, match["task_id"])
        events = tasks.list_events(portal.session_factory, match["task_id"])
        lines = [
            f"{e['createdAt']} [{e['body'].get('stepId') or e['type']}] {e['body']['message']}"
            for e in events
            if e["body"].get("message")
        ]
        lines.append(f"-- status: {task['status']}")
        return Contents(uri, "text/plain", "\n".join(lines))
    raise InputError(f"unknown resource {uri!r}; use {ENTITY_TEMPLATE} or {TASK_LOG_TEMPLATE}")
