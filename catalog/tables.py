"""Catalog tables.

- ``catalog_entities``: one row per entity, the document as JSON text plus the
  columns queries sort and look up by (ref, kind, namespace, lowercase name).
- ``catalog_search``: flattened (key, value) rows per entity, indexed on
  (key, value, entity_uid) so filters and facets are index scans.
- ``catalog_relations``: (source, type, target) rows as the source entity's spec names
  them (deleted with it); the reverse direction is read from the same rows.
- ``catalog_locations``: registered ``url``/``file`` targets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Dialect, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel
from uuid6 import uuid7


class JSONText(TypeDecorator[str]):
    """JSON that writers hand over as text, on every path (COPY, executemany, UPDATE):
    JSONB on PostgreSQL, so its GIN index and operators work on the binary form without
    parsing the text per row; TEXT on SQLite, read with its JSON functions."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return super().load_dialect_impl(dialect)

    def bind_processor(self, dialect: Dialect) -> None:
        # As it is: JSONB's own processor would encode the text again, as a JSON string.
        # (SQLAlchemy's psycopg dialect renders a ::JSONB cast on the parameter.)
        return None


def new_uid() -> str:
    """A new entity uid: a time-ordered UUID (version 7, RFC 9562).

    The uid is the last column of the search index's primary key and leads the
    entity and relation-ownership indexes. Random (v4) uids scatter every bulk insert
    over all leaf pages of those indexes (more pages than the buffer cache holds, each
    dirtied and logged in full after a checkpoint); time-ordered uids append to the end
    of each (key, value, kind) range, whose pages stay hot.
    """
    return str(uuid7())


class CatalogEntity(SQLModel, table=True):
    __tablename__ = "catalog_entities"
    __table_args__ = (
        Index("ix_catalog_entities_kind_name_uid", "kind", "name", "uid"),
        Index("ix_catalog_entities_name_uid", "name", "uid"),
        # Annotation and label conditions (catalog.map_fields) on PostgreSQL; jsonb_ops
        # serves both containment (key=value) and existence (key alone). SQLite reads
        # the JSON text without an index: its copy (same name, so models and migrations
        # agree) is partial on a predicate that is never true, so it stays empty.
        Index(
            "ix_catalog_entities_metadata_maps",
            "metadata_maps",
            postgresql_using="gin",
            sqlite_where=text("0"),
        ),
    )

    uid: str = Field(primary_key=True, max_length=36)
    # Canonical lowercase ref, unique: names are unique per kind+namespace ignoring case.
    entity_ref: str = Field(max_length=400, unique=True)
    kind: str = Field(max_length=63)
    namespace: str = Field(max_length=63)
    name: str = Field(max_length=63)
    etag: str = Field(max_length=64)
    # The document (without relations, which are read from catalog_relations).
    body: str = Field(sa_column=Column(Text, nullable=False))
    location_key: str | None = Field(default=None, max_length=2100, index=True)
    # Annotations and labels (catalog.search.map_fields; JSONB on PostgreSQL): their conditions
    # read this column instead of search rows. NULL when the entity has neither.
    metadata_maps: str | None = Field(default=None, sa_column=Column(JSONText, nullable=True))
    created_at: datetime
    updated_at: datetime


# SQLite only (migration 0016): the FTS5 trigram index of the default full-text search
# rows, and the tables FTS5 keeps it in. An index, not a model: the models-vs-migrations
# check skips these names (``schema_object``).
SQLITE_TEXT_INDEX = "catalog_search_text"


def schema_object(name: str | None, type_: str, _parent: object = None) -> bool:
    """Alembic's ``include_name``: False for SQLite's text index tables."""
    return not (type_ == "table" and name is not None and name.startswith(SQLITE_TEXT_INDEX))


# Keys full-text search reads by default (fullTextFilterTerm without fields).
FULL_TEXT_KEYS = ("metadata.name", "metadata.title", "metadata.description")
_FULL_TEXT_ROWS = "key IN (" + ", ".join(f"'{k}'" for k in FULL_TEXT_KEYS) + ")"


class CatalogSearch(SQLModel, table=True):
    __tablename__ = "catalog_search"
    __table_args__ = (
        # Substring search ("value LIKE '%term%'") on PostgreSQL: a pg_trgm GIN index,
        # partial so only the default full-text rows (a few per entity, not all ~25)
        # pay for it on import. SQLite gets a plain partial index (same name, so models
        # and migrations agree on both); it searches by scanning these rows.
        Index(
            "ix_catalog_search_value_trgm",
            "value",
            postgresql_using="gin",
            postgresql_ops={"value": "gin_trgm_ops"},
            postgresql_where=text(_FULL_TEXT_ROWS),
            sqlite_where=text(_FULL_TEXT_ROWS),
        ),
    )
    # The primary key (key, value, kind, entity_uid) is the search index itself: filters and
    # facets are index(-only) scans. Deletes recompute an entity's rows from its stored
    # document and go by this key too (bulk.delete_search_rows): no entity_uid index.

    key: str = Field(primary_key=True, max_length=200)
    value: str = Field(primary_key=True, max_length=200)
    # The entity's kind (lowercase) on every row: "kind=X plus one more condition" —
    # nearly every catalog query — is then a single index range, counts included.
    kind: str = Field(primary_key=True, max_length=63)
    # No foreign key: per-row FK triggers halve bulk COPY speed; the service deletes
    # an entity's search rows and relations together with it.
    entity_uid: str = Field(primary_key=True, max_length=36)
    original_value: str = Field(max_length=200)


