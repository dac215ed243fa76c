"""provisioning tables (placeholder in the chain until that domain defines its tables).

Revision ID: 0005_provisioning
Revises: 0004_sla
Create Date: 2026-11-28
"""

from collections.abc import Sequence

revision: str = "0005_provisioning"
down_revision: str | None = "0004_sla"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
