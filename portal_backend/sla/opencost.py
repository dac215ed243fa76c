"""Cost from OpenCost's ``/allocation`` API, aggregated by the ``rag-portal.io/service`` label.

Used instead of the provisioned-resources model for services in a cluster that has an
OpenCost URL configured. Complete hours are fetched one window at a time and written
as that hour's spend (replacing, not adding, so a re-read hour stays correct).
"""

from __future__ import annotations

from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal_backend import metadata_keys
from portal_backend.sla.clock import from_ts
from portal_backend.sla.costs import DAY, C, add_buckets
from portal_backend.sla.rollups import HOUR
from portal_backend.sla.tables import CostCursor, SlaService

MAX_HOURS_PER_RUN = 48


class OpenCostError(Exception):
    pass


def _rfc3339(ts: float) -> str:
    return from_ts(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def allocation(client: httpx.Client, base_url: str, start: float, end: float) -> dict[str, float]:
    """service name -> total cost over [start, end)."""
    try:
        response = client.get(
            f"{base_url.rstrip('/')}/allocation",
            params={
                "window": f"{_rfc3339(start)},{_rfc3339(end)}",
                "aggregate": f"label:{metadata_keys.SERVICE}",
                "accumulate": "true",
            },
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OpenCostError(f"{base_url}: {exc}") from exc
    if response.status_code != 200 or body.get("code", 200) != 200:
        raise OpenCostError(f"{base_url}: HTTP {response.status_code}: {body}")
    out: dict[str, float] = {}
    for window in body.get("data") or []:
        for name, item in (window or {}).items():
            if not isinstance(item, dict):
                continue
            # OpenCost names an aggregate by the label value (or "__unallocated__").
            key = name.split("/")[-1]
            out[key] = out.get(key, 0.0) + float(item.get("totalCost") or 0.0)
    return out


def collect(
    session: Session,
    client: httpx.Client,
    base_url: str,
    services: list[SlaService],
    now: datetime,
) -> int:
    """Fetches complete hours since each service's cursor; returns hours written."""
    if not services:
        return 0
    last_complete = int(now.timestamp()) // HOUR * HOUR
    cursors = {
        c.service_ref: c
        for c in session.scalars(
            select(CostCursor).where(CostCursor.service_ref.in_([s.service_ref for s in services]))
        )
    }
    for service in services:
        if service.service_ref not in cursors:
            cursor = CostCursor(service_ref=service.service_ref, accrued_until=last_complete - HOUR)
            session.add(cursor)
            cursors[service.service_ref] = cursor
    start = int(min(c.accrued_until for c in cursors.values()))
    start = max(start - start % HOUR, last_complete - MAX_HOURS_PER_RUN * HOUR)
    by_name = {s.service_ref.split("/")[-1]: s for s in services}
    written = 0
    for hour in range(start, last_complete, HOUR):
        costs = allocation(client, base_url, hour, hour + HOUR)
        for name, service in by_name.items():
            cursor = cursors[service.service_ref]
            if cursor.accrued_until >= hour + HOUR:
                continue
            usd = costs.get(name, 0.0)
            previous = (
                session.scalar(
                    select(C.c.usd).where(
                        C.c.service_ref == service.service_ref,
                        C.c.period == "1h",
                        C.c.bucket_ts == hour,
                    )
                )
                or 0.0
            )
            delta = usd - previous
            add_buckets(
                session,
                service.service_ref,
                {("1h", hour): [delta, 0.0], ("1d", hour - hour % DAY): [delta, 0.0]},
                "opencost",
            )
            cursor.accrued_until = hour + HOUR
            written += 1
    session.flush()
    return written
