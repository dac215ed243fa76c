"""The periodic evaluation: SLO burn rates, service and owner-group budgets and spend
spikes -> alerts and the catalog summary (``status.slo``, ``status.cost``) of every
tracked service."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.service import CatalogService
from portal_backend.sla import costs, slo, stats
from portal_backend.sla.alerts import Condition, Transitions, reconcile
from portal_backend.sla.rollups import HOUR
from portal_backend.sla.services import budget_of, targets_of, write_status
from portal_backend.sla.slo import window_end
from portal_backend.sla.tables import Alert, GroupBudget, SlaService

BUDGET_THRESHOLDS = ((50, "info"), (80, "warning"), (100, "critical"))
GROUP_ALERTS = ("GroupBudgetThreshold", "GroupBudgetForecast")
SPIKE_MIN_HISTORY_HOURS = 3


def budget_conditions(
    service_ref: str | None,
    figures: dict[str, float],
    budget: float | None,
    *,
    group_ref: str | None = None,
) -> list[Condition]:
    """50/80/100 % of the monthly budget (month to date) and the month-end forecast.

    For a service (``service_ref``) or, with ``service_ref=None``, an owner group's budget
    (alerts ``GroupBudgetThreshold``/``GroupBudgetForecast`` labelled ``group``)."""
    mtd, projected = figures["mtdUsd"], figures["projectedUsd"]
    prefix, labels, whose = "", {}, "monthly budget"
    if service_ref is None:
        prefix, labels = "Group", {"group": group_ref or ""}
        whose = f"monthly budget of {group_ref} (sum of its services)"
    out = []
    for percent, severity in BUDGET_THRESHOLDS:
        firing = mtd >= budget * percent / 100 if budget else False
        out.append(
            Condition(
                f"{prefix}BudgetThreshold",
                service_ref,
                severity,
                firing,
                {**labels, "threshold": f"{percent}%"},
                {
                    "summary": f"month-to-date spend ${mtd:.2f} reached {percent}% "
                    f"of the ${budget or 0:.2f} {whose}",
                    "mtdUsd": mtd,
                    "budgetUsd": budget,
                },
                group_ref,
            )
        )
    out.append(
        Condition(
            f"{prefix}BudgetForecast",
            service_ref,
            "warning",
            projected > budget if budget else False,
            dict(labels),
            {
                "summary": f"projected month-end spend ${projected:.2f} exceeds the "
                f"${budget or 0:.2f} {whose}",
                "projectedUsd": projected,
                "budgetUsd": budget,
            },
            group_ref,
        )
    )
    return out


def group_spend(evaluations: list[ServiceEvaluation]) -> dict[str, dict[str, float]]:
    """Month-to-date and projected spend per owner group: sums of its services' figures."""
    out: dict[str, dict[str, float]] = {}
    for e in evaluations:
        if e.owner is None:
            continue
        figures = out.setdefault(e.owner, {"mtdUsd": 0.0, "projectedUsd": 0.0, "services": 0})
        figures["mtdUsd"] += e.cost["mtdUsd"]
        figures["projectedUsd"] += e.cost["projectedUsd"]
        figures["services"] += 1
    return {
        group: {k: round(v, 4) if k != "services" else v for k, v in f.items()}
        for group, f in out.items()
    }


def group_conditions(session: Session, evaluations: list[ServiceEvaluation]) -> list[Condition]:
    """Budget conditions of every group with a budget. A group without services spends 0;
    a group whose budget was deleted gets clear conditions, so its open alerts resolve."""
    spend = group_spend(evaluations)
    budgets = {
        row.group_ref: row.monthly_usd
        for row in session.scalars(select(GroupBudget).order_by(GroupBudget.group_ref))
    }
    orphaned = session.scalars(
        select(Alert.group_ref).where(
            Alert.state == "firing",
            Alert.service_ref.is_(None),
            Alert.alertname.in_(GROUP_ALERTS),
        )
    )
    out = []
    for group in sorted(budgets.keys() | {g for g in orphaned if g}):
        figures = spend.get(group, {"mtdUsd": 0.0, "projectedUsd": 0.0})
        out += budget_conditions(None, figures, budgets.get(group), group_ref=group)
    return out


def spike_condition(session: Session, service_ref: str, now: datetime, factor: float) -> Condition:
    """Last complete hour's spend above ``factor`` x the average of the 24 h before it."""
    last_hour = int(now.timestamp()) // HOUR * HOUR - HOUR
    hourly = costs.hourly_spend(session, service_ref, last_hour - 24 * HOUR, last_hour + HOUR)
    current = hourly.pop(last_hour, 0.0)
    average = sum(hourly.values()) / len(hourly) if hourly else 0.0
    firing = len(hourly) >= SPIKE_MIN_HISTORY_HOURS and average > 0 and current > factor * average
    return Condition(
        "CostSpike",
        service_ref,
        "warning",
        firing,
        {},
        {
            "summary": f"spend in the last hour ${current:.2f} is more than {factor:g}x "
            f"the trailing 24 h average of ${average:.2f}/h",
            "lastHourUsd": round(current, 4),
            "trailingAverageUsd": round(average, 4),
        },
    )


