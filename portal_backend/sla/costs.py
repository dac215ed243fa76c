"""Cost: price table, provisioned-resources model, accrual into hour/day buckets, and the
derived figures (window cost, month-to-date, projection, per-1k-tokens, per-prompt).

Model: $/hour of a service while its deployment runs something (``RUNNING_STATES``: the
provisioning record's state, else the entity's ``status.deployment.state``). A service
with no deployment status (a Component imported from YAML and never deployed), Planned,
Down or torn down (entity and record gone) costs nothing. Where provisioning recorded
the desired state it applied
(``provisioned_services``), the rate is priced from that state's resource requests
and replica counts (``resources.desired_rate``: GPU, CPU, memory and storage); otherwise
GPUs per replica x replicas x price of its GPU class, from the annotations. Accrual
integrates that rate over time, split at hour boundaries, so a replica change applies
from the moment it is seen.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.errors import ErrorDetail, InputError
from portal_backend.provisioning import records as deployments
from portal_backend.provisioning.models import ProvisionedService
from portal_backend.rag.gpu_classes import GPU_CLASSES, default_gpu_prices
from portal_backend.sla.fastsql import fetch_tuples
from portal_backend.sla.resources import Rate, desired_rate, gpu_price
from portal_backend.sla.rollups import HOUR, _insert
from portal_backend.sla.tables import CostAccrual, CostCursor, PriceItem, SlaService

DAY = 86400
# Used until an admin sets the table (PUT /api/sla/prices); $ per GPU-hour etc. Every GPU
# class the form offers is priced (rag.gpu_classes); "gpu:default" prices any other GPU.
# This is the only price table: generated repositories get their GPU price from it at
# render time (the rag:gpu-price step), so their Prometheus rules and Grafana dashboard
# show the spend the portal accrues.
LOCAL_RUNTIME_PRICE = "local_runtime_hour"
DEFAULT_PRICES: dict[str, float] = {
    "gpu:default": 2.50,
    **default_gpu_prices(),
    "cpu_core_hour": 0.04,
    "memory_gb_hour": 0.005,
    "storage_gb_month": 0.10,
    # A service on the local runtime (CPU processes on the portal's machine), per hour.
    LOCAL_RUNTIME_PRICE: 0.0,
}
# Deployment states in which workloads exist and hold resources (see
# provisioning.status.overall_state): Drifted still runs, only not as applied. Anything
# else -- no status, Planned, Down, an unknown word -- runs nothing and accrues nothing.
RUNNING_STATES = frozenset(state.lower() for state in deployments.RUNNING_STATES)
C = CostAccrual.__table__


def get_prices(session: Session) -> dict[str, float]:
    rows = session.scalars(select(PriceItem)).all()
    return {r.item: r.usd for r in rows} if rows else dict(DEFAULT_PRICES)


def gpu_class_price(prices: dict[str, float], gpu_class: str) -> tuple[str, float]:
    """(price item, $ per GPU-hour) of a form GPU class, resolved as the cost model
    resolves a running vLLM pod of that class: by the node label it is scheduled on."""
    return gpu_price(prices, GPU_CLASSES[gpu_class].product_label)


def set_prices(session: Session, prices: dict[str, float], now: datetime, by: str | None) -> None:
    problems = []
    for item, usd in prices.items():
        if not (item.startswith("gpu:") and len(item) > 4) and item not in DEFAULT_PRICES:
            problems.append(
                ErrorDetail(
                    f"prices.{item}",
                    "use 'gpu:<gpu class>' ($/GPU-hour), cpu_core_hour, memory_gb_hour, "
                    f"storage_gb_month or {LOCAL_RUNTIME_PRICE}",
                )
            )
        elif not isinstance(usd, int | float) or usd < 0:
            problems.append(ErrorDetail(f"prices.{item}", "must be a number >= 0 (USD)"))
    if problems:
        raise InputError("invalid price table", problems)
    session.execute(PriceItem.__table__.delete())
    session.execute(
        PriceItem.__table__.insert(),
        [
            {"item": k.lower(), "usd": float(v), "updated_at": now, "updated_by": by}
            for k, v in prices.items()
        ],
    ) if prices else None


def provisioning_records(session: Session) -> dict[str, ProvisionedService]:
    """Provisioning records by entity ref and by service name (one query)."""
    return _index(session.scalars(select(ProvisionedService)))


def _index(rows: Iterable[ProvisionedService]) -> dict[str, ProvisionedService]:
    out: dict[str, ProvisionedService] = {}
    for row in rows:
        out.setdefault(f"name:{row.service}", row)
        if row.entity_ref:
            out[row.entity_ref.lower()] = row
    return out


def record_of(
    service: SlaService, records: dict[str, ProvisionedService]
) -> ProvisionedService | None:
    found = records.get(service.service_ref.lower())
    if found is None:
        found = records.get(f"name:{service.service_ref.rsplit('/', 1)[-1]}")
    if found is None:
        return None
    # A record prices the service when it says what runs: the applied objects of a
    # cluster deployment, or the local runtime (a flat rate, no objects).
    local = deployments.target_of(found) == deployments.LOCAL
    return found if found.desired or local else None


def record_for(session: Session, service: SlaService) -> ProvisionedService | None:
    """One service's provisioning record (the report's single-service read)."""
    name = service.service_ref.rsplit("/", 1)[-1]
    rows = session.scalars(
        select(ProvisionedService).where(
            (ProvisionedService.entity_ref == service.service_ref)
            | (ProvisionedService.service == name)
        )
    )
    return record_of(service, _index(rows))


def runs_something(service: SlaService, record: ProvisionedService | None = None) -> bool:
    """Whether the service's deployment holds resources now; the provisioning record
    (what the portal applied and reconciles) is the authority, the entity's status a copy."""
    state = record.state if record is not None else service.deployment_state
    return (state or "").lower() in RUNNING_STATES


