"""Locations over real HTTP: url and file targets, dry runs, refresh, orphans, safety."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.catalog.conftest import YamlServer
from tests.catalog.factories import component, group
from tests.conftest import LiveServer

LOCATIONS = "/api/catalog/locations"


def _names(client: httpx.Client, filter: str = "kind=component") -> list[str]:
    items = client.get(
        "/api/catalog/entities/by-query",
        params={"filter": filter, "orderField": "metadata.name,asc"},
    ).json()["items"]
    return [e["metadata"]["name"] for e in items]


@pytest.mark.usefixtures("allow_private_urls")
def test_register_url_location_with_many_documents(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    url = yaml_server.publish(
        "catalog-info.yaml", component("web"), component("api"), group("team-a")
    )
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    assert response.status_code == 201, response.text
    body = response.json()
    location = body["location"]
    assert location["type"] == "url" and location["target"] == url
    assert sorted(e["metadata"]["name"] for e in body["entities"]) == ["api", "team-a", "web"]
    web = admin_client.get("/api/catalog/entities/by-name/component/default/web").json()
    assert web["metadata"]["annotations"]["backstage.io/managed-by-location"] == f"url:{url}"
    assert web["metadata"]["annotations"]["backstage.io/managed-by-origin-location"] == f"url:{url}"

    assert admin_client.get(f"{LOCATIONS}/{location['id']}").json() == location
    [listed] = admin_client.get(LOCATIONS).json()
    assert listed["data"] == location
    assert listed["status"]["lastRefreshError"] is None
    assert listed["status"]["lastRefreshAt"]  # registration reads the location
    assert (
        admin_client.get("/api/catalog/locations/by-entity/component/default/web").json()
        == location
    )

    again = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    assert again.status_code == 409
    assert again.json()["error"]["name"] == "ConflictError"

    assert admin_client.delete(f"{LOCATIONS}/{location['id']}").status_code == 204
    assert _names(admin_client) == []
    assert admin_client.get(f"{LOCATIONS}/{location['id']}").status_code == 404


@pytest.mark.usefixtures("allow_private_urls")
def test_dry_run_writes_nothing(admin_client: httpx.Client, yaml_server: YamlServer) -> None:
    url = yaml_server.publish("a.yaml", component("web"))
    response = admin_client.post(
        LOCATIONS, params={"dryRun": "true"}, json={"type": "url", "target": url}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["exists"] is False
    assert [e["metadata"]["name"] for e in body["entities"]] == ["web"]
    assert _names(admin_client) == []
    assert admin_client.get(LOCATIONS).json() == []


@pytest.mark.usefixtures("allow_private_urls")
def test_refresh_updates_and_flags_orphans(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    url = yaml_server.publish("c.yaml", component("web"), component("old"))
    admin_client.post(LOCATIONS, json={"type": "url", "target": url}).raise_for_status()
    before = admin_client.get("/api/catalog/entities/by-name/component/default/web").json()

    yaml_server.publish("c.yaml", component("web", description="changed"), component("new"))
    refreshed = admin_client.post(
        "/api/catalog/refresh", json={"entityRef": "component:default/web"}
    )
    assert refreshed.status_code == 200

    after = admin_client.get("/api/catalog/entities/by-name/component/default/web").json()
    assert after["metadata"]["description"] == "changed"
    assert after["metadata"]["etag"] != before["metadata"]["etag"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert _names(admin_client) == ["new", "old", "web"]
    assert _names(admin_client, "metadata.annotations.backstage.io/orphan=true") == ["old"]

    # Back in the file: no longer an orphan.
    yaml_server.publish("c.yaml", component("web", description="changed"), component("old"))
    admin_client.post("/api/catalog/refresh", json={"entityRef": "component:default/web"})
    assert _names(admin_client, "metadata.annotations.backstage.io/orphan=true") == ["new"]

    # onConflict=refresh re-reads an existing location instead of answering 409.
    yaml_server.publish("c.yaml", component("web", description="third"))
    again = admin_client.post(
        LOCATIONS, params={"onConflict": "refresh"}, json={"type": "url", "target": url}
    )
    assert again.status_code == 201
    assert again.json()["exists"] is True
    web = admin_client.get("/api/catalog/entities/by-name/component/default/web").json()
    assert web["metadata"]["description"] == "third"


@pytest.mark.usefixtures("allow_private_urls")
def test_one_bad_document_rejects_the_whole_location(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    bad = component("Bad Name!")
    url = yaml_server.publish("mixed.yaml", component("good"), bad, component("also-good"))
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "1 of 3 documents are invalid" in error["message"]
    assert "documents[0] (component:default/good)" in error["message"]
    assert [d["path"] for d in error["details"]] == ["documents[1].metadata.name"]
    assert _names(admin_client) == []
    assert admin_client.get(LOCATIONS).json() == []


@pytest.mark.usefixtures("allow_private_urls")
def test_refresh_of_a_broken_location_keeps_entities(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    url = yaml_server.publish("d.yaml", component("web"))
    admin_client.post(LOCATIONS, json={"type": "url", "target": url}).raise_for_status()
    yaml_server.publish("d.yaml", "kind: [unclosed")
    response = admin_client.post(
        "/api/catalog/refresh", json={"entityRef": "component:default/web"}
    )
    assert response.status_code == 400
    assert "not valid YAML" in response.json()["error"]["message"]
    assert _names(admin_client) == ["web"]


@pytest.mark.usefixtures("allow_private_urls")
def test_yaml_alias_bomb_and_oversized_documents_are_refused(
    admin_client: httpx.Client, yaml_server: YamlServer, live_server: LiveServer
) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b]\n"
    url = yaml_server.publish("bomb.yaml", bomb)
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
    assert response.status_code == 400
    assert "aliases" in response.json()["error"]["message"]

    limit = live_server.settings.location_fetch_max_bytes
    live_server.settings.location_fetch_max_bytes = 1000
    try:
        big = yaml_server.publish("big.yaml", component("big", description="x" * 5000))
        too_big = admin_client.post(LOCATIONS, json={"type": "url", "target": big})
        assert too_big.status_code == 413
        assert too_big.json()["error"]["name"] == "PayloadTooLargeError"
    finally:
        live_server.settings.location_fetch_max_bytes = limit
    assert admin_client.get(LOCATIONS).json() == []


def test_private_loopback_and_odd_scheme_urls_are_refused(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    url = yaml_server.publish("a.yaml", component("web"))
    for target in (
        url,
        "http://localhost:1/x.yaml",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/x.yaml",
        "http://[::1]/x.yaml",
    ):
        response = admin_client.post(LOCATIONS, json={"type": "url", "target": target})
        assert response.status_code == 400, target
        assert "private, loopback or link-local" in response.json()["error"]["message"]
    for target in ("ftp://example.com/x.yaml", "file:///etc/passwd", "gopher://x"):
        response = admin_client.post(LOCATIONS, json={"type": "url", "target": target})
        assert response.status_code == 400
        assert "http(s)" in response.json()["error"]["message"]
    bad_type = admin_client.post(LOCATIONS, json={"type": "git", "target": "x"})
    assert bad_type.status_code == 400


def test_file_locations_need_admin_and_an_allowed_root(
    admin_client: httpx.Client, live_server: LiveServer, make_token, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = live_server.settings.data_dir
    inside = root / "catalog-file-test.yaml"
    inside.write_text(yaml.safe_dump(component("from-file")))
    outside = tmp_path / "outside.yaml"
    outside.write_text(yaml.safe_dump(component("outside")))
    try:
        writer = make_token("write")
        with live_server.client(writer) as client:
            denied = client.post(LOCATIONS, json={"type": "file", "target": str(inside)})
            assert denied.status_code == 403
            assert "admin" in denied.json()["error"]["message"]
        refused = admin_client.post(LOCATIONS, json={"type": "file", "target": str(outside)})
        assert refused.status_code == 403
        assert "allowed roots" in refused.json()["error"]["message"]
        sneaky = admin_client.post(
            LOCATIONS, json={"type": "file", "target": f"{root}/../{tmp_path.name}/outside.yaml"}
        )
        assert sneaky.status_code == 403
        created = admin_client.post(LOCATIONS, json={"type": "file", "target": str(inside)})
        assert created.status_code == 201, created.text
        assert _names(admin_client) == ["from-file"]
    finally:
        inside.unlink()


@pytest.mark.usefixtures("allow_private_urls")
def test_owner_group_token_registers_only_its_own(
    live_server: LiveServer, yaml_server: YamlServer, make_token
) -> None:  # type: ignore[no-untyped-def]
    token = make_token("write", group="group:default/team-a")
    theirs = yaml_server.publish("theirs.yaml", component("x", owner="team-b"))
    mine = yaml_server.publish("mine.yaml", component("y", owner="group:default/team-a"))
    with live_server.client(token) as client:
        assert client.post(LOCATIONS, json={"type": "url", "target": theirs}).status_code == 403
        created = client.post(LOCATIONS, json={"type": "url", "target": mine})
        assert created.status_code == 201
        assert client.delete(f"{LOCATIONS}/{created.json()['location']['id']}").status_code == 204
