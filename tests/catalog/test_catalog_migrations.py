"""Catalog migrations with data, on both databases: 0013 (running facet counts kept by the
writers), 0016 (SQLite's trigram text index) and 0018 (combination counts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog import combo_counts, facet_counts
from catalog.service import CatalogService
from catalog.tables import COUNTED_KEYS
from portal_backend.db import (
    downgrade_database,
    make_engine,
    make_session_factory,
    session_scope,
    upgrade_database,
)
from portal_backend.settings import Settings
from tests.catalog.factories import component, group, resource
from tests.conftest import fresh_postgres_schema, make_settings

BEFORE = "0012_sla_adapter_usage"
KEYS = ", ".join(f"'{k}'" for k in COUNTED_KEYS)


@pytest.fixture
def own_settings(backend: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a database of the test's own (a fresh PostgreSQL schema), at no
    revision yet: each test migrates it where it needs it."""
    own = fresh_postgres_schema("t_catalog_mig") if backend == "postgresql" else nullcontext(None)
    with own as schema:
        yield make_settings(backend, tmp_path, schema)


def _counts(connection) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted(
        tuple(r)
        for r in connection.execute(
            text(
                "SELECT key, value, kind, sum(n) FROM catalog_facet_counts "
                "GROUP BY key, value, kind HAVING sum(n) <> 0"
            )
        )
    )


def _search_counts(connection) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted(
        tuple(r)
        for r in connection.execute(
            text(
                "SELECT key, value, kind, count(*) FROM catalog_search "
                f"WHERE key IN ({KEYS}) GROUP BY key, value, kind"
            )
        )
    )


def _triggers(connection) -> set[str]:  # type: ignore[no-untyped-def]
    return set(
        connection.execute(
            text(
                "SELECT tgname FROM pg_trigger "
                "WHERE tgrelid = to_regclass('catalog_search') AND NOT tgisinternal"
            )
        ).scalars()
    )


