"""Token creation, lookup and revocation; who may do what."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import InputError, NotFoundError
from portal_backend.auth.models import ApiToken

SCOPES = ("read", "write", "admin")
PURPOSES = ("api", "ingest")
TOKEN_PREFIX = "rp_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an entity ref, a scope, and the group it may write for."""

    subject: str
    scope: str
    group: str | None = None
    token_id: str | None = None
    purpose: str = "api"
    service_ref: str | None = None
    # When the token stops being valid (None = never), so callers that cache a verified
    # principal never keep it past its token's expiry.
    expires_at: datetime | None = None

    def has_scope(self, needed: str) -> bool:
        if self.purpose != "api":
            return False
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    @property
    def is_admin(self) -> bool:
        return self.has_scope("admin")

    @property
    def is_anonymous(self) -> bool:
        return self.token_id is None and self.subject == ANONYMOUS.subject


ANONYMOUS = Principal(subject="user:default/guest", scope="read")
BOOTSTRAP_SUBJECT = "user:default/bootstrap"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedToken:
    token: str  # the plain value: returned once, never stored
    record: ApiToken


def create_token(
    session: Session,
    *,
    name: str,
    scope: str,
    subject: str,
    owner_group: str | None = None,
    purpose: str = "api",
    service_ref: str | None = None,
    created_by: str | None = None,
    expires_in_days: int | None = None,
) -> CreatedToken:
    if scope not in SCOPES:
        raise InputError(
            f"scope must be one of {', '.join(SCOPES)}, got {scope!r}",
        )
    if purpose not in PURPOSES:
        raise InputError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    if purpose == "ingest" and not service_ref:
        raise InputError("an ingest token needs the service it pushes usage for (service_ref)")
    if not name.strip():
        raise InputError("name must not be empty: give the token a name you will recognise")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = ApiToken(
        id=str(uuid.uuid4()),
        name=name.strip(),
        token_hash=hash_token(plain),
        token_prefix=plain[:10],
        scope=scope,
        purpose=purpose,
        subject=subject,
        owner_group=owner_group,
        service_ref=service_ref,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(record)
    session.flush()
    return CreatedToken(token=plain, record=record)


def authenticate(session: Session, token: str, bootstrap_token: str | None) -> Principal | None:
    """The principal for a presented token, or None when it is unknown, revoked or expired."""
    if bootstrap_token and hmac.compare_digest(token.encode(), bootstrap_token.encode()):
        return Principal(subject=BOOTSTRAP_SUBJECT, scope="admin")
    record = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).first()
    if record is None or record.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    expires_at = record.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:  # SQLite returns naive datetimes
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
            return None
    return Principal(
        subject=record.subject,
        scope=record.scope,
        group=record.owner_group,
        token_id=record.id,
        purpose=record.purpose,
        service_ref=record.service_ref,
        expires_at=expires_at,
    )


def list_tokens(session: Session, include_revoked: bool = False) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: str) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None:
        raise NotFoundError(f"no token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
    return record
