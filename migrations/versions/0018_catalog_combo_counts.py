"""Catalog: running counts per combination of kind, namespace, lifecycle and type.

``catalog_combo_counts`` (see ``catalog.tables.CatalogComboCount``) is created and
filled from the entities' search rows; writers keep it from now on. With it by-query
counts a filter of those keys (any AND/OR of them) from a few hundred rows instead of
its matching entities.

Revision ID: 0018_catalog_combo_counts
Revises: 0017_scorecards
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_catalog_combo_counts"
down_revision: str | None = "0017_scorecards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of catalog.tables.COMBINED_KEYS at this revision.
COMBINED = {"metadata.namespace": "namespace", "spec.lifecycle": "lifecycle", "spec.type": "type"}


def upgrade() -> None:
    op.create_table(
        "catalog_combo_counts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=True),
        sa.Column("lifecycle", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=200), nullable=True),
        sa.Column("multi", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.create_index("ix_catalog_combo_counts_kind", "catalog_combo_counts", ["kind"])
    # One combination per entity: a key's value when it has exactly one, NULL when none
    # or several (then multi = 1), as catalog.combo_counts.combination makes it.
    distinct = {
        column: f"count(DISTINCT CASE WHEN key = '{key}' THEN value END)"
        for key, column in COMBINED.items()
    }
    values = ", ".join(
        f"CASE WHEN {distinct[column]} = 1 THEN max(CASE WHEN key = '{key}' THEN value END) "
        f"END AS {column}"
        for key, column in COMBINED.items()
    )
    several = " OR ".join(f"{count} > 1" for count in distinct.values())
    keys = ", ".join(f"'{key}'" for key in COMBINED)
    columns = ", ".join(COMBINED.values())
    op.execute(
        f"""
        INSERT INTO catalog_combo_counts (kind, {columns}, multi, n)
        SELECT lower(e.kind), {", ".join(f"s.{c}" for c in COMBINED.values())},
               coalesce(s.multi, 0), count(*)
        FROM catalog_entities AS e
        LEFT JOIN (
            SELECT entity_uid, {values}, CASE WHEN {several} THEN 1 ELSE 0 END AS multi
            FROM catalog_search WHERE key IN ({keys}) GROUP BY entity_uid
        ) AS s ON s.entity_uid = e.uid
        GROUP BY lower(e.kind), {", ".join(f"s.{c}" for c in COMBINED.values())},
                 coalesce(s.multi, 0)
        """
    )


def downgrade() -> None:
    op.drop_index("ix_catalog_combo_counts_kind", table_name="catalog_combo_counts")
    op.drop_table("catalog_combo_counts")
