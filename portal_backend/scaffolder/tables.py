"""Scaffolder tables: tasks, their steps and their event log.

The database, not the queue, is the source of truth: a Celery message only says "look
at task X"; which step runs, who holds it and what it produced all live here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Column, Field, SQLModel

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class ScaffolderTask(SQLModel, table=True):
    __tablename__ = "scaffolder_tasks"

    id: str = Field(primary_key=True, max_length=36)
    template_ref: str = Field(max_length=255, index=True)
    # Snapshot of the template (parameters, steps, output) and its folder, so a task runs
    # the template as it was when submitted.
    spec: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    values: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    # Kept only while the task may still run (cleared on completion or cancel); never
    # copied into events, logs or the repository.
    secrets: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    created_by: str = Field(max_length=255, index=True)
    status: str = Field(max_length=16, index=True)  # open|processing|failed|cancelled|completed
    cancel_requested: bool = False
    output: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    error: str | None = Field(default=None, sa_column=Column(sa.Text))
    created_at: datetime
    updated_at: datetime
    # Last time a queue message was sent for it; the sweep re-sends when nothing moves.
    dispatched_at: datetime | None = None
    completed_at: datetime | None = None


class ScaffolderStep(SQLModel, table=True):
    __tablename__ = "scaffolder_steps"

    task_id: str = Field(
        primary_key=True, max_length=36, foreign_key="scaffolder_tasks.id", ondelete="CASCADE"
    )
    step_id: str = Field(primary_key=True, max_length=100)
    position: int
    name: str = Field(max_length=255)
    action: str = Field(max_length=100)
    status: str = Field(max_length=16)  # open|processing|completed|failed|skipped|cancelled
    output: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    error: str | None = Field(default=None, sa_column=Column(sa.Text))
    attempts: int = 0
    # Random token of the worker run that holds the step; completion must present it.
    claim: str | None = Field(default=None, max_length=36)
    worker: str | None = Field(default=None, max_length=255)
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ScaffolderEvent(SQLModel, table=True):
    __tablename__ = "scaffolder_events"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(
        max_length=36, foreign_key="scaffolder_tasks.id", ondelete="CASCADE", index=True
    )
    type: str = Field(max_length=16)  # log | completion | cancelled | recovered
    body: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    created_at: datetime


class ScaffolderWorkspace(SQLModel, table=True):
    """A task's workspace as of its last completed step (a gzipped tar), so the next step
    finds it on whichever worker runs it, with no shared folder between workers."""

    __tablename__ = "scaffolder_workspaces"

    task_id: str = Field(
        primary_key=True, max_length=36, foreign_key="scaffolder_tasks.id", ondelete="CASCADE"
    )
    # Content digest of the files (not of the archive bytes): a worker whose local copy has
    # this digest already holds the same files and skips the download.
    digest: str = Field(max_length=64)
    archive: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    size_bytes: int
    step_id: str = Field(max_length=100)
    updated_at: datetime
