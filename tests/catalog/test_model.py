"""Pure domain rules: refs, validation, relations, search rows, YAML safety, cursors."""

from __future__ import annotations

import json

import pytest

from catalog.cursor import Cursor
from catalog.documents import encode, project, stored_document
from catalog.errors import InputError, PayloadTooLargeError
from catalog.refs import RefError, parse_ref
from catalog.relations import compute_relations
from catalog.search import map_fields, search_rows
from catalog.validation import validate_entity
from catalog.yaml_loader import load_documents
from tests.catalog.factories import component, group


def test_ref_defaulting_rules() -> None:
    assert str(parse_ref("team-a", default_kind="group")) == "group:default/team-a"
    assert str(parse_ref("ops/team-a", default_kind="group")) == "group:ops/team-a"
    assert str(parse_ref("Component:Web", default_namespace="prod")) == "component:prod/web"
    with pytest.raises(RefError, match="needs a kind"):
        parse_ref("web")
    with pytest.raises(RefError):
        parse_ref("component:/web")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("web-frontend_v2.1", True),
        ("A" * 63, True),
        ("A" * 64, False),
        ("-web", False),
        ("web-", False),
        ("web frontend", False),
        ("", False),
    ],
)
def test_entity_name_rule(name: str, ok: bool) -> None:
    problems = validate_entity(component(name))
    assert (not any(p.path == "metadata.name" for p in problems)) is ok


def test_validation_reports_every_problem_with_its_field() -> None:
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "ok",
            "namespace": "Not_A_Label",
            "labels": {"bad key!": "x", "example.com/tier": "gold", "ok": "not ok!"},
            "annotations": {"rag-portal.io/gpus": 2},
            "tags": ["fine", "Not-Fine", "x" * 64],
            "links": [{"title": "no url"}],
        },
        "spec": {"type": "service", "owner": "team-a", "dependsOn": "not-a-list"},
    }
    paths = {p.path for p in validate_entity(entity)}
    assert paths == {
        "metadata.namespace",
        "metadata.labels.bad key!",
        "metadata.labels.ok",
        "metadata.annotations.rag-portal.io/gpus",
        "metadata.tags[1]",
        "metadata.tags[2]",
        "metadata.links[0].url",
        "spec.lifecycle",
        "spec.dependsOn",
        "spec.owner",  # defaults to the (invalid) entity namespace
    }


def test_kinds_and_required_spec_fields() -> None:
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "a"},
        "spec": {"type": "openapi", "lifecycle": "production", "owner": "team-a"},
    }
    assert [p.path for p in validate_entity(api)] == ["spec.definition"]
    user = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "u"},
        "spec": {},
    }
    assert [p.path for p in validate_entity(user)] == ["spec.memberOf"]
    template = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": "t"},
        "spec": {"type": "service"},
    }
    assert [p.path for p in validate_entity(template)] == ["apiVersion"]
    assert [p.path for p in validate_entity({"kind": "Gadget", "metadata": {"name": "g"}})] == [
        "kind",
        "apiVersion",
    ]
    assert validate_entity([1, 2])[0].message.startswith("an entity must be an object")


def test_relations_are_computed_both_ways_with_defaults() -> None:
    web = component(
        "web",
        namespace="shop",
        system="store",
        providesApis=["orders"],
        consumesApis=["api:default/payments"],
        subcomponentOf="site",
    )
    rows = set(compute_relations(web))
    assert ("component:shop/web", "ownedBy", "group:shop/team-a") in rows
    assert ("group:shop/team-a", "ownerOf", "component:shop/web") in rows
    assert ("component:shop/web", "partOf", "system:shop/store") in rows
    assert ("component:shop/web", "partOf", "component:shop/site") in rows
    assert ("api:shop/orders", "apiProvidedBy", "component:shop/web") in rows
    assert ("api:default/payments", "apiConsumedBy", "component:shop/web") in rows
    team = group("team-a", parent="org", members=["alice"], children=["sub"])
    rows = set(compute_relations(team))
    assert ("group:default/team-a", "childOf", "group:default/org") in rows
    assert ("group:default/org", "parentOf", "group:default/team-a") in rows
    assert ("user:default/alice", "memberOf", "group:default/team-a") in rows
    assert ("group:default/sub", "childOf", "group:default/team-a") in rows


