"""SLA and cost API, base ``/api/sla``: usage push, ingest tokens, SLO/cost reports,
alerts, price table, budgets, evaluations. Thin: the work is in portal_backend.sla."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from catalog.errors import ErrorDetail, InputError, NotAllowedError, NotFoundError
from portal_backend.auth.deps import (
    AdminPrincipal,
    ReadPrincipal,
    WritePrincipal,
    require_principal,
)
from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.routers.sla_ingest import UsagePushFastPath, token_cache
from portal_backend.sla import costs, evaluations, ingest, ingest_tokens, reports, services
from portal_backend.sla.alerts import list_alerts
from portal_backend.sla.clock import utcnow
from portal_backend.sla.refs import group_ref, normalize_ref
from portal_backend.sla.tables import Budget, GroupBudget, SlaService

router = APIRouter(prefix="/api/sla", tags=["sla"])
AnyPrincipal = Depends(require_principal())
KNOWN_TTL_S = 60.0
MAX_ATTEMPTS = 4


def install_usage_fast_path(app: FastAPI) -> None:
    """Call after every other middleware is added: the fast path must be outermost."""
    app.add_middleware(UsagePushFastPath)


def _json(data: dict) -> Response:
    """Large read models go out through orjson (FastAPI's encoder is the slow part)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _factory(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.session_factory


def _known_services(state: Any) -> dict[str, float]:
    cache = getattr(state, "sla_known_services", None)
    if cache is None:
        cache = state.sla_known_services = {}
    return cache


def _ensure_known(state: Any, refs: list[str], session) -> None:  # type: ignore[no-untyped-def]
    """Every service exists (tracked or in the catalog); positive answers cached 60 s."""
    cache = _known_services(state)
    now = time.monotonic()
    for ref in refs:
        if cache.get(ref, 0) > now:
            continue
        if (
            session.get(SlaService, ref) is None
            and services.sync_one(session, ref, utcnow()) is None
        ):
            raise InputError(
                f"records name {ref}, which is not in the catalog; register the service first",
                [ErrorDetail("records.service", f"unknown service {ref}")],
            )
        cache[ref] = now + KNOWN_TTL_S


def push_batch(state: Any, body: bytes, principal: Principal) -> dict:
    """Parse, authorise and store one usage batch (runs in a worker thread).

    Shared by the regular route and the ASGI fast path (routers/sla_ingest.py)."""
    batch = ingest.parse_batch(body)
    service_map = ingest.batch_services(batch)
    refs = set(service_map.values())
    ingest.authorize_push(
        refs,
        token_service=principal.service_ref if principal.purpose == "ingest" else None,
        is_admin=principal.is_admin,
    )
    settings = state.settings
    for attempt in range(MAX_ATTEMPTS):
        try:
            with session_scope(state.session_factory) as session:
                _ensure_known(state, sorted(refs), session)
                result = ingest.ingest_batch(
                    session,
                    batch,
                    now=utcnow(),
                    service_map=service_map,
                    token_id=principal.token_id,
                    raw_retention_hours=settings.sla_raw_retention_hours,
                    max_age=_max_age(settings),
                    synchronous_commit=settings.sla_ingest_synchronous_commit,
                )
            break
        except OperationalError:
            # A deadlock victim or a busy SQLite file: the transaction rolled back whole
            # (batch id included), so running it again is safe.
            if attempt == MAX_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return {
        "batchId": result.batch_id,
        "accepted": result.accepted,
        "duplicate": result.duplicate,
        "services": result.services,
    }


def _max_age(settings):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(days=settings.sla_minute_rollup_retention_days)


@router.post("/usage")
async def push_usage(request: Request, principal: Principal = AnyPrincipal) -> dict:
    """A batch of usage records; the same batch_id twice changes nothing.

    Requests with an Authorization header are answered by the ASGI fast path in
    routers/sla_ingest.py before they reach this route (same contract)."""
    body = await request.body()
    return await run_in_threadpool(push_batch, request.app.state, body, principal)


# -- services ------------------------------------------------------------------------


def _service(session, kind: str, namespace: str, name: str) -> SlaService:  # type: ignore[no-untyped-def]
    ref = normalize_ref(f"{kind}:{namespace}/{name}", path="ref")
    service = services.sync_one(session, ref, utcnow()) or session.get(SlaService, ref)
    if service is None:
        raise NotFoundError(f"no service {ref} in the catalog")
    return service


def _check_owner(principal: Principal, service: SlaService) -> None:
    if principal.is_admin:
        return
    if principal.group and service.owner and group_ref(principal.group) == service.owner:
        return
    raise NotAllowedError(
        f"only {service.owner or 'the owner group'} or an admin may do this for "
        f"{service.service_ref}"
    )


@router.get("/services/{kind}/{namespace}/{name}")
def service_status(
    kind: str,
    namespace: str,
    name: str,
    request: Request,
    window: str = Query("24h"),
    _: Principal = ReadPrincipal,
) -> Response:
    with session_scope(_factory(request)) as session:
        service = _service(session, kind, namespace, name)
        return _json(reports.service_report(session, service, window, utcnow()))


class IngestTokenCreate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def _token_view(record: ApiToken) -> dict:
    return {
        "id": record.id,
        "name": record.name,
        "tokenPrefix": record.token_prefix,
        "serviceRef": record.service_ref,
        "createdAt": record.created_at.isoformat(),
        "revokedAt": record.revoked_at.isoformat() if record.revoked_at else None,
    }


@router.post("/services/{kind}/{namespace}/{name}/ingest-tokens", status_code=201)
def issue_ingest_token(
    kind: str,
    namespace: str,
    name: str,
    request: Request,
    body: IngestTokenCreate | None = None,
    principal: Principal = WritePrincipal,
) -> dict:
    """A write-only token that may push usage for this service only (shown once)."""
    with session_scope(_factory(request)) as session:
        service = _service(session, kind, namespace, name)
        _check_owner(principal, service)
        created = ingest_tokens.issue(
            session,
            service.service_ref,
            owner_group=service.owner,
            created_by=principal.subject,
            name=body.name if body else None,
            expires_in_days=body.expires_in_days if body else None,
        )
        return {**_token_view(created.record), "token": created.token}


@router.get("/services/{kind}/{namespace}/{name}/ingest-tokens")
def list_ingest_tokens(
    kind: str, namespace: str, name: str, request: Request, principal: Principal = WritePrincipal
) -> dict:
    with session_scope(_factory(request)) as session:
        service = _service(session, kind, namespace, name)
        _check_owner(principal, service)
        rows = ingest_tokens.list_for(session, service.service_ref)
        return {"items": [_token_view(r) for r in rows]}


@router.delete("/services/{kind}/{namespace}/{name}/ingest-tokens/{token_id}", status_code=204)
def revoke_ingest_token(
    kind: str,
    namespace: str,
    name: str,
    token_id: str,
    request: Request,
    principal: Principal = WritePrincipal,
) -> None:
    with session_scope(_factory(request)) as session:
        service = _service(session, kind, namespace, name)
        _check_owner(principal, service)
        ingest_tokens.revoke(session, service.service_ref, token_id)
    # Other portal processes stop accepting it within sla_ingest_token_cache_s.
    token_cache(request.app.state).forget(token_id)


@router.post("/services/{kind}/{namespace}/{name}/evaluations", status_code=201)
async def post_evaluation(
    kind: str, namespace: str, name: str, request: Request, principal: Principal = AnyPrincipal
) -> dict:
    """An evaluation result (the JSON ``make eval`` writes): by the service's ingest
    token, its owner group or an admin."""
    try:
        body = await request.json()
    except ValueError:
        raise InputError("the body must be JSON (the output of `make eval`)") from None

    def work() -> dict:
        with session_scope(_factory(request)) as session:
            service = _service(session, kind, namespace, name)
            if principal.purpose == "ingest":
                if normalize_ref(principal.service_ref or "") != service.service_ref:
                    raise NotAllowedError(
                        f"this ingest token belongs to {principal.service_ref}, "
                        f"not {service.service_ref}"
                    )
            elif not principal.has_scope("write"):
                raise NotAllowedError("posting an evaluation needs a write token")
            else:
                _check_owner(principal, service)
            e = evaluations.record_evaluation(
                session, service.service_ref, body, utcnow(), principal.subject
            )
            return {"id": e.id, "createdAt": e.created_at.isoformat(), "metrics": e.metrics}

    return await run_in_threadpool(work)


@router.get("/services/{kind}/{namespace}/{name}/evaluations")
def get_evaluations(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> dict:
    with session_scope(_factory(request)) as session:
        service = _service(session, kind, namespace, name)
        return {
            "items": [
                {
                    "id": e.id,
                    "createdAt": e.created_at.isoformat(),
                    "dataset": e.dataset,
                    "metrics": e.metrics,
                }
                for e in evaluations.list_evaluations(session, service.service_ref)
            ]
        }


# -- fleet ---------------------------------------------------------------------------


@router.get("/costs")
def cost_summary(
    request: Request,
    group_by: str = Query("service", alias="groupBy"),
    window: str = Query("30d"),
    _: Principal = ReadPrincipal,
) -> Response:
    with session_scope(_factory(request)) as session:
        return _json(reports.cost_summary(session, group_by, window, utcnow()))


def _alert_view(alert) -> dict:  # type: ignore[no-untyped-def]
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": alert.id,
        "alertname": alert.alertname,
        "service": alert.service_ref,
        "group": alert.group_ref,
        "severity": alert.severity,
        "state": alert.state,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": iso(alert.starts_at),
        "endsAt": iso(alert.ends_at),
    }


@router.get("/alerts")
def alerts(
    request: Request,
    state: str | None = Query(None, pattern="^(firing|resolved)$"),
    service: str | None = Query(None),
    group: str | None = Query(None, description="owner group: its budget alerts and its services'"),
    limit: int = Query(200, ge=1, le=1000),
    _: Principal = ReadPrincipal,
) -> dict:
    ref = normalize_ref(service, path="service") if service else None
    owner = normalize_ref(group, default_kind="group", path="group").lower() if group else None
    with session_scope(_factory(request)) as session:
        found = list_alerts(session, state=state, service_ref=ref, group_ref=owner, limit=limit)
        return {"items": [_alert_view(a) for a in found]}


class PriceTable(BaseModel):
    prices: dict[str, float] = Field(
        description="'gpu:<class>' $/GPU-hour, cpu_core_hour, memory_gb_hour, storage_gb_month"
    )


@router.get("/prices")
def get_prices(request: Request, _: Principal = ReadPrincipal) -> dict:
    with session_scope(_factory(request)) as session:
        return {"prices": costs.get_prices(session), "currency": "USD"}


@router.put("/prices")
def put_prices(body: PriceTable, request: Request, principal: Principal = AdminPrincipal) -> dict:
    with session_scope(_factory(request)) as session:
        costs.set_prices(session, body.prices, utcnow(), principal.subject)
        return {"prices": costs.get_prices(session), "currency": "USD"}


class BudgetSet(BaseModel):
    monthlyUsd: float = Field(ge=0, allow_inf_nan=False)  # noqa: N815 (API field name)


def _group_view(row: GroupBudget) -> dict:
    return {
        "ref": row.group_ref,
        "monthlyUsd": row.monthly_usd,
        "source": "group",
        "updatedAt": row.updated_at.isoformat(),
        "updatedBy": row.updated_by,
    }


def _budget_ref(kind: str, namespace: str, name: str) -> str:
    ref = normalize_ref(f"{kind}:{namespace}/{name}", path="ref")
    # Owners are compared lower-cased (group_ref), as Backstage compares refs.
    return ref.lower() if ref.startswith("group:") else ref


@router.get("/budgets")
def get_budgets(request: Request, _: Principal = ReadPrincipal) -> dict:
    """Service budgets (override or annotation) in ``items``, group budgets in ``groups``."""
    with session_scope(_factory(request)) as session:
        overrides = {b.ref: b.monthly_usd for b in session.scalars(select(Budget))}
        items = []
        for s in session.scalars(select(SlaService).order_by(SlaService.service_ref)):
            budget = overrides.pop(s.service_ref, None)
            items.append(
                {
                    "ref": s.service_ref,
                    "monthlyUsd": budget if budget is not None else s.monthly_budget_usd,
                    "source": "override" if budget is not None else "annotation",
                }
            )
        items += [{"ref": r, "monthlyUsd": v, "source": "override"} for r, v in overrides.items()]
        groups = session.scalars(select(GroupBudget).order_by(GroupBudget.group_ref))
        return {"items": items, "groups": [_group_view(g) for g in groups]}


@router.get("/budgets/{kind}/{namespace}/{name}")
def get_budget(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> dict:
    """One budget: a group's (kind ``group``), or a service's override or annotation."""
    ref = _budget_ref(kind, namespace, name)
    with session_scope(_factory(request)) as session:
        if ref.startswith("group:"):
            row = session.get(GroupBudget, ref)
            if row is None:
                raise NotFoundError(f"no budget for {ref}; set one with PUT")
            return _group_view(row)
        override = session.get(Budget, ref)
        if override is not None:
            return {"ref": ref, "monthlyUsd": override.monthly_usd, "source": "override"}
        service = session.get(SlaService, ref)
        if service is None or service.monthly_budget_usd is None:
            raise NotFoundError(f"no budget for {ref}")
        return {"ref": ref, "monthlyUsd": service.monthly_budget_usd, "source": "annotation"}


@router.put("/budgets/{kind}/{namespace}/{name}")
def put_budget(
    kind: str,
    namespace: str,
    name: str,
    body: BudgetSet,
    request: Request,
    principal: Principal = AdminPrincipal,
) -> dict:
    """Sets the monthly budget of an owner group (kind ``group``: alerts on the sum of its
    services' spend) or of a service (overrides its annotation)."""
    ref = _budget_ref(kind, namespace, name)
    now = utcnow()
    with session_scope(_factory(request)) as session:
        if ref.startswith("group:"):
            group = session.get(GroupBudget, ref)
            if group is None:
                group = GroupBudget(group_ref=ref, monthly_usd=body.monthlyUsd, updated_at=now)
                session.add(group)
            group.monthly_usd = body.monthlyUsd
            group.updated_at = now
            group.updated_by = principal.subject
            session.flush()
            return _group_view(group)
        row = session.get(Budget, ref)
        if row is None:
            row = Budget(ref=ref, monthly_usd=body.monthlyUsd, updated_at=now)
            session.add(row)
        row.monthly_usd = body.monthlyUsd
        row.updated_at = now
        row.updated_by = principal.subject
        return {"ref": ref, "monthlyUsd": row.monthly_usd, "source": "override"}


@router.delete("/budgets/{kind}/{namespace}/{name}", status_code=204)
def delete_budget(
    kind: str, namespace: str, name: str, request: Request, _: Principal = AdminPrincipal
) -> None:
    ref = _budget_ref(kind, namespace, name)
    with session_scope(_factory(request)) as session:
        table = GroupBudget if ref.startswith("group:") else Budget
        row = session.get(table, ref)
        if row is None:
            what = "budget" if table is GroupBudget else "budget override"
            raise NotFoundError(f"no {what} for {ref}")
        session.delete(row)
