"""Webhook delivery of alert transitions: Alertmanager-compatible JSON or a Slack message.

Delivery is at-least-once: a notification stays pending until a 2xx answer, with
exponential backoff (30 s, 60 s, ... capped at 1 h) up to the configured attempts,
then it is marked failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal_backend.sla.clock import aware
from portal_backend.sla.tables import Alert, Notification

BACKOFF_S = 30
MAX_BACKOFF_S = 3600


def _iso(value: datetime | None) -> str:
    return aware(value).isoformat().replace("+00:00", "Z") if value else "0001-01-01T00:00:00Z"


def _subject_query(alert: Alert) -> str:
    if alert.service_ref is None and alert.group_ref:
        return f"group={alert.group_ref}"  # a group-budget alert
    return f"service={alert.service_ref or ''}"


def alertmanager_payload(alert: Alert, status: str, base_url: str) -> dict[str, Any]:
    """Alertmanager webhook v4 body (what Alertmanager posts to webhook_configs)."""
    item = {
        "status": status,
        "labels": alert.labels,
        "annotations": {k: str(v) for k, v in (alert.annotations or {}).items()},
        "startsAt": _iso(alert.starts_at),
        "endsAt": _iso(alert.ends_at) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": f"{base_url}/api/sla/alerts?{_subject_query(alert)}",
        "fingerprint": f"{alert.id:016x}",
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alert.alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "rag-portal",
        "groupLabels": {"alertname": alert.alertname},
        "commonLabels": alert.labels,
        "commonAnnotations": item["annotations"],
        "externalURL": base_url,
        "alerts": [item],
    }


def slack_payload(alert: Alert, status: str) -> dict[str, Any]:
    """Slack incoming-webhook body."""
    icon = ":white_check_mark:" if status == "resolved" else ":rotating_light:"
    summary = (alert.annotations or {}).get("summary", alert.alertname)
    title = f"{icon} [{status.upper()}] {alert.alertname} ({alert.severity})"
    subject, what = alert.service_ref, "service"
    if subject is None:
        subject, what = alert.group_ref or "fleet", "group" if alert.group_ref else "service"
    return {
        "text": f"{title}: {subject}: {summary}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{summary}"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{what}: `{subject}`"}],
            },
        ],
    }


def deliver_due(
    session: Session,
    client: httpx.Client,
    now: datetime,
    *,
    max_attempts: int = 8,
    base_url: str = "",
    backoff_s: float = BACKOFF_S,
    limit: int = 100,
) -> dict[str, int]:
    """Sends every due pending notification once; returns counts by outcome."""
    due = session.scalars(
        select(Notification)
        .where(Notification.state == "pending", Notification.next_attempt_at <= now)
        .order_by(Notification.id)
        .limit(limit)
    ).all()
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for note in due:
        alert = session.get(Alert, note.alert_id)
        if alert is None:
            note.state = "failed"
            note.last_error = "alert deleted"
            counts["failed"] += 1
            continue
        body = (
            slack_payload(alert, note.status)
            if note.format == "slack"
            else alertmanager_payload(alert, note.status, base_url)
        )
        note.attempts += 1
        try:
            response = client.post(note.url, json=body)
            ok = 200 <= response.status_code < 300
            error = None if ok else f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"[:2000]
        if ok:
            note.state = "delivered"
            note.delivered_at = now
            note.last_error = None
            counts["delivered"] += 1
        elif note.attempts >= max_attempts:
            note.state = "failed"
            note.last_error = error
            counts["failed"] += 1
        else:
            delay = min(MAX_BACKOFF_S, backoff_s * 2 ** (note.attempts - 1))
            note.next_attempt_at = now + timedelta(seconds=delay)
            note.last_error = error
            counts["retrying"] += 1
    session.flush()
    return counts
