"""An AI client creates a RAG service through MCP and asks it a question.

Nothing stood in: the portal over HTTP with real Celery workers on Redis, the shipped
rag-service template (cookiecutter, git, catalog), the local runtime starting SmolLM2 on
llama.cpp, MiniLM ingestion into Qdrant local mode and the generated API. The SDK's
client drives it over streamable HTTP (create, follow the log, ask) and over stdio
(``ragportal mcp``: the task's log, the same service asked again); the question counts
in the service's SLA; a read-only token is refused.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from portal_backend.auth.service import create_token
from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.settings import Settings
from tests.mcp.client import http_client, payload, run, stdio_client
from tests.provisioning.local.test_end_to_end import portal
from tests.rag_template.template_flow import with_defaults
from tests.scaffolder.conftest import settings_env

NAME = "mcp-bot"
QUESTION = "What does the assistant do when no document passage is relevant?"

pytestmark = pytest.mark.slow


def _token(settings: Settings, scope: str, group: str | None = None) -> str:
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        return create_token(
            session, name=f"mcp-{scope}", scope=scope, subject="user:default/agent",
            owner_group=group,
        ).token  # fmt: skip


def _check_answer(answer: dict[str, Any]) -> None:
    assert answer["answer"].strip()
    assert any(c["source"].endswith("getting-started.md") for c in answer["citations"])
    assert answer["usage"]["total_tokens"] > 0


def test_an_agent_creates_a_service_follows_its_log_and_asks_it(
    runtime_settings: Settings, tmp_path: Path
) -> None:
    settings = runtime_settings
    writer = _token(settings, "write", "group:default/team-a")
    reader = _token(settings, "read")
    with portal(settings, tmp_path / "portal") as live, live.client() as rest:

        async def over_http() -> dict[str, Any]:
            async with http_client(live.url, writer) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                templates = payload(await client.call_tool("list_templates", {}))["templates"]
                values = with_defaults({"name": NAME, "owner": "group:default/team-a"})
                created = await client.call_tool(
                    "create_service",
                    {"templateRef": "template:default/rag-service", "values": values},
                )
                assert not created.is_error, payload(created)
                task_id = payload(created)["id"]
                deadline = time.monotonic() + 900
                while True:
                    task = payload(await client.call_tool("get_task", {"task_id": task_id}))
                    if task["status"] in ("completed", "failed", "cancelled"):
                        break
                    assert time.monotonic() < deadline, task["log"][-2000:]
                    await anyio.sleep(2)
                log = await client.read_resource(f"ragportal://tasks/{task_id}/log")
                asked = await client.call_tool("ask_service", {"name": NAME, "question": QUESTION})
                return {
                    "names": names, "templates": templates, "task": task,
                    "log": log.contents[0].text, "asked": asked, "task_id": task_id,
                }  # fmt: skip

        first = run(over_http)
        assert "create_service" in first["names"] and "ask_service" in first["names"]
        rag = next(t for t in first["templates"] if t["templateRef"].endswith("/rag-service"))
        assert rag["parameterSchema"]["steps"]
        assert first["task"]["status"] == "completed", first["task"]["log"][-3000:]
        assert f"{NAME} is Healthy on the local runtime" in first["task"]["log"]
        assert f"{NAME} is Healthy on the local runtime" in first["log"]
        assert first["log"].rstrip().endswith("-- status: completed")
        assert not first["asked"].is_error, payload(first["asked"])
        _check_answer(payload(first["asked"]))

        # The same server over stdio, with the read-only token: reads the task, asks the
        # service, may not create.
        env = {**settings_env(settings), "RAGPORTAL_TOKEN": reader}
        command = [sys.executable, "-m", "portal_backend.cli", "mcp"]

        async def over_stdio() -> list[Any]:
            async with stdio_client(env, command) as client:
                return [
                    await client.call_tool("get_task", {"task_id": first["task_id"]}),
                    await client.call_tool("ask_service", {"name": NAME, "question": QUESTION}),
                    await client.call_tool(
                        "create_service",
                        {
                            "templateRef": "template:default/rag-service",
                            "values": with_defaults(
                                {"name": "other-bot", "owner": "group:default/team-a"}
                            ),
                        },
                    ),  # fmt: skip
                    await client.call_tool("service_sla", {"name": NAME, "window": "1h"}),
                ]

        task, asked, refused, _ = run(over_stdio)
        assert payload(task)["status"] == "completed"
        assert not asked.is_error, payload(asked)
        _check_answer(payload(asked))
        assert refused.is_error and payload(refused)["status"] == 403

        # Both questions reached the service's SLA (its usage push, every 2 s).
        deadline = time.monotonic() + 60
        while True:
            report = rest.get(
                f"/api/sla/services/component/default/{NAME}", params={"window": "1h"}
            )
            if report.status_code == 200 and report.json()["slo"]["requests"] >= 2:
                break
            assert time.monotonic() < deadline, report.text
            time.sleep(1)
        # The write went into the audit log as the MCP call it was.
        audit = rest.get("/api/auth/audit", params={"action": "MCP create_service"}).json()
        assert audit["items"] and audit["items"][0]["actor"] == "user:default/agent"
        assert rest.delete(f"/api/rag/services/default/{NAME}").status_code == 200
