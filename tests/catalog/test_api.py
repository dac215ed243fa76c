"""The catalog over real HTTP: Backstage routes, shapes, filters, paging, facets, auth."""

from __future__ import annotations

import httpx
import pytest

from tests.catalog.factories import component, group, resource, system
from tests.conftest import LiveServer


def _import(client: httpx.Client, live_server: LiveServer, entities: list[dict]) -> None:
    from catalog.service import CatalogService
    from portal_backend.db import session_scope

    with session_scope(live_server.app.state.session_factory) as session:  # type: ignore[attr-defined]
        CatalogService(session).upsert_entities(entities)


@pytest.fixture
def seeded(admin_client: httpx.Client, live_server: LiveServer) -> httpx.Client:
    _import(
        admin_client,
        live_server,
        [
            group("team-a"),
            group("team-b"),
            system("search", owner="team-b"),
            component(
                "web",
                system="search",
                tags=["python", "web"],
                title="Web Frontend",
                description="The storefront",
                annotations={"rag-portal.io/service": "web"},
            ),
            component("API-Gateway", type="website", tags=["go"], owner="team-b"),
            component("indexer", tags=["python"], dependsOn=["resource:default/db"]),
            resource("db"),
        ],
    )
    return admin_client


def _names(items: list[dict]) -> list[str]:
    return [e["metadata"]["name"] for e in items]


def test_by_query_filters_and_semantics(seeded: httpx.Client) -> None:
    def query(*filters: str, **params: str) -> list[str]:
        response = seeded.get(
            "/api/catalog/entities/by-query",
            params={"filter": list(filters), "orderField": "metadata.name,asc", **params},
        )
        assert response.status_code == 200, response.text
        return _names(response.json()["items"])

    assert query("kind=component,spec.type=service") == ["indexer", "web"]
    assert query("KIND=Component,Spec.Type=WEBSITE") == ["API-Gateway"]
    assert query("kind=group", "kind=system") == ["search", "team-a", "team-b"]
    assert query("kind=component,kind=resource,metadata.tags=python") == ["indexer", "web"]
    assert query("metadata.annotations.rag-portal.io/service") == ["web"]
    assert query("relations.ownedBy=group:default/team-b") == ["API-Gateway", "search"]
    assert query("relations.dependencyof=component:default/indexer") == ["db"]
    assert query("relations.hasPart=component:default/web") == ["search"]
    assert query("metadata.name=nothing") == []


def test_by_query_shape_fields_and_order(seeded: httpx.Client) -> None:
    body = seeded.get(
        "/api/catalog/entities/by-query",
        params={
            "filter": "kind=component",
            "fields": "metadata.name,spec.owner",
            "orderField": "metadata.name,desc",
        },
    ).json()
    assert body["totalItems"] == 3
    assert body["pageInfo"] == {}
    assert body["items"] == [
        {"metadata": {"name": "web"}, "spec": {"owner": "team-a"}},
        {"metadata": {"name": "indexer"}, "spec": {"owner": "team-a"}},
        {"metadata": {"name": "API-Gateway"}, "spec": {"owner": "team-b"}},
    ]


def test_cursor_pages_forward_and_back_stable_under_writes(
    admin_client: httpx.Client, live_server: LiveServer
) -> None:
    _import(admin_client, live_server, [component(f"svc-{i:02d}") for i in range(25)])
    params = {"filter": "kind=component", "orderField": "metadata.name,asc", "limit": "10"}
    first = admin_client.get("/api/catalog/entities/by-query", params=params).json()
    assert first["totalItems"] == 25
    assert _names(first["items"]) == [f"svc-{i:02d}" for i in range(10)]
    assert "prevCursor" not in first["pageInfo"]

    # Writes between pages (a new entity sorting before the position, one after it)
    # neither repeat nor skip items on the next pages.
    _import(admin_client, live_server, [component("svc-00a"), component("svc-99")])
    second = admin_client.get(
        "/api/catalog/entities/by-query",
        params={"cursor": first["pageInfo"]["nextCursor"], "limit": "10"},
    ).json()
    assert _names(second["items"]) == [f"svc-{i:02d}" for i in range(10, 20)]
    third = admin_client.get(
        "/api/catalog/entities/by-query",
        params={"cursor": second["pageInfo"]["nextCursor"], "limit": "10"},
    ).json()
    assert _names(third["items"]) == [*(f"svc-{i:02d}" for i in range(20, 25)), "svc-99"]
    assert "nextCursor" not in third["pageInfo"]

    back = admin_client.get(
        "/api/catalog/entities/by-query",
        params={"cursor": third["pageInfo"]["prevCursor"], "limit": "10"},
    ).json()
    assert _names(back["items"]) == [f"svc-{i:02d}" for i in range(10, 20)]
    assert "nextCursor" in back["pageInfo"] and "prevCursor" in back["pageInfo"]


