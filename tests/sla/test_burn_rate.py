"""Multiwindow multi-burn-rate alerts fire and resolve at the right minute on synthetic
series (objective 99 %: error budget 1 %), once per incident, and drive status.slo."""

from __future__ import annotations

from datetime import timedelta

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.sla import evaluate
from portal_backend.sla.tables import Alert, Notification
from tests.sla.conftest import T0, push_minutes, rag_service, register

HOOKS = [{"url": "http://127.0.0.1:9/hook", "format": "alertmanager"}]


def _at(minute: int):  # type: ignore[no-untyped-def]
    """The last second of minute ``minute`` after T0 (that minute's data is all in)."""
    return T0 + timedelta(minutes=minute, seconds=59)


def _evaluate(factory, minute: int) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    """Evaluates at the end of ``minute``; returns which SLO conditions are firing."""
    with session_scope(factory) as session:
        evaluations, _ = evaluate.evaluate_all(session, _at(minute), webhooks=HOOKS)
        return {
            f"{c.labels['slo']}:{c.severity}": c.firing
            for e in evaluations
            for c in e.conditions
            if c.alertname == "SLOBurnRate"
        }


def _alerts(factory) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        return [
            (a.severity, a.state, a.labels["slo"])
            for a in session.query(Alert)
            .filter(Alert.alertname == "SLOBurnRate")
            .order_by(Alert.id)
        ]


def test_fast_burn_pages_at_minute_44_and_resolves_at_62(session_factory) -> None:  # type: ignore[no-untyped-def]
    (ref,) = register(session_factory, rag_service("bot", success_rate="99", p95_ms="2000"))
    push_minutes(session_factory, ref, T0 - timedelta(days=1), 1440, 20)  # clean day
    push_minutes(session_factory, ref, T0, 60, 20, errors_per_minute=4)  # 20 % errors: 20x burn
    push_minutes(session_factory, ref, T0 + timedelta(minutes=60), 60, 20)  # recovered

    # 1h burn = 20 x minutes/60 crosses 14.4 with the 44th bad minute (5m burn is 20).
    assert _evaluate(session_factory, 42)["availability:page"] is False
    assert _evaluate(session_factory, 43)["availability:page"] is True
    assert _alerts(session_factory) == [("page", "firing", "availability")]
    with session_scope(session_factory) as session:
        entity = CatalogService(session).get_by_ref(ref)
        assert entity["status"]["slo"]["state"] == "breached"
        assert CatalogService(session).query_refs({"status.slo.state": "breached"}) == [ref]

    with session_scope(session_factory) as session:
        etag = CatalogService(session).get_by_ref(ref)["metadata"]["etag"]
    # 29 s later, same minute: same figures, so the entity is not rewritten.
    with session_scope(session_factory) as session:
        evaluate.evaluate_all(session, _at(43) - timedelta(seconds=29), webhooks=HOOKS)
    with session_scope(session_factory) as session:
        assert CatalogService(session).get_by_ref(ref)["metadata"]["etag"] == etag

    # Still firing later: no second alert (fires once).
    assert _evaluate(session_factory, 55)["availability:page"] is True
    assert _evaluate(session_factory, 60)["availability:page"] is True
    assert len(_alerts(session_factory)) == 1
    # Errors stopped at minute 60; the 5m window holds 3 bad minutes at minute 61: 12x.
    conditions = _evaluate(session_factory, 61)
    assert conditions["availability:page"] is False and conditions["availability:ticket"] is False
    assert conditions["latency:page"] is False
    assert _alerts(session_factory) == [("page", "resolved", "availability")]
    with session_scope(session_factory) as session:
        # 240 bad of 30,040 requests: 80 % of the 30-day error budget spent -> warning.
        status = CatalogService(session).get_by_ref(ref)["status"]["slo"]
        assert status["state"] == "warning"
        assert abs(status["errorBudgetRemaining"]["availability"] - (1 - 240 / 30040 / 0.01)) < 1e-9
        notes = session.query(Notification).order_by(Notification.id).all()
        assert [n.status for n in notes] == ["firing", "resolved"]


def test_slow_burn_opens_a_ticket_at_18h_and_resolves_4h30_after_recovery(session_factory) -> None:  # type: ignore[no-untyped-def]
    (ref,) = register(session_factory, rag_service("bot", success_rate="99", p95_ms="2000"))
    push_minutes(session_factory, ref, T0 - timedelta(days=3), 3 * 1440, 25)
    push_minutes(session_factory, ref, T0, 1200, 25, errors_per_minute=1)  # 4 %: 4x burn, 20 h
    push_minutes(session_factory, ref, T0 + timedelta(minutes=1200), 300, 25)

    # Steady volume: 1d burn = 4 x bad minutes/1440 and 3d burn = 4 x bad minutes/4320
    # exceed 3 resp. 1 after 1,080 bad minutes.
    early = _evaluate(session_factory, 1078)
    assert early["availability:ticket"] is False and early["availability:page"] is False
    assert _evaluate(session_factory, 1080)["availability:ticket"] is True
    assert _evaluate(session_factory, 1150)["availability:ticket"] is True
    assert _alerts(session_factory) == [("ticket", "firing", "availability")]
    # After recovery at minute 1200 the 6h window keeps > 90 bad minutes (burn > 1)
    # until 270 minutes later.
    assert _evaluate(session_factory, 1200 + 268)["availability:ticket"] is True
    assert _evaluate(session_factory, 1200 + 269)["availability:ticket"] is False
    assert _alerts(session_factory) == [("ticket", "resolved", "availability")]


def test_latency_slo_burns_on_slow_requests(session_factory) -> None:  # type: ignore[no-untyped-def]
    (ref,) = register(session_factory, rag_service("bot", success_rate="95", p95_ms="500"))
    push_minutes(session_factory, ref, T0 - timedelta(hours=6), 360, 20, latency_ms=200)
    push_minutes(session_factory, ref, T0, 10, 20, latency_ms=900)  # all slower than 500 ms
    conditions = _evaluate(session_factory, 9)
    # 5m: 100 % slow (20x burn on a 5 % budget); 1h: 10/60 -> 3.33x: no page yet.
    assert conditions["latency:page"] is False
    assert conditions["availability:page"] is False
    push_minutes(session_factory, ref, T0 + timedelta(minutes=10), 50, 20, latency_ms=900)
    assert _evaluate(session_factory, 59)["latency:page"] is True
