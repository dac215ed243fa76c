"""Per-service ingest tokens: write-only, push usage (and evaluations) for one service.

The scaffolder can call ``issue`` when it registers a service; owners and admins use
``/api/sla/services/{kind}/{ns}/{name}/ingest-tokens``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal_backend.auth import revocation
from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import CreatedToken, create_token
from portal_backend.auth.token_cache import TokenCache
from portal_backend.sla.refs import normalize_ref


def issue(
    session: Session,
    service_ref: str,
    *,
    owner_group: str | None,
    created_by: str,
    name: str | None = None,
    expires_in_days: int | None = None,
) -> CreatedToken:
    ref = normalize_ref(service_ref)
    return create_token(
        session,
        name=name or f"ingest {ref}",
        scope="write",
        subject=created_by,
        owner_group=owner_group,
        purpose="ingest",
        service_ref=ref,
        created_by=created_by,
        expires_in_days=expires_in_days,
    )


def list_for(session: Session, service_ref: str) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.purpose == "ingest", ApiToken.service_ref == normalize_ref(service_ref))
            .order_by(ApiToken.created_at)
        )
    )


def revoke(
    factory: sessionmaker[Session], cache: TokenCache, service_ref: str, token_id: str
) -> None:
    """Revokes one of the service's ingest tokens (404 for any other token); this process
    refuses it at once."""
    revocation.revoke(factory, cache, token_id, ingest_for=normalize_ref(service_ref))