def rate_of(
    service: SlaService, prices: dict[str, float], record: ProvisionedService | None = None
) -> tuple[Rate, str]:
    """($/h by resource, model used: "provisioned" or "annotations")."""
    if not runs_something(service, record):
        return Rate(), "provisioned" if record is not None else "annotations"
    if record is not None and deployments.target_of(record) == deployments.LOCAL:
        return Rate(local=prices.get(LOCAL_RUNTIME_PRICE, 0.0)), "local-runtime"
    if record is not None:
        return desired_rate(record.desired, record.detail, prices, service.gpu_class), "provisioned"
    gpus = (service.gpus or 0.0) * (service.replicas if service.replicas is not None else 1.0)
    rate = Rate()
    if gpus:
        rate.add_gpus(gpus, service.gpu_class, "annotation", prices)
    return rate, "annotations"


def hourly_rate(
    service: SlaService, prices: dict[str, float], record: ProvisionedService | None = None
) -> tuple[float, float]:
    """($ per hour, GPUs running) for a service from its provisioned resources."""
    rate, _ = rate_of(service, prices, record)
    return rate.total, rate.gpus


def add_cost(
    session: Session,
    service_ref: str,
    start: float,
    end: float,
    rate: float,
    gpus: float,
    source: str = "provisioned",
) -> None:
    """Adds rate x time over [start, end) to the hour and day buckets it spans."""
    if end <= start:
        return
    rows: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    t = start
    while t < end:
        hour = int(t - t % HOUR)
        piece_end = min(end, hour + HOUR)
        hours = (piece_end - t) / HOUR
        for period, bucket in (("1h", hour), ("1d", hour - hour % DAY)):
            rows[(period, bucket)][0] += rate * hours
            rows[(period, bucket)][1] += gpus * hours
        t = piece_end
    add_buckets(session, service_ref, rows, source)


