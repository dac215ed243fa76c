"""The official MCP SDK's client, as an AI application would use it against the portal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

T = TypeVar("T")


@asynccontextmanager
async def http_client(base_url: str, token: str | None) -> AsyncIterator[Client]:
    """Streamable HTTP to ``<base_url>/mcp`` with the token as a bearer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=180) as http:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        async with Client(transport, read_timeout_seconds=180) as client:
            yield client


@asynccontextmanager
async def stdio_client(env: dict[str, str], command: list[str]) -> AsyncIterator[Client]:
    """``ragportal mcp`` started as a subprocess, over its stdin/stdout."""
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with Client(params, read_timeout_seconds=180) as client:
        yield client


def run(main: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(main)`` on a thread of its own: once a session has opened its browser
    (Playwright's sync API, tests/conftest.py), the main thread has an event loop marked
    as running, and a second loop cannot start there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, main).result()


def payload(result: Any) -> Any:
    """A tool result's JSON (what an AI client's model reads)."""
    return json.loads(result.content[0].text)
