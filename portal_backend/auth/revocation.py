"""Revoking a token so that this process refuses it at once.

The usage push keeps verified tokens in a short-lived cache (``TokenCache``); a revoked
token must leave it too, or it keeps working here until its entry expires. Every place
that revokes in a portal process (the tokens API, the admin page, a service's ingest
tokens) goes through ``revoke``. Other processes refuse it within the cache's TTL.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import NotFoundError
from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import revoke_token
from portal_backend.auth.token_cache import TokenCache
from portal_backend.db import session_scope


def revoke(
    factory: sessionmaker[Session],
    cache: TokenCache,
    token_id: str,
    *,
    ingest_for: str | None = None,
) -> None:
    """Revokes ``token_id`` (with ``ingest_for``: only that service's ingest token, else
    404), commits, then forgets it in ``cache``: forgotten before the commit, a push
    verifying it meanwhile could cache it again."""
    with session_scope(factory) as session:
        if ingest_for is not None:
            record = session.get(ApiToken, token_id)
            if record is None or record.purpose != "ingest" or record.service_ref != ingest_for:
                raise NotFoundError(f"no ingest token {token_id} for {ingest_for}")
        revoke_token(session, token_id)
    cache.forget(token_id)
