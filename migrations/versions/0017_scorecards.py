"""Scorecards: the check set an admin put through the API, and one snapshot per service
per run (level, counts and every check's result: the history).

Revision ID: 0017_scorecards
Revises: 0016_catalog_sqlite_text_index
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_scorecards"
down_revision: str | None = "0016_catalog_sqlite_text_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scorecard_check_sets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_yaml", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
    )
    op.create_table(
        "scorecard_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("entity_ref", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=63), nullable=True),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.Column("checks_digest", sa.String(length=64), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
    )
    op.create_index("ix_scorecard_snapshots_run_id", "scorecard_snapshots", ["run_id"])
    op.create_index("ix_scorecard_snapshots_owner", "scorecard_snapshots", ["owner"])
    op.create_index("ix_scorecard_snapshots_computed_at", "scorecard_snapshots", ["computed_at"])
    op.create_index(
        "ix_scorecard_snapshots_entity_at", "scorecard_snapshots", ["entity_ref", "computed_at"]
    )


def downgrade() -> None:
    op.drop_table("scorecard_snapshots")
    op.drop_table("scorecard_check_sets")
