"""Request models of the scaffolder API, shared by its HTTP routes and the MCP server's
tools, so a field added to one is in the other."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TaskCreate(BaseModel):
    """``POST /api/scaffolder/v2/tasks``: run a template with these values."""

    templateRef: str = Field(  # noqa: N815 - Backstage's field name
        min_length=1, description="the template, e.g. template:default/rag-service"
    )
    values: dict[str, Any] = Field(
        default_factory=dict, description="the form's answers (its parameter schema)"
    )
    secrets: dict[str, str] | None = Field(
        default=None, description="secret values for ${{ secrets.x }}; never stored in the repo"
    )


class DryRun(BaseModel):
    """``POST /api/scaffolder/v2/dry-run``: render a template without publishing anything."""

    templateRef: str | None = Field(  # noqa: N815
        default=None, description="a registered template, e.g. template:default/rag-service"
    )
    template: dict[str, Any] | None = Field(
        default=None, description="or a Template entity given inline (with directoryContents)"
    )
    values: dict[str, Any] = Field(default_factory=dict, description="the form's answers")
    secrets: dict[str, str] | None = None
    directoryContents: list[dict[str, Any]] = Field(  # noqa: N815
        default_factory=list,
        description="an inline template's files: [{path, base64Content, executable?}]",
    )


class TaskEventsQuery(BaseModel):
    """``GET /api/scaffolder/v2/tasks/{taskId}/events``' query: the log after an event."""

    after: int | None = Field(
        default=None, ge=0, description="only events after this event id (paging the log)"
    )


class TaskId(BaseModel):
    """A scaffolder task, as the ``{task_id}`` of ``/api/scaffolder/v2/tasks/{task_id}``."""

    task_id: str = Field(min_length=1, max_length=64, description="the id POST /tasks answered")
