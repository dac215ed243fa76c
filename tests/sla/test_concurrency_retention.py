"""Parallel pushes to the same rollup rows lose nothing; raw records and old rollups go
when their retention ends."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import func, select

from portal_backend.db import session_scope
from portal_backend.sla import ingest, jobs, stats
from portal_backend.sla.rollups import T
from portal_backend.sla.tables import IngestBatch, UsageRecord
from tests.sla.conftest import T0, push, rag_service, records, register


def test_parallel_batches_on_the_same_minutes_all_count(  # type: ignore[no-untyped-def]
    live_server, session_factory
) -> None:
    (ref,) = register(session_factory, rag_service("bot"))
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    bodies = [
        orjson.dumps({"batch_id": uuid.uuid4().hex, "records": records(ref, start, 90, 200)})
        for _ in range(24)
    ]

    def send(body: bytes) -> int:
        with live_server.client() as client:
            return client.post(
                "/api/sla/usage", content=body, headers={"Content-Type": "application/json"}
            ).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(send, bodies)) == {200}
    end = int(start.timestamp()) + 600
    with session_scope(session_factory) as session:
        window = stats.window_stats(session, ref, end - 3600, end)
        assert window.requests == 24 * 200
        assert int(window.latency.sum()) == 24 * 200
        minutes = session.execute(
            select(func.sum(T.c.requests)).where(T.c.service_ref == ref, T.c.resolution == "1m")
        ).scalar()
        days = session.execute(
            select(func.sum(T.c.requests)).where(T.c.service_ref == ref, T.c.resolution == "1d")
        ).scalar()
        assert minutes == days == 24 * 200


def test_raw_records_kept_for_their_retention_then_purged(session_factory, settings) -> None:  # type: ignore[no-untyped-def]
    (ref,) = register(session_factory, rag_service("bot"))
    body = orjson.dumps(
        {"batch_id": "raw-1", "records": records(ref, T0 - timedelta(hours=2), 60, 30)}
    )
    with session_scope(session_factory) as session:
        ingest.ingest_batch(session, ingest.parse_batch(body), now=T0, raw_retention_hours=24)
    push(
        session_factory, records(ref, T0 - timedelta(hours=1), 60, 10), T0, batch_id="rollups-only"
    )
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(UsageRecord)) == 30
        stored = session.scalars(select(UsageRecord).order_by(UsageRecord.ts)).first()
        assert stored.outcome == "success" and stored.model == "llama-3-8b"

    tuned = settings.model_copy(
        update={
            "sla_raw_retention_hours": 24,
            "sla_minute_rollup_retention_days": 35,
            "sla_batch_id_retention_days": 7,
        }
    )
    removed = jobs.retention(tuned, session_factory, T0 + timedelta(hours=1))
    assert removed["rawRecords"] == 0 and removed["minuteRollups"] == 0
    removed = jobs.retention(tuned, session_factory, T0 + timedelta(days=36))
    assert removed["rawRecords"] == 30
    assert removed["minuteRollups"] == 2  # the two minutes pushed
    assert removed["batchIds"] == 2
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(IngestBatch)) == 0
        # Hour and day rollups outlive the minute ones: long windows still have the data.
        assert session.scalar(select(func.sum(T.c.requests)).where(T.c.resolution == "1d")) == 40
