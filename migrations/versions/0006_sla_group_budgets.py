"""SLA group budgets: a monthly budget per owner group, and the group an alert concerns.

Group budgets used to share ``sla_budgets`` with the per-service overrides (a ``group:``
ref in the same table); they move to their own table, because they mean something else
(a ceiling on the sum of the group's services, evaluated on its own). ``sla_alerts``
gains ``group_ref``: the owner group of a service alert, or the group of a group-budget
alert, so ``GET /api/sla/alerts?group=`` is one indexed read.

Revision ID: 0006_sla_group_budgets
Revises: 0005_provisioning
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_sla_group_budgets"
down_revision: str | None = "0005_provisioning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_group_budgets",
        sa.Column("group_ref", sa.String(length=255), primary_key=True),
        sa.Column("monthly_usd", sa.Float(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
    )
    op.execute(
        "INSERT INTO sla_group_budgets (group_ref, monthly_usd, updated_at, updated_by) "
        "SELECT ref, monthly_usd, updated_at, updated_by FROM sla_budgets "
        "WHERE ref LIKE 'group:%'"
    )
    op.execute("DELETE FROM sla_budgets WHERE ref LIKE 'group:%'")
    op.add_column("sla_alerts", sa.Column("group_ref", sa.String(length=255), nullable=True))
    op.create_index("ix_sla_alerts_group_ref", "sla_alerts", ["group_ref"])


def downgrade() -> None:
    with op.batch_alter_table("sla_alerts") as batch:
        batch.drop_index("ix_sla_alerts_group_ref")
        batch.drop_column("group_ref")
    op.execute(
        "INSERT INTO sla_budgets (ref, monthly_usd, updated_at, updated_by) "
        "SELECT group_ref, monthly_usd, updated_at, updated_by FROM sla_group_budgets"
    )
    op.drop_table("sla_group_budgets")
