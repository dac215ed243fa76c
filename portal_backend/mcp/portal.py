"""What a tool call needs from the portal, and who is calling."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import AuthenticationError, NotAllowedError
from portal_backend.auth.identity import AccessPolicy
from portal_backend.auth.service import Principal, authenticate
from portal_backend.db import session_scope
from portal_backend.scaffolder.engine import Dispatch
from portal_backend.settings import Settings


@dataclass(frozen=True)
class Portal:
    """The app-wide objects ``create_app`` builds (or ``ragportal mcp`` builds the same way)."""

    settings: Settings
    session_factory: sessionmaker[Session]
    dispatch: Dispatch
    access_policy: AccessPolicy

    def principal_for_token(self, token: str | None) -> Principal:
        """The caller a bearer token stands for, as the REST API resolves it (revoked,
        expired or unknown: AuthenticationError; an ingest token may not use tools)."""
        if not token:
            raise AuthenticationError(
                "authentication required: send 'Authorization: Bearer <token>' "
                "(create one with `ragportal token create` or POST /api/auth/me/tokens)"
            )
        with session_scope(self.session_factory) as session:
            principal = authenticate(
                session, token, self.settings.bootstrap_token, self.access_policy
            )
        if principal is None:
            raise AuthenticationError("invalid, expired or revoked token")
        if not principal.has_scope("read"):
            raise NotAllowedError(
                f"this token has scope '{principal.scope}' ({principal.purpose}); "
                "MCP tools need an API token with read scope or more"
            )
        return principal


def require(principal: Principal, scope: str, what: str) -> None:
    """The same scope rule as the REST API's dependencies (read < write < admin)."""
    if not principal.has_scope(scope):
        raise NotAllowedError(
            f"this token has scope '{principal.scope}' ({principal.purpose}); "
            f"'{scope}' is needed to {what}"
        )
