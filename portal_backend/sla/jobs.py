"""The periodic jobs, as plain functions (the Celery tasks in workers/sla.py call them).

Each takes the settings, a session factory, ``now`` and (where it talks HTTP) an
``httpx.Client``, so tests run them directly with a fixed clock.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import session_scope
from portal_backend.logging import get_logger
from portal_backend.settings import Settings
from portal_backend.sla import costs, evaluate, opencost, prometheus, services, webhooks
from portal_backend.sla.rollups import T
from portal_backend.sla.tables import (
    AdapterUsage,
    IngestBatch,
    Notification,
    SlaService,
    UsageRecord,
)

log = get_logger(__name__)
Factory = sessionmaker[Session]


def collect(
    settings: Settings, factory: Factory, client: httpx.Client, now: datetime
) -> dict[str, Any]:
    """Prometheus pull for every tracked service in a cluster with a Prometheus URL."""
    with session_scope(factory) as session:
        services.sync_from_catalog(session, now)
        tracked = session.scalars(select(SlaService)).all()
    added, failed = 0, []
    for service in tracked:
        url = prometheus.prometheus_url(settings.sla_prometheus_urls, service.cluster)
        if not url:
            continue
        try:
            with session_scope(factory) as session:  # one transaction per service
                added += prometheus.collect_service(
                    session,
                    client,
                    url,
                    session.merge(service),
                    settings.sla_prometheus_selector,
                    now,
                )
        except prometheus.PrometheusError as exc:
            log.warning("sla.collect.failed", service=service.service_ref, error=str(exc))
            failed.append(service.service_ref)
    return {"requests": added, "failed": failed}


def account_costs(
    settings: Settings, factory: Factory, client: httpx.Client, now: datetime
) -> dict[str, Any]:
    """OpenCost for services in clusters that have it; the provisioned model for the rest.

    The catalog is read first, so a service torn down since the last run stops accruing."""
    with session_scope(factory) as session:
        services.sync_from_catalog(session, now)
        tracked = session.scalars(select(SlaService)).all()
        by_opencost: dict[str, list[SlaService]] = defaultdict(list)
        modelled: list[SlaService] = []
        for service in tracked:
            url = prometheus.prometheus_url(settings.sla_opencost_urls, service.cluster)
            (by_opencost[url] if url else modelled).append(service)
        costs.accrue(session, modelled, now)
    written = 0
    for url, group in by_opencost.items():
        try:
            with session_scope(factory) as session:
                written += opencost.collect(session, client, url, group, now)
        except opencost.OpenCostError as exc:
            log.warning("sla.opencost.failed", url=url, error=str(exc))
    return {"modelled": len(modelled), "opencostHours": written}


def evaluate_all(settings: Settings, factory: Factory, now: datetime) -> dict[str, Any]:
    with session_scope(factory) as session:
        services.sync_from_catalog(session, now)
        evaluations, transitions = evaluate.evaluate_all(
            session, now, webhooks=settings.sla_webhooks, spike_factor=settings.sla_spike_factor
        )
    return {
        "services": len(evaluations),
        "fired": [a.fingerprint for a in transitions.fired],
        "resolved": [a.fingerprint for a in transitions.resolved],
    }


def deliver(
    settings: Settings, factory: Factory, client: httpx.Client, now: datetime
) -> dict[str, Any]:
    with session_scope(factory) as session:
        return webhooks.deliver_due(
            session,
            client,
            now,
            max_attempts=settings.sla_webhook_max_attempts,
            base_url=settings.base_url,
            backoff_s=settings.sla_webhook_backoff_s,
        )


def _deleted(session: Session, statement: Delete) -> int:
    # A DELETE's result is a CursorResult (Session.execute is typed for any statement).
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def retention(settings: Settings, factory: Factory, now: datetime) -> dict[str, int]:
    """Drops raw records, minute/hour rollups and batch ids past their retention."""
    ts = now.timestamp()
    with session_scope(factory) as session:
        raw = _deleted(
            session,
            delete(UsageRecord).where(
                UsageRecord.ts < ts - settings.sla_raw_retention_hours * 3600
            ),
        )
        minutes = _deleted(
            session,
            delete(T).where(
                T.c.resolution == "1m",
                T.c.bucket_ts < ts - settings.sla_minute_rollup_retention_days * 86400,
            ),
        )
        hours = _deleted(
            session,
            delete(T).where(
                T.c.resolution.in_(("1h", "1d")),
                T.c.bucket_ts < ts - settings.sla_hour_rollup_retention_days * 86400,
            ),
        )
        # Per-adapter hours live as long as the hour rollups they break down.
        hours += _deleted(
            session,
            delete(AdapterUsage).where(
                AdapterUsage.bucket_ts < ts - settings.sla_hour_rollup_retention_days * 86400
            ),
        )
        batches = _deleted(
            session,
            delete(IngestBatch).where(
                IngestBatch.received_at < now - timedelta(days=settings.sla_batch_id_retention_days)
            ),
        )
        notes = _deleted(
            session,
            delete(Notification).where(
                Notification.state != "pending",
                Notification.next_attempt_at < now - timedelta(days=30),
            ),
        )
    return {
        "rawRecords": raw,
        "minuteRollups": minutes,
        "hourRollups": hours,
        "batchIds": batches,
        "notifications": notes,
    }