def _without_combination_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers as they were before 0018: no catalog_combo_counts to append to."""
    monkeypatch.setattr(combo_counts, "append_deltas", lambda session, rows: None)
    folded = {t: c for t, c in facet_counts._FOLDED.items() if t != "catalog_combo_counts"}
    monkeypatch.setattr(facet_counts, "_FOLDED", folded)


def test_0013_counts_are_exact_after_upgrade_and_downgrade_restores_0012(
    backend: str, own_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = own_settings
    upgrade_database(settings, BEFORE)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    entities = [
        component("web", tags=["python", "web"]),
        component("api", type="website", tags=["python"]),
        component("batch", lifecycle="experimental"),
        group("team-a"),
        resource("db", type="database", owner="team-a"),
    ]
    with engine.begin() as connection:
        # What 0012 kept: PostgreSQL's triggers counted deletes; SQLite kept no counts.
        if backend == "postgresql":
            assert _triggers(connection) == {
                "catalog_search_count_delete",
                "catalog_search_count_update",
            }
    with monkeypatch.context() as patch, session_scope(factory) as session:
        _without_combination_counts(patch)
        CatalogService(session).upsert_entities(entities)
    with engine.begin() as connection:
        # 0012-era rows: SQLite's table held nothing; its writers appended no deltas.
        if backend != "postgresql":
            connection.execute(text("DELETE FROM catalog_facet_counts"))

    upgrade_database(settings)
    with engine.begin() as connection:
        assert _counts(connection) == _search_counts(connection)
        assert len(_counts(connection)) > 10
        if backend == "postgresql":
            assert _triggers(connection) == set()
    with session_scope(factory) as session:
        # Writers keep the counts from now on: a delete and a changed entity.
        service = CatalogService(session)
        assert service.delete_by_ref("component:default/api")
        service.upsert_entities([component("web", type="website", tags=["go"])])
    with engine.begin() as connection:
        assert _counts(connection) == _search_counts(connection)
    with session_scope(factory) as session:
        got = CatalogService(session).facets(["spec.type"])["facets"]["spec.type"]
        assert got == [
            {"value": "database", "count": 1},
            {"value": "service", "count": 1},
            {"value": "team", "count": 1},
            {"value": "website", "count": 1},
        ]

    downgrade_database(settings, BEFORE)
    with engine.begin() as connection:
        if backend == "postgresql":
            # The triggers are back and count a delete on their own, as in 0012.
            assert len(_triggers(connection)) == 2
            connection.execute(text("DELETE FROM catalog_search WHERE key = 'spec.type'"))
            assert _counts(connection) == _search_counts(connection)
        else:
            assert _counts(connection) == []
    engine.dispose()


def test_0016_indexes_existing_rows_and_keeps_up_with_writes(
    backend: str, own_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = own_settings
    upgrade_database(settings, "0015_template_versions_upgrades")
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with monkeypatch.context() as patch, session_scope(factory) as session:
        _without_combination_counts(patch)
        CatalogService(session).upsert_entities(
            [
                component("gateway", title="Edge Gateway"),
                component("billing", description="Talks to the GATEWAY"),
                component("search"),
            ]
        )

    def found(term: str) -> list[str]:
        with session_scope(factory) as session:
            page = CatalogService(session).query_entities(term=term, limit=10)
            return [e["metadata"]["name"] for e in page["items"]]

    upgrade_database(settings)
    if backend == "sqlite":
        with engine.connect() as connection:
            indexed = connection.execute(
                text(
                    "SELECT count(*) FROM catalog_search_text WHERE catalog_search_text "
                    "MATCH '\"gateway\"'"
                )
            ).scalar()
        assert indexed == 3  # the name, the title and the description rows
    assert found("gatew") == ["billing", "gateway"]
    with session_scope(factory) as session:
        service = CatalogService(session)
        service.upsert_entities([component("billing", description="pays")])
        assert service.delete_by_ref("component:default/gateway")
        service.upsert_entities([component("edge-gateway-2")])
    assert found("gatew") == ["edge-gateway-2"]
    assert found("pays") == ["billing"]

    downgrade_database(settings, "0015_template_versions_upgrades")
    with engine.connect() as connection:
        tables = set(
            connection.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if backend == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            ).scalars()
        )
    assert not {t for t in tables if t.startswith("catalog_search_text")}
    engine.dispose()


def _combinations(connection) -> list[tuple]:  # type: ignore[no-untyped-def]
    columns = ", ".join(combo_counts.COLUMNS)
    return sorted(
        (tuple("" if v is None else v for v in r))
        for r in connection.execute(
            text(
                f"SELECT {columns}, sum(n) FROM catalog_combo_counts "
                f"GROUP BY {columns} HAVING sum(n) <> 0"
            )
        )
    )


def test_0018_fills_combination_counts_from_existing_entities(own_settings: Settings) -> None:
    settings = own_settings
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    several_types = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "odd", "namespace": "people"},
        "spec": {"memberOf": [], "type": ["a", "b"], "lifecycle": "x"},
    }
    with session_scope(factory) as session:
        CatalogService(session).upsert_entities(
            [
                component("web"),
                component("api"),
                component("batch", lifecycle="experimental", type="job"),
                component("ops", namespace="platform"),
                group("team-a"),
                resource("db", type="database", owner="team-a"),
                several_types,
            ]
        )
    with engine.connect() as connection:
        written = _combinations(connection)
    # What the writers counted, entity by entity (the User: two types, so multi).
    assert written == [
        ("component", "default", "experimental", "job", 0, 1),
        ("component", "default", "production", "service", 0, 2),
        ("component", "platform", "production", "service", 0, 1),
        ("group", "default", "", "team", 0, 1),
        ("resource", "default", "", "database", 0, 1),
        ("user", "people", "x", "", 1, 1),
    ]

    downgrade_database(settings, "0017_scorecards")
    upgrade_database(settings)
    with engine.connect() as connection:
        assert _combinations(connection) == written  # the same, counted from the rows

    with session_scope(factory) as session:
        service = CatalogService(session)
        assert service.delete_by_ref("user:default/odd") is False
        assert service.delete_by_ref("user:people/odd")
        service.upsert_entities([component("web", lifecycle="experimental", type="job")])
        page = service.query_entities(
            filters=["kind=component,spec.type=job,spec.lifecycle=experimental"], limit=5
        )
    assert page["totalItems"] == 2
    assert sorted(e["metadata"]["name"] for e in page["items"]) == ["batch", "web"]
    engine.dispose()
