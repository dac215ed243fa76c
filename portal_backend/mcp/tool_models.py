"""Each tool's input model, made of the REST API's own request models.

A tool's JSON schema is its model's ``model_json_schema()``; the model inherits the REST
route's body or query model (and, where the route names the thing in its path, a small
model of those path parameters), so a field added to the API is in the tool.
``RestInput`` records which route each part comes from: tests/mcp checks the tools'
schemas against the portal's OpenAPI document, and docs/mcp.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from catalog.api_models import EntityName, EntityQueryParams
from portal_backend.rag.api_models import AskBody, ServiceName
from portal_backend.scaffolder.api_models import DryRun, TaskCreate, TaskEventsQuery, TaskId
from portal_backend.sla.api_models import CostQuery, ServiceReportQuery


@dataclass(frozen=True)
class RestInput:
    """One part of a tool's input as a REST route takes it."""

    method: str
    path: str
    part: Literal["body", "query", "path"]
    model: type[BaseModel]
    fields: tuple[str, ...] = ()  # () = every field of the model


class NoInput(BaseModel):
    """No arguments."""

    model_config = ConfigDict(extra="forbid")


class TaskLogInput(TaskId, TaskEventsQuery):
    """A task's status, steps and log (the events after ``after``)."""


class AskInput(ServiceName, AskBody):
    """A question to a running RAG service, answered through its own /query."""


class ServiceSlaInput(EntityName, ServiceReportQuery):
    """A service's SLOs, cost, budget, evaluations and firing alerts over a window."""

    kind: str = Field(default="component", min_length=1, max_length=63)


class OwnerCostInput(BaseModel):
    """An owner group's spend over a window, its budget and its services' SLO states."""

    owner: str = Field(
        min_length=1, max_length=255, description="a group ref or name, e.g. group:default/team-a"
    )
    # GET /api/sla/costs' own window field (its default and description).
    window: str = Field(
        default=CostQuery.model_fields["window"].default,
        description=CostQuery.model_fields["window"].description,
    )


class ScorecardInput(EntityName):
    """A service's scorecard: each check's state and why, and its level."""

    kind: str = Field(default="component", min_length=1, max_length=63)


SCAFFOLDER = "/api/scaffolder/v2"
SEARCH = (RestInput("GET", "/api/catalog/entities/by-query", "query", EntityQueryParams),)
ENTITY = (
    RestInput("GET", "/api/catalog/entities/by-name/{kind}/{namespace}/{name}", "path", EntityName),
)
DRY_RUN = (RestInput("POST", f"{SCAFFOLDER}/dry-run", "body", DryRun),)
CREATE = (RestInput("POST", f"{SCAFFOLDER}/tasks", "body", TaskCreate),)
TASK_LOG = (
    RestInput("GET", f"{SCAFFOLDER}/tasks/{{task_id}}/events", "path", TaskId),
    RestInput("GET", f"{SCAFFOLDER}/tasks/{{task_id}}/events", "query", TaskEventsQuery),
)
ASK = (
    RestInput("POST", "/api/rag/services/{namespace}/{name}/ask", "path", ServiceName),
    RestInput("POST", "/api/rag/services/{namespace}/{name}/ask", "body", AskBody),
)
SERVICE_SLA = (
    RestInput("GET", "/api/sla/services/{kind}/{namespace}/{name}", "path", EntityName),
    RestInput("GET", "/api/sla/services/{kind}/{namespace}/{name}", "query", ServiceReportQuery),
)
OWNER_COST = (RestInput("GET", "/api/sla/costs", "query", CostQuery, ("window",)),)
SCORECARD = (
    RestInput("GET", "/api/scorecards/services/{kind}/{namespace}/{name}", "path", EntityName),
)
