"""A template's fleet: which services are on which version (drift), upgrading every
service behind in one request, and that request's summary.

A service's version is its Component's ``rag-portal.io/template-version`` annotation,
stamped from the repository's answers file when catalog:register reads it; ``refresh``
re-reads the answers files of the default branches (a team merged an upgrade branch).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import NotFoundError, PortalError
from catalog.refs import RefError, parse_ref
from portal_backend import metadata_keys
from portal_backend.db import session_scope
from portal_backend.scaffolder import catalog_port, engine, store, upgrades, version_store, versions
from portal_backend.scaffolder.actions.catalog import register_published
from portal_backend.scaffolder.upgrade_tables import FleetUpgrade, TemplateUpgrade
from portal_backend.settings import Settings


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def service_refs(session: Session, template_ref: str) -> list[str]:
    """The Components generated from the template (their source-template annotation)."""
    key = f"metadata.annotations.{metadata_keys.SOURCE_TEMPLATE}"
    return catalog_port.query_refs(session, {"kind": "component", key: template_ref})


def _services(session: Session, template_ref: str) -> list[dict[str, Any]]:
    return catalog_port.get_by_refs(session, service_refs(session, template_ref))


def _upgrade_view(session: Session, row: TemplateUpgrade | None) -> dict[str, Any] | None:
    if row is None:
        return None
    task = store.get_task(session, row.task_id) if row.task_id else None
    return {
        "taskId": row.task_id,
        "taskStatus": task.status if task else "open",
        "fromVersion": row.from_version,
        "toVersion": row.to_version,
        "result": row.result,
        "branch": row.branch,
        "files": row.file_counts or {},
        "createdAt": _iso(row.created_at),
        "outcome": _outcome(row, task.status if task else "open"),
    }


def _outcome(row: TemplateUpgrade, task_status: str) -> str:
    """merged clean | conflicts | up to date | failed | running."""
    if task_status in ("failed", "cancelled"):
        return "failed"
    if task_status != "completed":
        return "running"
    return {"merged": "merged clean", "conflicts": "conflicts"}.get(row.result or "", "up to date")


def last_upgrade(session: Session, entity_ref: str) -> TemplateUpgrade | None:
    return session.scalars(
        select(TemplateUpgrade)
        .where(TemplateUpgrade.entity_ref == entity_ref)
        .order_by(TemplateUpgrade.created_at.desc())
        .limit(1)
    ).first()


def drift(factory: sessionmaker[Session], template_ref: str) -> dict[str, Any]:
    """Per version, the services on it; per service, how far behind the latest it is."""
    with session_scope(factory) as session:
        recorded = version_store.list_versions(session, template_ref)
        if not recorded:
            raise NotFoundError(f"no version of {template_ref} is recorded")
        known = [v.version for v in recorded]
        latest = known[-1]
        services = []
        for entity in _services(session, template_ref):
            meta = entity["metadata"]
            ref = catalog_port.entity_ref(entity)
            version = (meta.get("annotations") or {}).get(metadata_keys.TEMPLATE_VERSION)
            try:
                version = versions.normalize(version) if version else None
            except versions.VersionError:
                version = None
            behind = len(versions.between(known, version, latest)) if version else None
            services.append(
                {
                    "entityRef": ref,
                    "name": meta["name"],
                    "owner": (entity.get("spec") or {}).get("owner"),
                    "version": version,
                    "behind": behind,
                    "distance": versions.distance(version, latest) if version else "unknown",
                    "lastUpgrade": _upgrade_view(session, last_upgrade(session, ref)),
                }
            )
        fleets = latest_fleets(session, template_ref, limit=1)
    by_version = [
        {
            **version_store.describe(info),
            "services": sorted(s["name"] for s in services if s["version"] == info.version),
        }
        for info in recorded
    ]
    return {
        "templateRef": template_ref,
        "latest": latest,
        "versions": list(reversed(by_version)),
        "services": sorted(
            services, key=lambda s: (s["behind"] is None, -(s["behind"] or 0), s["name"])
        ),
        "behind": sum(1 for s in services if s["behind"]),
        "unknown": sum(1 for s in services if s["version"] is None),
        "lastFleetUpgrade": fleets[0] if fleets else None,
    }


def service_drift(factory: sessionmaker[Session], entity: dict[str, Any]) -> dict[str, Any] | None:
    """What the entity page shows: template, version, latest and the changelog between."""
    annotations = (entity.get("metadata") or {}).get("annotations") or {}
    template_ref = str(annotations.get(metadata_keys.SOURCE_TEMPLATE) or "").lower()
    if not template_ref:
        return None
    version = annotations.get(metadata_keys.TEMPLATE_VERSION)
    with session_scope(factory) as session:
        recorded = version_store.list_versions(session, template_ref)
        if not recorded:
            return None
        latest = recorded[-1].version
        try:
            version = versions.normalize(version) if version else None
        except versions.VersionError:
            version = None
        changelog = (
            version_store.changelog_between(session, template_ref, version, latest)
            if version != latest
            else []
        )
        upgrade = _upgrade_view(session, last_upgrade(session, catalog_port.entity_ref(entity)))
    return {
        "templateRef": template_ref,
        "version": version,
        "latest": latest,
        "available": version is None or versions.parse(version) < versions.parse(latest),
        "versions": [v.version for v in recorded],
        "changelog": changelog,
        "lastUpgrade": upgrade,
    }


def refresh(
    settings: Settings, factory: sessionmaker[Session], template_ref: str
) -> dict[str, Any]:
    """Re-read every service's answers file on its default branch into its Component's
    annotations (after teams merged upgrade branches)."""
    with session_scope(factory) as session:
        entities = _services(session, template_ref)
    refreshed, failed = [], []
    for entity in entities:
        ref = catalog_port.entity_ref(entity)
        location = str((entity["metadata"].get("annotations") or {}).get(upgrades.LOCATION, ""))
        url = location.removeprefix("url:")
        try:
            register_published(url, url.rsplit("/", 1)[0], settings, factory)
            refreshed.append(ref)
        except Exception as exc:  # one unreadable repository must not stop the others
            failed.append({"entityRef": ref, "message": str(exc)})
    return {"refreshed": refreshed, "failed": failed}


def submit_fleet(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    template_ref: str,
    user_ref: str,
    dispatch: engine.Dispatch,
    to_version: str | None = None,
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One upgrade task per service behind on ``template_ref``; services whose upgrade
    cannot start (unknown version, answers missing, one already running) are listed as
    refused with the reason, and the others still go."""
    view = drift(factory, template_ref)
    target = versions.normalize(to_version) if to_version else view["latest"]
    if target not in [v["version"] for v in view["versions"]]:
        raise NotFoundError(f"version {target} of {template_ref} is not recorded")
    fleet_id = str(uuid.uuid4())
    started, refused = [], []
    with session_scope(factory) as session:
        session.add(
            FleetUpgrade(
                id=fleet_id,
                template_ref=template_ref,
                to_version=target,
                refused=[],
                created_by=user_ref,
                created_at=datetime.now(UTC),
            )
        )
    for service in view["services"]:
        if service["version"] is None:
            refused.append(
                {
                    "entityRef": service["entityRef"],
                    "message": "unknown version: adopt it first (POST /api/scaffolder/v2/"
                    "upgrades with entityRef and fromVersion)",
                }
            )
            continue
        if versions.parse(service["version"]) >= versions.parse(target):
            continue
        try:
            answer = upgrades.submit_upgrade(
                settings,
                factory,
                entity_ref=service["entityRef"],
                user_ref=user_ref,
                dispatch=dispatch,
                to_version=target,
                values=values,
                fleet_id=fleet_id,
            )
        except PortalError as exc:
            detail = "; ".join(f"{d.path}: {d.message}" for d in exc.details)
            refused.append(
                {"entityRef": service["entityRef"], "message": f"{exc.message} {detail}".strip()}
            )
            continue
        if answer["id"]:
            started.append({"entityRef": service["entityRef"], "taskId": answer["id"]})
    with session_scope(factory) as session:
        row = session.get(FleetUpgrade, fleet_id)
        assert row is not None
        row.refused = refused
        session.add(row)
    return {
        "id": fleet_id,
        "templateRef": template_ref,
        "toVersion": target,
        "upgrades": started,
        "refused": refused,
    }


