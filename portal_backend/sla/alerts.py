"""Alert lifecycle: a condition fires an alert once, and resolves it when it clears.

Each evaluation reports every condition it checked (firing or not) under a stable
fingerprint. A firing condition without an open alert opens one; a clear condition
with an open alert resolves it. Every transition queues one notification per
configured webhook (delivered by webhooks.deliver_due, with retries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal_backend.sla.tables import Alert, Notification


@dataclass(frozen=True)
class Condition:
    alertname: str
    service_ref: str | None
    severity: str
    firing: bool
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    # The owner group of the service, or the group of a group-budget condition. Not part
    # of the fingerprint: a service changing owner keeps its open alerts.
    group_ref: str | None = None

    @property
    def fingerprint(self) -> str:
        parts = [self.alertname, self.service_ref or "-", self.severity]
        parts += [f"{k}={v}" for k, v in sorted(self.labels.items())]
        return "|".join(parts)[:255]


@dataclass
class Transitions:
    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


def reconcile(
    session: Session,
    conditions: list[Condition],
    now: datetime,
    webhooks: list[dict[str, str]],
) -> Transitions:
    fingerprints = [c.fingerprint for c in conditions]
    open_alerts = (
        {
            a.fingerprint: a
            for a in session.scalars(
                select(Alert).where(Alert.state == "firing", Alert.fingerprint.in_(fingerprints))
            )
        }
        if fingerprints
        else {}
    )
    out = Transitions()
    for condition in conditions:
        current = open_alerts.get(condition.fingerprint)
        if condition.firing and current is None:
            alert = Alert(
                fingerprint=condition.fingerprint,
                alertname=condition.alertname,
                service_ref=condition.service_ref,
                group_ref=condition.group_ref,
                severity=condition.severity,
                state="firing",
                labels={
                    "alertname": condition.alertname,
                    "severity": condition.severity,
                    **({"service": condition.service_ref} if condition.service_ref else {}),
                    **condition.labels,
                },
                annotations=condition.annotations,
                starts_at=now,
            )
            session.add(alert)
            out.fired.append(alert)
        elif not condition.firing and current is not None:
            current.state = "resolved"
            current.ends_at = now
            out.resolved.append(current)
    session.flush()
    for alert in out.fired + out.resolved:
        for hook in webhooks:
            session.add(
                Notification(
                    alert_id=alert.id,
                    status=alert.state,
                    url=hook["url"],
                    format=hook.get("format", "alertmanager"),
                    state="pending",
                    next_attempt_at=now,
                )
            )
    session.flush()
    return out


def list_alerts(
    session: Session,
    *,
    state: str | None = None,
    service_ref: str | None = None,
    group_ref: str | None = None,
    limit: int = 200,
) -> list[Alert]:
    query = select(Alert).order_by(Alert.starts_at.desc(), Alert.id.desc()).limit(limit)
    if state:
        query = query.where(Alert.state == state)
    if service_ref:
        query = query.where(Alert.service_ref == service_ref)
    if group_ref:
        query = query.where(Alert.group_ref == group_ref)
    return list(session.scalars(query))
