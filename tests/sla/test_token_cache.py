"""The bearer-token cache: reuse within its TTL, never past the token's expiry, never for
unknown tokens nor for tokens issued to users (both databases)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from portal_backend.auth.models import ApiToken
from portal_backend.auth.service import create_token
from portal_backend.auth.token_cache import TokenCache
from portal_backend.db import session_scope


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _token(session_factory, name: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with session_scope(session_factory) as session:
        created = create_token(
            session, name=name, scope="write", subject="user:default/ci", expires_in_days=1
        )
        return created.token, created.record.id


def test_cache_reuses_a_principal_within_its_ttl_only(session_factory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    cache = TokenCache(60.0, clock=clock)
    token, token_id = _token(session_factory, f"ttl-{time.monotonic_ns()}")
    assert cache.principal(session_factory, token, None) is not None
    # Revoked in the database: the cached principal still answers inside the TTL ...
    with session_scope(session_factory) as session:
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=datetime.now(UTC))
        )
    clock.now += 59
    assert cache.principal(session_factory, token, None) is not None
    # ... and not after it.
    clock.now += 2
    assert cache.principal(session_factory, token, None) is None
    assert cache.principal(session_factory, "no-such-token", None) is None


def test_cache_never_outlives_the_tokens_own_expiry(session_factory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    cache = TokenCache(3600.0, clock=clock)
    token, token_id = _token(session_factory, f"expiry-{time.monotonic_ns()}")
    # The token expires in one second, long before the cache's hour.
    with session_scope(session_factory) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id)
            .values(expires_at=datetime.now(UTC) + timedelta(seconds=1))
        )
    principal = cache.principal(session_factory, token, None)
    assert principal is not None and principal.expires_at is not None
    time.sleep(1.2)  # the database's clock: the token is now expired
    clock.now += 1.2
    assert cache.principal(session_factory, token, None) is None


def test_a_verified_token_is_answered_from_memory(session_factory) -> None:  # type: ignore[no-untyped-def]
    cache = TokenCache(60.0, clock=FakeClock())
    token, _ = _token(session_factory, f"memory-{time.monotonic_ns()}")
    assert cache.cached(token) is None  # never looked up: the caller must ask the database
    verified = cache.principal(session_factory, token, None)
    assert verified is not None and cache.cached(token) == verified


def test_a_token_issued_to_a_user_is_never_cached(session_factory) -> None:  # type: ignore[no-untyped-def]
    """Its rights follow the catalog at each use: a change of groups applies at once."""
    from catalog.service import CatalogService
    from tests.auth.conftest import user

    name = f"cached-{time.monotonic_ns()}"
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([user(name, f"{name}@example.com", "team-a")])
        token = create_token(
            session, name=name, scope="write", subject=f"user:default/{name}", acts_as_user=True
        ).token
    cache = TokenCache(3600.0, clock=FakeClock())
    first = cache.principal(session_factory, token, None)
    assert first is not None and first.groups == ("group:default/team-a",)
    assert cache.cached(token) is None
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([user(name, f"{name}@example.com", "team-b")])
    second = cache.principal(session_factory, token, None)
    assert second is not None and second.groups == ("group:default/team-b",)
