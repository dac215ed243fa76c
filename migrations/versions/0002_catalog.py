"""catalog tables (placeholder in the chain until that domain defines its tables).

Revision ID: 0002_catalog
Revises: 0001_api_tokens
Create Date: 2026-11-28
"""

from collections.abc import Sequence

revision: str = "0002_catalog"
down_revision: str | None = "0001_api_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
