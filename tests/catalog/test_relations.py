"""Relations are stored one way (forward rows) and read both ways, on both databases.

The oracle is ``compute_relations`` (each entity's spec, both directions), independent
of how the rows are stored: every read path, filter and facet must agree with it.
"""

from __future__ import annotations

import json
from collections import defaultdict

from catalog.relations import RELATION_TYPES, compute_relations
from catalog.service import CatalogService
from portal_backend.db import session_scope
from tests.catalog.factories import component, group, resource, system

USER = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "User",
    "metadata": {"name": "alice"},
    "spec": {"memberOf": ["team-b"]},
}


def _entities() -> list[dict]:
    return [
        group("team-a", children=["team-b"], members=["alice"]),
        group("team-b", parent="team-a"),  # the same pair named from both ends
        USER,
        system("search", owner="team-b"),
        # A self-relation, a target that does not exist, and the reverse field.
        component("web", system="search", dependsOn=["component:default/web", "resource:db"]),
        component("api", owner="team-b", dependencyOf=["component:default/web"]),
        resource("db", dependsOn=["component:default/ghost"]),
    ]


def _expected(entities: list[dict]) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for entity in entities:
        for source, type_, target in compute_relations(entity):
            found[source].add((type_, target))
    return found


def _pairs(entity: dict) -> set[tuple[str, str]]:
    pairs = [(r["type"], r["targetRef"]) for r in entity["relations"]]
    assert len(pairs) == len(set(pairs)), "a relation listed twice"
    return set(pairs)


def _ref(entity: dict) -> str:
    metadata = entity["metadata"]
    return f"{entity['kind']}:{metadata['namespace']}/{metadata['name']}".lower()


def _check(service: CatalogService, entities: list[dict]) -> None:
    expected = _expected(entities)
    refs = sorted(
        _ref({**e, "metadata": {"namespace": "default", **e["metadata"]}}) for e in entities
    )
    listed = {_ref(e): _pairs(e) for e in service.iter_entities()}
    assert listed == {ref: expected.get(ref, set()) for ref in refs}
    streamed_lists = {_ref(e): e["relations"] for e in map(json.loads, service.iter_json())}
    streamed = {ref: _pairs({"relations": items}) for ref, items in streamed_lists.items()}
    assert streamed == listed
    for ref in refs:
        one = service.get_by_ref(ref)
        assert one is not None and _pairs(one) == listed[ref], ref
        # The listing's relations (JSON text made by the database) in the same order.
        assert one["relations"] == streamed_lists[ref], ref
        by_uid = service.get_by_uid(one["metadata"]["uid"])
        assert by_uid is not None and _pairs(by_uid) == listed[ref], ref
    by_refs = service.get_by_refs(refs)
    assert [_pairs(e) for e in by_refs if e] == [listed[ref] for ref in refs]
    page = service.query_entities(limit=100)["items"]
    assert {_ref(e): _pairs(e) for e in page} == listed

    for type_ in RELATION_TYPES:
        sources = {ref for ref, pairs in expected.items() if any(t == type_ for t, _ in pairs)}
        targets = {target for pairs in expected.values() for t, target in pairs if t == type_}
        key = f"relations.{type_.lower()}"
        existing = sources & set(refs)
        assert set(service.query_refs({key: None})) == existing, type_
        for target in targets:
            matching = {ref for ref in existing if (type_, target) in expected[ref]}
            assert set(service.query_refs({key: target})) == matching, (type_, target)
        facet = service.facets([f"relations.{type_}"])["facets"][f"relations.{type_}"]
        # Unfiltered facets count every source, also refs no entity has (as before).
        counts = {
            target: sum(1 for ref in sources if (type_, target) in expected[ref])
            for target in targets
        }
        assert {f["value"]: f["count"] for f in facet} == {t: n for t, n in counts.items() if n}, (
            type_
        )
    # A facet restricted by a filter counts only the matching entities.
    owners = service.facets(["relations.ownedBy"], ["kind=component"])["facets"]
    components = [ref for ref in refs if ref.startswith("component:")]
    wanted = defaultdict(int)
    for ref in components:
        for type_, target in expected[ref]:
            wanted[target] += type_ == "ownedBy"
    got = {f["value"]: f["count"] for f in owners["relations.ownedBy"]}
    assert got == {t: n for t, n in wanted.items() if n} and got


def test_relations_read_both_ways_everywhere(session_factory) -> None:  # type: ignore[no-untyped-def]
    entities = _entities()
    with session_scope(session_factory) as session:
        stored = CatalogService(session).upsert_entities(entities)
    assert {_ref(e): _pairs(e) for e in stored} == {
        _ref(e): _expected(entities).get(_ref(e), set()) for e in stored
    }
    with session_scope(session_factory) as session:
        _check(CatalogService(session), entities)

    # A changed spec replaces the entity's rows; the reverse reads follow.
    entities[4] = component("web", system="search", dependsOn=["resource:db"])
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([entities[4]])
    with session_scope(session_factory) as session:
        _check(CatalogService(session), entities)

    # A deleted entity takes its relations (both directions) along.
    with session_scope(session_factory) as session:
        assert CatalogService(session).delete_by_ref("component:default/api")
    del entities[5]
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        _check(service, entities)
        web = service.get_by_ref("component:default/web")
        assert web is not None
        assert ("dependsOn", "component:default/api") not in _pairs(web)
