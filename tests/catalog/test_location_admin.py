"""The rest of Backstage's location API over real HTTP, on both databases: locations by
query (paged), updating a location's target, analyzing a location before registering it,
and an entity's ancestry through Location entities."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.catalog.conftest import YamlServer
from tests.catalog.factories import component, group
from tests.catalog.test_location_targets import location
from tests.conftest import LiveServer

LOCATIONS = "/api/catalog/locations"


def _register(client: httpx.Client, target: str, type: str = "url") -> dict:
    response = client.post(LOCATIONS, json={"type": type, "target": target})
    assert response.status_code == 201, response.text
    return response.json()["location"]


def _entity(client: httpx.Client, name: str, kind: str = "component") -> httpx.Response:
    return client.get(f"/api/catalog/entities/by-name/{kind}/default/{name}")


@pytest.mark.usefixtures("allow_private_urls")
def test_locations_by_query_filters_and_pages_with_a_cursor(
    admin_client: httpx.Client, yaml_server: YamlServer, tmp_path: Path, live_server: LiveServer
) -> None:
    (yaml_server.root / "team-a").mkdir()
    urls = [yaml_server.publish(f"team-a/s{i}.yaml", component(f"svc-{i}")) for i in range(5)]
    other = yaml_server.publish("other.yaml", component("other"))
    registered = [_register(admin_client, url) for url in [*urls, other]]
    by_query = f"{LOCATIONS}/by-query"

    everything = admin_client.post(by_query, json={}).json()
    assert everything["items"] == registered  # registration order
    assert everything["totalItems"] == 6 and everything["pageInfo"] == {}

    # $hasPrefix on the target, case-insensitively; pages of 2 by cursor, the cursor alone
    # carrying the predicate and the page size.
    prefix = {"type": "url", "target": {"$hasPrefix": f"{yaml_server.url}/TEAM-A/"}}
    first = admin_client.post(by_query, json={"query": prefix, "limit": 2}).json()
    assert first["totalItems"] == 5
    seen = list(first["items"])
    cursor = first["pageInfo"].get("nextCursor")
    while cursor:
        page = admin_client.post(by_query, json={"cursor": cursor})
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 2
        seen += page.json()["items"]
        cursor = page.json()["pageInfo"].get("nextCursor")
    assert seen == registered[:5]

    # A location added between pages shows up on a later page, none is repeated.
    first = admin_client.post(by_query, json={"query": prefix, "limit": 3}).json()
    late = _register(admin_client, yaml_server.publish("team-a/late.yaml", component("late")))
    rest = admin_client.post(by_query, json={"cursor": first["pageInfo"]["nextCursor"]}).json()
    assert first["items"] + rest["items"] == [*registered[:5], late]

    combined = {"$any": [{"target": other}, {"$not": {"type": {"$in": ["url"]}}}]}
    assert admin_client.post(by_query, json={"query": combined}).json()["items"] == [registered[5]]
    by_id = {"id": registered[2]["id"]}
    assert admin_client.post(by_query, json={"query": by_id}).json()["items"] == [registered[2]]

    for body, field in [
        ({"query": {"owner": "x"}}, "query.owner"),
        ({"query": {"target": {"$contains": "x"}}}, "query.target"),
        ({"query": {"$all": "x"}}, "query.$all"),
        ({"limit": 0}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"filter": "kind=x"}, "filter"),
    ]:
        bad = admin_client.post(by_query, json=body)
        assert bad.status_code == 400, (body, bad.text)
        assert bad.json()["error"]["name"] == "InputError"
        assert field in str(bad.json()["error"]), (body, bad.text)
    with live_server.client(None) as anonymous:
        assert anonymous.post(by_query, json={}).status_code == 401


@pytest.mark.usefixtures("allow_private_urls")
def test_updating_a_location_moves_its_entities_to_the_new_target(
    admin_client: httpx.Client, yaml_server: YamlServer, live_server: LiveServer, make_token
) -> None:  # type: ignore[no-untyped-def]
    old = yaml_server.publish("old.yaml", component("web"), component("gone"))
    new = yaml_server.publish("new.yaml", component("web", description="moved"), component("api"))
    registered = _register(admin_client, old)
    web_uid = _entity(admin_client, "web").json()["metadata"]["uid"]

    updated = admin_client.put(f"{LOCATIONS}/{registered['id']}", json={"target": new})
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"id": registered["id"], "type": "url", "target": new}
    assert admin_client.get(f"{LOCATIONS}/{registered['id']}").json() == updated.json()
    web = _entity(admin_client, "web").json()
    assert web["metadata"]["uid"] == web_uid  # the same entity, updated in place
    assert web["metadata"]["description"] == "moved"
    assert web["metadata"]["annotations"]["backstage.io/managed-by-location"] == f"url:{new}"
    assert _entity(admin_client, "api").status_code == 200
    gone = _entity(admin_client, "gone").json()
    assert gone["metadata"]["annotations"]["backstage.io/orphan"] == "true"
    assert (
        admin_client.get("/api/catalog/locations/by-entity/component/default/api").json()
        == updated.json()
    )

    # Nothing changes when the new target is bad, taken, or refused.
    taken = _register(admin_client, yaml_server.publish("taken.yaml", component("taken")))
    broken = yaml_server.publish("broken.yaml", component("web"), "kind: Component\n")
    cases = [
        ({"target": taken["target"]}, 409, "already registered"),
        ({"target": broken}, 400, "documents[1]"),
        ({"target": f"{yaml_server.url}/missing.yaml"}, 400, "HTTP 404"),
        ({"type": "ftp", "target": "x"}, 400, "type"),
        ({"target": ""}, 400, "target"),
    ]
    for body, status, words in cases:
        response = admin_client.put(f"{LOCATIONS}/{registered['id']}", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.text, (body, response.text)
        assert admin_client.get(f"{LOCATIONS}/{registered['id']}").json() == updated.json()
        assert _entity(admin_client, "web").json()["metadata"]["description"] == "moved"
    assert admin_client.put(f"{LOCATIONS}/no-such-id", json={"target": new}).status_code == 404

    # Group tokens only change what their group owns; file targets need an admin token.
    stranger = make_token("write", group="group:default/team-b")
    with live_server.client(stranger) as client:
        denied = client.put(f"{LOCATIONS}/{registered['id']}", json={"target": old})
        assert denied.status_code == 403, denied.text
        as_file = client.put(
            f"{LOCATIONS}/{registered['id']}", json={"type": "file", "target": "/etc/passwd"}
        )
        assert as_file.status_code == 403
    assert admin_client.get(f"{LOCATIONS}/{registered['id']}").json() == updated.json()


@pytest.mark.usefixtures("allow_private_urls")
def test_analyze_location_reports_files_or_proposes_an_entity(
    admin_client: httpx.Client, yaml_server: YamlServer, live_server: LiveServer, make_token
) -> None:  # type: ignore[no-untyped-def]
    (yaml_server.root / "payments-api").mkdir()
    file_url = yaml_server.publish(
        "payments-api/catalog-info.yaml", component("payments"), group("team-a")
    )
    analyze = "/api/catalog/analyze-location"

    # A folder holding catalog-info.yaml: its entities, not yet registered.
    found = admin_client.post(
        analyze, json={"location": {"type": "url", "target": f"{yaml_server.url}/payments-api"}}
    )
    assert found.status_code == 200, found.text
    files = found.json()["existingEntityFiles"]
    assert [f["entity"]["metadata"]["name"] for f in files] == ["payments", "team-a"]
    assert {f["location"]["target"] for f in files} == {file_url}
    assert not any(f["isRegistered"] for f in files)
    assert found.json()["generateEntities"] == []
    assert admin_client.get("/api/catalog/entities").json() == []  # nothing written

    _register(admin_client, file_url)
    again = admin_client.post(analyze, json={"location": {"target": file_url}}).json()
    assert all(f["isRegistered"] for f in again["existingEntityFiles"])

    # Another catalogFilename; and a folder without one: a Component is proposed.
    yaml_server.publish("payments-api/backstage.yaml", component("payments-v2"))
    other = admin_client.post(
        analyze,
        json={
            "location": {"target": f"{yaml_server.url}/payments-api/"},
            "catalogFilename": "backstage.yaml",
        },
    ).json()
    assert [f["entity"]["metadata"]["name"] for f in other["existingEntityFiles"]] == [
        "payments-v2"
    ]
    (yaml_server.root / "Billing_Service.git").mkdir()
    empty = admin_client.post(
        analyze, json={"location": {"target": f"{yaml_server.url}/Billing_Service.git"}}
    ).json()
    assert empty["existingEntityFiles"] == []
    [proposal] = empty["generateEntities"]
    assert proposal["entity"]["kind"] == "Component"
    assert proposal["entity"]["metadata"]["name"] == "billing_service"
    assert proposal["fields"][0]["field"] == "spec.owner"
    assert proposal["fields"][0]["state"] == "needsUserInput"

    # Bad input names the field; an invalid file answers its problems; unsafe targets
    # are refused before anything is fetched.
    broken = yaml_server.publish("broken.yaml", "kind: Component\nmetadata: {name: x}\n")
    for body, status, words in [
        ({}, 400, "location"),
        ({"location": {"type": "git", "target": "x"}}, 400, "location.type"),
        ({"location": {"target": " "}}, 400, "location.target"),
        (
            {"location": {"target": file_url}, "catalogFilename": "../x.yaml"},
            400,
            "catalogFilename",
        ),
        ({"location": {"target": broken}}, 400, "apiVersion"),
        ({"location": {"target": f"{yaml_server.url}/nothing.yaml"}}, 400, "HTTP 404"),
    ]:
        response = admin_client.post(analyze, json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.text, (body, response.text)
    live_server.settings.allow_private_urls = False
    refused = admin_client.post(analyze, json={"location": {"target": file_url}})
    assert refused.status_code in (400, 403), refused.text
    live_server.settings.allow_private_urls = True
    reader = make_token("read")
    with live_server.client(reader) as client:
        assert client.post(analyze, json={"location": {"target": file_url}}).status_code == 403


@pytest.mark.usefixtures("allow_private_urls")
def test_ancestry_follows_location_entities_up_to_the_registration(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    (yaml_server.root / "teams").mkdir()
    root = yaml_server.publish("all.yaml", location("all", "./teams/a.yaml"), group("team-a"))
    yaml_server.publish("teams/a.yaml", location("team-a-files", "../svc.yaml"))
    yaml_server.publish("svc.yaml", component("web"))
    _register(admin_client, root)

    response = admin_client.get("/api/catalog/entities/by-name/component/default/web/ancestry")
    assert response.status_code == 200, response.text
    body = response.json()
    refs = [
        (item["entity"]["metadata"]["name"], item["parentEntityRefs"]) for item in body["items"]
    ]
    assert body["rootEntityRef"].lower() == "component:default/web"
    assert [(name, [p.lower() for p in parents]) for name, parents in refs] == [
        ("web", ["location:default/team-a-files"]),
        ("team-a-files", ["location:default/all"]),
        ("all", []),
    ]
    # Read straight from the registered location: no parent entity.
    team = admin_client.get("/api/catalog/entities/by-name/group/default/team-a/ancestry").json()
    assert [item["parentEntityRefs"] for item in team["items"]] == [[]]
    missing = admin_client.get("/api/catalog/entities/by-name/component/default/nope/ancestry")
    assert missing.status_code == 404
