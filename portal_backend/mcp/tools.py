"""The MCP tools: each one a REST call of the portal, made with the caller's rights.

A tool takes its input model (tool_models.py), checks the same scope as the route, and
calls the same domain function the route calls; what it returns is the route's answer,
trimmed where an AI client gains nothing from it (base64 file contents, chart series).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from catalog.api_models import EntityName, EntityQueryParams
from catalog.by_query import query_json
from catalog.entity_reads import EntityReads
from catalog.errors import InputError, NotFoundError
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.mcp import tool_models as m
from portal_backend.mcp.portal import Portal, require
from portal_backend.rag import ask
from portal_backend.scaffolder import engine, tasks
from portal_backend.scaffolder.api_models import DryRun, TaskCreate
from portal_backend.scorecards import service as scorecards
from portal_backend.sla import reports, services
from portal_backend.sla.clock import utcnow
from portal_backend.sla.refs import normalize_ref
from portal_backend.sla.tables import SlaService

# Templates listed by list_templates (a catalog has a handful; the page bounds a bad one).
MAX_TEMPLATES = 100


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    model: type[BaseModel]
    scope: str  # what the REST route needs: read or write
    run: Callable[[Portal, Principal, Any], Any]
    rest: tuple[m.RestInput, ...] = ()
    read_only: bool = True
    # Write tools are recorded in the audit log as "MCP <name>" with this target.
    audit_target: Callable[[Any], str] | None = None

    def input_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()


def search_catalog(portal: Portal, principal: Principal, args: EntityQueryParams) -> Any:
    with session_scope(portal.session_factory) as session:
        return json.loads(query_json(session, args))


def get_entity(portal: Portal, principal: Principal, args: EntityName) -> Any:
    with session_scope(portal.session_factory) as session:
        entity = EntityReads(session).get_by_name(args.kind, args.namespace, args.name)
    if entity is None:
        raise NotFoundError(
            f"No entity named '{args.name}' found, with kind '{args.kind}' in '{args.namespace}'"
        )
    return entity


def list_templates(portal: Portal, principal: Principal, args: m.NoInput) -> Any:
    params = EntityQueryParams(
        filter=["kind=template"], orderField=["metadata.name,asc"], limit=MAX_TEMPLATES
    )
    with session_scope(portal.session_factory) as session:
        found = json.loads(query_json(session, params))["items"]
    listed = []
    for entity in found:
        meta = entity["metadata"]
        namespace = meta.get("namespace", "default")
        item: dict[str, Any] = {
            "templateRef": f"template:{namespace}/{meta['name']}",
            "title": meta.get("title") or meta["name"],
            "description": meta.get("description"),
            "version": (entity.get("spec") or {}).get("version"),
            "tags": meta.get("tags", []),
        }
        try:
            item["parameterSchema"] = tasks.template_parameter_schema(
                portal.settings, portal.session_factory, namespace, "template", meta["name"]
            )
        except (InputError, NotFoundError) as exc:  # one broken template hides no other
            item["error"] = exc.message
        listed.append(item)
    return {"templates": listed}


def dry_run_template(portal: Portal, principal: Principal, args: DryRun) -> Any:
    result = tasks.dry_run(
        portal.settings,
        portal.session_factory,
        ref=args.templateRef,
        inline=args.template,
        directory_contents=args.directoryContents,
        values=args.values,
        secrets=args.secrets,
        user_ref=principal.subject,
    )
    # The files by path and size: base64 contents are for the REST API's editor.
    files = result.pop("directoryContents", [])
    result["files"] = [
        {"path": f["path"], "bytes": len(f.get("base64Content") or "") * 3 // 4} for f in files
    ]
    return result


def create_service(portal: Portal, principal: Principal, args: TaskCreate) -> Any:
    task_id = engine.submit(
        portal.settings,
        portal.session_factory,
        template_ref=args.templateRef,
        values=args.values,
        secrets=args.secrets,
        user_ref=principal.subject,
        dispatch=portal.dispatch,
    )
    return {
        "id": task_id,
        "status": "open",
        "taskUrl": f"{portal.settings.base_url.rstrip('/')}/tasks/{task_id}",
        "next": "follow it with get_task (its log), until status is completed or failed",
    }


def get_task(portal: Portal, principal: Principal, args: m.TaskLogInput) -> Any:
    task = tasks.get_task(portal.session_factory, args.task_id)
    events = tasks.list_events(portal.session_factory, args.task_id, args.after)
    task.pop("spec", None)  # the template's steps and the values: see get_entity/templates
    task["events"] = [
        {
            "id": e["id"],
            "type": e["type"],
            "stepId": e["body"].get("stepId"),
            "message": e["body"].get("message"),
            "createdAt": e["createdAt"],
        }
        for e in events
    ]
    task["log"] = "\n".join(str(e["message"]) for e in task["events"] if e["message"])
    task["lastEventId"] = events[-1]["id"] if events else args.after
    return task


def ask_service(portal: Portal, principal: Principal, args: m.AskInput) -> Any:
    return ask.ask(portal.session_factory, args.name, args.question, adapter=args.adapter)


def service_sla(portal: Portal, principal: Principal, args: m.ServiceSlaInput) -> Any:
    now = utcnow()
    with session_scope(portal.session_factory) as session:
        ref = normalize_ref(f"{args.kind}:{args.namespace}/{args.name}", path="ref")
        service = services.find(session, ref, now)
        if service is None:
            raise NotFoundError(f"no service {ref} in the catalog")
        report = reports.service_report(session, service, args.window, now)
    report.pop("series", None)  # chart points
    return report


def owner_cost(portal: Portal, principal: Principal, args: m.OwnerCostInput) -> Any:
    owner = normalize_ref(args.owner, default_kind="group", path="owner").lower()
    now = utcnow()
    with session_scope(portal.session_factory) as session:
        summary = reports.cost_summary(session, "owner", args.window, now)
        owned = session.scalars(
            select(SlaService).where(SlaService.owner == owner).order_by(SlaService.service_ref)
        ).all()
        entities = EntityReads(session).get_by_refs([s.service_ref for s in owned])
        service_states = [
            {
                "service": s.service_ref,
                "slo": ((entity or {}).get("status") or {}).get("slo"),
                "cost": ((entity or {}).get("status") or {}).get("cost"),
            }
            for s, entity in zip(owned, entities, strict=True)
        ]
    items = [item for item in summary.get("items", []) if item.get("id") == owner]
    if not items and not service_states:
        raise NotFoundError(f"{owner} owns no RAG service the portal tracks")
    return {
        "owner": owner,
        "window": args.window,
        "cost": items[0] if items else None,
        "services": service_states,
    }


def get_scorecard(portal: Portal, principal: Principal, args: m.ScorecardInput) -> Any:
    with session_scope(portal.session_factory) as session:
        return scorecards.current(session, f"{args.kind}:{args.namespace}/{args.name}")


TOOLS: tuple[Tool, ...] = (
    Tool(
        "search_catalog",
        "Search the catalog",
        "Find entities (RAG services, groups, templates, ...) with Backstage filters "
        "(e.g. filter=['kind=component,spec.type=rag-service']) and full text "
        "(fullTextFilterTerm searched in name, title, description). Pages with "
        "pageInfo.nextCursor. Same as GET /api/catalog/entities/by-query.",
        EntityQueryParams,
        "read",
        search_catalog,
        m.SEARCH,
    ),
    Tool(
        "get_entity",
        "Get an entity",
        "One catalog entity with its relations (owner, dependencies, APIs), annotations "
        "and status (deployment, SLO, cost, scorecard).",
        EntityName,
        "read",
        get_entity,
        m.ENTITY,
    ),
    Tool(
        "list_templates",
        "List templates",
        "The templates services are created from, each with its parameter schema (the "
        "form's JSON schema, one step per page): what create_service's values must hold.",
        m.NoInput,
        "read",
        list_templates,
    ),
    Tool(
        "dry_run_template",
        "Dry-run a template",
        "Render a template with values without creating anything: the log, the steps, "
        "the output and the files it would write. Same validation as create_service.",
        DryRun,
        "write",
        dry_run_template,
        m.DRY_RUN,
    ),
    Tool(
        "create_service",
        "Create a service",
        "Run a template (e.g. template:default/rag-service with name and owner) as a "
        "scaffolder task: repository, catalog entry and deployment. Values are checked "
        "against the template's schema and its prechecks before anything is created. "
        "Returns the task id; follow it with get_task.",
        TaskCreate,
        "write",
        create_service,
        m.CREATE,
        read_only=False,
        audit_target=lambda args: f"templateRef={args.templateRef}",
    ),
    Tool(
        "get_task",
        "Read a task",
        "A scaffolder task's status, steps, output (links to the repository, the catalog "
        "entry, the endpoint) and log; pass after=lastEventId to read only new lines.",
        m.TaskLogInput,
        "read",
        get_task,
        m.TASK_LOG,
    ),
    Tool(
        "ask_service",
        "Ask a RAG service",
        "Ask a running RAG service a question about its documents: its answer with "
        "citations, token usage, latency and cost. Counted in the service's SLA.",
        m.AskInput,
        "read",
        ask_service,
        m.ASK,
    ),
    Tool(
        "service_sla",
        "SLA and cost of a service",
        "A service's SLO state and targets, success rate and latency per window, spend, "
        "month to date and budget, its evaluations and firing alerts.",
        m.ServiceSlaInput,
        "read",
        service_sla,
        m.SERVICE_SLA,
    ),
    Tool(
        "owner_cost",
        "Cost of an owner",
        "An owner group's daily spend over the window, change, month to date and budget, "
        "and the SLO state of each service it owns.",
        m.OwnerCostInput,
        "read",
        owner_cost,
        m.OWNER_COST,
    ),
    Tool(
        "get_scorecard",
        "Scorecard of a service",
        "A service's scorecard: each check (evaluation quality, SLO, budget, template "
        "version, owner, alerts) with its state and why, and the level it reaches.",
        m.ScorecardInput,
        "read",
        get_scorecard,
        m.SCORECARD,
    ),
)
BY_NAME = {tool.name: tool for tool in TOOLS}


def run_tool(portal: Portal, principal: Principal, tool: Tool, arguments: dict[str, Any]) -> Any:
    """Validate ``arguments`` with the tool's model, check the scope, run it (blocking)."""
    args = tool.model.model_validate(arguments)
    require(principal, tool.scope, f"use {tool.name}")
    return tool.run(portal, principal, args)
