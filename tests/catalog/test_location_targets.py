"""Location entities' spec.target/spec.targets over real HTTP: nested locations are read,
annotated and refreshed; cycles, depth, unsafe targets and duplicates are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from tests.catalog.conftest import YamlServer
from tests.catalog.factories import component, group
from tests.conftest import LiveServer

LOCATIONS = "/api/catalog/locations"
MANAGED_BY = "backstage.io/managed-by-location"
ORIGIN = "backstage.io/managed-by-origin-location"


def location(name: str, *targets: str, type: str | None = None) -> dict:
    spec: dict = {"targets": list(targets)} if len(targets) != 1 else {"target": targets[0]}
    if type:
        spec["type"] = type
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {"name": name},
        "spec": spec,
    }


def _entity(client: httpx.Client, ref: str) -> dict:
    kind, rest = ref.split(":")
    response = client.get(f"/api/catalog/entities/by-name/{kind}/{rest}")
    assert response.status_code == 200, response.text
    return response.json()


def _refs(client: httpx.Client, filter: str | None = None) -> list[str]:
    params = {"filter": filter} if filter else {}
    return sorted(
        f"{e['kind'].lower()}:{e['metadata']['namespace']}/{e['metadata']['name']}"
        for e in client.get("/api/catalog/entities", params=params).json()
    )


@pytest.mark.usefixtures("allow_private_urls")
def test_url_location_follows_targets_and_orphans_dropped_ones(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    (yaml_server.root / "teams").mkdir()
    (yaml_server.root / "sub").mkdir()
    root = yaml_server.publish(
        "all.yaml", location("all", "./teams/a.yaml", "sub/b.yaml"), group("team-a")
    )
    team = yaml_server.publish("teams/a.yaml", component("web"))
    sub = yaml_server.publish("sub/b.yaml", location("nested", "../c.yaml"), component("api"))
    deep = yaml_server.publish("c.yaml", component("worker"))

    response = admin_client.post(LOCATIONS, json={"type": "url", "target": root})
    assert response.status_code == 201, response.text
    body = response.json()
    assert sorted(e["metadata"]["name"] for e in body["entities"]) == [
        "all",
        "api",
        "nested",
        "team-a",
        "web",
        "worker",
    ]
    # Only the registered location is a location; the others are reached through it.
    assert admin_client.get(LOCATIONS).json()[0]["data"] == body["location"]
    assert len(admin_client.get(LOCATIONS).json()) == 1

    expected = {
        "location:default/all": root,
        "group:default/team-a": root,
        "component:default/web": team,
        "location:default/nested": sub,
        "component:default/api": sub,
        "component:default/worker": deep,
    }
    for ref, read_from in expected.items():
        annotations = _entity(admin_client, ref)["metadata"]["annotations"]
        assert annotations[MANAGED_BY] == f"url:{read_from}", ref
        assert annotations[ORIGIN] == f"url:{root}", ref
    by_entity = admin_client.get(f"{LOCATIONS}/by-entity/component/default/worker").json()
    assert by_entity == body["location"]

    # The root Location drops sub/b.yaml: what came from it (and from c.yaml through it)
    # is orphaned on refresh; an unchanged entity keeps its etag.
    web_before = _entity(admin_client, "component:default/web")
    yaml_server.publish("all.yaml", location("all", "./teams/a.yaml"), group("team-a"))
    refreshed = admin_client.post("/api/catalog/refresh", json={"entityRef": "group:team-a"})
    assert refreshed.status_code == 200, refreshed.text
    assert _refs(admin_client, "metadata.annotations.backstage.io/orphan=true") == [
        "component:default/api",
        "component:default/worker",
        "location:default/nested",
    ]
    web_after = _entity(admin_client, "component:default/web")
    assert web_after["metadata"]["etag"] == web_before["metadata"]["etag"]

    # The Location entity itself disappears: its target's entities are orphaned too.
    yaml_server.publish("all.yaml", group("team-a"))
    admin_client.post("/api/catalog/refresh", json={"entityRef": "group:team-a"})
    orphans = _refs(admin_client, "metadata.annotations.backstage.io/orphan=true")
    assert "component:default/web" in orphans and "location:default/all" in orphans

    # Deleting the registered location removes everything its tree produced.
    assert admin_client.delete(f"{LOCATIONS}/{body['location']['id']}").status_code == 204
    assert _refs(admin_client) == []


@pytest.mark.usefixtures("allow_private_urls")
def test_dry_run_reads_the_tree_and_writes_nothing(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    root = yaml_server.publish("root.yaml", location("root", "leaf.yaml"))
    leaf = yaml_server.publish("leaf.yaml", component("web"))
    response = admin_client.post(
        LOCATIONS, params={"dryRun": "true"}, json={"type": "url", "target": root}
    )
    assert response.status_code == 201, response.text
    preview = {e["metadata"]["name"]: e for e in response.json()["entities"]}
    assert preview["web"]["metadata"]["annotations"][MANAGED_BY] == f"url:{leaf}"
    assert _refs(admin_client) == []
    assert admin_client.get(LOCATIONS).json() == []


@pytest.mark.usefixtures("allow_private_urls")
def test_cycles_are_refused_naming_the_chain(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    a = yaml_server.publish("a.yaml", location("a", "b.yaml"), component("web"))
    b = yaml_server.publish("b.yaml", location("b", "./a.yaml"))
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": a})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"location cycle url:{a} -> url:{b} -> url:{a}" in error["message"]
    assert error["details"][0]["path"] == "documents[0].spec.target"
    assert _refs(admin_client) == []
    assert admin_client.get(LOCATIONS).json() == []

    itself = yaml_server.publish("self.yaml", location("self", "self.yaml"))
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": itself})
    assert response.status_code == 400
    assert "location cycle" in response.json()["error"]["message"]


@pytest.mark.usefixtures("allow_private_urls")
def test_excessive_depth_is_refused(admin_client: httpx.Client, yaml_server: YamlServer) -> None:
    for level in range(7):
        yaml_server.publish(
            f"level{level}.yaml", location(f"level{level}", f"level{level + 1}.yaml")
        )
    yaml_server.publish("level7.yaml", component("bottom"))
    root = f"{yaml_server.url}/level0.yaml"
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": root})
    assert response.status_code == 400, response.text
    assert "deeper than 5 levels" in response.json()["error"]["message"]
    assert _refs(admin_client) == []


@pytest.mark.usefixtures("allow_private_urls")
def test_unsafe_or_broken_targets_fail_the_whole_location(
    admin_client: httpx.Client, yaml_server: YamlServer
) -> None:
    cases = {
        # A remote file may not make the server read its own disk.
        "to-file.yaml": (location("x", "/etc/passwd", type="file"), 403, "cannot lead to a file"),
        "ftp.yaml": (location("x", "ftp://example.com/x.yaml"), 400, "http(s)"),
        "git.yaml": (location("x", "repo", type="git"), 400, "not supported"),
        "missing.yaml": (location("x", "nowhere.yaml"), 400, "HTTP 404"),
    }
    for name, (document, status, text) in cases.items():
        url = yaml_server.publish(name, document, component("good"))
        response = admin_client.post(LOCATIONS, json={"type": "url", "target": url})
        assert response.status_code == status, (name, response.text)
        message = response.json()["error"]["message"]
        assert text in message, (name, message)
        assert f"url:{url}: Location 'x' spec.target" in message, (name, message)
    # A nested document that is invalid: all or nothing, the report names its location.
    leaf = yaml_server.publish("bad-leaf.yaml", component("Bad Name!"))
    root = yaml_server.publish("with-bad-leaf.yaml", location("x", "bad-leaf.yaml"))
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": root})
    assert response.status_code == 400
    error = response.json()["error"]
    assert f"url:{leaf}: 1 of 1 documents are invalid" in error["message"]
    assert error["details"][0]["path"] == "documents[0].metadata.name"
    # The same entity in two locations of one tree.
    yaml_server.publish("one.yaml", component("twin"))
    yaml_server.publish("two.yaml", component("twin"))
    root = yaml_server.publish("twins.yaml", location("x", "one.yaml", "two.yaml"))
    response = admin_client.post(LOCATIONS, json={"type": "url", "target": root})
    assert response.status_code == 400
    assert "component:default/twin is defined twice" in response.json()["error"]["message"]
    assert _refs(admin_client) == []
    assert admin_client.get(LOCATIONS).json() == []


def test_file_location_targets_stay_under_the_allowed_roots(
    admin_client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    root_dir = live_server.settings.data_dir / "tree-test"
    (root_dir / "teams").mkdir(parents=True)
    outside = tmp_path / "outside.yaml"
    outside.write_text(yaml.safe_dump(component("outside")))
    all_yaml = root_dir / "all.yaml"
    try:
        (root_dir / "teams" / "a.yaml").write_text(yaml.safe_dump(component("web")))
        all_yaml.write_text(yaml.safe_dump(location("all", "./teams/a.yaml")))
        created = admin_client.post(LOCATIONS, json={"type": "file", "target": str(all_yaml)})
        assert created.status_code == 201, created.text
        web = _entity(admin_client, "component:default/web")
        assert web["metadata"]["annotations"][MANAGED_BY] == f"file:{root_dir}/teams/a.yaml"
        assert web["metadata"]["annotations"][ORIGIN] == f"file:{all_yaml}"

        # A target climbing out of the allowed roots is refused on refresh too (403), and
        # the refresh changes nothing.
        escape = f"../../{tmp_path.name}/outside.yaml"
        all_yaml.write_text(yaml.safe_dump(location("all", "./teams/a.yaml", escape)))
        refreshed = admin_client.post("/api/catalog/refresh", json={"entityRef": "component:web"})
        assert refreshed.status_code == 403, refreshed.text
        assert "outside the allowed roots" in refreshed.json()["error"]["message"]
        assert _refs(admin_client) == ["component:default/web", "location:default/all"]
        absolute = admin_client.post(
            LOCATIONS,
            params={"dryRun": "true"},
            json={"type": "file", "target": str(all_yaml)},
        )
        assert absolute.status_code == 403
    finally:
        for path in (root_dir / "teams" / "a.yaml", all_yaml):
            path.unlink(missing_ok=True)


def test_nested_url_targets_get_the_ssrf_checks(
    admin_client: httpx.Client, live_server: LiveServer
) -> None:
    # A file location (admin, allowed root) leading to a loopback URL: refused, since
    # private addresses are not allowed (the test server's default).
    path = live_server.settings.data_dir / "to-loopback.yaml"
    path.write_text(yaml.safe_dump(location("x", "http://127.0.0.1:9/catalog.yaml", type="url")))
    try:
        response = admin_client.post(LOCATIONS, json={"type": "file", "target": str(path)})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert "private, loopback or link-local" in error["message"]
        assert error["details"][0]["path"] == "documents[0].spec.target"
        assert _refs(admin_client) == []
    finally:
        path.unlink()


def test_file_targets_may_be_glob_patterns(
    admin_client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    root_dir = live_server.settings.data_dir / "glob-test"
    for team in ("a", "b"):
        (root_dir / "teams" / team).mkdir(parents=True, exist_ok=True)
        (root_dir / "teams" / team / "catalog-info.yaml").write_text(
            yaml.safe_dump(component(f"svc-{team}"))
        )
    (root_dir / "teams" / "notes.txt").write_text("not matched")
    (root_dir / "extra.yaml").write_text(yaml.safe_dump(group("team-a")))
    all_yaml = root_dir / "all.yaml"
    # "./*.yaml" also matches all.yaml itself: skipped, not a cycle.
    all_yaml.write_text(
        yaml.safe_dump(location("all", "./teams/*/catalog-info.yaml", "./*.yaml", "none/*.yaml"))
    )
    try:
        created = admin_client.post(LOCATIONS, json={"type": "file", "target": str(all_yaml)})
        assert created.status_code == 201, created.text
        assert _refs(admin_client) == [
            "component:default/svc-a",
            "component:default/svc-b",
            "group:default/team-a",
            "location:default/all",
        ]
        svc_b = _entity(admin_client, "component:default/svc-b")["metadata"]["annotations"]
        assert svc_b[MANAGED_BY] == f"file:{root_dir}/teams/b/catalog-info.yaml"
        assert svc_b[ORIGIN] == f"file:{all_yaml}"

        # A team folder removed: its entities are orphaned on refresh.
        (root_dir / "teams" / "a" / "catalog-info.yaml").unlink()
        refreshed = admin_client.post("/api/catalog/refresh", json={"entityRef": "location:all"})
        assert refreshed.status_code == 200, refreshed.text
        assert _refs(admin_client, "metadata.annotations.backstage.io/orphan=true") == [
            "component:default/svc-a"
        ]

        # A pattern whose folder lies outside the allowed roots is refused before listing.
        outside = f"../../{tmp_path.name}/*.yaml"
        all_yaml.write_text(yaml.safe_dump(location("all", outside)))
        refused = admin_client.post("/api/catalog/refresh", json={"entityRef": "location:all"})
        assert refused.status_code == 403, refused.text
        assert "outside the allowed roots" in refused.json()["error"]["message"]
    finally:
        shutil.rmtree(root_dir, ignore_errors=True)


def test_tree_size_limits(session_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from catalog.errors import InputError, PayloadTooLargeError
    from catalog.locations import LocationPolicy
    from catalog.service import CatalogService
    from portal_backend.db import session_scope

    names = [f"team-{i}.yaml" for i in range(4)]
    for index, name in enumerate(names):
        (tmp_path / name).write_text(yaml.safe_dump(component(f"svc-{index}")))
    root = tmp_path / "all.yaml"
    root.write_text(yaml.safe_dump(location("all", *names)))

    def register(policy: LocationPolicy) -> dict:
        with session_scope(session_factory) as session:
            return CatalogService(session, policy=policy).add_location("file", str(root))

    with pytest.raises(InputError, match="leads to more than 4 locations"):
        register(LocationPolicy(max_locations=4))
    size = sum(len((tmp_path / n).read_text()) for n in [*names, "all.yaml"])
    with pytest.raises(PayloadTooLargeError, match=f"more than {size - 1} bytes in all"):
        register(LocationPolicy(max_tree_bytes=size - 1))
    with session_scope(session_factory) as session:
        assert CatalogService(session).list_locations() == []
    assert len(register(LocationPolicy(max_locations=5, max_tree_bytes=size))["entities"]) == 5
