"""Scorecard runs over every RAG service, their history, and the team and fleet views."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from catalog.entity_reads import EntityReads
from catalog.errors import InputError, NotFoundError
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.logging import get_logger
from portal_backend.scorecards import definitions, facts
from portal_backend.scorecards.evaluate import FAIL, PASS, UNKNOWN, Scorecard, score
from portal_backend.scorecards.tables import ScorecardSnapshot
from portal_backend.settings import Settings
from portal_backend.sla.refs import group_ref, normalize_ref

log = get_logger(__name__)
SERVICES = ["kind=component,spec.type=rag-service"]
STATUS_SECTION = "scorecard"  # status.scorecard.level is what the catalog filters on
NO_LEVEL = "none"  # status.scorecard.level of a service below the first level


def _status(card: Scorecard, levels: list[str]) -> dict[str, Any]:
    return {
        "level": card.level or NO_LEVEL,
        "levels": levels,
        "passed": card.count(PASS),
        "failed": card.count(FAIL),
        "unknown": card.count(UNKNOWN),
        "total": len(card.results),
        "failing": [r["id"] for r in card.results if r["state"] != PASS],
    }


def run(settings: Settings, factory: sessionmaker[Session], now: datetime) -> dict[str, Any]:
    """Score every RAG service with the active checks: one snapshot each (the history),
    and ``status.scorecard`` on its entity, written only when it changed."""
    with session_scope(factory) as session:
        try:
            active = definitions.active(session, settings)
        except InputError as exc:  # a bad file: keep the last scorecards, say why
            log.error("scorecards.checks_invalid", error=exc.message)
            return {"services": 0, "error": exc.message}
        refs = [
            f"component:{e['metadata'].get('namespace', 'default')}/{e['metadata']['name']}"
            for e in EntityReads(session).iter_entities(filters=SERVICES, fields=["metadata"])
        ]
    run_id = str(uuid.uuid4())
    digest = active.checks.digest()
    levels: dict[str, int] = {}
    for ref in refs:  # one transaction per service: a slow one holds no other
        with session_scope(factory) as session:
            entity = CatalogService(session).get_by_ref(ref)
            if entity is None:  # removed since the list was read
                continue
            card = score(facts.Subject(session, entity, now), active.checks)
            owner = (entity.get("spec") or {}).get("owner")
            try:
                owner_ref = group_ref(str(owner)) if owner else None
            except InputError:
                owner_ref = None
            session.add(
                ScorecardSnapshot(
                    run_id=run_id,
                    entity_ref=ref.lower(),
                    owner=owner_ref,
                    computed_at=now,
                    level=card.level,
                    passed=card.count(PASS),
                    failed=card.count(FAIL),
                    unknown=card.count(UNKNOWN),
                    checks_digest=digest,
                    results=card.results,
                )
            )
            status = _status(card, active.checks.levels)
            if (entity.get("status") or {}).get(STATUS_SECTION) != status:
                CatalogService(session).set_status(ref, STATUS_SECTION, status)
            levels[card.level or NO_LEVEL] = levels.get(card.level or NO_LEVEL, 0) + 1
    with session_scope(factory) as session:
        cutoff = now - timedelta(days=settings.scorecard_history_days)
        session.execute(delete(ScorecardSnapshot).where(ScorecardSnapshot.computed_at < cutoff))
    return {"runId": run_id, "services": len(refs), "levels": levels, "checks": active.source}


def _view(row: ScorecardSnapshot) -> dict[str, Any]:
    return {
        "entityRef": row.entity_ref,
        "owner": row.owner,
        "computedAt": row.computed_at.isoformat(),
        "runId": row.run_id,
        "level": row.level or NO_LEVEL,
        "passed": row.passed,
        "failed": row.failed,
        "unknown": row.unknown,
        "checks": row.results,
    }


def current(session: Session, ref: str) -> dict[str, Any]:
    """The service's latest scorecard (404 before its first run)."""
    entity_ref = normalize_ref(ref, path="entityRef").lower()
    row = session.scalars(
        select(ScorecardSnapshot)
        .where(ScorecardSnapshot.entity_ref == entity_ref)
        .order_by(ScorecardSnapshot.computed_at.desc(), ScorecardSnapshot.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFoundError(
            f"{entity_ref} has no scorecard yet: scorecards are computed for RAG services "
            "every RAGPORTAL_SCORECARD_INTERVAL_S (or POST /api/scorecards/run)"
        )
    return _view(row)


def history(session: Session, ref: str, limit: int = 50) -> dict[str, Any]:
    """Newest first: each run's level and every check's state then."""
    entity_ref = normalize_ref(ref, path="entityRef").lower()
    rows = session.scalars(
        select(ScorecardSnapshot)
        .where(ScorecardSnapshot.entity_ref == entity_ref)
        .order_by(ScorecardSnapshot.computed_at.desc(), ScorecardSnapshot.id.desc())
        .limit(limit)
    ).all()
    return {
        "entityRef": entity_ref,
        "items": [
            {
                "computedAt": r.computed_at.isoformat(),
                "level": r.level or NO_LEVEL,
                "passed": r.passed,
                "failed": r.failed,
                "unknown": r.unknown,
                "states": {c["id"]: c["state"] for c in r.results},
            }
            for r in rows
        ],
    }


def service_page(session: Session, settings: Settings, ref: str, runs: int = 10) -> dict[str, Any]:
    """The Scorecard tab: the latest scorecard (None before the first run), its checks
    grouped by level (lowest first), and the last ``runs`` runs."""
    try:
        card: dict[str, Any] | None = current(session, ref)
    except NotFoundError:
        card = None
    levels = _levels(session, settings)
    by_level: list[dict[str, Any]] = []
    if card is not None:
        order = [*levels, *sorted({c["level"] for c in card["checks"]} - set(levels))]
        for level in order:
            checks = [c for c in card["checks"] if c["level"] == level]
            if checks:
                by_level.append({"level": level, "checks": checks})
    return {
        "card": card,
        "levels": levels,
        "by_level": by_level,
        "history": history(session, ref, runs)["items"] if card is not None else [],
    }


def latest_per_service(session: Session, owner: str | None = None) -> list[ScorecardSnapshot]:
    newest = (
        select(ScorecardSnapshot.entity_ref, func.max(ScorecardSnapshot.computed_at).label("at"))
        .group_by(ScorecardSnapshot.entity_ref)
        .subquery()
    )
    query = select(ScorecardSnapshot).join(
        newest,
        (ScorecardSnapshot.entity_ref == newest.c.entity_ref)
        & (ScorecardSnapshot.computed_at == newest.c.at),
    )
    if owner is not None:
        query = query.where(ScorecardSnapshot.owner == owner)
    rows: dict[str, ScorecardSnapshot] = {}
    for row in session.scalars(query):  # one per service even if a run wrote it twice
        if row.entity_ref not in rows or (row.id or 0) > (rows[row.entity_ref].id or 0):
            rows[row.entity_ref] = row
    return list(rows.values())


def _rank(levels: list[str], level: str | None) -> int:
    return levels.index(level) + 1 if level in levels else 0


def fleet(
    session: Session,
    settings: Settings,
    *,
    owner: str | None = None,
    level: str | None = None,
) -> dict[str, Any]:
    """Every scored service, worst first (lowest level, then most failing checks), and a
    summary per owner team, worst first too."""
    levels = _levels(session, settings)
    owner_ref = normalize_ref(owner, default_kind="group", path="owner").lower() if owner else None
    if level is not None and level != NO_LEVEL and level not in levels:
        raise InputError(
            f"level must be one of {', '.join([NO_LEVEL, *levels])}, got {level!r}",
        )
    rows = latest_per_service(session, owner_ref)
    if level is not None:
        rows = [r for r in rows if (r.level or NO_LEVEL) == level]
    rows.sort(key=lambda r: (_rank(levels, r.level), -r.failed, -r.unknown, r.entity_ref))
    teams: dict[str, dict[str, Any]] = {}
    for row in rows:
        team = teams.setdefault(
            row.owner or "unowned",
            {"owner": row.owner or "unowned", "services": 0, "levels": {}, "failed": 0},
        )
        team["services"] += 1
        team["levels"][row.level or NO_LEVEL] = team["levels"].get(row.level or NO_LEVEL, 0) + 1
        team["failed"] += row.failed
        team["worst"] = min(team.get("worst", len(levels) + 1), _rank(levels, row.level))
    ordered = sorted(teams.values(), key=lambda t: (t["worst"], -t["failed"], t["owner"]))
    for team in ordered:
        worst = team.pop("worst")
        team["worstLevel"] = levels[worst - 1] if worst else NO_LEVEL
    return {
        "levels": levels,
        "owner": owner_ref,
        "items": [
            {**_view(r), "checks": [c for c in r.results if c["state"] != PASS]} for r in rows
        ],
        "teams": ordered,
    }


def _levels(session: Session, settings: Settings) -> list[str]:
    try:
        return definitions.active(session, settings).checks.levels
    except InputError:
        return ["bronze", "silver", "gold"]
