"""Catalog: relations stored one way; facet counts of inserted search rows by the writer.

- ``catalog_relations`` keeps only forward rows (source = the entity whose spec names
  the relation); readers derive the reverse direction. Reverse rows are deleted here
  (those whose source is not their originating entity) and the index on
  ``originating_uid`` goes: an entity's rows are one range of the primary key.
- The insert trigger of 0007 on ``catalog_search`` goes (PostgreSQL): writers append the
  delta rows of what they insert themselves (``catalog.facet_counts.inserted_deltas``).
  The delete and update triggers stay. The counts are exact before and after.

Downgrade puts back the reverse rows, the index and the insert trigger.

Revision ID: 0008_catalog_forward_relations
Revises: 0007_catalog_facet_counts
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_catalog_forward_relations"
down_revision: str | None = "0007_catalog_facet_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies at this revision: catalog.tables.COUNTED_KEYS and the relation pairs of
# catalog.relations.RULES (each type's reverse).
COUNTED = "('kind', 'metadata.namespace', 'metadata.tags', 'spec.lifecycle', 'spec.type')"
PAIRS = (
    ("ownedBy", "ownerOf"),
    ("partOf", "hasPart"),
    ("providesApi", "apiProvidedBy"),
    ("consumesApi", "apiConsumedBy"),
    ("dependsOn", "dependencyOf"),
    ("parentOf", "childOf"),
    ("hasMember", "memberOf"),
)


def upgrade() -> None:
    # A reverse row names its originating entity as target, not as source. (The reverse
    # of a self-relation has the entity on both sides: it stays, and reads the same.)
    op.execute(
        "DELETE FROM catalog_relations WHERE source_ref <> ("
        "SELECT e.entity_ref FROM catalog_entities e "
        "WHERE e.uid = catalog_relations.originating_uid)"
    )
    op.drop_index("ix_catalog_relations_originating_uid", table_name="catalog_relations")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS catalog_search_count_insert ON catalog_search")
        op.execute("DROP FUNCTION IF EXISTS catalog_search_count_insert()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION catalog_search_count_insert() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO catalog_facet_counts (key, value, kind, n)
                SELECT key, value, kind, count(*) FROM added
                WHERE key IN {COUNTED}
                GROUP BY key, value, kind;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER catalog_search_count_insert AFTER INSERT ON catalog_search "
            "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
            "EXECUTE FUNCTION catalog_search_count_insert()"
        )
    op.create_index(
        "ix_catalog_relations_originating_uid", "catalog_relations", ["originating_uid"]
    )
    reverse = " ".join(f"WHEN '{a}' THEN '{b}' WHEN '{b}' THEN '{a}'" for a, b in PAIRS)
    types = ", ".join(f"'{t}'" for pair in PAIRS for t in pair)
    # Both directions again; a self-relation's reverse row may still be there.
    op.execute(
        "INSERT INTO catalog_relations (source_ref, type, target_ref, originating_uid) "
        f"SELECT target_ref, CASE type {reverse} END, source_ref, originating_uid "
        f"FROM catalog_relations WHERE type IN ({types}) "
        "ON CONFLICT DO NOTHING"
    )
