"""CatalogService on both databases: upserts, relations, status, filters, deletes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from catalog.errors import ConflictError, InputError, NotAllowedError, NotFoundError
from catalog.search_index import search_tuples
from catalog.service import CatalogService
from portal_backend.db import session_scope
from tests.catalog.factories import component, group, resource, system


def test_upsert_sets_uid_etag_and_relations_both_ways(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        stored = CatalogService(session).upsert_entities(
            [
                group("team-a"),
                system("search"),
                component("web", system="search", dependsOn=["resource:default/db"]),
                resource("db"),
            ]
        )
    assert [e["metadata"]["name"] for e in stored] == ["team-a", "search", "web", "db"]
    web = stored[2]
    assert web["metadata"]["uid"] and web["metadata"]["etag"]
    assert web["metadata"]["namespace"] == "default"
    assert {"type": "ownedBy", "targetRef": "group:default/team-a"} in web["relations"]
    assert {"type": "partOf", "targetRef": "system:default/search"} in web["relations"]
    assert {"type": "dependsOn", "targetRef": "resource:default/db"} in web["relations"]

    with session_scope(session_factory) as session:
        service = CatalogService(session)
        team = service.get_by_ref("group:team-a")
        db = service.get_by_name("resource", "default", "DB")
    assert {"type": "ownerOf", "targetRef": "component:default/web"} in team["relations"]
    assert {"type": "dependencyOf", "targetRef": "component:default/web"} in db["relations"]


def test_etag_changes_only_when_entity_changes(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        first = CatalogService(session).upsert_entities([component("web")])[0]
    with session_scope(session_factory) as session:
        same = CatalogService(session).upsert_entities([component("web")])[0]
    with session_scope(session_factory) as session:
        changed = CatalogService(session).upsert_entities([component("web", type="website")])[0]
    assert same["metadata"]["uid"] == first["metadata"]["uid"]
    assert same["metadata"]["etag"] == first["metadata"]["etag"]
    assert changed["metadata"]["uid"] == first["metadata"]["uid"]
    assert changed["metadata"]["etag"] != first["metadata"]["etag"]


def test_invalid_batch_reports_every_problem_and_writes_nothing(session_factory) -> None:  # type: ignore[no-untyped-def]
    bad = component("-bad-", tags=["Not_OK"])
    del bad["spec"]["owner"]
    unknown = {"apiVersion": "backstage.io/v1alpha1", "kind": "Gizmo", "metadata": {"name": "x"}}
    with session_scope(session_factory) as session:
        with pytest.raises(InputError) as raised:
            CatalogService(session).upsert_entities([component("good"), bad, unknown])
    paths = {d.path for d in raised.value.details}
    assert {
        "entities[1].metadata.name",
        "entities[1].metadata.tags[0]",
        "entities[1].spec.owner",
        "entities[2].kind",
    } <= paths
    with session_scope(session_factory) as session:
        assert CatalogService(session).get_by_ref("component:default/good") is None


def test_names_are_unique_ignoring_case(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([component("Web")])
    with session_scope(session_factory) as session:
        stored = CatalogService(session).upsert_entities([component("WEB", type="website")])
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        assert service.query_refs({"kind": "component"}) == ["component:default/web"]
    assert stored[0]["metadata"]["name"] == "WEB"


def test_set_status_is_filterable_and_survives_reimport(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities([component("web"), component("api")])
        before = service.get_by_ref("component:default/web")["metadata"]["etag"]
        updated = service.set_status("component:default/web", "slo", {"state": "breached"})
    assert updated["status"]["slo"] == {"state": "breached"}
    assert updated["metadata"]["etag"] != before
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        assert service.query_refs({"status.slo.state": "BREACHED"}) == ["component:default/web"]
        service.upsert_entities([component("web", description="re-imported")])
        assert service.get_by_ref("component:default/web")["status"]["slo"]["state"] == "breached"
        with pytest.raises(NotFoundError):
            service.set_status("component:default/nope", "slo", {"state": "ok"})


def test_query_refs_and_semantics(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities(
            [
                component("a", tags=["python"], annotations={"rag-portal.io/service": "a"}),
                component("b", type="website", tags=["python"]),
                component("c", owner="team-b"),
            ]
        )
        assert service.query_refs({"kind": "Component", "spec.type": "Service"}) == [
            "component:default/a",
            "component:default/c",
        ]
        assert service.query_refs({"metadata.tags": "python", "spec.type": "website"}) == [
            "component:default/b"
        ]
        assert service.query_refs({"metadata.annotations.rag-portal.io/service": None}) == [
            "component:default/a"
        ]
        assert service.query_refs({"relations.ownedby": "group:default/team-b"}) == [
            "component:default/c"
        ]


def test_delete_and_owner_group_restriction(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities([component("mine"), component("theirs", owner="team-b")])
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        with pytest.raises(NotAllowedError):
            service.delete_by_ref("component:default/theirs", owner_group="group:default/team-a")
        with pytest.raises(NotAllowedError):
            service.upsert_entities([component("theirs", owner="team-a")], owner_group="team-a")
        assert service.delete_by_ref("component:default/mine", owner_group="team-a") is True
        assert service.delete_by_ref("component:default/mine") is False
        assert service.query_refs({}) == ["component:default/theirs"]


def test_location_conflict_between_locations(session_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    one = tmp_path / "one.yaml"
    two = tmp_path / "two.yaml"
    import yaml

    one.write_text(yaml.safe_dump(component("web")))
    two.write_text(yaml.safe_dump(component("web")))
    with session_scope(session_factory) as session:
        added = CatalogService(session).add_location("file", str(one))
    entity = added["entities"][0]
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"] == f"file:{one}"
    with session_scope(session_factory) as session:
        with pytest.raises(ConflictError):
            CatalogService(session).add_location("file", str(two))


def test_annotations_and_labels_filter_facet_order_and_search_like_other_fields(
    session_factory,
) -> None:  # type: ignore[no-untyped-def]
    """Annotations and labels live in each entity's metadata_maps, not in search rows;
    every read treats them as before: case-insensitive values, existence, OR of values,
    predicates, facets in the original spelling, order fields (entities without the
    key sort first), cursor pages, full text over a named annotation, and updates that
    drop or change one."""
    key = "metadata.annotations.rag-portal.io/model"
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities(
            [
                component("a", annotations={"rag-portal.io/model": "Llama-3-8B"}),
                component("b", annotations={"rag-portal.io/Model": "llama-3-8b"}),
                component("c", annotations={"rag-portal.io/model": "Mistral-7B"}),
                component("d", labels={"tier": "gold"}),
            ]
        )
        assert service.query_refs({key: "LLAMA-3-8B"}) == [
            "component:default/a",
            "component:default/b",
        ]
        assert service.query_refs({key: ["mistral-7b", "nothing"]}) == ["component:default/c"]
        assert service.query_refs({key: None, "metadata.name": "c"}) == ["component:default/c"]
        assert service.query_refs({"metadata.labels.tier": None}) == ["component:default/d"]
        assert service.query_refs({"metadata.labels.tier": "silver"}) == []
        names = service.query_entities(
            query={"$not": {key: {"$exists": True}}}, fields=["metadata.name"]
        )["items"]
        assert [e["metadata"]["name"] for e in names] == ["d"]

        facet = service.facets([key])["facets"][key]
        assert facet[0]["count"] == 2 and facet[0]["value"].lower() == "llama-3-8b"
        assert facet[1:] == [{"value": "Mistral-7B", "count": 1}]
        assert service.facets([key], ["metadata.name=c"])["facets"][key] == [
            {"value": "Mistral-7B", "count": 1}
        ]

        first = service.query_entities(
            order_by=[(key, "desc"), ("metadata.name", "asc")], limit=2, fields=["metadata.name"]
        )
        assert [e["metadata"]["name"] for e in first["items"]] == ["c", "a"]
        rest = service.query_entities(cursor=first["pageInfo"]["nextCursor"], limit=2)
        assert [e["metadata"]["name"] for e in rest["items"]] == ["b", "d"]

        found = service.query_entities(term="mistral", term_fields=[key, "metadata.title"])
        assert [e["metadata"]["name"] for e in found["items"]] == ["c"]

        # An update that changes one annotation and drops another, and a status write.
        service.upsert_entities(
            [
                component("a", annotations={"rag-portal.io/model": "Phi-3"}),
                component("d"),
            ]
        )
        service.set_status("component:default/a", "sla", {"ok": True})
        assert service.query_refs({key: "llama-3-8b"}) == ["component:default/b"]
        assert service.query_refs({key: "phi-3"}) == ["component:default/a"]
        assert service.query_refs({"metadata.labels.tier": None}) == []
        service.delete_by_ref("component:default/a")
        assert service.query_refs({key: None}) == ["component:default/b", "component:default/c"]


def _search_rows_match_documents(session) -> None:  # type: ignore[no-untyped-def]
    """The search table holds exactly the rows of the stored documents: deletes go by
    rows recomputed from the documents, so a stale row would show up here."""
    stored = {
        (k, v, kind, uid)
        for uid, body in session.execute(text("SELECT uid, body FROM catalog_entities"))
        for k, v, kind, uid, _ in search_tuples(uid, json.loads(body))
    }
    table = {
        tuple(r)
        for r in session.execute(text("SELECT key, value, kind, entity_uid FROM catalog_search"))
    }
    assert table == stored


def test_updates_status_writes_and_deletes_leave_no_stale_search_rows(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities(
            [
                component("a", tags=["python", "go"], description="First", owner="team-a"),
                component("b", dependsOn=["resource:default/db"], title="B"),
                resource("db"),
                group("team-a"),
            ]
        )
        _search_rows_match_documents(session)
        service.upsert_entities(
            [
                component("a", tags=["go", "rust"], owner="team-b", lifecycle="experimental"),
                component("b", dependsOn=["resource:default/db", "component:default/a"]),
            ]
        )
        service.set_status("component:default/a", "sla", {"success_rate": 0.99, "ok": True})
        service.set_status("component:default/a", "sla", {"success_rate": 0.5})
        _search_rows_match_documents(session)
        assert service.query_refs({"metadata.tags": "python"}) == []
        assert service.query_refs({"status.sla.success_rate": "0.5"}) == ["component:default/a"]
        assert service.query_refs({"status.sla.ok": None}) == []
        service.delete_by_ref("component:default/b")
        service.delete_by_ref("resource:default/db")
        _search_rows_match_documents(session)
        assert service.query_refs({"spec.dependson": None}) == []


def test_annotation_values_with_quotes_backslashes_and_non_ascii_match(session_factory) -> None:  # type: ignore[no-untyped-def]
    """SQLite pre-filters annotation conditions with a byte search for the value's JSON
    spelling; values that JSON escapes must still match (and exact ones only)."""
    key = "metadata.annotations.rag-portal.io/notes"
    odd = 'Say "Hi"\\ naïve ☃ \t end'
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities(
            [
                component("odd", annotations={"rag-portal.io/notes": odd}),
                component("near", annotations={"rag-portal.io/notes": odd + "!"}),
            ]
        )
        assert service.query_refs({key: odd.lower()}) == ["component:default/odd"]
        assert service.query_refs({key: odd}) == ["component:default/odd"]
        assert service.query_refs({key: None}) == [
            "component:default/near",
            "component:default/odd",
        ]


def test_an_annotation_key_with_a_double_quote_matches_nothing(session_factory) -> None:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        service.upsert_entities([component("plain", annotations={"x.io/ab": "v"})])
        assert service.query_refs({"metadata.annotations.x.io/ab": None}) == [
            "component:default/plain"
        ]
        assert service.query_refs({'metadata.annotations.x.io/a"b': None}) == []
        assert service.query_refs({'metadata.annotations.x.io/a"b': "v"}) == []
        page = service.query_entities(order_by=[('metadata.annotations.x.io/a"b', "asc")])
        assert [e["metadata"]["name"] for e in page["items"]] == ["plain"]