# Keys whose facet counts are kept as running totals: the facets Backstage's catalog UI
# asks for (kind, type, lifecycle, tags, namespace; owner is a relation). A change to this
# list needs a migration that recounts.
COUNTED_KEYS = ("kind", "metadata.namespace", "metadata.tags", "spec.lifecycle", "spec.type")


class CatalogFacetCount(SQLModel, table=True):
    """Running counts of search rows per (key, value, kind), for ``COUNTED_KEYS``.

    Counting a facet over the search index reads one index entry per entity (100k
    entities: ~280k entries for type + tags, 60-100 ms); these rows answer it from a
    few hundred, and they give by-query the exact total of ``kind=X`` and of ``kind=X``
    plus one counted condition, and how many entities a filter's kinds hold (how it
    plans a page). Every writer of search rows appends one delta row per (key, value,
    kind) it inserts or deletes (``facet_counts.deltas``, in its transaction) --
    appends, never updates, so parallel writers never wait on each other's counters --
    and writers periodically fold the deltas into one row per group
    (``facet_counts.compact_counts``). Readers sum the deltas of a group: MVCC makes the
    sum exactly what the search rows in their snapshot say.
    """

    __tablename__ = "catalog_facet_counts"
    __table_args__ = (Index("ix_catalog_facet_counts_key_value_kind", "key", "value", "kind"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    key: str = Field(max_length=200)
    value: str = Field(max_length=200)
    kind: str = Field(max_length=63)
    n: int


# Keys that hold one value per entity, counted per combination of their values with the
# entity's kind (``CatalogComboCount``), column by column. A change needs a migration
# that recounts.
COMBINED_KEYS = {
    "metadata.namespace": "namespace",
    "spec.lifecycle": "lifecycle",
    "spec.type": "type",
}
# A combination row's group columns: kind, one per combined key, and the multi flag.
COMBO_COLUMNS = ("kind", *COMBINED_KEYS.values(), "multi")


class CatalogComboCount(SQLModel, table=True):
    """Running counts of entities per combination of kind and ``COMBINED_KEYS`` values.

    ``CatalogFacetCount`` answers one condition (plus kind) exactly; a filter with two
    conditions besides kind (``kind=component,spec.type=service,spec.lifecycle=production``)
    or an OR of such groups would count its matches one by one (at 1M entities ~335k
    of them, 1.5-2.9 s). Every entity is in exactly one combination, so any AND/OR of
    these keys' conditions is a sum over a few hundred combinations. A value the
    entity does not have is NULL; an entity with two values under one key (a list in
    ``spec.type``) is counted with ``multi`` = 1 and those keys NULL, and readers count
    such filters the slow way while any exist. Kept like the facet counts: writers
    append deltas in their transaction (``catalog.combo_counts``) and fold them now and
    then (``facet_counts.compact_counts``).
    """

    __tablename__ = "catalog_combo_counts"
    __table_args__ = (Index("ix_catalog_combo_counts_kind", "kind"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    kind: str = Field(max_length=63)
    namespace: str | None = Field(default=None, max_length=200)
    lifecycle: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=200)
    multi: int = 0
    n: int


class CatalogRelation(SQLModel, table=True):
    __tablename__ = "catalog_relations"
    # Only forward rows: source_ref is the entity whose spec names the relation (uid
    # originating_uid), so its rows are one range of the primary key (reads, deletes);
    # (target_ref, type) serves the reverse direction (``relations.REVERSE``).
    __table_args__ = (Index("ix_catalog_relations_target_type", "target_ref", "type"),)

    source_ref: str = Field(primary_key=True, max_length=400)
    type: str = Field(primary_key=True, max_length=63)
    target_ref: str = Field(primary_key=True, max_length=400)
    originating_uid: str = Field(primary_key=True, max_length=36)


class CatalogLocation(SQLModel, table=True):
    __tablename__ = "catalog_locations"

    id: str = Field(primary_key=True, max_length=36)
    type: str = Field(max_length=16)
    target: str = Field(max_length=2048)
    # "type:target", the value entities carry in backstage.io/managed-by-location.
    location_key: str = Field(max_length=2100, unique=True)
    managed_by: str | None = Field(default=None, max_length=255)
    created_at: datetime
    refreshed_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
