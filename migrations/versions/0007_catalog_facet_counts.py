"""Catalog facet counts: running per-(key, value, kind) totals for the common facets.

``catalog_facet_counts`` holds delta rows appended by statement-level triggers on
``catalog_search`` (PostgreSQL; COPY fires them too), for the keys in
``catalog.tables.COUNTED_KEYS`` as they are at this revision. Existing search rows are
counted once here. SQLite gets the table (models and migrations agree) but no
triggers: it keeps counting facets on the search index.

Revision ID: 0007_catalog_facet_counts
Revises: 0006_sla_group_budgets
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_catalog_facet_counts"
down_revision: str | None = "0006_sla_group_budgets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of catalog.tables.COUNTED_KEYS at this revision.
COUNTED = "('kind', 'metadata.namespace', 'metadata.tags', 'spec.lifecycle', 'spec.type')"


def upgrade() -> None:
    op.create_table(
        "catalog_facet_counts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_catalog_facet_counts_key_value_kind",
        "catalog_facet_counts",
        ["key", "value", "kind"],
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    # One delta row per group a statement touched; ORDER BY keeps the id order (and
    # with it the compaction's reading order) by group. Deletes count negative.
    for event, rows, sign in (("insert", "added", ""), ("delete", "removed", "-")):
        op.execute(
            f"""
            CREATE FUNCTION catalog_search_count_{event}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO catalog_facet_counts (key, value, kind, n)
                SELECT key, value, kind, {sign}count(*) FROM {rows}
                WHERE key IN {COUNTED}
                GROUP BY key, value, kind;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER catalog_search_count_{event} AFTER {event.upper()} "
            f"ON catalog_search REFERENCING {'NEW' if event == 'insert' else 'OLD'} "
            f"TABLE AS {rows} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION catalog_search_count_{event}()"
        )
    # The catalog only inserts and deletes search rows; an UPDATE is counted all the same.
    op.execute(
        f"""
        CREATE FUNCTION catalog_search_count_update() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO catalog_facet_counts (key, value, kind, n)
            SELECT key, value, kind, sum(n) FROM (
                SELECT key, value, kind, -1 AS n FROM removed
                UNION ALL SELECT key, value, kind, 1 FROM added
            ) AS changes
            WHERE key IN {COUNTED}
            GROUP BY key, value, kind HAVING sum(n) <> 0;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER catalog_search_count_update AFTER UPDATE ON catalog_search "
        "REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT "
        "EXECUTE FUNCTION catalog_search_count_update()"
    )
    op.execute(
        "INSERT INTO catalog_facet_counts (key, value, kind, n) "
        f"SELECT key, value, kind, count(*) FROM catalog_search WHERE key IN {COUNTED} "
        "GROUP BY key, value, kind"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS catalog_search_count_{event} ON catalog_search")
            op.execute(f"DROP FUNCTION IF EXISTS catalog_search_count_{event}()")
    op.drop_index("ix_catalog_facet_counts_key_value_kind", table_name="catalog_facet_counts")
    op.drop_table("catalog_facet_counts")
