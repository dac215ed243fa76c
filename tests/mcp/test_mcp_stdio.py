"""``ragportal mcp``: the same server over stdio, started as a client starts it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.mcp.tools import TOOLS
from portal_backend.settings import Settings
from tests.mcp.client import payload, run, stdio_client
from tests.mcp.test_mcp_http import GROUP, SERVICE
from tests.scaffolder.conftest import settings_env

COMMAND = [sys.executable, "-m", "portal_backend.cli", "mcp"]


def test_stdio_serves_the_tools_with_the_tokens_rights(
    settings: Settings, session_factory: Any, make_token: Any
) -> None:
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([GROUP, SERVICE])
    env = {**settings_env(settings), "RAGPORTAL_TOKEN": make_token("read")}

    async def main() -> list[Any]:
        async with stdio_client(env, COMMAND) as client:
            return [
                await client.list_tools(),
                await client.call_tool("search_catalog", {"fullTextFilterTerm": "expense"}),
                await client.call_tool(
                    "create_service",
                    {
                        "templateRef": "template:default/rag-service",
                        "values": {"name": "x-bot", "owner": "group:default/team-a"},
                    },
                ),  # fmt: skip
            ]

    tools, found, create = run(main)
    assert {t.name for t in tools.tools} == {t.name for t in TOOLS}
    assert [e["metadata"]["name"] for e in payload(found)["items"]] == ["hr-bot"]
    assert create.is_error and payload(create)["status"] == 403


def test_stdio_refuses_to_start_without_a_valid_token(settings: Settings) -> None:
    env = {**settings_env(settings), "RAGPORTAL_TOKEN": "rp_not-a-token"}
    started = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 2
    assert "invalid, expired or revoked token" in started.stderr
    env.pop("RAGPORTAL_TOKEN")
    started = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 2 and "authentication required" in started.stderr
