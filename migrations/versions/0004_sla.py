"""SLA and cost tables: usage rollups, batches, raw records, services, costs, prices,
budgets, evaluations, alerts and webhook notifications.

Revision ID: 0004_sla
Revises: 0003_scaffolder
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sla"
down_revision: str | None = "0003_scaffolder"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_usage_rollups",
        sa.Column("service_ref", sa.String(length=255), primary_key=True),
        sa.Column("resolution", sa.String(length=4), primary_key=True),
        sa.Column("bucket_ts", sa.BigInteger(), primary_key=True),
        sa.Column("source", sa.String(length=32), primary_key=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("successes", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("timeouts", sa.BigInteger(), nullable=False),
        sa.Column("refused", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_hist", sa.LargeBinary(), nullable=False),
        sa.Column("ttft_hist", sa.LargeBinary(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_sla_usage_rollups_res_ts", "sla_usage_rollups", ["resolution", "bucket_ts"])
    op.create_table(
        "sla_ingest_batches",
        sa.Column("batch_id", sa.String(length=128), primary_key=True),
        sa.Column("token_id", sa.String(length=36), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("ix_sla_ingest_batches_received_at", "sla_ingest_batches", ["received_at"])
    op.create_table(
        "sla_usage_records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service_ref", sa.String(length=255), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("batch_id", sa.String(length=128), nullable=False),
    )
    op.create_index("ix_sla_usage_records_ts", "sla_usage_records", ["ts"])
    op.create_table(
        "sla_services",
        sa.Column("service_ref", sa.String(length=255), primary_key=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("cluster", sa.String(length=255), nullable=True),
        sa.Column("slo_p95_latency_ms", sa.Float(), nullable=True),
        sa.Column("slo_success_rate", sa.Float(), nullable=True),
        sa.Column("monthly_budget_usd", sa.Float(), nullable=True),
        sa.Column("gpu_class", sa.String(length=64), nullable=True),
        sa.Column("gpus", sa.Float(), nullable=True),
        sa.Column("replicas", sa.Float(), nullable=True),
        sa.Column("deployment_state", sa.String(length=32), nullable=True),
        sa.Column("synced_at", TZ, nullable=False),
    )
    op.create_index("ix_sla_services_owner", "sla_services", ["owner"])
    op.create_table(
        "sla_collector_cursors",
        sa.Column("service_ref", sa.String(length=255), primary_key=True),
        sa.Column("cursor_ts", sa.Float(), nullable=False),
        sa.Column("last_values", sa.JSON(), nullable=False),
    )
    op.create_table(
        "sla_cost_buckets",
        sa.Column("service_ref", sa.String(length=255), primary_key=True),
        sa.Column("period", sa.String(length=4), primary_key=True),
        sa.Column("bucket_ts", sa.BigInteger(), primary_key=True),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
    )
    op.create_index("ix_sla_cost_buckets_period_ts", "sla_cost_buckets", ["period", "bucket_ts"])
    op.create_table(
        "sla_cost_cursors",
        sa.Column("service_ref", sa.String(length=255), primary_key=True),
        sa.Column("accrued_until", sa.Float(), nullable=False),
    )
    op.create_table(
        "sla_prices",
        sa.Column("item", sa.String(length=100), primary_key=True),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
    )
    op.create_table(
        "sla_budgets",
        sa.Column("ref", sa.String(length=255), primary_key=True),
        sa.Column("monthly_usd", sa.Float(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
    )
    op.create_table(
        "sla_evaluations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("service_ref", sa.String(length=255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=True),
        sa.Column("submitted_by", sa.String(length=255), nullable=True),
    )
    op.create_index("ix_sla_evaluations_service_ref", "sla_evaluations", ["service_ref"])
    op.create_index("ix_sla_evaluations_created_at", "sla_evaluations", ["created_at"])
    op.create_table(
        "sla_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("alertname", sa.String(length=100), nullable=False),
        sa.Column("service_ref", sa.String(length=255), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=True),
    )
    op.create_index("ix_sla_alerts_fingerprint", "sla_alerts", ["fingerprint"])
    op.create_index("ix_sla_alerts_service_ref", "sla_alerts", ["service_ref"])
    op.create_index("ix_sla_alerts_state", "sla_alerts", ["state"])
    op.create_table(
        "sla_notifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
    )
    op.create_index("ix_sla_notifications_alert_id", "sla_notifications", ["alert_id"])
    op.create_index("ix_sla_notifications_state", "sla_notifications", ["state"])


def downgrade() -> None:
    for table in (
        "sla_notifications",
        "sla_alerts",
        "sla_evaluations",
        "sla_budgets",
        "sla_prices",
        "sla_cost_cursors",
        "sla_cost_buckets",
        "sla_collector_cursors",
        "sla_services",
        "sla_usage_records",
        "sla_ingest_batches",
        "sla_usage_rollups",
    ):
        op.drop_table(table)
