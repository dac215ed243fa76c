"""Sessions of people signed in through the identity provider.

A session names the catalog user it resolved to at sign-in; its groups and scope are
looked up again on every request, so a change of ``memberOf`` (or of the admin group)
applies at once, and a user removed from the catalog is signed out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from portal_backend.auth import identity
from portal_backend.auth.identity import AccessPolicy
from portal_backend.auth.models import UserSession
from portal_backend.auth.service import GUEST_SUBJECT, Principal


def start_session(
    session: Session,
    *,
    subject: str,
    claim_groups: list[str],
    issuer: str,
    external_subject: str,
    guest: bool,
    lifetime: timedelta,
) -> UserSession:
    now = datetime.now(UTC)
    record = UserSession(
        id=str(uuid.uuid4()),
        subject=subject,
        claim_groups=claim_groups,
        issuer=issuer,
        external_subject=external_subject,
        guest=guest,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(record)
    session.flush()
    return record


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite drops the zone


def session_principal(session: Session, session_id: str, policy: AccessPolicy) -> Principal | None:
    """The principal of a live session, or None when it ended, expired or its user is
    no longer in the catalog."""
    record = session.get(UserSession, session_id)
    if record is None or record.ended_at is not None:
        return None
    expires_at = _aware(record.expires_at)
    if expires_at <= datetime.now(UTC):
        return None
    if record.guest:
        return Principal(
            subject=GUEST_SUBJECT, scope="read", session_id=record.id, expires_at=expires_at
        )
    user = identity.user_entity(session, record.subject)
    if user is None:
        return None
    groups = identity.merge_groups(identity.groups_of_entity(user), record.claim_groups)
    return Principal(
        subject=record.subject,
        scope=policy.scope_for(groups),
        groups=groups,
        session_id=record.id,
        expires_at=expires_at,
    )


def end_session(session: Session, session_id: str) -> None:
    record = session.get(UserSession, session_id)
    if record is not None and record.ended_at is None:
        record.ended_at = datetime.now(UTC)
