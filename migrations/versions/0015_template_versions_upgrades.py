"""Template versions (a stored snapshot of the folder per recorded version) and upgrades
of generated repositories (one row per service upgrade, one per fleet request).

Revision ID: 0015_template_versions_upgrades
Revises: 0014_auth_sessions_audit
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_template_versions_upgrades"
down_revision: str | None = "0014_auth_sessions_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scaffolder_template_versions",
        sa.Column("template_ref", sa.String(length=255), primary_key=True),
        sa.Column("version", sa.String(length=64), primary_key=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("trusted", sa.Boolean(), nullable=False),
        sa.Column("changelog", JSONType, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "scaffolder_upgrades",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column(
            "task_id",
            sa.String(length=36),
            sa.ForeignKey("scaffolder_tasks.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("entity_ref", sa.String(length=255), nullable=False),
        sa.Column("template_ref", sa.String(length=255), nullable=False),
        sa.Column("from_version", sa.String(length=64), nullable=False),
        sa.Column("to_version", sa.String(length=64), nullable=False),
        sa.Column("fleet_id", sa.String(length=36), nullable=True),
        sa.Column("active_ref", sa.String(length=255), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("file_counts", JSONType, nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scaffolder_upgrades_entity_ref", "scaffolder_upgrades", ["entity_ref"])
    op.create_index("ix_scaffolder_upgrades_template_ref", "scaffolder_upgrades", ["template_ref"])
    op.create_index("ix_scaffolder_upgrades_fleet_id", "scaffolder_upgrades", ["fleet_id"])
    op.create_index(
        "ix_scaffolder_upgrades_active_ref", "scaffolder_upgrades", ["active_ref"], unique=True
    )
    op.create_table(
        "scaffolder_fleet_upgrades",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("template_ref", sa.String(length=255), nullable=False),
        sa.Column("to_version", sa.String(length=64), nullable=False),
        sa.Column("refused", JSONType, nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_scaffolder_fleet_upgrades_template_ref", "scaffolder_fleet_upgrades", ["template_ref"]
    )


def downgrade() -> None:
    op.drop_table("scaffolder_fleet_upgrades")
    op.drop_table("scaffolder_upgrades")
    op.drop_table("scaffolder_template_versions")