def add_buckets(
    session: Session,
    service_ref: str,
    rows: dict[tuple[str, int], list[float]],
    source: str,
) -> None:
    insert = _insert(session)
    statement = insert(C)
    statement = statement.on_conflict_do_update(
        index_elements=[C.c.service_ref, C.c.period, C.c.bucket_ts],
        set_={
            "usd": C.c.usd + statement.excluded.usd,
            "gpu_hours": C.c.gpu_hours + statement.excluded.gpu_hours,
            "source": statement.excluded.source,
        },
    )
    session.execute(
        statement,
        [
            {
                "service_ref": service_ref,
                "period": period,
                "bucket_ts": bucket,
                "usd": usd,
                "gpu_hours": gpu_hours,
                "source": source,
            }
            for (period, bucket), (usd, gpu_hours) in sorted(rows.items())
        ],
    )


def accrue(session: Session, services: list[SlaService], now: datetime) -> int:
    """Integrates each service's current rate since its last accrual (first time: from now)."""
    prices = get_prices(session)
    now_ts = now.timestamp()
    cursors = {c.service_ref: c for c in session.scalars(select(CostCursor))}
    records = provisioning_records(session)
    for service in services:
        cursor = cursors.get(service.service_ref)
        if cursor is None:
            session.add(CostCursor(service_ref=service.service_ref, accrued_until=now_ts))
            continue
        rate, gpus = hourly_rate(service, prices, record_of(service, records))
        add_cost(session, service.service_ref, cursor.accrued_until, now_ts, rate, gpus)
        cursor.accrued_until = max(cursor.accrued_until, now_ts)
    session.flush()
    return len(services)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spend(session: Session, service_ref: str, start: float, end: float) -> float:
    """Spend in [start, end) from hour buckets (hours overlapping the range count whole)."""
    value = session.scalar(
        select(func.coalesce(func.sum(C.c.usd), 0.0)).where(
            C.c.service_ref == service_ref,
            C.c.period == "1h",
            C.c.bucket_ts >= int(start - start % HOUR),
            C.c.bucket_ts < end,
        )
    )
    return float(value or 0.0)


def month_figures(session: Session, service_ref: str, now: datetime) -> dict[str, float]:
    """Month-to-date spend and a linear projection to month end.

    Projection = MTD + (spend of the last 24 h, or of the month so far if shorter, per
    hour) x hours left in the month.
    """
    start = month_start(now)
    now_ts = now.timestamp()
    mtd = spend(session, service_ref, start.timestamp(), now_ts)
    days_in_month = calendar.monthrange(start.year, start.month)[1]
    end_ts = start.timestamp() + days_in_month * DAY
    trailing_start = max(start.timestamp(), now_ts - DAY)
    trailing_hours = (now_ts - trailing_start) / HOUR
    trailing = spend(session, service_ref, trailing_start, now_ts)
    rate = trailing / trailing_hours if trailing_hours > 0 else 0.0
    return {
        "mtdUsd": round(mtd, 4),
        "projectedUsd": round(mtd + rate * (end_ts - now_ts) / HOUR, 4),
        "hourlyRateUsd": round(rate, 4),
    }


def hourly_spend(session: Session, service_ref: str, start: int, end: int) -> dict[int, float]:
    rows = session.execute(
        select(C.c.bucket_ts, C.c.usd).where(
            C.c.service_ref == service_ref,
            C.c.period == "1h",
            C.c.bucket_ts >= start,
            C.c.bucket_ts < end,
        )
    )
    return {ts: usd for ts, usd in rows}


def daily_costs(
    session: Session, start: int, end: int, refs: list[str] | None = None
) -> dict[str, dict[int, float]]:
    """service ref -> {day start: usd} over [start, end) from day buckets (one query)."""
    query = select(C.c.service_ref, C.c.bucket_ts, C.c.usd).where(
        C.c.period == "1d", C.c.bucket_ts >= start, C.c.bucket_ts < end
    )
    if refs is not None:
        query = query.where(C.c.service_ref.in_(refs))
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for ref, ts, usd in session.execute(query):
        out[ref][ts] = usd
    return out


def daily_rows(session: Session, start: int, end: int) -> list[tuple[str, int, float]]:
    """(service ref, day start, usd) of every day bucket in [start, end)."""
    query = select(C.c.service_ref, C.c.bucket_ts, C.c.usd).where(
        C.c.period == "1d", C.c.bucket_ts >= start, C.c.bucket_ts < end
    )
    return fetch_tuples(session, query)
