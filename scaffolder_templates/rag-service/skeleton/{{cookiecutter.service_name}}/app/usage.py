"""Batched usage push to rag-portal (POST /api/sla/usage), optional.

Records queue in memory and go out in batches (size or interval, whichever first). A
batch that fails is retried with the same batch_id, so the portal can drop duplicates;
when the portal stays down the oldest records are dropped past a bound, never the API.

The push needs the portal's address (RAGPORTAL_URL, rendered into the deploy config by
rag-portal) and this service's ingest token (RAGPORTAL_INGEST_TOKEN, from the
``<service>-portal-ingest`` Secret rag-portal creates when it deploys the service).
Without either it is off, and the API says so, and why, when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from app.settings import Settings

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


def start_usage_push(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> UsageReporter | None:
    """The running reporter, or None (logged with the reason) when the push is off."""
    missing = [
        name
        for name, value in (
            ("RAGPORTAL_URL", settings.ragportal_url),
            ("RAGPORTAL_INGEST_TOKEN", settings.ragportal_ingest_token),
        )
        if not value
    ]
    if missing:
        log.warning(
            "usage push to rag-portal is OFF: %s %s empty (set by rag-portal when it deploys "
            "this service: RAGPORTAL_URL in the %s-config ConfigMap, the token from the "
            "%s-portal-ingest Secret); SLA and cost in the portal stay empty",
            " and ".join(missing),
            "is" if len(missing) == 1 else "are",
            settings.service_name,
            settings.service_name,
        )
        return None
    reporter = UsageReporter(
        settings.ragportal_url,
        settings.ragportal_ingest_token,
        batch_size=settings.usage_batch_size,
        flush_interval_s=settings.usage_flush_interval_s,
        transport=transport,
    )
    log.info(
        "usage push to rag-portal is on: %s (batches of %d, every %gs at most)",
        reporter.endpoint,
        settings.usage_batch_size,
        settings.usage_flush_interval_s,
    )
    reporter.start()
    return reporter
