"""Scaffolder tasks, steps and events.

Revision ID: 0003_scaffolder
Revises: 0002_catalog
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_scaffolder"
down_revision: str | None = "0002_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scaffolder_tasks",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("template_ref", sa.String(length=255), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("secrets", JSON, nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_scaffolder_tasks_template_ref", "scaffolder_tasks", ["template_ref"])
    op.create_index("ix_scaffolder_tasks_created_by", "scaffolder_tasks", ["created_by"])
    op.create_index("ix_scaffolder_tasks_status", "scaffolder_tasks", ["status"])
    op.create_table(
        "scaffolder_steps",
        sa.Column(
            "task_id",
            sa.String(length=36),
            sa.ForeignKey("scaffolder_tasks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step_id", sa.String(length=100), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claim", sa.String(length=36), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "scaffolder_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "task_id",
            sa.String(length=36),
            sa.ForeignKey("scaffolder_tasks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scaffolder_events_task_id", "scaffolder_events", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_scaffolder_events_task_id", table_name="scaffolder_events")
    op.drop_table("scaffolder_events")
    op.drop_table("scaffolder_steps")
    op.drop_index("ix_scaffolder_tasks_status", table_name="scaffolder_tasks")
    op.drop_index("ix_scaffolder_tasks_created_by", table_name="scaffolder_tasks")
    op.drop_index("ix_scaffolder_tasks_template_ref", table_name="scaffolder_tasks")
    op.drop_table("scaffolder_tasks")
