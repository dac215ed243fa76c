"""provisioning: provisioned services (desired state, status) and the secret store.

Revision ID: 0005_provisioning
Revises: 0004_sla
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_provisioning"
down_revision: str | None = "0004_sla"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provisioned_services",
        sa.Column("service", sa.String(length=63), primary_key=True),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("cluster", sa.String(length=100), nullable=True),
        sa.Column("environment", sa.String(length=63), nullable=True),
        sa.Column("entity_ref", sa.String(length=255), nullable=True),
        sa.Column("desired", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "portal_secrets",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ciphertext", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scope", "name", name="uq_portal_secrets_scope_name"),
    )
    op.create_index("ix_portal_secrets_scope", "portal_secrets", ["scope"])


def downgrade() -> None:
    op.drop_index("ix_portal_secrets_scope", table_name="portal_secrets")
    op.drop_table("portal_secrets")
    op.drop_table("provisioned_services")
