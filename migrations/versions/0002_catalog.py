"""Catalog: entities, flattened search rows, relations, locations.

Revision ID: 0002_catalog
Revises: 0001_api_tokens
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_catalog"
down_revision: str | None = "0001_api_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_entities",
        sa.Column("uid", sa.String(length=36), primary_key=True),
        sa.Column("entity_ref", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("location_key", sa.String(length=2100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("entity_ref"),
    )
    op.create_index("ix_catalog_entities_location_key", "catalog_entities", ["location_key"])
    op.create_index(
        "ix_catalog_entities_kind_name_uid", "catalog_entities", ["kind", "name", "uid"]
    )
    op.create_index("ix_catalog_entities_name_uid", "catalog_entities", ["name", "uid"])

    op.create_table(
        "catalog_search",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("entity_uid", sa.String(length=36), nullable=False),
        sa.Column("original_value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", "value", "kind", "entity_uid"),
    )
    op.create_index("ix_catalog_search_entity_uid", "catalog_search", ["entity_uid"])
    full_text_rows = "key IN ('metadata.name', 'metadata.title', 'metadata.description')"
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm (a trusted extension) serves "value LIKE '%term%'" from a GIN index.
        # It goes to public once per database: an extension living in a per-tenant schema
        # would vanish with that schema (CASCADE), taking other schemas' indexes along.
        # The advisory lock serialises concurrent first migrations of one database.
        op.execute("SELECT pg_advisory_xact_lock(hashtext('rag-portal:pg_trgm'))")
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        trgm_schema = (
            op.get_bind()
            .execute(
                sa.text(
                    "SELECT n.nspname FROM pg_extension e "
                    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
                )
            )
            .scalar_one()
        )
        op.execute(
            "CREATE INDEX ix_catalog_search_value_trgm ON catalog_search "
            f'USING gin (value "{trgm_schema}".gin_trgm_ops) WHERE {full_text_rows}'
        )
    else:
        op.create_index(
            "ix_catalog_search_value_trgm",
            "catalog_search",
            ["value"],
            sqlite_where=sa.text(full_text_rows),
        )
    if op.get_bind().dialect.name == "postgresql":
        # key, value and kind are strongly correlated ('service' only occurs under
        # spec.type); without this the planner misjudges filters by orders of magnitude.
        op.execute(
            "CREATE STATISTICS catalog_search_key_value_kind (dependencies, mcv) "
            "ON key, value, kind FROM catalog_search"
        )

    op.create_table(
        "catalog_relations",
        sa.Column("source_ref", sa.String(length=400), nullable=False),
        sa.Column("type", sa.String(length=63), nullable=False),
        sa.Column("target_ref", sa.String(length=400), nullable=False),
        sa.Column("originating_uid", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("source_ref", "type", "target_ref", "originating_uid"),
    )
    op.create_index(
        "ix_catalog_relations_originating_uid", "catalog_relations", ["originating_uid"]
    )
    op.create_index("ix_catalog_relations_target_type", "catalog_relations", ["target_ref", "type"])

    op.create_table(
        "catalog_locations",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("location_key", sa.String(length=2100), nullable=False),
        sa.Column("managed_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.UniqueConstraint("location_key"),
    )


def downgrade() -> None:
    op.drop_table("catalog_locations")
    op.drop_index("ix_catalog_relations_target_type", table_name="catalog_relations")
    op.drop_index("ix_catalog_relations_originating_uid", table_name="catalog_relations")
    op.drop_table("catalog_relations")
    op.drop_index("ix_catalog_search_value_trgm", table_name="catalog_search")
    op.drop_index("ix_catalog_search_entity_uid", table_name="catalog_search")
    op.drop_table("catalog_search")
    op.drop_index("ix_catalog_entities_name_uid", table_name="catalog_entities")
    op.drop_index("ix_catalog_entities_kind_name_uid", table_name="catalog_entities")
    op.drop_index("ix_catalog_entities_location_key", table_name="catalog_entities")
    op.drop_table("catalog_entities")
