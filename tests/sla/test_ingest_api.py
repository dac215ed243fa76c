"""Usage push over HTTP: idempotent batches, ingest-token scoping, clear 4xx on bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from portal_backend.db import session_scope
from portal_backend.sla import stats
from tests.sla.conftest import rag_service, records, register


def _batch(service: str, n: int = 50, batch_id: str | None = None) -> dict:
    now = datetime.now(UTC) - timedelta(seconds=5)
    return {"batch_id": batch_id or uuid.uuid4().hex, "records": records(service, now, 2, n)}


def _issue(client, name: str) -> dict:  # type: ignore[no-untyped-def]
    response = client.post(f"/api/sla/services/component/default/{name}/ingest-tokens", json={})
    assert response.status_code == 201, response.text
    return response.json()


def _requests(session_factory, ref: str) -> int:  # type: ignore[no-untyped-def]
    end = int(datetime.now(UTC).timestamp()) + 120
    with session_scope(session_factory) as session:
        return stats.window_stats(session, ref, end - 3600, end).requests


def test_duplicate_batch_is_idempotent(live_server, admin_client, session_factory) -> None:  # type: ignore[no-untyped-def]
    (ref,) = register(session_factory, rag_service("support-bot"))
    body = _batch(ref, 120, batch_id="batch-0001")
    first = admin_client.post("/api/sla/usage", json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "batchId": "batch-0001",
        "accepted": 120,
        "duplicate": False,
        "services": [ref],
    }
    again = admin_client.post("/api/sla/usage", json=body)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["accepted"] == 0
    assert _requests(session_factory, ref) == 120


def test_ingest_token_scoped_to_its_service_and_revocable(  # type: ignore[no-untyped-def]
    live_server, admin_client, session_factory
) -> None:
    a, b = register(session_factory, rag_service("bot-a"), rag_service("bot-b"))
    issued = _issue(admin_client, "bot-a")
    assert issued["serviceRef"] == a and issued["token"].startswith("rp_")
    listed = admin_client.get("/api/sla/services/component/default/bot-a/ingest-tokens").json()
    assert [t["id"] for t in listed["items"]] == [issued["id"]] and "token" not in listed["items"][
        0
    ]
    with live_server.client(token=issued["token"]) as ingest:
        assert ingest.post("/api/sla/usage", json=_batch(a)).status_code == 200
        other = ingest.post("/api/sla/usage", json=_batch(b))
        assert other.status_code == 403
        assert "may not push usage for component:default/bot-b" in other.json()["error"]["message"]
        # Write-only: an ingest token cannot read the catalog or SLA reports.
        assert ingest.get("/api/sla/services/component/default/bot-a").status_code == 403
        revoked = admin_client.delete(
            f"/api/sla/services/component/default/bot-a/ingest-tokens/{issued['id']}"
        )
        assert revoked.status_code == 204
        after = ingest.post("/api/sla/usage", json=_batch(a))
        assert after.status_code == 401
    assert _requests(session_factory, a) == 50
    assert _requests(session_factory, b) == 0


def test_owner_group_issues_tokens_others_may_not(  # type: ignore[no-untyped-def]
    live_server, session_factory, make_token
) -> None:
    register(session_factory, rag_service("bot-a", owner="team-a"))
    owner = make_token("write", group="group:default/team-a")
    stranger = make_token("write", group="group:default/team-b")
    with live_server.client(token=owner) as client:
        assert _issue(client, "bot-a")["serviceRef"] == "component:default/bot-a"
        # A write (non-admin) api token may not push usage itself.
        assert (
            client.post("/api/sla/usage", json=_batch("component:default/bot-a")).status_code == 403
        )
    with live_server.client(token=stranger) as client:
        denied = client.post("/api/sla/services/component/default/bot-a/ingest-tokens", json={})
        assert denied.status_code == 403


def test_bad_batches_get_field_errors_and_write_nothing(  # type: ignore[no-untyped-def]
    live_server, admin_client, session_factory
) -> None:
    (ref,) = register(session_factory, rag_service("support-bot"))
    body = _batch(ref, 10)
    body["records"][3]["latency_ms"] = -5
    body["records"][4]["outcome"] = "maybe"
    del body["records"][5]["timestamp"]
    response = admin_client.post("/api/sla/usage", json=body)
    assert response.status_code == 400
    paths = {d["path"] for d in response.json()["error"]["details"]}
    assert {"records.3.latency_ms", "records.4.outcome", "records.5.timestamp"} <= paths

    future = _batch(ref, 3)
    future["records"][1]["timestamp"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    response = admin_client.post("/api/sla/usage", json=future)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "records.1.timestamp"

    unknown = admin_client.post("/api/sla/usage", json=_batch("component:default/nope"))
    assert unknown.status_code == 400
    assert "not in the catalog" in unknown.json()["error"]["message"]
    assert admin_client.post("/api/sla/usage", content=b"{not json").status_code == 400
    assert _requests(session_factory, ref) == 0


def test_service_report_costs_prices_budgets_evaluations(  # type: ignore[no-untyped-def]
    live_server, admin_client, session_factory, make_token
) -> None:
    (ref,) = register(session_factory, rag_service("support-bot", p95_ms="800"))
    rng = np.random.default_rng(3)
    body = _batch(ref, 400)
    for r in body["records"]:
        r["latency_ms"] = float(rng.uniform(100, 1000))
    assert admin_client.post("/api/sla/usage", json=body).status_code == 200

    report = admin_client.get("/api/sla/services/component/default/support-bot?window=1h")
    assert report.status_code == 200, report.text
    data = report.json()
    assert data["slo"]["requests"] == 400
    assert data["slo"]["successRate"] == 1.0
    # About 22 % of requests are slower than the 800 ms target: the latency SLO is broken.
    assert data["slo"]["compliant"] is False
    assert data["slo"]["tokens"]["total"] == 400 * 250
    assert data["targets"] == {"successRate": 95.0, "p95LatencyMs": 800.0}
    assert set(data["windows"]) == {"1h", "24h", "7d", "30d"}
    assert len(data["series"]) >= 60
    bad = admin_client.get("/api/sla/services/component/default/support-bot?window=2w")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["path"] == "window"
    assert admin_client.get("/api/sla/services/component/default/ghost").status_code == 404

    reader = make_token("read")
    with live_server.client(token=reader) as client:
        denied = client.put("/api/sla/prices", json={"prices": {"gpu:nvidia-l4": 1.0}})
        assert denied.status_code == 403
        assert client.get("/api/sla/prices").status_code == 200
    prices = admin_client.put(
        "/api/sla/prices", json={"prices": {"gpu:nvidia-l4": 1.25, "cpu_core_hour": 0.05}}
    )
    assert prices.status_code == 200
    assert prices.json()["prices"] == {"gpu:nvidia-l4": 1.25, "cpu_core_hour": 0.05}
    wrong = admin_client.put("/api/sla/prices", json={"prices": {"tpu": 2}})
    assert wrong.status_code == 400 and wrong.json()["error"]["details"][0]["path"] == "prices.tpu"

    budget = admin_client.put(
        "/api/sla/budgets/component/default/support-bot", json={"monthlyUsd": 250}
    )
    assert budget.status_code == 200
    budgets = admin_client.get("/api/sla/budgets").json()["items"]
    assert {"ref": ref, "monthlyUsd": 250.0, "source": "override"} in budgets

    issued = _issue(admin_client, "support-bot")
    with live_server.client(token=issued["token"]) as ci:
        posted = ci.post(
            "/api/sla/services/component/default/support-bot/evaluations",
            json={
                "questions": 20,
                "hit_at_k": 0.85,
                "mrr": 0.7,
                "hallucination_rate": 0.05,
                "per_question": [{"question": "q"}],
            },
        )
        assert posted.status_code == 201, posted.text
        assert posted.json()["metrics"] == {
            "questions": 20,
            "hit_at_k": 0.85,
            "mrr": 0.7,
            "hallucination_rate": 0.05,
        }
        invalid = ci.post(
            "/api/sla/services/component/default/support-bot/evaluations",
            json={"hallucination_rate": 1.7},
        )
        assert invalid.status_code == 400
    series = admin_client.get("/api/sla/services/component/default/support-bot/evaluations")
    assert [e["metrics"]["hit_at_k"] for e in series.json()["items"]] == [0.85]

    costs = admin_client.get("/api/sla/costs?groupBy=owner&window=7d")
    assert costs.status_code == 200
    item = costs.json()["items"][0]
    assert item["id"] == "group:default/team-a"
    assert len(item["aggregation"]) == 7 and set(item) >= {"change", "trendline"}
    assert admin_client.get("/api/sla/costs?groupBy=team").status_code == 400