def test_full_text_search(seeded: httpx.Client) -> None:
    def search(term: str, fields: str | None = None) -> list[str]:
        params = {"fullTextFilterTerm": term, "orderField": "metadata.name,asc"}
        if fields:
            params["fullTextFilterFields"] = fields
        return _names(seeded.get("/api/catalog/entities/by-query", params=params).json()["items"])

    assert search("GATE") == ["API-Gateway"]
    assert search("storefront") == ["web"]  # description is searched by default
    assert search("front", "metadata.title") == ["web"]
    assert search("front", "metadata.name") == []
    assert search("100%_") == []  # LIKE wildcards are literal


def test_get_entities_list_order_paging_and_streaming(seeded: httpx.Client) -> None:
    everything = seeded.get("/api/catalog/entities")
    assert everything.status_code == 200
    assert everything.headers["content-type"].startswith("application/json")
    assert len(everything.json()) == 7
    assert seeded.get("/api/catalog/entities", params={"filter": "kind=nothing"}).json() == []

    ordered = seeded.get(
        "/api/catalog/entities",
        params={
            "filter": "kind=component",
            "order": "desc:metadata.name",
            "fields": "metadata.name",
        },
    ).json()
    assert ordered == [{"metadata": {"name": n}} for n in ("web", "indexer", "API-Gateway")]

    page = seeded.get(
        "/api/catalog/entities",
        params={"filter": "kind=component", "order": "asc:metadata.name", "limit": "2"},
    )
    assert _names(page.json()) == ["API-Gateway", "indexer"]
    link = page.headers["link"]
    assert 'rel="next"' in link
    after = link.split("after=")[1].split(">")[0]
    rest = seeded.get("/api/catalog/entities", params={"after": after, "limit": "2"}).json()
    assert _names(rest) == ["web"]
    offset = seeded.get(
        "/api/catalog/entities",
        params={
            "filter": "kind=component",
            "order": "asc:metadata.name",
            "offset": "1",
            "limit": "1",
        },
    ).json()
    assert _names(offset) == ["indexer"]


