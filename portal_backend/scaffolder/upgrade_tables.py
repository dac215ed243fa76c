"""Tables of template versions and of upgrades of generated repositories.

A recorded template version keeps the template's whole folder (a gzipped tar), so any
version a repository was generated from can be rendered again, on any worker, long after
the folder on disk moved on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from portal_backend.scaffolder.tables import JSONType


class TemplateVersion(SQLModel, table=True):
    __tablename__ = "scaffolder_template_versions"

    template_ref: str = Field(primary_key=True, max_length=255)
    version: str = Field(primary_key=True, max_length=64)
    # Content digest of the folder's files (names, modes, bytes): the same version
    # registered again must have the same digest, or the registration is refused.
    digest: str = Field(max_length=64)
    archive: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    size_bytes: int
    # Hooks of the folder's cookiecutter skeleton may run when it is rendered again.
    trusted: bool = False
    # Changelog entries by version, as the version's own folder tells them.
    changelog: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    source: str = Field(max_length=255)  # the folder, or the shipped history archive
    recorded_at: datetime


class TemplateUpgrade(SQLModel, table=True):
    """One upgrade of one service's repository (a scaffolder task does the work)."""

    __tablename__ = "scaffolder_upgrades"

    id: str = Field(primary_key=True, max_length=36)
    # Set once the task exists (the row is written first: it is the per-service lock).
    task_id: str | None = Field(
        default=None, max_length=36, foreign_key="scaffolder_tasks.id", ondelete="CASCADE"
    )
    entity_ref: str = Field(max_length=255, index=True)
    template_ref: str = Field(max_length=255, index=True)
    from_version: str = Field(max_length=64)
    to_version: str = Field(max_length=64)
    fleet_id: str | None = Field(default=None, max_length=36, index=True)
    # The entity's ref while this upgrade may still run, NULL afterwards: unique, so a
    # second upgrade of the same service is refused while one is running.
    active_ref: str | None = Field(default=None, max_length=255, unique=True, index=True)
    # merged | conflicts | up-to-date, written by the task's upgrade step.
    result: str | None = Field(default=None, max_length=16)
    branch: str | None = Field(default=None, max_length=255)
    file_counts: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    created_by: str = Field(max_length=255)
    created_at: datetime


class FleetUpgrade(SQLModel, table=True):
    """One request that upgraded every service behind on a template."""

    __tablename__ = "scaffolder_fleet_upgrades"

    id: str = Field(primary_key=True, max_length=36)
    template_ref: str = Field(max_length=255, index=True)
    to_version: str = Field(max_length=64)
    # Services the request could not start an upgrade for, with the reason.
    refused: list[dict[str, Any]] = Field(sa_column=Column(JSONType, nullable=False))
    created_by: str = Field(max_length=255)
    created_at: datetime
