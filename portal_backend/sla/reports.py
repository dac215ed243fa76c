"""What the API returns: one service's SLO/usage/cost report, and fleet cost summaries
shaped like Backstage Cost Insights (daily ``aggregation``, ``change``, ``trendline``)."""

from __future__ import annotations

from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import ErrorDetail, InputError
from portal_backend.sla import adapters, costs, slo, stats
from portal_backend.sla.alerts import list_alerts
from portal_backend.sla.clock import from_ts
from portal_backend.sla.costs import DAY
from portal_backend.sla.rollups import HOUR
from portal_backend.sla.services import budget_of, targets_of
from portal_backend.sla.slo import window_end
from portal_backend.sla.tables import Budget, Evaluation, GroupBudget, SlaService

COST_WINDOWS = {"7d": 7, "30d": 30, "90d": 90}
SERIES_STEP = {"1h": 60, "24h": HOUR, "7d": HOUR, "30d": DAY}


def parse_window(value: str, allowed: dict[str, Any]) -> str:
    if value not in allowed:
        raise InputError(
            f"window must be one of {', '.join(allowed)}, got {value!r}",
            [ErrorDetail("window", f"use one of {', '.join(allowed)}")],
        )
    return value


def _day(ts: int) -> str:
    return from_ts(ts).strftime("%Y-%m-%d")


def service_report(
    session: Session, service: SlaService, window: str, now: datetime
) -> dict[str, Any]:
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
    record = costs.record_for(session, service)
    rate, rate_model = costs.rate_of(service, costs.get_prices(session), record)
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
            # The rate being accrued now, by resource; model: provisioned | annotations.
            "rate": {"model": rate_model, **rate.as_dict()},
        },
        "series": stats.series(session, service.service_ref, start, end, SERIES_STEP[window]),
        # Requests that named a LoRA adapter, per adapter (whole hours of the window); the
        # rest of the window's requests went to the base model.
        "usageByAdapter": adapters.usage_by_adapter(session, service.service_ref, start, end),
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


def cost_summary(session: Session, group_by: str, window: str, now: datetime) -> dict[str, Any]:
    """Daily cost per service or owner group over the window, with change vs the window
    before it, month-to-date, and a least-squares trendline (x = day start, epoch s).

    One query over day buckets; the per-group arithmetic is done on a numpy matrix
    (groups x days), so 1,000 services cost one pass.
    """
    if group_by not in ("service", "owner"):
        raise InputError(
            f"groupBy must be 'owner' or 'service', got {group_by!r}",
            [ErrorDetail("groupBy", "use 'owner' or 'service'")],
        )
    days = COST_WINDOWS[parse_window(window, COST_WINDOWS)]
    today = int(now.timestamp()) // DAY * DAY
    start = today - (days - 1) * DAY
    previous_start = start - days * DAY
    month_start = int(costs.month_start(now).timestamp())
    first = min(previous_start, month_start)
    rows = costs.daily_rows(session, first, today + DAY)
    # One read of the service table gives owners and annotated budgets.
    owners: dict[str, str | None] = {}
    annotated: dict[str, float | None] = {}
    for ref, owner, annotated_budget in session.execute(
        select(SlaService.service_ref, SlaService.owner, SlaService.monthly_budget_usd)
    ):
        owners[ref] = owner
        annotated[ref] = annotated_budget
    if group_by == "owner":
        budgets = {b.group_ref: b.monthly_usd for b in session.scalars(select(GroupBudget))}
    else:
        budgets = {b.ref: b.monthly_usd for b in session.scalars(select(Budget))}

    def key_of(ref: str) -> str:
        return ref if group_by == "service" else owners.get(ref) or "unowned"

    # Columns through itemgetter maps: zip(*rows) over ~30k tuples was a third of the
    # whole request.
    refs = list(map(itemgetter(0), rows))
    row_refs = set(refs)
    keys = sorted({key_of(ref) for ref in owners.keys() | row_refs})
    index = {k: i for i, k in enumerate(keys)}
    span = (today + DAY - first) // DAY
    matrix = np.zeros((len(keys), span))
    if rows:
        row_of = {ref: index[key_of(ref)] for ref in row_refs}
        cells = (
            np.fromiter(map(row_of.__getitem__, refs), np.int64, len(refs)) * span
            + (np.fromiter(map(itemgetter(1), rows), np.int64, len(rows)) - first) // DAY
        )
        # bincount sums repeated cells like np.add.at, several times faster.
        matrix += np.bincount(
            cells,
            weights=np.fromiter(map(itemgetter(2), rows), np.float64, len(rows)),
            minlength=len(keys) * span,
        ).reshape(len(keys), span)
    col = (np.arange(span) * DAY) + first
    window_cols = (col >= start) & (col <= today)
    current = np.round(matrix[:, window_cols], 4)
    totals = current.sum(axis=1)
    previous = matrix[:, (col >= previous_start) & (col < start)].sum(axis=1)
    mtd = matrix[:, col >= month_start].sum(axis=1)
    x = col[window_cols].astype(np.float64)
    xc = x - x.mean()
    denominator = float((xc**2).sum()) or 1.0
    slopes = (current - current.mean(axis=1, keepdims=True)) @ xc / denominator
    intercepts = current.mean(axis=1) - slopes * x.mean()
    dates = [_day(int(d)) for d in x]
    items = []
    for i, key in enumerate(keys):
        budget = budgets.get(key)
        if budget is None and group_by == "service":
            budget = annotated.get(key)
        items.append(
            {
                "id": key,
                "aggregation": [
                    {"date": d, "amount": a}
                    for d, a in zip(dates, current[i].tolist(), strict=True)
                ],
                "change": {
                    "ratio": float((totals[i] - previous[i]) / previous[i])
                    if previous[i]
                    else None,
                    "amount": round(float(totals[i] - previous[i]), 4),
                },
                "trendline": {"slope": float(slopes[i]), "intercept": float(intercepts[i])},
                "totalUsd": round(float(totals[i]), 4),
                "mtdUsd": round(float(mtd[i]), 4),
                "budgetUsd": budget,
                "budgetUsedPercent": round(100 * float(mtd[i]) / budget, 1) if budget else None,
            }
        )
    return {
        "groupBy": group_by,
        "window": window,
        "currency": "USD",
        "intervals": f"R{days}/P1D/{_day(today + DAY)}",
        "aggregation": [
            {"date": d, "amount": round(a, 4)}
            for d, a in zip(dates, current.sum(axis=0).tolist(), strict=True)
        ],
        "items": items,
    }