def test_by_refs_by_name_by_uid(seeded: httpx.Client) -> None:
    response = seeded.post(
        "/api/catalog/entities/by-refs",
        json={
            "entityRefs": ["component:default/web", "component:default/missing", "group:team-a"],
            "fields": ["kind", "metadata.name"],
        },
    )
    assert response.status_code == 200
    assert response.json()["items"] == [
        {"kind": "Component", "metadata": {"name": "web"}},
        None,
        {"kind": "Group", "metadata": {"name": "team-a"}},
    ]

    web = seeded.get("/api/catalog/entities/by-name/component/default/WEB").json()
    assert web["metadata"]["title"] == "Web Frontend"
    assert {"type": "partOf", "targetRef": "system:default/search"} in web["relations"]
    uid = web["metadata"]["uid"]
    assert seeded.get(f"/api/catalog/entities/by-uid/{uid}").json()["metadata"]["name"] == "web"

    missing = seeded.get("/api/catalog/entities/by-name/component/default/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["name"] == "NotFoundError"
    assert missing.json()["response"] == {"statusCode": 404}

    assert seeded.delete(f"/api/catalog/entities/by-uid/{uid}").status_code == 204
    assert seeded.get(f"/api/catalog/entities/by-uid/{uid}").status_code == 404
    assert seeded.delete(f"/api/catalog/entities/by-uid/{uid}").status_code == 404


def test_entity_facets(seeded: httpx.Client) -> None:
    body = seeded.get(
        "/api/catalog/entity-facets",
        params={
            "facet": ["spec.type", "metadata.tags", "relations.ownedBy"],
            "filter": "kind=component",
        },
    ).json()
    assert body["facets"]["spec.type"] == [
        {"value": "service", "count": 2},
        {"value": "website", "count": 1},
    ]
    assert body["facets"]["metadata.tags"] == [
        {"value": "python", "count": 2},
        {"value": "go", "count": 1},
        {"value": "web", "count": 1},
    ]
    assert body["facets"]["relations.ownedBy"] == [
        {"value": "group:default/team-a", "count": 2},
        {"value": "group:default/team-b", "count": 1},
    ]
    kinds = seeded.get("/api/catalog/entity-facets", params={"facet": "kind"}).json()
    assert {f["value"]: f["count"] for f in kinds["facets"]["kind"]} == {
        "Component": 3,
        "Group": 2,
        "System": 1,
        "Resource": 1,
    }


def test_status_is_filterable_through_the_api(
    seeded: httpx.Client, live_server: LiveServer
) -> None:
    from catalog.service import CatalogService
    from portal_backend.db import session_scope

    with session_scope(live_server.app.state.session_factory) as session:  # type: ignore[attr-defined]
        CatalogService(session).set_status("component:default/web", "slo", {"state": "breached"})
    items = seeded.get(
        "/api/catalog/entities/by-query", params={"filter": "status.slo.state=breached"}
    ).json()["items"]
    assert _names(items) == ["web"]
    assert items[0]["status"]["slo"]["state"] == "breached"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/catalog/entities/by-query", {"cursor": "not-a-cursor"}, "cursor"),
        ("/api/catalog/entities/by-query", {"cursor": "eyJ4IjoxfQ"}, "cursor"),
        ("/api/catalog/entities/by-query", {"limit": "ten"}, "limit"),
        ("/api/catalog/entities/by-query", {"orderField": "metadata.name,up"}, "orderField"),
        ("/api/catalog/entities/by-query", {"filter": "=x"}, "filter"),
        ("/api/catalog/entities", {"after": "%%%"}, "after"),
        ("/api/catalog/entity-facets", {}, "facet"),
    ],
)
def test_bad_parameters_get_400_naming_the_parameter(
    admin_client: httpx.Client, path: str, params: dict, field: str
) -> None:
    response = admin_client.get(path, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["name"] == "InputError"
    assert (
        field in [d["path"] for d in body["error"].get("details", [])]
        or field in (body["error"]["message"])
    )


def test_validate_entity(admin_client: httpx.Client) -> None:
    ok = admin_client.post(
        "/api/catalog/validate-entity",
        json={"entity": component("fine"), "location": "url:https://example.com/x.yaml"},
    )
    assert ok.status_code == 200
    bad = component("not valid!", tags=["UPPER"])
    del bad["spec"]["lifecycle"]
    response = admin_client.post(
        "/api/catalog/validate-entity", json={"entity": bad, "location": "url:https://e/x"}
    )
    assert response.status_code == 400
    messages = [e["message"] for e in response.json()["errors"]]
    assert any(m.startswith("metadata.name:") for m in messages)
    assert any(m.startswith("metadata.tags[0]:") for m in messages)
    assert any(m.startswith("spec.lifecycle:") for m in messages)
    unknown = admin_client.post(
        "/api/catalog/validate-entity",
        json={
            "entity": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Widget",
                "metadata": {"name": "w"},
            },
            "location": "url:https://e/x",
        },
    )
    assert unknown.status_code == 400
    assert "unknown kind" in unknown.json()["errors"][0]["message"]


