"""Cost model, month-to-date and projection, budget alerts at 50/80/100 %, spike alert,
OpenCost allocation, and the Cost Insights-shaped summary."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import select

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.sla import costs, evaluate, jobs, opencost, reports
from portal_backend.sla.tables import Alert, SlaService
from tests.sla.conftest import rag_service, register

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)


def _accrue(factory, at: datetime) -> None:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        costs.accrue(session, list(session.scalars(select(SlaService))), at)


def _firing(factory) -> set[str]:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        return {
            a.fingerprint.split("|", 2)[0] + ":" + (a.labels.get("threshold") or a.severity)
            for a in session.scalars(select(Alert).where(Alert.state == "firing"))
        }


def _evaluate(factory, at: datetime, spike_factor: float = 3.0):  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        return evaluate.evaluate_all(session, at, spike_factor=spike_factor)[0]


def test_provisioned_cost_projection_and_budget_alerts(session_factory) -> None:  # type: ignore[no-untyped-def]
    # 1 L4 GPU x 2 replicas at $0.80/GPU-hour = $1.60/h; 30-day month: $1,152.
    register(session_factory, rag_service("bot", budget="1000", gpus="1", replicas="2"), now=NOV1)
    _accrue(session_factory, NOV1)  # starts the meter
    for day in range(1, 16):
        _accrue(session_factory, NOV1 + timedelta(days=day))
    mid = NOV1 + timedelta(days=15)
    with session_scope(session_factory) as session:
        figures = costs.month_figures(session, "component:default/bot", mid)
    assert figures["mtdUsd"] == pytest.approx(1.6 * 24 * 15)  # $576
    assert figures["hourlyRateUsd"] == pytest.approx(1.6)
    assert figures["projectedUsd"] == pytest.approx(1.6 * 24 * 30)  # $1,152
    evaluations = _evaluate(session_factory, mid)
    assert evaluations[0].cost == {
        "mtdUsd": 576.0,
        "projectedUsd": 1152.0,
        "budgetUsd": 1000.0,
        "budgetUsedPercent": 57.6,
        "updatedAt": mid.isoformat().replace("+00:00", "Z"),
    }
    assert _firing(session_factory) == {"BudgetThreshold:50%", "BudgetForecast:warning"}

    # Day 21: $806 -> 80 % crossed; 50 % is not notified again.
    _accrue(session_factory, NOV1 + timedelta(days=21))
    _evaluate(session_factory, NOV1 + timedelta(days=21))
    assert _firing(session_factory) == {
        "BudgetThreshold:50%",
        "BudgetThreshold:80%",
        "BudgetForecast:warning",
    }
    with session_scope(session_factory) as session:
        assert len(session.scalars(select(Alert)).all()) == 3

    # Scale to zero (deployment Down): spend stops, so nothing more accrues.
    with session_scope(session_factory) as session:
        session.get(SlaService, "component:default/bot").deployment_state = "Down"
    _accrue(session_factory, NOV1 + timedelta(days=29))
    with session_scope(session_factory) as session:
        assert costs.month_figures(session, "component:default/bot", NOV1 + timedelta(days=29))[
            "mtdUsd"
        ] == pytest.approx(1.6 * 24 * 21)

    # A new month: month-to-date restarts, every budget alert resolves.
    december = datetime(2026, 12, 1, 1, tzinfo=UTC)
    _evaluate(session_factory, december)
    assert _firing(session_factory) == set()


def test_spike_alert_when_hourly_spend_jumps(session_factory) -> None:  # type: ignore[no-untyped-def]
    ref = register(session_factory, rag_service("bot", budget="100000", replicas="1"))[0]
    start = datetime(2026, 11, 20, tzinfo=UTC)
    with session_scope(session_factory) as session:
        for hour in range(24):  # $0.80/h for a day
            t = start.timestamp() + hour * 3600
            costs.add_cost(session, ref, t, t + 3600, 0.8, 1)
        t = start.timestamp() + 24 * 3600  # then ten times the replicas for an hour
        costs.add_cost(session, ref, t, t + 3600, 8.0, 10)
    at = start + timedelta(hours=25, minutes=5)
    spike = [c for c in _evaluate(session_factory, at)[0].conditions if c.alertname == "CostSpike"]
    assert spike[0].firing and spike[0].annotations["lastHourUsd"] == pytest.approx(8.0)
    assert _firing(session_factory) == {"CostSpike:warning"}
    # Back to normal the hour after: the alert resolves.
    with session_scope(session_factory) as session:
        t = start.timestamp() + 25 * 3600
        costs.add_cost(session, ref, t, t + 3600, 0.8, 1)
    _evaluate(session_factory, start + timedelta(hours=26, minutes=5))
    assert _firing(session_factory) == set()


class _OpenCost(http.server.BaseHTTPRequestHandler):
    calls: list[dict] = []

    def do_GET(self) -> None:  # noqa: N802
        query = parse_qs(urlparse(self.path).query)
        type(self).calls.append(query)
        body = {
            "code": 200,
            "data": [
                {
                    "bot-a": {"name": "bot-a", "totalCost": 2.5},
                    "__unallocated__": {"name": "__unallocated__", "totalCost": 9.0},
                }
            ],
        }
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


def test_opencost_allocation_by_service_label(session_factory) -> None:  # type: ignore[no-untyped-def]
    """OpenCost stand-in (no OpenCost can run here): hours read via /allocation."""
    register(session_factory, rag_service("bot-a"), rag_service("bot-b"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OpenCost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    now = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    try:
        with session_scope(session_factory) as session, httpx.Client() as client:
            services = list(session.scalars(select(SlaService).order_by(SlaService.service_ref)))
            assert opencost.collect(session, client, url, services, now) == 2  # 09:00-10:00
            # Next run in the same hour: nothing new; an hour later: one more hour each.
            assert opencost.collect(session, client, url, services, now) == 0
            assert opencost.collect(session, client, url, services, now + timedelta(hours=1)) == 2
    finally:
        server.shutdown()
    assert _OpenCost.calls[0]["aggregate"] == ["label:rag-portal.io/service"]
    assert _OpenCost.calls[0]["window"] == ["2026-11-20T09:00:00Z,2026-11-20T10:00:00Z"]
    with session_scope(session_factory) as session:
        summary = reports.cost_summary(session, "service", "7d", now + timedelta(hours=1))
    by_id = {i["id"]: i for i in summary["items"]}
    assert by_id["component:default/bot-a"]["totalUsd"] == pytest.approx(5.0)
    assert by_id["component:default/bot-b"]["totalUsd"] == 0
    assert summary["aggregation"][-1] == {"date": "2026-11-20", "amount": 5.0}


def test_cost_insights_summary_by_owner_with_change_and_trend(session_factory) -> None:  # type: ignore[no-untyped-def]
    refs = register(
        session_factory,
        rag_service("a1", owner="team-a"),
        rag_service("a2", owner="team-a"),
        rag_service("b1", owner="group:default/team-b"),
    )
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    with session_scope(session_factory) as session:
        for day in range(14):  # a1: growing $1/day; a2 flat $2/day; b1 flat $5/day
            t = now.timestamp() - (13 - day) * 86400 - 12 * 3600
            costs.add_cost(session, refs[0], t, t + 3600, 1.0 + day, 0)
            costs.add_cost(session, refs[1], t, t + 3600, 2.0, 0)
            costs.add_cost(session, refs[2], t, t + 3600, 5.0, 0)
        summary = reports.cost_summary(session, "owner", "7d", now)
    items = {i["id"]: i for i in summary["items"]}
    assert set(items) == {"group:default/team-a", "group:default/team-b"}
    team_a = items["group:default/team-a"]
    assert [d["amount"] for d in team_a["aggregation"]] == [10.0 + d for d in range(7)]
    previous, current = sum(3.0 + d for d in range(7)), sum(10.0 + d for d in range(7))
    assert team_a["change"]["amount"] == pytest.approx(current - previous)
    assert team_a["change"]["ratio"] == pytest.approx((current - previous) / previous)
    assert team_a["trendline"]["slope"] == pytest.approx(1 / 86400)  # $1 more per day
    assert items["group:default/team-b"]["change"]["ratio"] == pytest.approx(0)


CATALOG_INFO = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: yaml-bot
  annotations:
    rag-portal.io/service: yaml-bot
    rag-portal.io/gpu-class: L4
    rag-portal.io/gpus: "1"
    rag-portal.io/replicas: "2"
spec:
  type: rag-service
  lifecycle: production
  owner: team-a
"""


