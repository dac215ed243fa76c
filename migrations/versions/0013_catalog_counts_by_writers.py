"""Catalog: facet counts kept by the writers on both databases.

- PostgreSQL: the delete and update triggers of 0007 on ``catalog_search`` go. Writers
  append the deltas of the search rows they delete themselves, as they already did for
  inserts since 0008 (``catalog.facet_counts.deltas``): a refresh no longer copies every
  replaced row into a transition table. The counts are exact before and after.
- SQLite: the table existed but stayed empty (facets counted on the search index); it
  is filled here from the search rows, and writers keep it from now on.

Downgrade puts the triggers back (PostgreSQL) and empties the table (SQLite), as 0012
had them.

Revision ID: 0013_catalog_counts_by_writers
Revises: 0012_sla_adapter_usage
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_catalog_counts_by_writers"
down_revision: str | None = "0012_sla_adapter_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of catalog.tables.COUNTED_KEYS at this revision.
COUNTED = "('kind', 'metadata.namespace', 'metadata.tags', 'spec.lifecycle', 'spec.type')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in ("delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS catalog_search_count_{event} ON catalog_search")
            op.execute(f"DROP FUNCTION IF EXISTS catalog_search_count_{event}()")
        return
    op.execute("DELETE FROM catalog_facet_counts")
    op.execute(
        "INSERT INTO catalog_facet_counts (key, value, kind, n) "
        f"SELECT key, value, kind, count(*) FROM catalog_search WHERE key IN {COUNTED} "
        "GROUP BY key, value, kind ORDER BY key, value, kind"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DELETE FROM catalog_facet_counts")
        return
    # As migration 0007 created them.
    op.execute(
        f"""
        CREATE FUNCTION catalog_search_count_delete() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO catalog_facet_counts (key, value, kind, n)
            SELECT key, value, kind, -count(*) FROM removed
            WHERE key IN {COUNTED}
            GROUP BY key, value, kind;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER catalog_search_count_delete AFTER DELETE ON catalog_search "
        "REFERENCING OLD TABLE AS removed FOR EACH STATEMENT "
        "EXECUTE FUNCTION catalog_search_count_delete()"
    )
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
