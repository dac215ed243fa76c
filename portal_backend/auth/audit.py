"""The audit log: every write, with who made it, through which credential, what it was,
when, and how it ended. Written by the HTTP layer (one row per write request, before the
answer leaves) and by sign-in and sign-out; read by admins.

Request bodies are never recorded: they may hold secrets (a cluster secret's value, a
token name is fine but a pasted token is not).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import InputError
from portal_backend.auth.models import AuditEvent
from portal_backend.auth.service import Principal

MAX_PAGE = 500


def record(
    session: Session,
    *,
    actor: str,
    credential: str,
    action: str,
    target: str = "",
    status: int,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=datetime.now(UTC),
        actor=actor[:255],
        credential=credential[:80],
        action=action[:300],
        target=target[:500],
        status=status,
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


def record_for(
    session: Session,
    principal: Principal,
    action: str,
    target: str = "",
    status: int = 200,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """An event by ``principal`` (its groups go into the details: what it could do then)."""
    return record(
        session,
        actor=principal.subject,
        credential=principal.credential,
        action=action,
        target=target,
        status=status,
        details={"groups": list(principal.groups), "scope": principal.scope, **(details or {})},
    )


def view(event: AuditEvent) -> dict[str, Any]:
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)
    return {
        "id": event.id,
        "at": at.isoformat(),
        "actor": event.actor,
        "credential": event.credential,
        "action": event.action,
        "target": event.target,
        "status": event.status,
        "details": event.details,
    }


def list_events(
    session: Session,
    *,
    limit: int = 100,
    before: int | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """Newest first; ``before`` (an event id) pages back; ``action`` matches a substring."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if actor:
        query = query.where(AuditEvent.actor == actor.strip())
    if action:
        query = query.where(AuditEvent.action.contains(action.strip()))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [view(e) for e in rows],
        "nextBefore": rows[-1].id if more and rows else None,
    }