def test_reads_need_read_scope_and_writes_need_write(
    seeded: httpx.Client, live_server: LiveServer, anon_client: httpx.Client, make_token
) -> None:  # type: ignore[no-untyped-def]
    assert anon_client.get("/api/catalog/entities").status_code == 401
    reader = make_token("read")
    with live_server.client(reader) as client:
        assert client.get("/api/catalog/entities/by-query").status_code == 200
        web = client.get("/api/catalog/entities/by-name/component/default/web").json()
        denied = client.delete(f"/api/catalog/entities/by-uid/{web['metadata']['uid']}")
        assert denied.status_code == 403
        assert (
            client.post(
                "/api/catalog/locations",
                json={"type": "url", "target": "https://example.com/a.yaml"},
            ).status_code
            == 403
        )


def test_anonymous_read_setting(
    seeded: httpx.Client, live_server: LiveServer, anon_client: httpx.Client
) -> None:
    live_server.settings.anonymous_read = True
    try:
        assert anon_client.get("/api/catalog/entities").status_code == 200
        assert (
            anon_client.post("/api/catalog/refresh", json={"entityRef": "x:y/z"}).status_code == 401
        )
    finally:
        live_server.settings.anonymous_read = False


def test_owner_group_token_may_only_delete_its_own(
    seeded: httpx.Client, live_server: LiveServer, make_token
) -> None:  # type: ignore[no-untyped-def]
    token = make_token("write", group="group:default/team-a")
    gateway = seeded.get("/api/catalog/entities/by-name/component/default/api-gateway").json()
    web = seeded.get("/api/catalog/entities/by-name/component/default/web").json()
    with live_server.client(token) as client:
        denied = client.delete(f"/api/catalog/entities/by-uid/{gateway['metadata']['uid']}")
        assert denied.status_code == 403
        assert "group:default/team-a" in denied.json()["error"]["message"]
        assert (
            client.delete(f"/api/catalog/entities/by-uid/{web['metadata']['uid']}").status_code
            == 204
        )