def test_cost_accrues_only_while_the_deployment_runs_something(  # type: ignore[no-untyped-def]
    settings, session_factory, tmp_path
) -> None:
    """Imported from YAML and never deployed, Planned, Down and torn down cost nothing;
    only the hours in a running state are billed (1 L4 x 2 replicas = $1.60/h)."""
    ref = "component:default/yaml-bot"
    (tmp_path / "catalog-info.yaml").write_text(CATALOG_INFO)
    with session_scope(session_factory) as session:
        CatalogService(session).add_location("file", str(tmp_path / "catalog-info.yaml"))
    clock = [NOV1]

    def run_hours(hours: int) -> float:
        """The real cost job at the start and end of ``hours``; the spend in between."""
        start = clock[0]
        clock[0] = start + timedelta(hours=hours)
        with httpx.Client() as client:
            for at in (start, clock[0]):
                jobs.account_costs(settings, session_factory, client, at)
        with session_scope(session_factory) as session:
            return costs.spend(session, ref, start.timestamp(), clock[0].timestamp())

    def deployment(state: str) -> None:
        with session_scope(session_factory) as session:
            CatalogService(session).set_status(ref, "deployment", {"state": state})

    assert run_hours(10) == 0.0  # imported from YAML, no deployment status
    deployment("Planned")
    assert run_hours(10) == 0.0
    deployment("Healthy")
    assert run_hours(10) == pytest.approx(16.0)
    deployment("Down")
    assert run_hours(10) == 0.0
    deployment("Degraded")  # some pods still run: billed
    assert run_hours(5) == pytest.approx(8.0)
    with session_scope(session_factory) as session:  # torn down: the entity is gone
        assert CatalogService(session).delete_by_ref(ref)
    assert run_hours(10) == 0.0
    with session_scope(session_factory) as session:
        assert costs.spend(session, ref, NOV1.timestamp(), clock[0].timestamp()) == pytest.approx(
            24.0
        )


