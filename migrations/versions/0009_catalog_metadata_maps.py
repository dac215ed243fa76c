"""Catalog: annotations and labels move from search rows to ``metadata_maps``.

Each search row costs an entry in the (key, value, kind, uid) primary key, the bulk of
an import's database time; annotations and labels are about a third of a typical
entity's rows. They become one JSON document per entity,
``catalog_entities.metadata_maps`` (lowercase path -> [lowercase value, original
value, ...]; JSONB on PostgreSQL, TEXT on SQLite), with a GIN index on PostgreSQL
(jsonb_ops: containment and key existence).

The index on ``catalog_search.entity_uid`` goes as well: deletes recompute an entity's
search rows from its stored document and delete them by primary key.

Upgrade fills the column from the existing search rows and deletes those rows;
downgrade writes the rows back from the column and drops it, and puts the index back.

Revision ID: 0009_catalog_metadata_maps
Revises: 0008_catalog_forward_relations
Create Date: 2026-11-28
"""

import json
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009_catalog_metadata_maps"
down_revision: str | None = "0008_catalog_forward_relations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of catalog.search.MAP_KEY_PREFIXES at this revision.
MAP_ROWS = "(key LIKE 'metadata.annotations.%' OR key LIKE 'metadata.labels.%')"
INDEX = "ix_catalog_entities_metadata_maps"
BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    column_type = JSONB() if postgresql else sa.Text()
    op.add_column("catalog_entities", sa.Column("metadata_maps", column_type, nullable=True))
    maps: dict[str, dict[str, list[str]]] = defaultdict(dict)
    rows = bind.execute(
        sa.text(
            "SELECT entity_uid, key, value, original_value FROM catalog_search "
            f"WHERE {MAP_ROWS} ORDER BY entity_uid, key, value"
        )
    )
    for uid, key, value, original in rows:
        maps[uid].setdefault(key, []).extend((value, original))
    updates = [
        {"u": uid, "m": json.dumps(found, ensure_ascii=False, separators=(",", ":"))}
        for uid, found in maps.items()
    ]
    value = "CAST(:m AS JSONB)" if postgresql else ":m"
    statement = sa.text(f"UPDATE catalog_entities SET metadata_maps = {value} WHERE uid = :u")
    for start in range(0, len(updates), BATCH):
        bind.execute(statement, updates[start : start + BATCH])
    op.execute(f"DELETE FROM catalog_search WHERE {MAP_ROWS}")
    op.drop_index("ix_catalog_search_entity_uid", table_name="catalog_search")
    if postgresql:
        op.execute(f"CREATE INDEX {INDEX} ON catalog_entities USING gin (metadata_maps)")
    else:  # never filled (see catalog.tables): there only so that both schemas agree
        op.execute(f"CREATE INDEX {INDEX} ON catalog_entities (metadata_maps) WHERE 0")


def downgrade() -> None:
    bind = op.get_bind()
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    rows = bind.execute(
        sa.text(
            "SELECT uid, kind, metadata_maps FROM catalog_entities WHERE metadata_maps IS NOT NULL"
        )
    )
    search_rows = [
        {"k": key, "v": pairs[i], "kind": kind, "u": uid, "o": pairs[i + 1]}
        for uid, kind, maps in rows
        # JSONB arrives decoded (psycopg), SQLite's TEXT as text.
        for key, pairs in (json.loads(maps) if isinstance(maps, str) else maps).items()
        for i in range(0, len(pairs), 2)
    ]
    statement = sa.text(
        "INSERT INTO catalog_search (key, value, kind, entity_uid, original_value) "
        "VALUES (:k, :v, :kind, :u, :o)"
    )
    for start in range(0, len(search_rows), BATCH):
        bind.execute(statement, search_rows[start : start + BATCH])
    op.create_index("ix_catalog_search_entity_uid", "catalog_search", ["entity_uid"])
    with op.batch_alter_table("catalog_entities") as batch:
        batch.drop_column("metadata_maps")
