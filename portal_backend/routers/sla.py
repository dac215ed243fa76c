"""SLA and cost API, base ``/api/sla``: usage push, ingest tokens, SLO/cost reports,
alerts, price table, budgets, evaluations. Thin: the work is in portal_backend.sla."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from catalog.errors import InputError, NotFoundError
from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import (
    AdminPrincipal,
    ReadPrincipal,
    WritePrincipal,
    require_principal,
    token_cache,
    usage_push,
)
from portal_backend.sla import budgets, costs, evaluations, ingest_tokens, reports, services
from portal_backend.sla.access import (
    check_may_post_evaluation,
    check_may_set_budget,
    check_owner,
)
from portal_backend.sla.alerts import list_alerts
from portal_backend.sla.api_models import CostQuery, ServiceReportQuery
from portal_backend.sla.clock import utcnow
from portal_backend.sla.refs import normalize_ref
from portal_backend.sla.tables import Alert, SlaService

router = APIRouter(prefix="/api/sla", tags=["sla"])
AnyPrincipal = Depends(require_principal())


def _json(data: dict) -> Response:
    """Large read models go out through orjson (FastAPI's encoder is the slow part)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def _factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


@router.post("/usage")
async def push_usage(request: Request, principal: Principal = AnyPrincipal) -> dict:
    """A batch of usage records; the same batch_id twice changes nothing.

    Requests with an Authorization header are answered by the ASGI fast path in
    routers/sla_ingest.py before they reach this route (same contract)."""
    body = await request.body()
    return await run_in_threadpool(usage_push(request).push, body, principal)


# -- services ------------------------------------------------------------------------


def _service(session: Session, kind: str, namespace: str, name: str) -> SlaService:
    ref = normalize_ref(f"{kind}:{namespace}/{name}", path="ref")
    service = services.find(session, ref, utcnow())
    if service is None:
        raise NotFoundError(f"no service {ref} in the catalog")
    return service


@router.get("/services/{kind}/{namespace}/{name}")
def service_status(
    kind: str,
    namespace: str,
    name: str,
    request: Request,
    query: Annotated[ServiceReportQuery, Query()],
    _: Principal = ReadPrincipal,
) -> Response:
    with session_scope(_factory(request)) as session:
        service = _service(session, kind, namespace, name)
        return _json(reports.service_report(session, service, query.window, utcnow()))


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
        check_owner(principal, service)
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
        check_owner(principal, service)
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
        check_owner(principal, service)
        ref = service.service_ref
    ingest_tokens.revoke(_factory(request), token_cache(request), ref, token_id)


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
            check_may_post_evaluation(principal, service)
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
    query: Annotated[CostQuery, Query()],
    _: Principal = ReadPrincipal,
) -> Response:
    with session_scope(_factory(request)) as session:
        return _json(reports.cost_summary(session, query.groupBy, query.window, utcnow()))


def _alert_view(alert: Alert) -> dict[str, Any]:
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


@router.get("/budgets")
def get_budgets(request: Request, _: Principal = ReadPrincipal) -> dict:
    """Service budgets (override or annotation) in ``items``, group budgets in ``groups``."""
    with session_scope(_factory(request)) as session:
        return budgets.list_budgets(session)


@router.get("/budgets/{kind}/{namespace}/{name}")
def get_budget(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> dict:
    """One budget: a group's (kind ``group``), or a service's override or annotation."""
    ref = budgets.budget_ref(kind, namespace, name)
    with session_scope(_factory(request)) as session:
        return budgets.get_budget(session, ref)


@router.put("/budgets/{kind}/{namespace}/{name}")
def put_budget(
    kind: str,
    namespace: str,
    name: str,
    body: BudgetSet,
    request: Request,
    principal: Principal = WritePrincipal,
) -> dict:
    """Sets the monthly budget of an owner group (kind ``group``: alerts on the sum of its
    services' spend; admins) or of a service (overrides its annotation; its owner's
    members or admins)."""
    ref = budgets.budget_ref(kind, namespace, name)
    with session_scope(_factory(request)) as session:
        check_may_set_budget(session, principal, ref)
        return budgets.set_budget(session, ref, body.monthlyUsd, by=principal.subject, now=utcnow())


@router.delete("/budgets/{kind}/{namespace}/{name}", status_code=204)
def delete_budget(
    kind: str, namespace: str, name: str, request: Request, principal: Principal = WritePrincipal
) -> None:
    ref = budgets.budget_ref(kind, namespace, name)
    with session_scope(_factory(request)) as session:
        check_may_set_budget(session, principal, ref)
        budgets.delete_budget(session, ref)