def test_a_service_on_the_local_runtime_costs_the_admin_price_not_its_gpus(
    session_factory,
) -> None:  # type: ignore[no-untyped-def]
    """On the local runtime a service runs on this machine's CPU: its annotations' GPUs
    (sized for a cluster) cost nothing; the admin's flat local_runtime_hour (default 0)
    does, while it runs."""
    from portal_backend.provisioning.models import ProvisionedService

    register(session_factory, rag_service("local", gpus="1", replicas="2"), now=NOV1)
    with session_scope(session_factory) as session:
        session.add(
            ProvisionedService(
                service="local", namespace="local", target="local", state="Healthy",
                entity_ref="component:default/local", endpoint="http://127.0.0.1:9",
                created_at=NOV1, updated_at=NOV1,
            )
        )  # fmt: skip
    _accrue(session_factory, NOV1)
    _accrue(session_factory, NOV1 + timedelta(days=1))
    with session_scope(session_factory) as session:
        assert costs.spend(session, "component:default/local", 0, 2**40) == 0.0
        costs.set_prices(
            session, {**costs.DEFAULT_PRICES, "local_runtime_hour": 0.05}, NOV1, "admin"
        )
    _accrue(session_factory, NOV1 + timedelta(days=2))
    with session_scope(session_factory) as session:
        assert costs.spend(session, "component:default/local", 0, 2**40) == pytest.approx(0.05 * 24)
        report = reports.service_report(
            session, session.get(SlaService, "component:default/local"), "24h",
            NOV1 + timedelta(days=2),
        )  # fmt: skip
        assert report["cost"]["rate"]["model"] == "local-runtime"
        assert report["cost"]["rate"]["localRuntimeUsdPerHour"] == 0.05
        assert report["cost"]["rate"]["gpus"] == 0
        # Stopped (Degraded still runs; a torn-down or planned one does not).
        session.get(ProvisionedService, "local").state = "Planned"
    _accrue(session_factory, NOV1 + timedelta(days=3))
    with session_scope(session_factory) as session:
        assert costs.spend(session, "component:default/local", 0, 2**40) == pytest.approx(0.05 * 24)
