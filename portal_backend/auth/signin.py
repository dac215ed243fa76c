"""Sign-in resolution, as Backstage's resolvers do it: the identity provider says who
signed in (an ID token's claims); the catalog says who that is in the portal (a ``User``
entity) and which groups they are in. No matching User: refused, or a read-only guest
where the site allows guests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from catalog.errors import NotAllowedError
from portal_backend.auth import identity
from portal_backend.auth.models import UserSession
from portal_backend.auth.service import GUEST_SUBJECT
from portal_backend.auth.sessions import start_session
from portal_backend.settings import Settings


class SignInRefused(NotAllowedError):
    """Signed in at the identity provider, but not someone this portal knows."""


@dataclass(frozen=True)
class SignInRules:
    user_claim: str = "email"
    entity_field: str = "spec.profile.email"
    groups_claim: str | None = None
    guest: bool = False
    session_lifetime: timedelta = timedelta(hours=8)

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInRules:
        return cls(
            user_claim=settings.oidc_user_claim,
            entity_field=settings.oidc_user_entity_field,
            groups_claim=settings.oidc_groups_claim,
            guest=settings.oidc_guest,
            session_lifetime=timedelta(hours=settings.user_session_hours),
        )


def claim_groups(claims: dict[str, Any], claim: str | None) -> list[str]:
    """Group refs named by the groups claim: names (``team-a``) or refs."""
    if not claim:
        return []
    values = claims.get(claim) or []
    if isinstance(values, str):
        values = [values]
    refs = [identity.group_ref(str(v)) for v in values if isinstance(v, str | int)]
    return list(identity.merge_groups(r for r in refs if r))


def resolve_user(session: Session, claims: dict[str, Any], rules: SignInRules) -> str | None:
    """The ref of the one User entity whose ``entity_field`` equals the claim, or None
    (guest); SignInRefused when there is none (guests off) or more than one."""
    value = claims.get(rules.user_claim)
    if not isinstance(value, str) or not value.strip():
        raise SignInRefused(
            f"the identity provider's ID token has no '{rules.user_claim}' claim to find you "
            "in the catalog by; ask the platform team to check RAGPORTAL_OIDC_USER_CLAIM "
            "(and that the 'email' or 'profile' scope is requested)"
        )
    users = identity.find_user(session, rules.entity_field, value.strip())
    if len(users) > 1:
        raise SignInRefused(
            f"more than one User entity in the catalog has {rules.entity_field} = {value!r}; "
            "the platform team has to make it unique before you can sign in"
        )
    if not users:
        if rules.guest:
            return None
        raise SignInRefused(
            f"You signed in as {value!r}, but no User entity in the portal's catalog has "
            f"{rules.entity_field} = {value!r}. Ask the platform team to add you to the "
            "catalog (a User entity, with the groups you belong to in spec.memberOf)."
        )
    user = users[0]
    meta = user.get("metadata") or {}
    return f"user:{meta.get('namespace') or 'default'}/{meta['name']}".lower()


def sign_in(
    session: Session, claims: dict[str, Any], rules: SignInRules, issuer: str
) -> UserSession:
    """A new session for whoever ``claims`` resolve to (SignInRefused if nobody)."""
    subject = resolve_user(session, claims, rules)
    return start_session(
        session,
        subject=subject or GUEST_SUBJECT,
        claim_groups=claim_groups(claims, rules.groups_claim) if subject else [],
        issuer=issuer,
        external_subject=str(claims.get("sub", ""))[:255],
        guest=subject is None,
        lifetime=rules.session_lifetime,
    )
