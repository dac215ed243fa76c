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
from portal_backend.auth import identity
from portal_backend.auth.identity import AccessPolicy
from portal_backend.auth.models import ApiToken

SCOPES = ("read", "write", "admin")
PURPOSES = ("api", "ingest")
TOKEN_PREFIX = "rp_"


@dataclass(frozen=True)
class Principal:
    """Who is calling, through which credential, and whose things they may change.

    One model for every credential: an API token, a signed-in session (OpenID Connect)
    and the bootstrap token. ``groups`` are the group refs the caller belongs to (a user:
    the catalog's ``memberOf``) or acts for (a token bound to one owner group); the caller
    owns what ``subject`` or one of ``groups`` owns. ``unrestricted``: a write token bound
    to neither a user nor a group (platform automation, as issued before sign-in existed)
    may change anything its scope allows.
    """

    subject: str
    scope: str
    groups: tuple[str, ...] = ()
    unrestricted: bool = False
    token_id: str | None = None
    session_id: str | None = None
    purpose: str = "api"
    service_ref: str | None = None
    # When the credential stops being valid (None = never), so callers that cache a
    # verified principal never keep it past its token's expiry.
    expires_at: datetime | None = None
    # Its rights are read from the catalog at each use (a token issued to a user: its
    # groups, capped scope, the user still being there), so callers never cache it.
    follows_catalog: bool = False

    def has_scope(self, needed: str) -> bool:
        if self.purpose != "api":
            return False
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    @property
    def is_admin(self) -> bool:
        return self.has_scope("admin")

    @property
    def is_anonymous(self) -> bool:
        return self.token_id is None and self.session_id is None and self.subject == GUEST_SUBJECT

    @property
    def group(self) -> str | None:
        """The first group (what pages show next to the name)."""
        return self.groups[0] if self.groups else None

    @property
    def owner_refs(self) -> tuple[str, ...]:
        """Refs whose things are the caller's: the user itself and its groups."""
        if self.subject.startswith("user:") and self.subject != GUEST_SUBJECT:
            return (self.subject, *self.groups)
        return self.groups

    @property
    def write_owners(self) -> tuple[str, ...] | None:
        """Owners the caller may write entities for; None = any (admins, unrestricted)."""
        if self.is_admin or self.unrestricted:
            return None
        return self.owner_refs

    def owns(self, owner_ref: str | None) -> bool:
        """Whether ``owner_ref`` (a normalised group or user ref) is the caller's."""
        return bool(owner_ref) and owner_ref in self.owner_refs

    def may_change_owned_by(self, owner_ref: str | None) -> bool:
        """Write actions on a thing owned by ``owner_ref``: its owner's members, admins,
        and unrestricted write tokens."""
        if not self.has_scope("write"):
            return False
        return self.is_admin or self.unrestricted or self.owns(owner_ref)

    @property
    def credential(self) -> str:
        """How the caller signed in, as the audit log records it."""
        if self.session_id:
            return f"session:{self.session_id}"
        if self.token_id:
            return f"token:{self.token_id}"
        if self.subject == BOOTSTRAP_SUBJECT:
            return "bootstrap-token"
        return "anonymous"


GUEST_SUBJECT = "user:default/guest"
ANONYMOUS = Principal(subject=GUEST_SUBJECT, scope="read")
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
    acts_as_user: bool = False,
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
    if acts_as_user:
        subject = _user_subject(session, subject)
        if owner_group:
            raise InputError(
                "a token issued to a user carries that user's groups; leave owner_group empty"
            )
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
        acts_as_user=acts_as_user,
    )
    session.add(record)
    session.flush()
    return CreatedToken(token=plain, record=record)


def _user_subject(session: Session, subject: str) -> str:
    """The canonical ref of a User entity in the catalog, or InputError naming the fix."""
    ref = identity.user_ref(subject)
    if ref is None or not ref.startswith("user:"):
        raise InputError(f"subject must be a user ref like 'user:default/alice', got {subject!r}")
    if identity.user_entity(session, ref) is None:
        raise InputError(
            f"there is no User entity {ref} in the catalog: a token issued to a user carries "
            "the rights the catalog gives that user; register the user first"
        )
    return ref


def authenticate(
    session: Session,
    token: str,
    bootstrap_token: str | None,
    policy: AccessPolicy | None = None,
) -> Principal | None:
    """The principal for a presented token, or None when it is unknown, revoked or expired
    (or, issued to a user, when that user has left the catalog)."""
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
    scope = record.scope
    groups: tuple[str, ...] = ()
    if record.acts_as_user:
        user = identity.user_entity(session, record.subject)
        if user is None:
            return None
        groups = identity.groups_of_entity(user)
        # The token's scope, never more than the user has now.
        scope = min(scope, (policy or AccessPolicy()).scope_for(groups), key=SCOPES.index)
    elif record.owner_group:
        # A token bound to a malformed group owns nothing.
        ref = identity.group_ref(record.owner_group)
        groups = (ref,) if ref else ()
    return Principal(
        subject=record.subject,
        scope=scope,
        groups=groups,
        unrestricted=not record.acts_as_user and not record.owner_group,
        token_id=record.id,
        purpose=record.purpose,
        service_ref=record.service_ref,
        expires_at=expires_at,
        follows_catalog=bool(record.acts_as_user),
    )


def list_tokens(session: Session, include_revoked: bool = False) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: str) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None:
        raise NotFoundError(f"no token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
    return record
