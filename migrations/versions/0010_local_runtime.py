"""local runtime: where a provisioned service runs (target, endpoint, deployed commit,
lease) and the supervised processes of services on the local runtime.

Revision ID: 0010_local_runtime
Revises: 0009_catalog_metadata_maps
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_local_runtime"
down_revision: str | None = "0009_catalog_metadata_maps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provisioned_services") as batch:
        batch.add_column(sa.Column("target", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("endpoint", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("repo_contents_url", sa.String(), nullable=True))
        batch.add_column(sa.Column("commit", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    # Rows from before: on a cluster, or only planned.
    op.execute(
        "UPDATE provisioned_services SET target = CASE WHEN cluster IS NULL THEN 'plan' "
        "ELSE 'kubernetes' END"
    )
    op.create_table(
        "runtime_processes",
        sa.Column("service", sa.String(length=63), primary_key=True),
        sa.Column("role", sa.String(length=16), primary_key=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("started_ts", sa.Float(), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("command", sa.JSON(), nullable=True),
        sa.Column("log_path", sa.String(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("next_start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("runtime_processes")
    with op.batch_alter_table("provisioned_services") as batch:
        for column in ("lease_until", "lease_owner", "commit", "repo_contents_url", "endpoint"):
            batch.drop_column(column)
        batch.drop_column("target")