def fleet_view(session: Session, row: FleetUpgrade) -> dict[str, Any]:
    items = session.scalars(select(TemplateUpgrade).where(TemplateUpgrade.fleet_id == row.id)).all()
    services = []
    for item in items:
        view = _upgrade_view(session, item)
        assert view is not None
        services.append({"entityRef": item.entity_ref, **view})
    for refusal in row.refused or []:
        services.append({**refusal, "outcome": "failed", "taskId": None})
    counts = {"merged clean": 0, "conflicts": 0, "failed": 0, "running": 0, "up to date": 0}
    for service in services:
        counts[service["outcome"]] += 1
    return {
        "id": row.id,
        "templateRef": row.template_ref,
        "toVersion": row.to_version,
        "createdBy": row.created_by,
        "createdAt": _iso(row.created_at),
        "counts": counts,
        "done": counts["running"] == 0,
        "services": sorted(services, key=lambda s: s["entityRef"]),
    }


def get_fleet(factory: sessionmaker[Session], fleet_id: str) -> dict[str, Any]:
    with session_scope(factory) as session:
        row = session.get(FleetUpgrade, fleet_id)
        if row is None:
            raise NotFoundError(f"fleet upgrade {fleet_id} not found")
        return fleet_view(session, row)


def latest_fleets(session: Session, template_ref: str, limit: int = 5) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(FleetUpgrade)
        .where(FleetUpgrade.template_ref == template_ref)
        .order_by(FleetUpgrade.created_at.desc())
        .limit(limit)
    ).all()
    return [fleet_view(session, r) for r in rows]


def template_ref_of(namespace: str, kind: str, name: str) -> str:
    if kind.lower() != "template":
        raise NotFoundError(f"{kind}:{namespace}/{name} is not a template")
    try:
        return str(parse_ref(f"template:{namespace}/{name}"))
    except RefError as exc:
        raise NotFoundError(f"there is no template {namespace}/{name}: {exc}") from exc