def test_oversized_request_body_gets_413(
    admin_client: httpx.Client, live_server: LiveServer
) -> None:
    limit = live_server.settings.max_request_body_bytes
    live_server.settings.max_request_body_bytes = 1000
    try:
        response = admin_client.post(
            "/api/catalog/validate-entity",
            json={"entity": component("big", description="x" * 2000), "location": "url:x"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["name"] == "PayloadTooLargeError"
    finally:
        live_server.settings.max_request_body_bytes = limit


def test_by_refs_bad_body_and_filter(seeded: httpx.Client) -> None:
    assert seeded.post("/api/catalog/entities/by-refs", json={"refs": []}).status_code == 400
    filtered = seeded.post(
        "/api/catalog/entities/by-refs",
        params={"filter": "spec.type=website"},
        json={"entityRefs": ["component:default/web", "component:default/api-gateway"]},
    ).json()["items"]
    assert filtered[0] is None
    assert filtered[1]["metadata"]["name"] == "API-Gateway"


def test_total_items_counts_each_entity_once(seeded: httpx.Client) -> None:
    body = seeded.get(
        "/api/catalog/entities/by-query",
        params={"filter": "kind=component,metadata.tags=python,metadata.tags=web"},
    ).json()
    assert body["totalItems"] == 2  # "web" has both tags
    assert sorted(e["metadata"]["name"] for e in body["items"]) == ["indexer", "web"]
    excluded = seeded.get(
        "/api/catalog/entities/by-query", params={"filter": "kind=group", "totalItems": "exclude"}
    ).json()
    assert "totalItems" not in excluded and len(excluded["items"]) == 2


def _by_predicate(client: httpx.Client, body: dict) -> dict:
    response = client.post("/api/catalog/entities/by-query", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_post_by_query_predicates(seeded: httpx.Client) -> None:
    def names(query: dict) -> list[str]:
        body = {"query": query, "orderBy": [{"field": "metadata.name", "order": "asc"}]}
        return _names(_by_predicate(seeded, body)["items"])

    # keys of one object are ANDed, values match case-insensitively
    assert names({"kind": "Component", "spec.type": "service"}) == ["indexer", "web"]
    assert names({"$all": [{"kind": "component"}, {"metadata.tags": "python"}]}) == [
        "indexer",
        "web",
    ]
    assert names({"$any": [{"kind": "group"}, {"kind": "system"}]}) == [
        "search",
        "team-a",
        "team-b",
    ]
    assert names({"kind": "component", "$not": {"spec.type": "service"}}) == ["API-Gateway"]
    assert names({"kind": {"$in": ["resource", "system"]}}) == ["db", "search"]
    assert names({"metadata.annotations.rag-portal.io/service": {"$exists": True}}) == ["web"]
    assert names({"kind": "component", "spec.system": {"$exists": False}}) == [
        "API-Gateway",
        "indexer",
    ]
    assert names({"relations.ownedBy": "group:default/team-b"}) == ["API-Gateway", "search"]
    assert names(
        {"$any": [{"$all": [{"kind": "component"}, {"metadata.tags": "go"}]}, {"kind": "resource"}]}
    ) == ["API-Gateway", "db"]
    assert names({"$any": []}) == []
    assert len(names({})) == 7

    # same response shape as GET, fields and full text included
    body = _by_predicate(
        seeded,
        {
            "query": {"kind": "component"},
            "fields": ["metadata.name"],
            "orderBy": [{"field": "metadata.name", "order": "desc"}],
            "fullTextFilter": {"term": "front"},
        },
    )
    assert body == {"items": [{"metadata": {"name": "web"}}], "totalItems": 1, "pageInfo": {}}


def test_post_by_query_cursor_continues_the_query(seeded: httpx.Client) -> None:
    query = {"$not": {"kind": "group"}}
    first = _by_predicate(
        seeded,
        {"query": query, "limit": 2, "orderBy": [{"field": "metadata.name", "order": "asc"}]},
    )
    assert _names(first["items"]) == ["API-Gateway", "db"]
    assert first["totalItems"] == 5
    cursor = first["pageInfo"]["nextCursor"]
    second = _by_predicate(seeded, {"cursor": cursor, "limit": 2})
    assert _names(second["items"]) == ["indexer", "search"]
    third = _by_predicate(seeded, {"cursor": second["pageInfo"]["nextCursor"], "limit": 2})
    assert _names(third["items"]) == ["web"]
    assert "nextCursor" not in third["pageInfo"]
    back = _by_predicate(seeded, {"cursor": third["pageInfo"]["prevCursor"], "limit": 2})
    assert _names(back["items"]) == ["indexer", "search"]
    # the GET endpoint continues a predicate cursor the same way
    again = seeded.get(
        "/api/catalog/entities/by-query", params={"cursor": cursor, "limit": 2}
    ).json()
    assert _names(again["items"]) == ["indexer", "search"]


def test_post_entity_facets_with_query(seeded: httpx.Client) -> None:
    response = seeded.post(
        "/api/catalog/entity-facets",
        json={"facets": ["spec.type", "kind"], "query": {"$not": {"kind": "group"}}},
    )
    assert response.status_code == 200, response.text
    facets = response.json()["facets"]
    assert facets["kind"] == [
        {"value": "Component", "count": 3},
        {"value": "Resource", "count": 1},
        {"value": "System", "count": 1},
    ]
    assert {"value": "service", "count": 2} in facets["spec.type"]
    everything = seeded.post("/api/catalog/entity-facets", json={"facets": ["kind"]}).json()
    assert {"value": "Group", "count": 2} in everything["facets"]["kind"]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"$all": {"kind": "x"}}, "query.$all"),
        ({"$any": [{"kind": "x"}, {"spec.type": {"$in": "x"}}]}, "query.$any[1].spec.type.$in"),
        ({"$not": {"spec.type": {"$exists": "yes"}}}, "query.$not.spec.type.$exists"),
        ({"kind": {"$eq": "x"}}, "query.kind"),
        ({"$nor": []}, "query.$nor"),
        ({"kind": ["a"]}, "query.kind"),
        ("kind=component", "query"),
    ],
)
def test_post_predicates_reject_bad_queries(seeded: httpx.Client, query: object, path: str) -> None:
    for route, extra in (
        ("/api/catalog/entities/by-query", {}),
        ("/api/catalog/entity-facets", {"facets": ["kind"]}),
    ):
        response = seeded.post(route, json={"query": query, **extra})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["name"] == "InputError"
        assert path in error["message"]
        assert error["details"][0]["path"] == path
