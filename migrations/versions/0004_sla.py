"""sla tables (placeholder in the chain until that domain defines its tables).

Revision ID: 0004_sla
Revises: 0003_scaffolder
Create Date: 2026-11-28
"""

from collections.abc import Sequence

revision: str = "0004_sla"
down_revision: str | None = "0003_scaffolder"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
