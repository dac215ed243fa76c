"""SLA usage per LoRA adapter: pushed records may name the adapter that served them;
``sla_adapter_usage`` sums them per (service, adapter, hour), and raw records keep it.

Revision ID: 0012_sla_adapter_usage
Revises: 0011_scaffolder_workspaces
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_sla_adapter_usage"
down_revision: str | None = "0011_scaffolder_workspaces"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sla_adapter_usage",
        sa.Column("service_ref", sa.String(length=255), primary_key=True),
        sa.Column("adapter", sa.String(length=200), primary_key=True),
        sa.Column("bucket_ts", sa.BigInteger(), primary_key=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_sla_adapter_usage_ts", "sla_adapter_usage", ["bucket_ts"])
    op.add_column("sla_usage_records", sa.Column("adapter", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_usage_records") as batch:
        batch.drop_column("adapter")
    op.drop_index("ix_sla_adapter_usage_ts", table_name="sla_adapter_usage")
    op.drop_table("sla_adapter_usage")
