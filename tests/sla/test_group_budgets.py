"""Owner-group budgets: admin API, 50/80/100 % and forecast alerts on the sum of the
group's services (fire once, resolve), webhook delivery, alert listing, cost summary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from sqlalchemy import select

from portal_backend.db import downgrade_database, session_scope, upgrade_database
from portal_backend.sla import costs, jobs, reports
from portal_backend.sla.tables import Alert, Budget, GroupBudget
from tests.conftest import POSTGRES_URL, make_settings, postgres_url_for
from tests.sla.conftest import rag_service, register
from tests.sla.test_webhooks import Receiver

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)
TEAM_A = "group:default/team-a"


def test_group_budget_admin_api(live_server, admin_client, session_factory, make_token) -> None:  # type: ignore[no-untyped-def]
    register(session_factory, rag_service("a1", owner="team-a"))
    put = admin_client.put("/api/sla/budgets/group/default/team-a", json={"monthlyUsd": 250})
    assert put.status_code == 200, put.text
    assert put.json()["ref"] == TEAM_A and put.json()["monthlyUsd"] == 250.0
    assert put.json()["source"] == "group" and put.json()["updatedBy"] == "user:default/bootstrap"
    # Refs compare case-insensitively, like spec.owner.
    got = admin_client.get("/api/sla/budgets/group/default/Team-A")
    assert got.status_code == 200 and got.json()["monthlyUsd"] == 250.0
    listed = admin_client.get("/api/sla/budgets").json()
    assert [g["ref"] for g in listed["groups"]] == [TEAM_A]
    assert all(not i["ref"].startswith("group:") for i in listed["items"])
    with session_scope(session_factory) as session:  # its own table, not a service override
        assert session.get(GroupBudget, TEAM_A).monthly_usd == 250.0
        assert session.scalars(select(Budget)).all() == []

    bad = admin_client.put("/api/sla/budgets/group/default/team-a", json={"monthlyUsd": -5})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["path"] == "body.monthlyUsd"
    with live_server.client(token=make_token("write", group=TEAM_A)) as owner:
        refused = owner.put("/api/sla/budgets/group/default/team-a", json={"monthlyUsd": 1e6})
        assert refused.status_code == 403
    assert admin_client.get("/api/sla/budgets/group/default/team-a").json()["monthlyUsd"] == 250.0

    assert admin_client.delete("/api/sla/budgets/group/default/team-a").status_code == 204
    assert admin_client.get("/api/sla/budgets/group/default/team-a").status_code == 404
    assert admin_client.delete("/api/sla/budgets/group/default/team-a").status_code == 404


def _spend(factory, ref: str, usd: float, at: datetime) -> None:  # type: ignore[no-untyped-def]
    """``usd`` spent in the hour starting at ``at`` (more than 24 h before NOW, so the
    projection equals month-to-date and only the thresholds move)."""
    with session_scope(factory) as session:
        costs.add_cost(session, ref, at.timestamp(), at.timestamp() + 3600, usd, 0)


def _group_alerts(factory) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        rows = session.scalars(
            select(Alert).where(Alert.service_ref.is_(None)).order_by(Alert.id)
        ).all()
        return [(a.alertname, a.labels.get("threshold", "-"), a.state) for a in rows]


def test_group_budget_alerts_fire_once_resolve_and_are_delivered(  # type: ignore[no-untyped-def]
    live_server, admin_client, session_factory, settings
) -> None:
    # Service budgets of $1,000 each stay far away; the group's $100 is what is crossed.
    a1, a2, b1 = register(
        session_factory,
        rag_service("a1", owner="team-a"),
        rag_service("a2", owner="team-a"),
        rag_service("b1", owner="team-b"),
        now=NOW,
    )
    assert (
        admin_client.put(
            "/api/sla/budgets/group/default/team-a", json={"monthlyUsd": 100}
        ).status_code
        == 200
    )
    receiver = Receiver(fail_first=0)
    settings = settings.model_copy(
        update={
            "sla_webhooks": [
                {"url": f"{receiver.url}/am", "format": "alertmanager"},
                {"url": f"{receiver.url}/slack", "format": "slack"},
            ]
        }
    )
    try:
        day10 = NOW - timedelta(days=5)
        _spend(session_factory, a1, 30, day10)
        _spend(session_factory, a2, 25, day10)
        _spend(session_factory, b1, 400, day10)  # another group's spend does not count
        result = jobs.evaluate_all(settings, session_factory, NOW)
        assert [f for f in result["fired"] if "group=" in f] == [
            f"GroupBudgetThreshold|-|info|group={TEAM_A}|threshold=50%"
        ]
        assert _group_alerts(session_factory) == [("GroupBudgetThreshold", "50%", "firing")]

        # Evaluated again with nothing new: no second alert, no second notification.
        assert (
            jobs.evaluate_all(settings, session_factory, NOW + timedelta(minutes=1))["fired"] == []
        )
        # $85 of $100: 80 % fires, 50 % is not notified again.
        _spend(session_factory, a2, 30, day10 + timedelta(hours=1))
        jobs.evaluate_all(settings, session_factory, NOW + timedelta(minutes=2))
        assert _group_alerts(session_factory) == [
            ("GroupBudgetThreshold", "50%", "firing"),
            ("GroupBudgetThreshold", "80%", "firing"),
        ]
        # $105: 100 % and the month-end forecast.
        _spend(session_factory, a1, 20, day10 + timedelta(hours=2))
        jobs.evaluate_all(settings, session_factory, NOW + timedelta(minutes=3))
        assert {(n, t) for n, t, s in _group_alerts(session_factory) if s == "firing"} == {
            ("GroupBudgetThreshold", "50%"),
            ("GroupBudgetThreshold", "80%"),
            ("GroupBudgetThreshold", "100%"),
            ("GroupBudgetForecast", "-"),
        }

        with httpx.Client(timeout=5) as client:
            delivered = jobs.deliver(settings, session_factory, client, NOW + timedelta(minutes=4))
        assert delivered["delivered"] == 8  # 4 alerts x 2 webhooks
        am = [body for path, body in receiver.received if path == "/am"]
        first = am[0]["alerts"][0]
        assert first["labels"] == {
            "alertname": "GroupBudgetThreshold",
            "severity": "info",
            "group": TEAM_A,
            "threshold": "50%",
        }
        assert first["generatorURL"].endswith(f"/api/sla/alerts?group={TEAM_A}")
        slack = [body for path, body in receiver.received if path == "/slack"]
        assert any(TEAM_A in s["text"] and "GroupBudgetForecast" in s["text"] for s in slack)

        # Listed with the group (the services' own alerts carry their owner too).
        listed = admin_client.get("/api/sla/alerts", params={"group": "team-a", "state": "firing"})
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert len(items) == 4 and {i["group"] for i in items} == {TEAM_A}
        assert {i["service"] for i in items} == {None}
        assert admin_client.get("/api/sla/alerts", params={"group": "team-b"}).json()["items"] == []

        # The group's spend and budget in the Cost Insights summary.
        with session_scope(session_factory) as session:
            summary = reports.cost_summary(session, "owner", "30d", NOW)
        by_group = {i["id"]: i for i in summary["items"]}
        assert by_group[TEAM_A]["mtdUsd"] == pytest.approx(105)
        assert by_group[TEAM_A]["budgetUsd"] == 100
        assert by_group[TEAM_A]["budgetUsedPercent"] == 105.0
        assert by_group["group:default/team-b"]["budgetUsd"] is None

        # A new month: month-to-date restarts and every group alert resolves, notified.
        december = datetime(2026, 12, 1, 1, tzinfo=UTC)
        resolved = jobs.evaluate_all(settings, session_factory, december)["resolved"]
        assert len([r for r in resolved if "group=" in r]) == 4
        assert {s for _, _, s in _group_alerts(session_factory)} == {"resolved"}
        with httpx.Client(timeout=5) as client:
            assert jobs.deliver(settings, session_factory, client, december)["delivered"] == 8
        assert sum(1 for _, b in receiver.received if b.get("status") == "resolved") == 4
    finally:
        receiver.server.shutdown()


def test_deleting_a_group_budget_resolves_its_alerts(  # type: ignore[no-untyped-def]
    live_server, admin_client, session_factory, settings
) -> None:
    (a1,) = register(session_factory, rag_service("a1", owner="team-a"), now=NOW)
    admin_client.put("/api/sla/budgets/group/default/team-a", json={"monthlyUsd": 10})
    _spend(session_factory, a1, 6, NOW - timedelta(days=3))
    jobs.evaluate_all(settings, session_factory, NOW)
    assert _group_alerts(session_factory) == [("GroupBudgetThreshold", "50%", "firing")]
    assert admin_client.delete("/api/sla/budgets/group/default/team-a").status_code == 204
    jobs.evaluate_all(settings, session_factory, NOW + timedelta(minutes=1))
    assert _group_alerts(session_factory) == [("GroupBudgetThreshold", "50%", "resolved")]


def test_migration_moves_group_rows_out_of_service_budgets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """0006 moves budgets stored under a group ref in sla_budgets (before 0006 the budget
    API accepted them there) into sla_group_budgets, and back on downgrade."""
    schema = "t_gb_" + uuid.uuid4().hex[:10]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        settings = make_settings("postgresql", tmp_path, schema)
        upgrade_database(settings, "0005_provisioning")
        with psycopg.connect(postgres_url_for(schema), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO sla_budgets (ref, monthly_usd, updated_at) VALUES "
                "('group:default/team-a', 300, now()), ('component:default/bot', 50, now())"
            )
        upgrade_database(settings)
        with psycopg.connect(postgres_url_for(schema), autocommit=True) as conn:
            assert conn.execute("SELECT ref FROM sla_budgets").fetchall() == [
                ("component:default/bot",)
            ]
            assert conn.execute(
                "SELECT group_ref, monthly_usd FROM sla_group_budgets"
            ).fetchall() == [("group:default/team-a", 300.0)]
        downgrade_database(settings, "0005_provisioning")
        with psycopg.connect(postgres_url_for(schema), autocommit=True) as conn:
            assert sorted(conn.execute("SELECT ref FROM sla_budgets").fetchall()) == [
                ("component:default/bot",),
                ("group:default/team-a",),
            ]
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
