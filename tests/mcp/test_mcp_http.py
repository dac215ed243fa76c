"""The portal's MCP server over streamable HTTP, driven by the official SDK's client:
tools and resources listed, the catalog searched and read, the same validation as the
REST API, and each token limited to its rights."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.mcp.tools import TOOLS
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer
from tests.mcp.client import http_client, payload, run

GROUP = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Group",
    "metadata": {"name": "team-a"},
    "spec": {"type": "team", "children": []},
}
SERVICE = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Component",
    "metadata": {
        "name": "hr-bot",
        "title": "HR assistant",
        "description": "Answers questions about parental leave and expense policies",
    },
    "spec": {"type": "rag-service", "lifecycle": "production", "owner": "team-a"},
}


@pytest.fixture
def seeded(live_server: LiveServer, session_factory: Any) -> LiveServer:
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([GROUP, SERVICE])
    return live_server


def test_lists_every_tool_with_its_schema_and_the_resource_templates(seeded: LiveServer) -> None:
    async def main() -> tuple[Any, Any]:
        async with http_client(seeded.url, BOOTSTRAP_TOKEN) as client:
            return await client.list_tools(), await client.list_resource_templates()

    tools, templates = run(main)
    served = {t.name: t for t in tools.tools}
    assert set(served) == {t.name for t in TOOLS}
    for tool in TOOLS:
        assert served[tool.name].input_schema == tool.input_schema()
    assert served["create_service"].annotations.read_only_hint is False
    assert served["search_catalog"].annotations.read_only_hint is True
    uris = {t.uri_template for t in templates.resource_templates}
    assert uris == {
        "ragportal://entities/{kind}/{namespace}/{name}",
        "ragportal://tasks/{task_id}/log",
    }


def test_finds_the_assistant_that_knows_about_a_topic_and_reads_it(seeded: LiveServer) -> None:
    async def main() -> dict[str, Any]:
        async with http_client(seeded.url, BOOTSTRAP_TOKEN) as client:
            found = await client.call_tool(
                "search_catalog",
                {"filter": ["kind=component,spec.type=rag-service"],
                 "fullTextFilterTerm": "PARENTAL leave"},
            )  # fmt: skip
            missing = await client.call_tool(
                "search_catalog", {"filter": ["kind=component"], "fullTextFilterTerm": "kubernetes"}
            )
            entity = await client.call_tool("get_entity", {"kind": "component", "name": "hr-bot"})
            resource = await client.read_resource("ragportal://entities/component/default/hr-bot")
            listed = await client.list_resources()
            return {
                "found": payload(found), "missing": payload(missing), "entity": payload(entity),
                "resource": resource, "listed": listed,
            }  # fmt: skip

    answers = run(main)
    assert [e["metadata"]["name"] for e in answers["found"]["items"]] == ["hr-bot"]
    assert answers["found"]["totalItems"] == 1
    assert answers["missing"]["items"] == []
    relations = answers["entity"]["relations"]
    assert {"type": "ownedBy", "targetRef": "group:default/team-a"} in relations
    text = answers["resource"].contents[0].text
    assert '"name": "hr-bot"' in text and "ownedBy" in text
    assert "ragportal://entities/component/default/hr-bot" in {
        str(r.uri) for r in answers["listed"].resources
    }


def test_bad_arguments_are_refused_like_the_rest_api(
    seeded: LiveServer, admin_client: httpx.Client
) -> None:
    """Same model, same checks: a negative limit, a bad filter, a missing template's
    required value are each named, and the REST API names the same fields."""

    async def main() -> list[Any]:
        async with http_client(seeded.url, BOOTSTRAP_TOKEN) as client:
            return [
                await client.call_tool("search_catalog", {"limit": -1}),
                await client.call_tool("search_catalog", {"filter": ["=x"]}),
                await client.call_tool(
                    "create_service", {"templateRef": "template:default/rag-service", "values": {}}
                ),
                await client.call_tool("get_entity", {"kind": "component", "name": "nope"}),
            ]

    limit, bad_filter, create, missing = run(main)
    assert limit.is_error and payload(limit)["status"] == 400
    assert [d["path"] for d in payload(limit)["error"]["details"]] == ["limit"]
    assert (
        admin_client.get("/api/catalog/entities/by-query", params={"limit": "-1"}).json()["error"][
            "details"
        ][0]["path"]
        == "limit"
    )
    assert bad_filter.is_error and payload(bad_filter)["status"] == 400
    assert create.is_error and payload(create)["status"] == 400
    rest = admin_client.post(
        "/api/scaffolder/v2/tasks",
        json={"templateRef": "template:default/rag-service", "values": {}},
    )
    assert rest.status_code == 400, rest.text
    assert payload(create)["error"]["details"] == rest.json()["error"]["details"]
    assert missing.is_error and payload(missing)["status"] == 404
    # Nothing was created by either.
    assert admin_client.get("/api/scaffolder/v2/tasks").json()["totalTasks"] == 0


def test_a_read_only_token_reads_but_cannot_create_or_dry_run(
    seeded: LiveServer, make_token: Any, admin_client: httpx.Client
) -> None:
    token = make_token("read", subject="user:default/reader")

    async def main() -> list[Any]:
        async with http_client(seeded.url, token) as client:
            return [
                await client.call_tool("search_catalog", {"filter": ["kind=group"]}),
                await client.call_tool(
                    "create_service",
                    {
                        "templateRef": "template:default/rag-service",
                        "values": {"name": "sneaky-bot", "owner": "group:default/team-a"},
                    },
                ),  # fmt: skip
                await client.call_tool(
                    "dry_run_template",
                    {"templateRef": "template:default/rag-service", "values": {}},
                ),
            ]

    search, create, dry_run = run(main)
    assert not search.is_error
    assert [e["metadata"]["name"] for e in payload(search)["items"]] == ["team-a"]
    for refused in (create, dry_run):
        assert refused.is_error
        assert payload(refused)["status"] == 403
        assert "'write' is needed" in payload(refused)["error"]["message"]
    assert admin_client.get("/api/scaffolder/v2/tasks").json()["totalTasks"] == 0


def test_the_endpoint_wants_a_portal_token(seeded: LiveServer, session_factory: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=seeded.url, timeout=30) as client:
        none = client.post("/mcp", json=body, headers=headers)
        wrong = client.post("/mcp", json=body, headers={**headers, "Authorization": "Bearer nope"})
        from portal_backend.auth.service import create_token

        with session_scope(session_factory) as session:
            ingest = create_token(
                session, name="ingest", scope="write", subject="svc", purpose="ingest",
                service_ref="component:default/hr-bot",
            ).token  # fmt: skip
        pushed = client.post(
            "/mcp", json=body, headers={**headers, "Authorization": f"Bearer {ingest}"}
        )
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert "authentication required" in none.json()["error"]["message"]
    assert wrong.status_code == 401
    assert pushed.status_code == 403 and "read scope" in pushed.json()["error"]["message"]
