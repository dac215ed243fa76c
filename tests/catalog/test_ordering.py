"""Several order fields (GET /entities `order`, by-query `orderField`, POST `orderBy`) with
stable cursors, and POST /entities/by-refs honouring `filter` and a predicate `query`."""

from __future__ import annotations

import httpx
import pytest

from catalog.service import CatalogService
from portal_backend.db import session_scope
from tests.catalog.factories import component, group, resource, system
from tests.conftest import LiveServer

BY_QUERY = "/api/catalog/entities/by-query"

# asc:kind, desc:metadata.name (kinds and names compare case-insensitively)
KIND_ASC_NAME_DESC = ["web", "indexer", "API-Gateway", "team-b", "team-a", "db", "search"]


def _store(live_server: LiveServer, *entities: dict) -> None:
    with session_scope(live_server.app.state.session_factory) as session:  # type: ignore[attr-defined]
        CatalogService(session).upsert_entities(list(entities))


@pytest.fixture
def seeded(admin_client: httpx.Client, live_server: LiveServer) -> httpx.Client:
    _store(
        live_server,
        group("team-a"),
        group("team-b"),
        system("search", owner="team-b"),
        component("web", system="search"),
        component("API-Gateway", type="website", owner="team-b"),
        component("indexer"),
        resource("db"),
    )
    return admin_client


def _names(items: list[dict]) -> list[str]:
    return [e["metadata"]["name"] for e in items]


def test_get_entities_with_two_order_directives(seeded: httpx.Client) -> None:
    response = seeded.get(
        "/api/catalog/entities", params={"order": ["asc:kind", "desc:metadata.name"]}
    )
    assert response.status_code == 200, response.text
    assert _names(response.json()) == KIND_ASC_NAME_DESC

    # Paged with limit + the Link header's `after` cursor: same order, nothing twice.
    seen: list[str] = []
    params: dict = {"order": ["asc:kind", "desc:metadata.name"], "limit": 3}
    response = seeded.get("/api/catalog/entities", params=params)
    while True:
        seen += _names(response.json())
        link = response.headers.get("link")
        if not link:
            break
        path = link.split(";")[0].strip("<>")
        # The cursor carries the order: the next link alone continues the list.
        response = seeded.get(path)
    assert seen == KIND_ASC_NAME_DESC


def test_by_query_order_fields_page_forward_and_back(seeded: httpx.Client) -> None:
    params = {"orderField": ["kind,asc", "metadata.name,desc"], "limit": 3}
    first = seeded.get(BY_QUERY, params=params).json()
    assert _names(first["items"]) == KIND_ASC_NAME_DESC[:3]
    assert first["totalItems"] == 7

    second = seeded.get(
        BY_QUERY, params={"cursor": first["pageInfo"]["nextCursor"], "limit": 3}
    ).json()
    assert _names(second["items"]) == KIND_ASC_NAME_DESC[3:6]
    third = seeded.get(
        BY_QUERY, params={"cursor": second["pageInfo"]["nextCursor"], "limit": 3}
    ).json()
    assert _names(third["items"]) == KIND_ASC_NAME_DESC[6:]
    assert "nextCursor" not in third["pageInfo"]

    back = seeded.get(
        BY_QUERY, params={"cursor": third["pageInfo"]["prevCursor"], "limit": 3}
    ).json()
    assert _names(back["items"]) == KIND_ASC_NAME_DESC[3:6]
    back = seeded.get(
        BY_QUERY, params={"cursor": back["pageInfo"]["prevCursor"], "limit": 3}
    ).json()
    assert _names(back["items"]) == KIND_ASC_NAME_DESC[:3]
    assert "prevCursor" not in back["pageInfo"]


def test_order_fields_cursor_is_stable_under_writes(
    seeded: httpx.Client, live_server: LiveServer
) -> None:
    params = {"orderField": ["kind,asc", "metadata.name,desc"], "limit": 3}
    first = seeded.get(BY_QUERY, params=params).json()
    assert _names(first["items"]) == ["web", "indexer", "API-Gateway"]
    # "zeta" sorts before the cursor (first among components), "team-c" after it.
    _store(live_server, component("zeta"), group("team-c"))
    second = seeded.get(
        BY_QUERY, params={"cursor": first["pageInfo"]["nextCursor"], "limit": 3}
    ).json()
    assert _names(second["items"]) == ["team-c", "team-b", "team-a"]


