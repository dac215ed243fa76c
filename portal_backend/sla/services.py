"""The services the SLA domain tracks, read from their catalog entities.

Targets, budget and provisioned resources come from the Component's ``rag-portal.io/``
annotations; the deployment state from ``status.deployment``. A copy lives in
``sla_services`` so that fleet queries (1,000 services) never parse entity bodies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog.service import CatalogService
from portal_backend import metadata_keys
from portal_backend.sla.refs import group_ref, normalize_ref
from portal_backend.sla.rollups import insert_ignore
from portal_backend.sla.slo import Targets
from portal_backend.sla.tables import Budget, SlaService

SERVICE_FILTER = {"kind": "component", "spec.type": metadata_keys.RAG_SERVICE_TYPE}


def _number(annotations: dict[str, Any], key: str) -> float | None:
    value = annotations.get(key)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None  # a malformed annotation is reported by the catalog validation, not here


def service_from_entity(entity: dict[str, Any], now: datetime) -> dict[str, Any]:
    metadata = entity.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    deployment = (entity.get("status") or {}).get("deployment") or {}
    ref = normalize_ref(
        f"{entity.get('kind', 'component')}:{metadata.get('namespace') or 'default'}/"
        f"{metadata['name']}"
    )
    return {
        "service_ref": ref,
        "owner": group_ref((entity.get("spec") or {}).get("owner")),
        "namespace": annotations.get(metadata_keys.NAMESPACE)
        or annotations.get(metadata_keys.SERVICE)
        or metadata["name"],
        "cluster": deployment.get("cluster") or annotations.get(metadata_keys.CLUSTER),
        "slo_p95_latency_ms": _number(annotations, metadata_keys.SLO_P95_LATENCY_MS),
        "slo_success_rate": _number(annotations, metadata_keys.SLO_SUCCESS_RATE),
        "monthly_budget_usd": _number(annotations, metadata_keys.MONTHLY_BUDGET_USD),
        "gpu_class": annotations.get(metadata_keys.GPU_CLASS),
        "gpus": _number(annotations, metadata_keys.GPUS),
        "replicas": _number(annotations, metadata_keys.REPLICAS),
        "deployment_state": deployment.get("state"),
        "synced_at": now,
    }


def upsert_services(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    refs = [r["service_ref"] for r in rows]
    existing = set(
        session.scalars(select(SlaService.service_ref).where(SlaService.service_ref.in_(refs)))
    )
    new = [r for r in rows if r["service_ref"] not in existing]
    insert_ignore(session, SlaService.__table__, new)
    for row in rows:
        if row["service_ref"] in existing:
            session.execute(
                SlaService.__table__.update()
                .where(SlaService.service_ref == row["service_ref"])
                .values(**row)
            )


def sync_from_catalog(session: Session, now: datetime) -> list[str]:
    """Copies every RAG service Component into ``sla_services``; returns their refs.

    A tracked service whose entity is gone (torn down, unregistered) keeps its history
    but loses its deployment state: nothing of it runs any more, so nothing accrues.
    """
    catalog = CatalogService(session)
    refs = catalog.query_refs(SERVICE_FILTER)
    rows = [
        service_from_entity(entity, now)
        for entity in catalog.get_by_refs(refs)
        if entity is not None
    ]
    upsert_services(session, rows)
    present = [r["service_ref"] for r in rows]
    session.execute(
        update(SlaService)
        .where(SlaService.service_ref.not_in(present), SlaService.deployment_state.is_not(None))
        .values(deployment_state=None, synced_at=now)
    )
    return present


def find(session: Session, ref: str, now: datetime) -> SlaService | None:
    """The tracked service for ``ref``, refreshed from its entity when there is one (a
    service whose entity is gone keeps its history), or None when neither exists."""
    return sync_one(session, ref, now) or session.get(SlaService, normalize_ref(ref))


def sync_one(session: Session, ref: str, now: datetime) -> SlaService | None:
    """The service for ``ref`` fresh from the catalog, or None when there is no entity."""
    entity = CatalogService(session).get_by_ref(ref)
    if entity is None:
        return None
    upsert_services(session, [service_from_entity(entity, now)])
    return session.get(SlaService, normalize_ref(ref))


def targets_of(service: SlaService) -> Targets:
    rate = service.slo_success_rate
    return Targets(
        success_rate=rate / 100 if rate is not None else None,
        p95_latency_ms=service.slo_p95_latency_ms,
    )


def budget_of(session: Session, service: SlaService) -> float | None:
    """Admin-set budget if any, else the entity's annotation."""
    override = session.get(Budget, service.service_ref)
    return override.monthly_usd if override else service.monthly_budget_usd


def write_status(session: Session, ref: str, section: str, value: dict[str, Any]) -> bool:
    """Writes ``status.<section>`` on the entity; False when the entity is gone."""
    from catalog.errors import NotFoundError

    try:
        CatalogService(session).set_status(ref, section, value)
    except NotFoundError:
        return False
    return True
