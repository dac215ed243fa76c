"""by-query finds a page in one of two ways (``compile_filters``): walking the entities in
name order and checking each (dense: most entities match), or sorting the matches
(sparse). Both must give the same pages, and the choice must follow the share that
matches; on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event

from catalog import entity_reads
from catalog.entity_reads import EntityReads
from catalog.service import CatalogService
from portal_backend.db import session_scope
from tests.catalog.factories import component, group, resource

FILTERS = [
    ["kind=component,spec.type=service"],
    ["spec.lifecycle=production"],
    ["kind=component,spec.lifecycle=production,metadata.tags=python"],
    ["kind=component,spec.type=service,spec.type=website"],
    ["spec.type=database"],
    ["kind=component,spec.owner=team-b"],
    ["kind=component,metadata.namespace=default,spec.type=service"],
    ["kind=component,spec.type"],
    ["kind=component,spec.type=service", "kind=resource"],
    ["metadata.tags=python,metadata.tags=go"],
]


def _entities() -> list[dict]:
    entities: list[dict] = [group("team-a"), group("team-b")]
    for i in range(30):
        entities.append(
            component(
                f"svc-{i:02d}",
                type="service" if i % 4 else "website",
                lifecycle="production" if i % 5 else "experimental",
                owner="team-b" if i % 7 == 0 else "team-a",
                tags=["python"] if i % 2 else ["go", "python"],
            )
        )
    # The same name in another namespace: pages break the tie by uid.
    entities.append(component("svc-03", namespace="other", tags=["python"]))
    entities += [resource(f"db-{i}", type="database", owner="team-a") for i in range(5)]
    # Another kind with a component's values: kind conditions must keep it out.
    entities.append(resource("svc-queue", type="service", owner="team-b"))
    return entities


def _expected(filters: list[str], entities: list[dict]) -> list[str]:
    def holds(entity: dict, key: str, values: list[str]) -> bool:
        if key == "kind":
            found = [entity["kind"]]
        elif key == "metadata.namespace":
            found = [entity["metadata"].get("namespace", "default")]
        else:
            section, field = key.split(".")
            value = entity.get(section, {}).get(field)
            found = value if isinstance(value, list) else [] if value is None else [value]
        found = [str(v).lower() for v in found]
        return bool(found) and (not values or any(v in found for v in values))

    matching = []
    for entity in entities:
        for text in filters:
            conditions: dict[str, list[str]] = {}
            for part in text.split(","):
                key, _, value = part.partition("=")
                conditions.setdefault(key, []).extend([value] if value else [])
            if all(holds(entity, k, v) for k, v in conditions.items()):
                matching.append(entity)
                break
    return [e["metadata"]["name"] for e in matching]


def _pages(reads: EntityReads, filters: list[str], limit: int) -> Iterator[dict]:
    page = reads.query_entities(filters=filters, limit=limit)
    yield page
    while page["pageInfo"].get("nextCursor"):
        page = reads.query_entities(cursor=page["pageInfo"]["nextCursor"], limit=limit)
        yield page


@pytest.mark.parametrize("dense", [True, False])
def test_both_ways_give_the_same_pages(
    session_factory, monkeypatch: pytest.MonkeyPatch, dense: bool
) -> None:  # type: ignore[no-untyped-def]
    entities = _entities()
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)
    chosen: list[bool] = []

    def forced(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        chosen.append(dense)
        return dense

    monkeypatch.setattr(EntityReads, "_dense", forced)
    with session_scope(session_factory) as session:
        reads = EntityReads(session)
        for filters in FILTERS:
            expected = _expected(filters, entities)
            names = []
            for page in _pages(reads, filters, limit=4):
                assert page["totalItems"] == len(expected), filters
                names += [e["metadata"]["name"] for e in page["items"]]
            assert sorted(names) == sorted(expected), filters
            # Name order; the two svc-03 (namespaces default and other) by uid.
            assert names == sorted(names), filters
            # Backwards from the last page gives the same entities.
            listed = [e["metadata"]["name"] for e in reads.iter_entities(filters=filters)]
            assert listed == names, filters
    assert chosen and all(c == dense for c in chosen)


def _statements(session_factory, call) -> list[str]:  # type: ignore[no-untyped-def]
    statements: list[str] = []
    engine = session_factory.kw["bind"]

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with session_scope(session_factory) as session:
            call(EntityReads(session))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def test_a_common_value_walks_the_name_order_and_a_rare_one_sorts_its_matches(
    session_factory,
) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_entities())

    def page_sql(filters: list[str], limit: int) -> str:
        statements = _statements(
            session_factory, lambda reads: reads.query_entities(filters=filters, limit=limit)
        )
        return next(s for s in statements if "ORDER BY" in s and "catalog_entities.body" in s)

    # 23 of 31 components are services: 23^2 >= 3 * 31 (a page of 2, plus one to look ahead).
    assert "EXISTS" in page_sql(["kind=component,spec.type=service"], 2)
    # team-b owns 5 of 31: 5^2 < 21 * 31.
    assert "EXISTS" not in page_sql(["kind=component,spec.owner=team-b"], 20)
    # Not the default order (no index walks it): always the matches, sorted.
    statements = _statements(
        session_factory,
        lambda reads: reads.query_entities(
            filters=["kind=component,spec.type=service"], limit=2, order_by=[("spec.type", "asc")]
        ),
    )
    assert not any("EXISTS" in s for s in statements)


@pytest.mark.parametrize("listed", [True, False], ids=["match-list", "broad-term-subquery"])
def test_full_text_totals_count_each_entity_once_and_follow_the_filter(
    session_factory, monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:  # type: ignore[no-untyped-def]
    """Both ways a term is answered: its matches as a list of uids (up to _FULL_TEXT_LIST),
    and a term matching more (forced here with a limit of 1) as a subquery."""
    if not listed:
        monkeypatch.setattr(entity_reads, "_FULL_TEXT_LIST", 1)
    entities = [
        # "gate" in the name and the title: one entity.
        component("gateway", title="Gateway", description="the edge"),
        component("billing", description="behind the gateway"),
        component("ledger", type="website", title="Gate keeper"),
        component("search"),
        resource("gate-db", type="database", owner="team-a"),
    ]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)
    with session_scope(session_factory) as session:
        reads = EntityReads(session)
        page = reads.query_entities(term="GATE", limit=2)
        assert page["totalItems"] == 4
        assert [e["metadata"]["name"] for e in page["items"]] == ["billing", "gate-db"]
        rest = reads.query_entities(cursor=page["pageInfo"]["nextCursor"], limit=2)
        assert [e["metadata"]["name"] for e in rest["items"]] == ["gateway", "ledger"]
        assert rest["totalItems"] == 4
        filtered = reads.query_entities(term="gate", filters=["kind=component"], limit=10)
        assert filtered["totalItems"] == 3
        typed = reads.query_entities(
            term="gate", filters=["kind=component,spec.type=service"], limit=10
        )
        assert [e["metadata"]["name"] for e in typed["items"]] == ["billing", "gateway"]
        assert typed["totalItems"] == 2


@pytest.mark.parametrize("listed", [True, False], ids=["match-list", "broad-term-subquery"])
def test_a_first_page_with_a_term_beside_a_filter_counts_its_matches_in_the_same_pass(
    session_factory, monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:  # type: ignore[no-untyped-def]
    """The catalog page's search box beside its pickers: the term's matches are checked
    against the filter (a probe each, not everything the filter matches) and the page
    that sorts them counts them too, so no separate count runs; the total stays exact,
    also for an offset past the last match and for a predicate."""
    if not listed:
        monkeypatch.setattr(entity_reads, "_FULL_TEXT_LIST", 1)
    entities = [
        component(f"gate-{i:02d}", type="service" if i % 3 else "website") for i in range(12)
    ]
    entities += [component("billing"), resource("gate-db", type="database", owner="team-a")]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)
    service = ["kind=component,spec.type=service"]
    statements = _statements(
        session_factory, lambda reads: reads.query_entities(term="gate", filters=service, limit=3)
    )
    assert not any(s.lstrip().upper().startswith("SELECT COUNT(*)") for s in statements)
    counted = [s for s in statements if "OVER ()" in s]
    assert len(counted) == 1 and ("EXISTS" in counted[0]) == listed
    # A predicate alone may match most of the catalog: its count stays a statement of
    # its own (from an index) and the page stops after its rows.
    predicate = _statements(
        session_factory,
        lambda reads: reads.query_entities(query={"spec.type": "service"}, limit=3),
    )
    assert not any("OVER ()" in s for s in predicate)
    with session_scope(session_factory) as session:
        reads = EntityReads(session)
        page = reads.query_entities(term="gate", filters=service, limit=3)
        assert [e["metadata"]["name"] for e in page["items"]] == ["gate-01", "gate-02", "gate-04"]
        assert page["totalItems"] == 8
        rest = reads.query_entities(cursor=page["pageInfo"]["nextCursor"], limit=10)
        assert [e["metadata"]["name"] for e in rest["items"]] == [
            "gate-05",
            "gate-07",
            "gate-08",
            "gate-10",
            "gate-11",
        ]
        assert rest["totalItems"] == 8 and "nextCursor" not in rest["pageInfo"]
        inside = reads.query_entities(term="gate", filters=service, limit=3, offset=2)
        assert [e["metadata"]["name"] for e in inside["items"]] == ["gate-04", "gate-05", "gate-07"]
        assert inside["totalItems"] == 8
        both = reads.query_entities(
            term="gate", query={"spec.type": "website"}, order_by=[("metadata.name", "desc")]
        )
        assert [e["metadata"]["name"] for e in both["items"]] == [
            "gate-09",
            "gate-06",
            "gate-03",
            "gate-00",
        ]
        assert both["totalItems"] == 4
        beyond = reads.query_entities(term="gate", filters=service, limit=3, offset=20)
        assert beyond["items"] == [] and beyond["totalItems"] == 8
        none = reads.query_entities(term="gate", filters=["kind=system"], limit=3)
        assert none["items"] == [] and none["totalItems"] == 0
        tagged = reads.query_entities(
            filters=service, query={"metadata.name": {"$in": ["gate-04", "gate-05"]}}, limit=1
        )
        assert [e["metadata"]["name"] for e in tagged["items"]] == ["gate-04"]
        assert tagged["totalItems"] == 2


def test_a_term_or_a_predicate_still_holds_when_the_page_walks_the_name_order(
    session_factory,
) -> None:  # type: ignore[no-untyped-def]
    """A filter matching most entities makes the page walk the entities in name order
    (the filters' EXISTS form); a full-text term or a predicate beside it must still
    apply. (They were dropped: the walk's condition was rebuilt from the filters alone,
    and a term with a common filter answered entities without it.)"""
    entities = [component(f"svc-{i:02d}", tags=["edge"] if i % 2 else []) for i in range(20)]
    entities += [component(f"other-{i:02d}") for i in range(10)]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)
    statements = _statements(
        session_factory,
        lambda reads: reads.query_entities(filters=["kind=component,spec.type=service"], limit=2),
    )
    assert any("EXISTS" in s for s in statements)  # the filter alone: 30^2 >= 3 * 30, a walk
    with session_scope(session_factory) as session:
        reads = EntityReads(session)
        page = reads.query_entities(
            term="svc", filters=["kind=component,spec.type=service"], limit=2
        )
        assert [e["metadata"]["name"] for e in page["items"]] == ["svc-00", "svc-01"]
        assert page["totalItems"] == 20
        rest = reads.query_entities(cursor=page["pageInfo"]["nextCursor"], limit=2)
        assert [e["metadata"]["name"] for e in rest["items"]] == ["svc-02", "svc-03"]
        tagged = reads.query_entities(
            filters=["kind=component,spec.type=service"],
            query={"metadata.tags": "edge"},
            limit=2,
        )
        assert [e["metadata"]["name"] for e in tagged["items"]] == ["svc-01", "svc-03"]
        assert tagged["totalItems"] == 10


TEXT_ENTITIES = [
    component("gateway", title="Edge Gateway", description='says "hi" at 100%_ of calls'),
    component("ledger", title="Ünïcode Ledger", description="back\\nslash and way edge"),
    component("search", description="GATE keeper"),
    component("ga", title="two letters"),
]


@pytest.mark.parametrize(
    "term", ["gate", "GATEWAY", "way e", 'says "hi"', "100%_", "ga", "\\n", "ünï", "zzz"]
)
def test_full_text_finds_every_substring_on_both_databases(session_factory, term: str) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(TEXT_ENTITIES)
    expected = sorted(
        e["metadata"]["name"]
        for e in TEXT_ENTITIES
        if any(
            term.lower() in str(e["metadata"].get(field, "")).lower()
            for field in ("name", "title", "description")
        )
    )
    statements = _statements(
        session_factory, lambda reads: reads.query_entities(term=term, limit=10)
    )
    with session_scope(session_factory) as session:
        page = EntityReads(session).query_entities(term=term, limit=10)
    assert [e["metadata"]["name"] for e in page["items"]] == expected
    assert page["totalItems"] == len(expected)
    # SQLite answers terms of a trigram or more from its text index (migration 0016).
    sqlite = session_factory.kw["bind"].dialect.name == "sqlite"
    uses_index = any("catalog_search_text" in s for s in statements)
    assert uses_index == (sqlite and len(term) >= 3)
