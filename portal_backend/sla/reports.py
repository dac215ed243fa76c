"""What the API returns: one service's SLO/usage/cost report, and fleet cost summaries
shaped like Backstage Cost Insights (daily ``aggregation``, ``change``, ``trendline``)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import ErrorDetail, InputError
from portal_backend.sla import costs, slo, stats
from portal_backend.sla.alerts import list_alerts
from portal_backend.sla.clock import from_ts
from portal_backend.sla.costs import DAY
from portal_backend.sla.rollups import HOUR
from portal_backend.sla.services import budget_of, targets_of
from portal_backend.sla.slo import window_end
from portal_backend.sla.tables import Budget, Evaluation, SlaService

COST_WINDOWS = {"7d": 7, "30d": 30, "90d": 90}
SERIES_STEP = {"1h": 60, "24h": HOUR, "7d": HOUR, "30d": DAY}


def parse_window(value: str, allowed: dict) -> str:
    if value not in allowed:
        raise InputError(
            f"window must be one of {', '.join(allowed)}, got {value!r}",
            [ErrorDetail("window", f"use one of {', '.join(allowed)}")],
        )
    return value


def _day(ts: int) -> str:
    return from_ts(ts).strftime("%Y-%m-%d")


def service_report(session: Session, service: SlaService, window: str, now: datetime) -> dict:
    parse_window(window, slo.WINDOWS)
    now_ts = int(now.timestamp())
    end = window_end(now_ts)
    spans = {name: (end - seconds, end) for name, seconds in slo.WINDOWS.items()}
    rows = stats.fetch(session, service.service_ref, list(spans.values()))
    targets = targets_of(service)
    windows = {name: slo.window_report(rows.window(*span), targets) for name, span in spans.items()}
    selected = windows[window]
    start = spans[window][0]
    window_cost = costs.spend(session, service.service_ref, start, end)
    tokens = selected["tokens"]["total"]
    requests = selected["requests"]
    figures = costs.month_figures(session, service.service_ref, now)
    budget = budget_of(session, service)
    burn = slo.burn_conditions(rows, now_ts, targets)
    evaluations = session.scalars(
        select(Evaluation)
        .where(Evaluation.service_ref == service.service_ref)
        .order_by(Evaluation.created_at.desc())
        .limit(20)
    ).all()
    return {
        "service": service.service_ref,
        "owner": service.owner,
        "window": window,
        "targets": {
            "successRate": service.slo_success_rate,
            "p95LatencyMs": service.slo_p95_latency_ms,
        },
        "slo": {
            "state": slo.slo_state(burn, windows[slo.COMPLIANCE_WINDOW], targets),
            **selected,
            "burnRates": {
                f"{c.sli}:{c.severity}": {"firing": c.firing, "rates": c.burn_rates} for c in burn
            },
        },
        "windows": windows,
        "cost": {
            "windowUsd": round(window_cost, 4),
            "per1kTokensUsd": round(window_cost / (tokens / 1000), 6) if tokens else None,
            "perPromptUsd": round(window_cost / requests, 6) if requests else None,
            **figures,
            "budgetUsd": budget,
            "budgetUsedPercent": round(100 * figures["mtdUsd"] / budget, 1) if budget else None,
        },
        "series": stats.series(session, service.service_ref, start, end, SERIES_STEP[window]),
        "evaluations": [
            {
                "createdAt": e.created_at.isoformat(),
                "dataset": e.dataset,
                "metrics": e.metrics,
            }
            for e in evaluations
        ],
        "alerts": [
            {"alertname": a.alertname, "severity": a.severity, "labels": a.labels}
            for a in list_alerts(session, state="firing", service_ref=service.service_ref)
        ],
    }


def _trendline(days: list[int], amounts: list[float]) -> dict[str, float]:
    if len(days) < 2:
        return {"slope": 0.0, "intercept": amounts[0] if amounts else 0.0}
    slope, intercept = np.polyfit(np.array(days, dtype=float), np.array(amounts), 1)
    return {"slope": float(slope), "intercept": float(intercept)}


def cost_summary(session: Session, group_by: str, window: str, now: datetime) -> dict:
    """Daily cost per service or owner group over the window, with change vs the window
    before it and a least-squares trendline (x = day start in epoch seconds)."""
    if group_by not in ("service", "owner"):
        raise InputError(
            f"groupBy must be 'owner' or 'service', got {group_by!r}",
            [ErrorDetail("groupBy", "use 'owner' or 'service'")],
        )
    days = COST_WINDOWS[parse_window(window, COST_WINDOWS)]
    today = int(now.timestamp()) // DAY * DAY
    start = today - (days - 1) * DAY
    previous_start = start - days * DAY
    daily = costs.daily_costs(session, previous_start, today + DAY)
    services = {s.service_ref: s for s in session.scalars(select(SlaService))}
    budgets = {b.ref: b.monthly_usd for b in session.scalars(select(Budget))}
    key_of = (
        (lambda ref: ref)
        if group_by == "service"
        else (lambda ref: (services[ref].owner if ref in services else None) or "unowned")
    )
    grouped: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for ref, per_day in daily.items():
        bucket = grouped[key_of(ref)]
        for ts, usd in per_day.items():
            bucket[ts] += usd
    for ref in services:  # services with no spend yet still appear
        grouped.setdefault(key_of(ref), defaultdict(float))
    day_list = list(range(start, today + DAY, DAY))
    month_start = int(costs.month_start(now).timestamp())
    items = []
    fleet = np.zeros(len(day_list))
    for key, per_day in sorted(grouped.items()):
        amounts = [round(per_day.get(d, 0.0), 4) for d in day_list]
        fleet += amounts
        total = sum(amounts)
        previous = sum(v for d, v in per_day.items() if previous_start <= d < start)
        mtd = sum(v for d, v in per_day.items() if d >= month_start)
        budget = budgets.get(key)
        if budget is None and group_by == "service" and key in services:
            budget = services[key].monthly_budget_usd
        items.append(
            {
                "id": key,
                "aggregation": [
                    {"date": _day(d), "amount": a} for d, a in zip(day_list, amounts, strict=True)
                ],
                "change": {
                    "ratio": (total - previous) / previous if previous else None,
                    "amount": round(total - previous, 4),
                },
                "trendline": _trendline(day_list, amounts),
                "totalUsd": round(total, 4),
                "mtdUsd": round(mtd, 4),
                "budgetUsd": budget,
            }
        )
    return {
        "groupBy": group_by,
        "window": window,
        "currency": "USD",
        "intervals": f"R{days}/P1D/{_day(today + DAY)}",
        "aggregation": [
            {"date": _day(d), "amount": round(float(a), 4)}
            for d, a in zip(day_list, fleet, strict=True)
        ],
        "items": items,
    }