def test_search_rows_flatten_lowercase_and_skip_long_values() -> None:
    entity = component(
        "Web",
        tags=["python", "web"],
        description="x" * 300,
        annotations={"rag-portal.io/Service": "Web"},
    )
    rows = {(k, v) for k, v, _ in search_rows(entity)}
    assert ("metadata.name", "web") in rows
    assert ("metadata.tags", "python") in rows and ("metadata.tags", "web") in rows
    # Annotations and labels are not rows: they go to the entity's metadata_maps.
    assert not any(k.startswith("metadata.annotations.") for k, _ in rows)
    assert json.loads(map_fields(entity) or "") == {
        "metadata.annotations.rag-portal.io/service": ["web", "Web"]
    }
    assert ("metadata.namespace", "default") in rows
    assert not any(k == "metadata.description" for k, _ in rows)
    originals = {k: o for k, _, o in search_rows(entity)}
    assert originals["metadata.name"] == "Web"


def test_encode_splices_uid_and_etag_and_hashes_content() -> None:
    body = component("web", description="naïve ☃")
    text, etag = encode(body, "uid-1")
    decoded = json.loads(text)
    assert decoded["metadata"]["uid"] == "uid-1" and decoded["metadata"]["etag"] == etag
    assert decoded["metadata"]["description"] == "naïve ☃"
    assert encode(decoded, "uid-1") == (text, etag)
    assert encode(component("web", description="other"), "uid-1")[1] != etag


def test_yaml_loader_refuses_aliases_and_oversize() -> None:
    assert load_documents("a: 1\n---\n---\nb: '&x'\n", source="s", max_bytes=100) == [
        {"a": 1},
        {"b": "&x"},
    ]
    with pytest.raises(InputError, match="aliases"):
        load_documents("a: &x [1, 2]\nb: *x\n", source="s", max_bytes=1000)
    with pytest.raises(PayloadTooLargeError):
        load_documents("a: " + "x" * 200, source="s", max_bytes=100)
    with pytest.raises(InputError, match="not valid YAML"):
        load_documents("a: [", source="s", max_bytes=100)
    with pytest.raises(InputError):
        load_documents("!!python/object:os.system {}", source="s", max_bytes=100)


def test_cursor_round_trip_and_malformed() -> None:
    cursor = Cursor(filters=["kind=component"], order_field="metadata.name", position=["a", "b"])
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "!!!", "eyJ4IjoxfQ", Cursor(direction="up").encode()):
        with pytest.raises(InputError, match="Malformed cursor"):
            Cursor.decode(bad)


def test_projection_keeps_only_requested_paths() -> None:
    entity = component("web", tags=["a"])
    assert project(entity, ["metadata.name", "spec.owner", "metadata.missing", "nope.x"]) == {
        "metadata": {"name": "web"},
        "spec": {"owner": "team-a"},
    }
    assert project(entity, []) is entity


def test_stored_document_is_what_encode_stores() -> None:
    body = component("web", description="naïve ☃", tags=["a"], annotations={"x.io/y": "z"})
    body["metadata"]["uid"] = "stale"
    body["status"] = {"sla": {"ok": True, "ratio": 0.5}}
    text, etag = encode(body, "uid-1")
    document = stored_document(body, "uid-1", etag)
    assert document == json.loads(text)
    assert json.dumps(document, separators=(",", ":"), ensure_ascii=False) == text


def test_collector_pause_nests_and_restores_the_collector() -> None:
    import gc

    from catalog.gc_pause import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still runs
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
