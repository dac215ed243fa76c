"""Short-lived in-process cache of verified tokens, for the usage push only.

A RAG service pushes a batch every few hundred milliseconds with the same ingest token;
looking the token up in the database each time was ~10 % of the portal's CPU per batch.
A verified principal is reused for at most ``ttl_s`` seconds (never past the token's own
expiry), so a revocation takes effect within ``ttl_s`` on every portal process; the
process that handles the revocation forgets the token at once. Unknown, revoked and
expired tokens are never cached: a new token works immediately.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from portal_backend.auth.service import Principal, authenticate, hash_token

MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def principal(
        self,
        factory: sessionmaker[Session],
        token: str,
        bootstrap_token: str | None,
    ) -> Principal | None:
        """The principal for ``token`` (cached or from the database), or None."""
        now = self.clock()
        key = hash_token(token)  # plain tokens are not kept in memory
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        with factory() as session:
            principal = authenticate(session, token, bootstrap_token)
        if principal is None or self.ttl_s <= 0:
            return principal
        until = now + self.ttl_s
        if principal.expires_at is not None:
            left = (principal.expires_at - datetime.now(UTC)).total_seconds()
            until = min(until, now + left)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # bounded memory; entries are cheap to rebuild
            self._entries[key] = (until, principal)
        return principal

    def forget(self, token_id: str) -> None:
        """Drops every cached entry of a token (called where it is revoked)."""
        with self._lock:
            for key in [k for k, (_, p) in self._entries.items() if p.token_id == token_id]:
                del self._entries[key]
