"""Batched usage push to rag-portal (POST /api/sla/usage), optional.

Records queue in memory and go out in batches (size or interval, whichever first). A
batch that fails is retried with the same batch_id, so the portal can drop duplicates;
when the portal stays down the oldest records are dropped past a bound, never the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import Any

import httpx

log = logging.getLogger(__name__)
MAX_QUEUED_RECORDS = 50_000


class UsageReporter:
    def __init__(
        self,
        portal_url: str,
        token: str,
        *,
        batch_size: int = 100,
        flush_interval_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = portal_url.rstrip("/") + "/api/sla/usage"
        self.token = token
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: deque[dict[str, Any]] = deque(maxlen=MAX_QUEUED_RECORDS)
        self._pending: tuple[str, list[dict[str, Any]]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(transport=transport, timeout=10.0)
        self.sent_batches = 0

    def record(self, record: dict[str, Any]) -> None:
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> bool:
        """Sends everything queued; False when the portal did not accept a batch."""
        while self._pending or self._queue:
            if self._pending is None:
                records = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                self._pending = (str(uuid.uuid4()), records)
            batch_id, records = self._pending
            try:
                response = await self._client.post(
                    self.endpoint,
                    json={"batch_id": batch_id, "records": records},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
            except httpx.HTTPError as exc:
                log.warning("usage push to %s failed: %s", self.endpoint, exc)
                return False
            if response.status_code >= 500 or response.status_code == 429:
                log.warning("usage push got %s, will retry", response.status_code)
                return False
            if response.status_code >= 400:
                # The portal refused the batch itself (bad token, bad record): retrying
                # the same body cannot succeed, so drop it loudly.
                log.error(
                    "usage batch %s refused: %s %s", batch_id, response.status_code, response.text
                )
            else:
                self.sent_batches += 1
            self._pending = None
        return True

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval_s)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        await self._client.aclose()