def test_order_by_a_spec_field_then_name(seeded: httpx.Client) -> None:
    # spec.type desc: website, team, service, database, then entities without it ("").
    body = seeded.get(
        BY_QUERY, params={"orderField": ["spec.type,desc", "metadata.name,asc"], "limit": 100}
    ).json()
    assert _names(body["items"]) == [
        "API-Gateway",
        "team-a",
        "team-b",
        "indexer",
        "web",
        "db",
        "search",
    ]
    paged: list[str] = []
    page = seeded.get(
        BY_QUERY, params={"orderField": ["spec.type,desc", "metadata.name,asc"], "limit": 2}
    ).json()
    while True:
        paged += _names(page["items"])
        if "nextCursor" not in page["pageInfo"]:
            break
        page = seeded.get(
            BY_QUERY, params={"cursor": page["pageInfo"]["nextCursor"], "limit": 2}
        ).json()
    assert paged == _names(body["items"])


def test_post_by_query_order_by_several_fields(seeded: httpx.Client) -> None:
    body = {
        "query": {"kind": {"$in": ["component", "group"]}},
        "orderBy": [{"field": "kind", "order": "desc"}, {"field": "metadata.name", "order": "asc"}],
        "limit": 4,
    }
    first = seeded.post(BY_QUERY, json=body)
    assert first.status_code == 200, first.text
    assert _names(first.json()["items"]) == ["team-a", "team-b", "API-Gateway", "indexer"]
    second = seeded.post(BY_QUERY, json={"cursor": first.json()["pageInfo"]["nextCursor"]})
    assert _names(second.json()["items"]) == ["web"]


@pytest.mark.parametrize(
    ("method", "params", "body", "path"),
    [
        ("GET", {"orderField": ["kind,asc", "metadata.name,sideways"]}, None, "orderField[1]"),
        ("GET", {"orderField": [",asc"]}, None, "orderField[0]"),
        ("GET", {"orderField": [f"f{i},asc" for i in range(6)]}, None, "orderField"),
        ("LIST", {"order": ["asc:kind", "up:metadata.name"]}, None, "order[1]"),
        ("POST", None, {"orderBy": [{"field": "kind"}, {"order": "asc"}]}, "orderBy[1]"),
        ("POST", None, {"orderBy": [{"field": "kind", "order": "down"}]}, "orderBy[0]"),
    ],
)
def test_bad_order_is_400_naming_the_directive(
    seeded: httpx.Client, method: str, params: dict | None, body: dict | None, path: str
) -> None:
    if method == "POST":
        response = seeded.post(BY_QUERY, json=body)
    elif method == "LIST":
        response = seeded.get("/api/catalog/entities", params=params)
    else:
        response = seeded.get(BY_QUERY, params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["name"] == "InputError"
    assert error["details"][0]["path"] == path


def test_by_refs_honours_filter_and_query(seeded: httpx.Client) -> None:
    refs = [
        "component:default/web",
        "component:default/api-gateway",
        "group:default/team-a",
        "component:default/missing",
    ]
    url = "/api/catalog/entities/by-refs"
    # Repeated filters are ORed; conditions in one filter are ANDed.
    response = seeded.post(
        url,
        params={"filter": ["kind=component,spec.type=website", "kind=group"]},
        json={"entityRefs": refs, "fields": ["metadata.name"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [
        None,
        {"metadata": {"name": "API-Gateway"}},
        {"metadata": {"name": "team-a"}},
        None,
    ]
    # The predicate form getEntitiesByRefs({query}) sends, ANDed with any filter.
    response = seeded.post(
        url,
        json={
            "entityRefs": refs,
            "fields": ["metadata.name"],
            "query": {"kind": "component", "$not": {"spec.type": "website"}},
        },
    )
    assert response.json()["items"] == [{"metadata": {"name": "web"}}, None, None, None]
    bad = seeded.post(url, json={"entityRefs": refs, "query": {"kind": {"$regex": "x"}}})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["path"] == "query.kind"
    bad_filter = seeded.post(url, params={"filter": "=x"}, json={"entityRefs": refs})
    assert bad_filter.status_code == 400
