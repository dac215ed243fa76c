"""PostgreSQL restarted in the middle of a catalog import and of a usage push (issue 22).

Each: the request fails with a 503 that says the database is unavailable (or succeeds
after the push's own retries), nothing is half-written (the transaction rolls back
whole), and the same portal process answers normally once the server is back: the pool
drops the dead connections and opens new ones, no portal restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from catalog.entity_writes import EntityWrites
from portal_backend.settings import Settings
from portal_backend.sla import ingest
from tests.conftest import LiveServer
from tests.faults.conftest import PrivatePostgres


def _components(folder: Path, count: int, prefix: str = "svc") -> Path:
    documents = [
        "apiVersion: backstage.io/v1alpha1\nkind: Component\n"
        f"metadata:\n  name: {prefix}-{i}\n"
        "spec:\n  type: service\n  lifecycle: production\n  owner: group:default/team-a\n"
        for i in range(count)
    ]
    path = folder / f"{prefix}-catalog-info.yaml"
    path.write_text("---\n".join(documents))
    return path


def _once_before(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, fault: Callable[[], None]
) -> list[int]:
    """Runs ``fault`` the first time ``owner.name`` is called, then the real function."""
    original = getattr(owner, name)
    calls: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            fault()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def _rows(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def test_restart_during_a_catalog_import(
    portal_on_private_postgres: tuple[LiveServer, Settings],
    private_postgres: PrivatePostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live, _ = portal_on_private_postgres
    target = str(_components(tmp_path, 40))
    locations = "SELECT count(*) FROM catalog_locations"
    entities = "SELECT count(*) FROM catalog_entities"
    # The portal registers its own templates' location at start.
    before = (_rows(private_postgres.url, locations), _rows(private_postgres.url, entities))
    # The location row is written; the server restarts before its 40 entities are.
    _once_before(monkeypatch, EntityWrites, "upsert_entities", private_postgres.restart)
    with live.client() as client:
        failed = client.post("/api/catalog/locations", json={"type": "file", "target": target})
        assert failed.status_code == 503, failed.text
        error = failed.json()["error"]
        assert error["name"] == "ServiceUnavailableError"
        assert "database is unavailable" in error["message"]
        assert "Send the request again" in error["message"]

        # Nothing half-written: no location without its entities, no entity.
        after = (_rows(private_postgres.url, locations), _rows(private_postgres.url, entities))
        assert after == before

        # The same portal process, the same request: imported whole.
        assert client.get("/readyz").status_code == 200
        again = client.post("/api/catalog/locations", json={"type": "file", "target": target})
        assert again.status_code == 201, again.text
        assert len(again.json()["entities"]) == 40
        assert _rows(private_postgres.url, entities) == before[1] + 40
        found = client.get(
            "/api/catalog/entities/by-query", params={"filter": "kind=component", "limit": 100}
        )
        assert found.json()["totalItems"] == 40


def _usage_body(ref: str, count: int, batch_id: str) -> bytes:
    start = datetime.now(UTC) - timedelta(minutes=5)
    records = [
        {
            "service": ref,
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
            "latency_ms": 120.0,
            "outcome": "success",
            "prompt_tokens": 10,
            "completion_tokens": 5,
        }
        for i in range(count)
    ]
    return orjson.dumps({"batch_id": batch_id, "records": records})


@pytest.mark.parametrize("down_s", [0.0, 3.0], ids=["quick-restart", "down-3s"])
def test_restart_during_a_usage_push(
    portal_on_private_postgres: tuple[LiveServer, Settings],
    private_postgres: PrivatePostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    down_s: float,
) -> None:
    """Down briefly, the push's own retries store the batch; down longer than they
    wait, a 503 and nothing stored; sent again, the batch counts once."""
    live, _ = portal_on_private_postgres
    target = str(_components(tmp_path, 1, prefix="bot"))
    ref = "component:default/bot-0"
    batch_id = uuid.uuid4().hex
    body = _usage_body(ref, 50, batch_id)
    headers = {"Content-Type": "application/json"}
    with live.client() as client:
        created = client.post("/api/catalog/locations", json={"type": "file", "target": target})
        assert created.status_code == 201, created.text
        restarts: list[Any] = []

        def fault() -> None:
            restarts.append(private_postgres.restart_in_background(down_s))

        # Inside the push's transaction, after the service check read the database.
        _once_before(monkeypatch, ingest, "ingest_batch", fault)
        first = client.post("/api/sla/usage", content=body, headers=headers)
        restarts[0].join(timeout=60)
        if down_s:
            assert first.status_code == 503, first.text
            assert "database is unavailable" in first.json()["error"]["message"]
            assert _rows(private_postgres.url, "SELECT count(*) FROM sla_ingest_batches") == 0
            again = client.post("/api/sla/usage", content=body, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json()["accepted"] == 50 and again.json()["duplicate"] is False
        else:
            assert first.status_code in (200, 503), first.text
            if first.status_code == 503:  # the retries ran out before the server was up
                assert client.post("/api/sla/usage", content=body, headers=headers).is_success

        # Once, whatever the path: the batch id is recorded and a resend changes nothing.
        repeat = client.post("/api/sla/usage", content=body, headers=headers)
        assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
        requests = _rows(
            private_postgres.url,
            "SELECT coalesce(sum(requests), 0) FROM sla_usage_rollups WHERE resolution = '1m'",
        )
        assert requests == 50
