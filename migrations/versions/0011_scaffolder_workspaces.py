"""scaffolder workspaces carried in the database between steps (any worker runs any step).

Revision ID: 0011_scaffolder_workspaces
Revises: 0010_local_runtime
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_scaffolder_workspaces"
down_revision: str | None = "0010_local_runtime"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scaffolder_workspaces",
        sa.Column(
            "task_id",
            sa.String(length=36),
            sa.ForeignKey("scaffolder_tasks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scaffolder_workspaces")
