"""Catalog on SQLite: a trigram index for full text (what pg_trgm's GIN index is on
PostgreSQL).

SQLite has no index for ``value LIKE '%term%'``: full text scanned every name, title and
description row (~30 ms of CPU at 100k entities). ``catalog_search_text`` is an FTS5
table with the trigram tokenizer over those search rows (external content: it holds the
index only, keyed by the search row's rowid); triggers on ``catalog_search`` keep it in
step with every insert and delete, as the GIN index is on PostgreSQL. A quoted FTS5
phrase of three characters or more matches exactly the rows ``LIKE '%term%'`` does.
PostgreSQL: nothing changes.

Revision ID: 0016_catalog_sqlite_text_index
Revises: 0015_template_versions_upgrades
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_catalog_sqlite_text_index"
down_revision: str | None = "0015_template_versions_upgrades"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of catalog.tables.FULL_TEXT_KEYS at this revision.
KEYS = "('metadata.name', 'metadata.title', 'metadata.description')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE VIRTUAL TABLE catalog_search_text USING fts5(value, "
        "content='catalog_search', content_rowid='rowid', tokenize='trigram')"
    )
    op.execute(
        "CREATE TRIGGER catalog_search_text_insert AFTER INSERT ON catalog_search "
        f"WHEN new.key IN {KEYS} BEGIN "
        "INSERT INTO catalog_search_text (rowid, value) VALUES (new.rowid, new.value); END"
    )
    op.execute(
        "CREATE TRIGGER catalog_search_text_delete AFTER DELETE ON catalog_search "
        f"WHEN old.key IN {KEYS} BEGIN "
        "INSERT INTO catalog_search_text (catalog_search_text, rowid, value) "
        "VALUES ('delete', old.rowid, old.value); END"
    )
    # The catalog never updates search rows in place; one that did is re-indexed.
    op.execute(
        "CREATE TRIGGER catalog_search_text_update AFTER UPDATE ON catalog_search "
        f"WHEN old.key IN {KEYS} OR new.key IN {KEYS} BEGIN "
        "INSERT INTO catalog_search_text (catalog_search_text, rowid, value) "
        f"SELECT 'delete', old.rowid, old.value WHERE old.key IN {KEYS}; "
        "INSERT INTO catalog_search_text (rowid, value) "
        f"SELECT new.rowid, new.value WHERE new.key IN {KEYS}; END"
    )
    op.execute(
        "INSERT INTO catalog_search_text (rowid, value) "
        f"SELECT rowid, value FROM catalog_search WHERE key IN {KEYS}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS catalog_search_text_{event}")
    op.execute("DROP TABLE IF EXISTS catalog_search_text")
