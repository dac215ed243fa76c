"""Usage per LoRA adapter: pushed records name the adapter that served them, and the
service report breaks the window's usage down by adapter (fast and validating parsers
alike; a retried batch counts once)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal_backend.db import session_scope
from portal_backend.sla.tables import AdapterUsage, UsageRecord
from tests.sla.conftest import rag_service, records, register


def _records(ref: str, adapters: list[str | None]) -> list[dict]:
    start = datetime.now(UTC) - timedelta(seconds=30)
    out = records(ref, start, 10, len(adapters))
    for record, adapter, i in zip(out, adapters, range(len(out)), strict=True):
        if adapter is not None:
            record["adapter"] = adapter
        record["outcome"] = "error" if i == 0 else "success"
    return out


def test_report_breaks_usage_down_by_adapter(live_server, admin_client, session_factory) -> None:  # type: ignore[no-untyped-def]
    (ref,) = register(session_factory, rag_service("lora-bot"))
    adapters = ["support-tone"] * 3 + ["legal"] * 2 + [None] * 5
    body = {"batch_id": uuid.uuid4().hex, "records": _records(ref, adapters)}
    for _ in range(2):  # a retried batch changes nothing
        assert admin_client.post("/api/sla/usage", json=body).status_code == 200
    report = admin_client.get("/api/sla/services/component/default/lora-bot").json()
    by_adapter = {row["adapter"]: row for row in report["usageByAdapter"]}
    assert list(by_adapter) == ["support-tone", "legal"]  # most requests first
    assert by_adapter["support-tone"]["requests"] == 3
    assert by_adapter["support-tone"]["errors"] == 1  # the batch's first record failed
    assert by_adapter["legal"] == {
        "adapter": "legal",
        "requests": 2,
        "errors": 0,
        "meanLatencyMs": by_adapter["legal"]["meanLatencyMs"],
        "promptTokens": 400,
        "completionTokens": 100,
    }
    # The service's own figures still count every request, base model included.
    assert report["slo"]["requests"] == 10


def test_an_adapter_name_is_validated_and_kept_in_raw_records(  # type: ignore[no-untyped-def]
    live_server, admin_client, session_factory
) -> None:
    (ref,) = register(session_factory, rag_service("lora-bot"))
    bad = _records(ref, ["x" * 201])
    refused = admin_client.post("/api/sla/usage", json={"batch_id": "b-1", "records": bad})
    assert refused.status_code == 400
    assert "records.0.adapter" in refused.text
    with session_scope(session_factory) as session:
        assert session.scalars(select(AdapterUsage)).all() == []
    # Raw retention on: the record keeps its adapter.
    live_server.settings.sla_raw_retention_hours = 1
    try:
        body = {"batch_id": "b-2", "records": _records(ref, ["legal", None])}
        assert admin_client.post("/api/sla/usage", json=body).status_code == 200
    finally:
        live_server.settings.sla_raw_retention_hours = 0
    with session_scope(session_factory) as session:
        kept = sorted(session.scalars(select(UsageRecord.adapter)), key=lambda a: a or "")
    assert kept == [None, "legal"]
