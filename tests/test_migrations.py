"""The schema only changes through Alembic, and the migrations match the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from catalog.documents import encode
from catalog.relations import compute_relations, forward_relations
from catalog.search import search_rows
from catalog.service import CatalogService
from catalog.tables import schema_object
from portal_backend.db import (
    alembic_config,
    downgrade_database,
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.models import metadata
from portal_backend.settings import Settings
from tests.catalog.factories import component, group, resource
from tests.conftest import POSTGRES_URL, make_settings, table_names


def test_models_and_migrations_agree(migrated_settings: Settings) -> None:
    engine = make_engine(migrated_settings.database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": schema_object}
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree; write a migration for: {diff}"


def test_single_migration_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, f"branched migrations: {script.get_heads()}"


def test_upgrade_downgrade_round_trip_on_postgresql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    schema = "t_roundtrip_" + tmp_path.name[-8:].replace("-", "_").lower()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        settings = make_settings("postgresql", tmp_path, schema)
        upgrade_database(settings)
        tables = table_names(settings)
        assert {t.name for t in metadata.sorted_tables} <= tables
        downgrade_database(settings, "base")
        assert table_names(settings) <= {"alembic_version"}
        upgrade_database(settings)
        assert {t.name for t in metadata.sorted_tables} <= table_names(settings)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_0008_keeps_forward_relations_and_downgrade_restores_both_ways(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Data migration of 0008 on PostgreSQL: reverse relation rows go, reads stay the same,
    downgrade writes them back; the facet-count insert trigger goes and comes back."""
    schema = "t_rel0008_" + tmp_path.name[-8:].replace("-", "_").lower()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    entities = [
        group("team-a", children=["team-b"]),
        group("team-b", parent="team-a"),
        component("web", dependsOn=["component:default/web", "resource:db"]),
        resource("db", dependencyOf=["component:default/web"]),
    ]
    for entity in entities:
        entity["metadata"]["namespace"] = "default"
    refs = [f"{e['kind']}:default/{e['metadata']['name']}".lower() for e in entities]
    uids = [str(uuid.uuid4()) for _ in entities]
    # What 0007-era writers stored: both directions, each row owned by its entity.
    both = {
        (s, t, r, uid)
        for e, uid in zip(entities, uids, strict=True)
        for s, t, r in compute_relations(e)
    }
    forward = {
        (s, t, r, uid)
        for e, uid in zip(entities, uids, strict=True)
        for s, t, r in forward_relations(e)
    }
    try:
        settings = make_settings("postgresql", tmp_path, schema)
        upgrade_database(settings, "0007_catalog_facet_counts")
        engine = make_engine(settings.database_url)

        def relation_rows() -> set[tuple[str, ...]]:
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT source_ref, type, target_ref, originating_uid "
                        "FROM catalog_relations"
                    )
                )
                return {tuple(r) for r in rows}

        def triggers() -> set[str]:
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT tgname FROM pg_trigger "
                        "WHERE tgrelid = to_regclass('catalog_search') AND NOT tgisinternal"
                    )
                )
                return {r[0] for r in rows}

        now = datetime.now(UTC)
        with engine.begin() as connection:
            for entity, ref, uid in zip(entities, refs, uids, strict=True):
                body, etag = encode(entity, uid)
                kind, rest = ref.split(":")
                connection.execute(
                    text(
                        "INSERT INTO catalog_entities (uid, entity_ref, kind, namespace, name, "
                        "etag, body, created_at, updated_at) VALUES "
                        "(:uid, :ref, :kind, 'default', :name, :etag, :body, :now, :now)"
                    ),
                    {
                        "uid": uid,
                        "ref": ref,
                        "kind": kind,
                        "name": rest.split("/")[1],
                        "etag": etag,
                        "body": body,
                        "now": now,
                    },
                )
            for row in sorted(both):
                connection.execute(
                    text(
                        "INSERT INTO catalog_relations (source_ref, type, target_ref, "
                        "originating_uid) VALUES (:s, :t, :r, :u)"
                    ),
                    dict(zip("stru", row, strict=True)),
                )
        assert "catalog_search_count_insert" in triggers()

        def read_relations() -> dict[str, set[tuple[str, str]]]:
            with session_scope(make_session_factory(engine)) as session:
                service = CatalogService(session)
                return {
                    ref: {(r["type"], r["targetRef"]) for r in service.get_by_ref(ref)["relations"]}
                    for ref in refs
                }

        expected = {ref: {(t, r) for s, t, r, _ in both if s == ref} for ref in refs}
        # (0013 drops the delete trigger too: the writers count deletes since.)
        upgrade_database(settings, "0008_catalog_forward_relations")
        # Only forward rows remain (plus the reverse of the self-relation: it names
        # its entity as source too); every entity reads the relations it had.
        self_reverse = {("component:default/web", "dependencyOf", "component:default/web", uids[2])}
        assert relation_rows() == forward | self_reverse
        assert len(forward) < len(both)
        assert read_relations() == expected
        assert "catalog_search_count_insert" not in triggers()
        assert "catalog_search_count_delete" in triggers()

        downgrade_database(settings, "0007_catalog_facet_counts")
        assert relation_rows() == both
        assert "catalog_search_count_insert" in triggers()
        upgrade_database(settings)
        assert relation_rows() == forward | self_reverse
        engine.dispose()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_0009_moves_annotations_and_labels_to_metadata_maps_and_back(
    backend: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Data migration of 0009 on both databases: annotation and label search rows become
    each entity's metadata_maps (filters, facets and order read them the same), and
    downgrade writes exactly those rows back."""
    schema = "t_maps0009_" + tmp_path.name[-8:].replace("-", "_").lower()
    if backend == "postgresql":
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
    entities = [
        component("web", annotations={"Rag-Portal.io/Service": "Web"}, labels={"tier": "Gold"}),
        component("api", annotations={"rag-portal.io/service": "api"}),
        component("plain"),
    ]
    uids = [str(uuid.uuid4()) for _ in entities]
    # What 0008-era writers stored: every leaf a search row, annotations and labels too.
    rows = set()
    for entity, uid in zip(entities, uids, strict=True):
        entity["metadata"]["namespace"] = "default"
        for field in ("annotations", "labels"):
            for key, value in entity["metadata"].get(field, {}).items():
                rows.add(
                    (f"metadata.{field}.{key}".lower(), value.lower(), "component", uid, value)
                )
        rows |= {(k, v, "component", uid, o) for k, v, o in search_rows(entity)}
    map_rows = {r for r in rows if r[0].startswith(("metadata.annotations.", "metadata.labels."))}
    assert len(map_rows) == 3
    try:
        settings = make_settings(backend, tmp_path, schema)
        upgrade_database(settings, "0008_catalog_forward_relations")
        engine = make_engine(settings.database_url)

        def search_table() -> set[tuple[str, ...]]:
            with engine.connect() as connection:
                found = connection.execute(
                    text("SELECT key, value, kind, entity_uid, original_value FROM catalog_search")
                )
                return {tuple(r) for r in found}

        now = datetime.now(UTC)
        with engine.begin() as connection:
            for entity, uid in zip(entities, uids, strict=True):
                body, etag = encode(entity, uid)
                name = entity["metadata"]["name"]
                connection.execute(
                    text(
                        "INSERT INTO catalog_entities (uid, entity_ref, kind, namespace, name, "
                        "etag, body, created_at, updated_at) VALUES (:uid, :ref, 'component', "
                        "'default', :name, :etag, :body, :now, :now)"
                    ),
                    {
                        "uid": uid,
                        "ref": f"component:default/{name}",
                        "name": name,
                        "etag": etag,
                        "body": body,
                        "now": now,
                    },
                )
            for row in sorted(rows):
                connection.execute(
                    text(
                        "INSERT INTO catalog_search (key, value, kind, entity_uid, "
                        "original_value) VALUES (:k, :v, :kind, :u, :o)"
                    ),
                    dict(zip(("k", "v", "kind", "u", "o"), row, strict=True)),
                )

        upgrade_database(settings)
        assert search_table() == rows - map_rows
        with session_scope(make_session_factory(engine)) as session:
            service = CatalogService(session)
            key = "metadata.annotations.rag-portal.io/service"
            assert service.query_refs({key: "WEB"}) == ["component:default/web"]
            assert service.query_refs({key: None}) == [
                "component:default/api",
                "component:default/web",
            ]
            assert service.query_refs({"metadata.labels.tier": "gold"}) == ["component:default/web"]
            assert service.facets(["metadata.labels.tier"])["facets"]["metadata.labels.tier"] == [
                {"value": "Gold", "count": 1}
            ]

        downgrade_database(settings, "0008_catalog_forward_relations")
        assert search_table() == rows
        engine.dispose()
    finally:
        if backend == "postgresql":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
