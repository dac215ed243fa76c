"""Scorecard tables: the check set an admin replaced the file's with, and one snapshot
per service per run (its level and every check's result), which is the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel


class ScorecardCheckSet(SQLModel, table=True):
    """The checks set through the admin API (one row, id 1); none: the settings' file."""

    __tablename__ = "scorecard_check_sets"

    id: int = Field(default=1, primary_key=True)
    source_yaml: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime
    updated_by: str | None = Field(default=None, max_length=255)


class ScorecardSnapshot(SQLModel, table=True):
    """A service's scorecard as one run computed it."""

    __tablename__ = "scorecard_snapshots"
    __table_args__ = (Index("ix_scorecard_snapshots_entity_at", "entity_ref", "computed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=36, index=True)
    entity_ref: str = Field(max_length=255)
    owner: str | None = Field(default=None, max_length=255, index=True)
    computed_at: datetime = Field(index=True)
    level: str | None = Field(default=None, max_length=63)  # None: not even the first level
    passed: int = 0
    failed: int = 0
    unknown: int = 0
    checks_digest: str = Field(max_length=64)  # which check set produced it
    results: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