def slo_conditions(service: SlaService, rows: stats.RollupRows, now_ts: int) -> list[Condition]:
    targets = targets_of(service)
    out = []
    for c in slo.burn_conditions(rows, now_ts, targets):
        out.append(
            Condition(
                "SLOBurnRate",
                service.service_ref,
                c.severity,
                c.firing,
                {"slo": c.sli},
                {
                    "summary": f"{c.sli} error budget burning fast ({', '.join(c.rules)})"
                    if c.firing
                    else f"{c.sli} burn rate back under the {c.severity} thresholds",
                    "burnRates": {k: round(v, 3) for k, v in c.burn_rates.items()},
                },
            )
        )
    return out


@dataclass
class ServiceEvaluation:
    service_ref: str
    slo: dict[str, Any]
    cost: dict[str, Any]
    conditions: list[Condition] = field(default_factory=list)
    owner: str | None = None


def evaluate_service(
    session: Session, service: SlaService, now: datetime, spike_factor: float
) -> ServiceEvaluation:
    now_ts = int(now.timestamp())
    end = window_end(now_ts)
    compliance_window = (end - slo.WINDOWS[slo.COMPLIANCE_WINDOW], end)
    rows = stats.fetch(session, service.service_ref, [*slo.burn_windows(now_ts), compliance_window])
    targets = targets_of(service)
    conditions = slo_conditions(service, rows, now_ts)
    burn = slo.burn_conditions(rows, now_ts, targets)
    compliance = slo.window_report(rows.window(*compliance_window), targets)
    state = slo.slo_state(burn, compliance, targets)
    figures = costs.month_figures(session, service.service_ref, now)
    budget = budget_of(session, service)
    conditions += budget_conditions(service.service_ref, figures, budget)
    conditions.append(spike_condition(session, service.service_ref, now, spike_factor))
    stamp = now.isoformat().replace("+00:00", "Z")
    slo_status = {
        "state": state,
        "window": slo.COMPLIANCE_WINDOW,
        "successRate": compliance["successRate"],
        "p95LatencyMs": compliance["latencyMs"]["p95"],
        "targetSuccessRate": service.slo_success_rate,
        "targetP95LatencyMs": service.slo_p95_latency_ms,
        "errorBudgetRemaining": compliance["errorBudgetRemaining"],
        "alerts": sorted(
            f"{c.alertname}:{c.labels.get('slo', '')}:{c.severity}"
            for c in conditions
            if c.firing and c.alertname == "SLOBurnRate"
        ),
        "updatedAt": stamp,
    }
    cost_status = {
        "mtdUsd": figures["mtdUsd"],
        "projectedUsd": figures["projectedUsd"],
        "budgetUsd": budget,
        "budgetUsedPercent": round(100 * figures["mtdUsd"] / budget, 1) if budget else None,
        "updatedAt": stamp,
    }
    conditions = [replace(c, group_ref=service.owner) for c in conditions]
    return ServiceEvaluation(
        service.service_ref, slo_status, cost_status, conditions, service.owner
    )


def evaluate_all(
    session: Session,
    now: datetime,
    *,
    webhooks: list[dict[str, str]] | None = None,
    spike_factor: float = 3.0,
    write_catalog: bool = True,
) -> tuple[list[ServiceEvaluation], Transitions]:
    services = session.scalars(select(SlaService).order_by(SlaService.service_ref)).all()
    evaluations = [evaluate_service(session, s, now, spike_factor) for s in services]
    conditions = [c for e in evaluations for c in e.conditions]
    conditions += group_conditions(session, evaluations)
    transitions = reconcile(session, conditions, now, webhooks or [])
    if write_catalog:
        write_changed_statuses(session, evaluations)
    return evaluations, transitions


def _same(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "updatedAt"}

    return old is not None and strip(old) == strip(new)


def write_changed_statuses(session: Session, evaluations: list[ServiceEvaluation]) -> int:
    """Writes status.slo/status.cost only where they changed: a status write re-indexes
    the entity, which a fleet evaluated every minute should not pay for nothing."""
    refs = [e.service_ref for e in evaluations]
    current = CatalogService(session).get_by_refs(refs) if refs else []
    written = 0
    for evaluation, entity in zip(evaluations, current, strict=True):
        if entity is None:
            continue
        status = entity.get("status") or {}
        for section, value in (("slo", evaluation.slo), ("cost", evaluation.cost)):
            if not _same(status.get(section), value):
                write_status(session, evaluation.service_ref, section, value)
                written += 1
    return written
